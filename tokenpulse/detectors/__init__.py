"""Detectors of silent failures (see the detectors issue)."""
