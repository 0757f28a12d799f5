"""Lines prepared by worker processes come back in file order, equal to what this process makes; a
prepared line commits as its records would."""

from __future__ import annotations

import pytest

from tests.native_blocks import read_blocks
from tests.otlp_builders import llm_span, otlp_json_line
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector import file_ingest, otlp
from tokenpulse.collector.file_ingest import LineSettings, normalize_line, prepared_lines
from tokenpulse.collector.limits import OTHER, Limits
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline, Prepared, request_digest
from tokenpulse.collector.pricing import Pricer


@pytest.mark.parametrize("chunk_lines", [1, 5, file_ingest.CHUNK_LINES])
def test_workers_give_the_outcomes_of_one_process_in_file_order(
    chunk_lines: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_ingest, "CHUNK_LINES", chunk_lines)  # lines travel to workers in chunks
    lines = []
    for n in range(1, 13):
        spans = [llm_span(**{"gen_ai.usage.input_tokens": 1000 * n + i}) for i in range(n % 4 + 1)]
        lines.append(otlp_json_line(*spans).encode())
    lines[4] = b'{"resourceSpans": 7}'  # not a request
    lines[7] = otlp_json_line(*(llm_span() for _ in range(6))).encode()  # over the span limit below
    numbered = [(number, line, number * 100) for number, line in enumerate(lines, start=1)]
    settings = LineSettings(NormalizeConfig(), {}, Limits(max_spans_per_request=5), tenant="acme")

    alone = list(prepared_lines(numbered, settings, workers=1))
    parallel = list(prepared_lines(numbered, settings, workers=3))

    assert [line for line, _ in parallel] == numbered
    for (_, mine), (_, theirs) in zip(alone, parallel, strict=True):
        if isinstance(mine, Prepared):
            assert theirs == mine
        else:
            assert type(theirs) is type(mine) and theirs.message == mine.message
    outcomes = [outcome for _, outcome in parallel]
    assert isinstance(outcomes[4], otlp.BadRequest) and "resourceSpans" in outcomes[4].message
    assert isinstance(outcomes[7], otlp.PayloadTooLarge)
    counts = [o.counts[0] for o in outcomes if isinstance(o, Prepared)]
    assert counts == [n % 4 + 1 for n in range(1, 13) if n not in (5, 8)]


def _pipeline(tmp_path, name: str, limits: Limits) -> Pipeline:
    return Pipeline(WriteAheadLog(tmp_path / name), NormalizeConfig(), Pricer({}), limits)


def _rows(pipeline: Pipeline) -> list[bytes]:
    assert pipeline.wal is not None
    return [frame.calls for frame in pipeline.wal.read(pipeline.wal.oldest, pipeline.wal.durable_end)]


def test_a_prepared_line_commits_the_frame_its_records_would(tmp_path) -> None:
    """Under the cardinality cap, commit_prepared appends byte for byte what commit appends; a value
    over the cap makes it refuse (nothing appended or admitted), and commit of the records then folds
    the very values one process folds."""
    limits = Limits(max_dimension_values=4, max_attribute_length=8)
    lines = [
        otlp_json_line(
            *(llm_span(**{"tokenpulse.route": f"/r{n}-{i}-long-route"}) for i in range(2))
        ).encode()
        for n in range(3)
    ]  # two new routes a line: the second line reaches the cap of 4, the third is over it
    settings = LineSettings(NormalizeConfig(), {}, limits, tenant="acme")
    by_records = _pipeline(tmp_path, "records", limits)
    by_frames = _pipeline(tmp_path, "frames", limits)
    refused = []
    for line in lines:
        digest = request_digest(line)
        expected = by_records.commit(
            normalize_line(line, by_records.config, Pricer({}), limits), "file", digest, "acme"
        )
        prepared = next(prepared_lines([(1, line, 0)], settings))[1]
        assert isinstance(prepared, Prepared) and prepared.digest == digest
        result = by_frames.commit_prepared(prepared, "file", "acme")
        if result is None:
            refused.append(line)
            result = by_frames.commit(
                normalize_line(line, by_frames.config, Pricer({}), limits), "file", digest, "acme"
            )
        assert (result.calls, result.truncated, result.wal_end) == (
            expected.calls,
            expected.truncated,
            expected.wal_end,
        )
    assert refused == lines[2:]
    assert _rows(by_frames) == _rows(by_records)
    first, *_ = read_blocks(_rows(by_frames)[0])
    assert first["route"] == "/r0-0-lo"  # truncated to 8 characters, as the records were
    assert sum(list(row.values()).count(OTHER) for row in read_blocks(_rows(by_frames)[2])) == 2

    again = next(prepared_lines([(1, lines[0], 0)], settings))[1]
    assert isinstance(again, Prepared)
    assert by_frames.commit_prepared(again, "file", "acme").duplicate  # the same line twice: stored once
