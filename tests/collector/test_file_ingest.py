"""Lines normalized by worker processes come back in file order, equal to what this process makes."""

from __future__ import annotations

from tests.otlp_builders import llm_span, otlp_json_line
from tokenpulse.collector import otlp
from tokenpulse.collector.file_ingest import normalized_lines
from tokenpulse.collector.limits import Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Normalized


def test_workers_give_the_outcomes_of_one_process_in_file_order() -> None:
    lines = []
    for n in range(1, 13):
        spans = [llm_span(**{"gen_ai.usage.input_tokens": 1000 * n + i}) for i in range(n % 4 + 1)]
        lines.append(otlp_json_line(*spans).encode())
    lines[4] = b'{"resourceSpans": 7}'  # not a request
    lines[7] = otlp_json_line(*(llm_span() for _ in range(6))).encode()  # over the span limit below
    numbered = [(number, line, number * 100) for number, line in enumerate(lines, start=1)]
    limits = Limits(max_spans_per_request=5)
    config = NormalizeConfig()

    alone = list(normalized_lines(numbered, config, {}, limits, workers=1))
    parallel = list(normalized_lines(numbered, config, {}, limits, workers=3))

    assert [line for line, _ in parallel] == numbered
    for (_, mine), (_, theirs) in zip(alone, parallel, strict=True):
        if isinstance(mine, Normalized):
            assert theirs == mine
        else:
            assert type(theirs) is type(mine) and theirs.message == mine.message
    outcomes = [outcome for _, outcome in parallel]
    assert isinstance(outcomes[4], otlp.BadRequest) and "resourceSpans" in outcomes[4].message
    assert isinstance(outcomes[7], otlp.PayloadTooLarge)
    inputs = [call["input_tokens"] for o in outcomes if isinstance(o, Normalized) for call in o.calls]
    expected = [1000 * n + i for n in range(1, 13) if n not in (5, 8) for i in range(n % 4 + 1)]
    assert inputs == expected
