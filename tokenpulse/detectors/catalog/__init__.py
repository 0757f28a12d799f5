"""The detector catalog: one module per detector; the names are a public contract."""
