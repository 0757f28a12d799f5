"""Catches the silent failures of LLM features."""
