"""The durable buffer between the collector and storage: the canonical records (``records``), their row
encoding (``rows``) and the write-ahead log (``wal``).

The collector normalizes spans into records, encodes them as rows and appends them to the log; storage's
writer drains the log into ClickHouse. Both depend on this package and neither on the other
(tests/buffer/test_layers.py holds them to it).
"""
