"""Prometheus metrics of the daemon itself, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SPANS_RECEIVED = Counter(
    "tokenpulse_spans_received", "Spans received over OTLP or ingested from files.", ["transport"]
)
SPANS_ACCEPTED = Counter(
    "tokenpulse_spans_accepted", "Spans accepted into the write-ahead log, by what they became.", ["kind"]
)
SPANS_REJECTED = Counter("tokenpulse_spans_rejected", "Spans rejected, by reason.", ["reason"])
OTLP_ITEMS_RECEIVED = Counter(
    "tokenpulse_otlp_items_received",
    "Metric data points and log records received over OTLP (of logs, only evaluation results are stored).",
    ["signal", "transport"],
)
EVALUATIONS_ACCEPTED = Counter(
    "tokenpulse_evaluations_accepted",
    "Evaluation results (gen_ai.evaluation.result) accepted into the write-ahead log, by how they came.",
    ["source"],
)
EVALUATIONS_REJECTED = Counter(
    "tokenpulse_evaluations_rejected", "Evaluation results rejected (no name, a score that is no number)."
)
REQUESTS_REJECTED = Counter(
    "tokenpulse_requests_rejected", "Whole OTLP requests rejected, by reason.", ["transport", "reason"]
)
DUPLICATE_REQUESTS = Counter(
    "tokenpulse_duplicate_requests",
    "Export requests identical to one accepted before (exporter retries), acknowledged and dropped.",
    ["transport"],
)
UNPRICED_CALLS = Counter(
    "tokenpulse_unpriced_calls", "LLM calls stored with an unknown price, by provider.", ["provider"]
)
WAL_PENDING_BYTES = Gauge(
    "tokenpulse_wal_pending_bytes", "Bytes in the write-ahead log not yet written to ClickHouse."
)
WAL_SEGMENTS = Gauge("tokenpulse_wal_segments", "Segment files of the write-ahead log on disk.")
INSERT_SECONDS = Histogram(
    "tokenpulse_insert_batch_seconds",
    "Latency of one batch insert into ClickHouse.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INSERT_FAILURES = Counter("tokenpulse_insert_failures", "Batch inserts into ClickHouse that failed.")
ROWS_WRITTEN = Counter("tokenpulse_rows_written", "Rows written to ClickHouse, by table.", ["table"])
ALERTS_FIRING = Gauge(
    "tokenpulse_alerts_firing",
    "Alerts firing now that receivers hear of (not explained, inhibited or silenced), by detector and "
    "severity.",
    ["detector", "severity"],
)
ALERTS = Gauge(
    "tokenpulse_alerts",
    "Alerts now by the state each really has: pending, firing, explained (held back by its cause's "
    "alert), inhibited, silenced.",
    ["detector", "severity", "state"],
)
DETECTOR_CYCLE_SECONDS = Histogram(
    "tokenpulse_detector_cycle_seconds",
    "Duration of one detector cycle (all detectors).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
DETECTOR_ERRORS = Counter("tokenpulse_detector_errors", "Detector cycles that failed (storage errors).")
NOTIFICATIONS_SENT = Counter(
    "tokenpulse_notifications_sent", "Notifications delivered, by receiver.", ["receiver"]
)
NOTIFICATIONS_FAILED = Counter(
    "tokenpulse_notifications_failed",
    "Failed notification attempts, by receiver and outcome (retrying, or dropped: rejected or given up).",
    ["receiver", "outcome"],
)
NOTIFICATIONS_PENDING = Gauge(
    "tokenpulse_notifications_pending",
    "Notifications in the outbox not yet delivered, by receiver.",
    ["receiver"],
)

# LLM figures, for Prometheus users without ClickHouse. Labels are service and model only, and the
# (service, model) pairs are capped (collector/llm_metrics.py): a runaway dimension cannot explode them.
LLM_CALLS = Counter(
    "tokenpulse_llm_calls",
    "LLM calls accepted, by service, model and status.",
    ["service", "model", "status"],
)
LLM_COST_USD = Counter(
    "tokenpulse_llm_cost_usd",
    "Cost of accepted LLM calls in US dollars (calls without a known price count 0).",
    ["service", "model"],
)
LLM_TOKENS = Counter(
    "tokenpulse_llm_tokens",
    "Tokens of accepted LLM calls by kind: input (includes cache_read and cache_write), cache_read, "
    "cache_write, output (includes reasoning), reasoning.",
    ["service", "model", "kind"],
)
LLM_CALL_SECONDS = Histogram(
    "tokenpulse_llm_call_duration_seconds",
    "Duration of accepted LLM calls.",
    ["service", "model"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
)
