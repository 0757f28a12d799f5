"""Builders of canonical records for storage tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenpulse.buffer.records import CallRecord, EvaluationRecord, ToolSpanRecord
from tokenpulse.buffer.rows import CALL_FIELDS, EVALUATION_FIELDS, TOOL_SPAN_FIELDS, encode_rows
from tokenpulse.buffer.wal import WriteAheadLog, encode_frame
from tokenpulse.storage.store import Store
from tokenpulse.storage.writer import LogWriter

_ids = itertools.count(1)
# A whole minute one hour ago: recent enough for the raw tables' retention TTL.
BASE_TIME_NS = (int(time.time()) // 60 * 60 - 3600) * 1_000_000_000


def call_record(**overrides: Any) -> CallRecord:
    n = next(_ids)
    record: CallRecord = {
        "time_unix_nano": BASE_TIME_NS,
        "duration_ms": 1200.0,
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "parent_span_id": "",
        "service": "checkout",
        "service_version": "1.0.0",
        "environment": "prod",
        "provider": "openai",
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "operation": "chat",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 600,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "ttft_ms": 300.0,
        "status": "ok",
        "error_type": "",
        "is_timeout": False,
        "route": "/chat",
        "user": "u1",
        "session": "s1",
        "prompt_version": "v1",
        "router": "",
        "escalated": False,
        "cost_usd": Decimal("0.004250000000"),
        "price_known": True,
        "cost_source": "genai-prices",
        "dialect": "otel",
        "extra": {},
        "service_tier": "",
        "speed": "",
        "inference_geo": "",
        "cache_write_1h_tokens": 0,
        "reported_cost_usd": None,
    }
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def tool_span_record(**overrides: Any) -> ToolSpanRecord:
    n = next(_ids)
    record: ToolSpanRecord = {
        "time_unix_nano": BASE_TIME_NS,
        "duration_ms": 800.0,
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "parent_span_id": "",
        "service": "checkout",
        "environment": "prod",
        "kind": "tool",
        "name": "search",
        "status": "ok",
        "error_type": "",
        "is_timeout": False,
    }
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def evaluation_record(**overrides: Any) -> EvaluationRecord:
    n = next(_ids)
    record: EvaluationRecord = {
        "time_unix_nano": BASE_TIME_NS,
        "trace_id": f"{n:032x}",
        "span_id": f"{n:016x}",
        "service": "checkout",
        "environment": "prod",
        "route": "/chat",
        "model": "gpt-4o-2024-08-06",
        "prompt_version": "v1",
        "evaluation": "judge_pass",
        "score": 0.9,
        "label": "pass",
        "passed": True,
        "evaluator": "tokenpulse.sdk",
        "error_type": "",
        "response_id": "",
    }
    record.update(overrides)  # type: ignore[typeddict-item]
    return record


def store_records(
    store: Store,
    directory: Path,
    calls: Sequence[CallRecord],
    tool_spans: Sequence[ToolSpanRecord] = (),
    tenant: str = "",
    evaluations: Sequence[EvaluationRecord] = (),
) -> None:
    """Put records into ``store`` the way the daemon does: a write-ahead log frame drained by the writer."""
    wal = WriteAheadLog(directory / "wal")
    frame = encode_frame(
        encode_rows(calls, CALL_FIELDS, tenant),
        encode_rows(tool_spans, TOOL_SPAN_FIELDS, tenant),
        len(calls),
        len(tool_spans),
        evaluations=encode_rows(evaluations, EVALUATION_FIELDS, tenant),
        evaluation_count=len(evaluations),
    )
    end = wal.append(frame)
    writer = LogWriter(wal, store, batch_rows=1000, batch_seconds=0.01)
    writer.start()
    assert writer.wait_stored(end, timeout=30)
    writer.stop()
    wal.close()


def migrate_to(store: Any, version: int) -> None:
    """Bring an empty store's schema to ``version`` and no further: the store an older tokenpulse left."""
    from tokenpulse.storage.schema import MIGRATIONS

    store.client.command(
        "CREATE TABLE tokenpulse_migrations (version UInt32, name String, applied_at DateTime('UTC')"
        " DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    for migration in MIGRATIONS:
        if migration.version <= version:
            for statement in migration.statements:
                store.client.command(statement)
            store.client.insert("tokenpulse_migrations", [[migration.version, migration.name]],
                                column_names=["version", "name"])  # fmt: skip
