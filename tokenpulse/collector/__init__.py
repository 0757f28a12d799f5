"""OTLP receivers, normalization, pricing and the write-ahead log."""
