from pathlib import Path

from tests.otlp_builders import export_request, llm_span, span_with
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline, RecentRequests, request_digest
from tokenpulse.collector.pricing import Pricer


def test_recent_requests_forget_the_oldest_first() -> None:
    recent = RecentRequests(capacity=2)
    for digest in (b"a", b"b", b"c"):
        recent.add(digest)
    assert b"a" not in recent and b"b" in recent and b"c" in recent


def test_pipeline_splits_calls_tool_spans_ignored_and_rejected(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    pipeline = Pipeline(wal, NormalizeConfig(), Pricer())
    request = export_request(
        llm_span(),
        llm_span(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        llm_span(**{"gen_ai.usage.input_tokens": -1}),
        span_with({"http.request.method": "GET", "http.response.status_code": 200}),
    )
    body = request.SerializeToString()
    result = pipeline.ingest(request, "test", request_digest(body))
    assert (result.calls, result.tool_spans, result.rejected, result.ignored) == (1, 1, 1, 1)
    assert "1 span(s) rejected" in result.message
    (frame,) = wal.read(0, wal.durable_end)
    assert frame.request_digest == request_digest(body)
    again = pipeline.ingest(request, "test", request_digest(body))
    assert again.duplicate and again.wal_end == 0
    wal.close()
    # After a restart the digests still in the log are remembered.
    reopened = Pipeline(WriteAheadLog(tmp_path), NormalizeConfig(), Pricer())
    assert reopened.ingest(request, "test", request_digest(body)).duplicate
