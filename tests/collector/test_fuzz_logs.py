"""Fuzzing the logs receiver's decoding and normalization: any body is stored or cleanly rejected (400),
never a crash, and what is acknowledged reads back whole from the log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collector.test_fuzz_otlp import json_scalars, json_values, mutated
from tests.native_blocks import read_blocks
from tests.otlp_builders import evaluation_log, logs_json, logs_request, plain_log
from tokenpulse.buffer.wal import WriteAheadLog
from tokenpulse.collector import otlp
from tokenpulse.collector.normalize import NormalizeConfig
from tokenpulse.collector.pipeline import Pipeline, request_digest
from tokenpulse.collector.pricing import Pricer

REQUEST = logs_request(
    evaluation_log("judge_pass", score=0.7, label="pass", **{"tokenpulse.route": "/chat"}),
    evaluation_log("relevance", score=0.2, legacy_name=True),
    plain_log(),
)
VALID = REQUEST.SerializeToString()
VALID_JSON = logs_json(REQUEST)
LOG_KEYS = [
    "resourceLogs", "resource", "attributes", "scopeLogs", "scope", "logRecords", "name", "traceId",
    "spanId", "eventName", "timeUnixNano", "observedTimeUnixNano", "body", "key", "value", "stringValue",
    "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "values",
]  # fmt: skip
# Documents shaped like OTLP/JSON logs (with the event's names among the strings) with values of any type.
log_shaped = st.recursive(
    json_scalars | st.sampled_from(["gen_ai.evaluation.result", "event.name", "gen_ai.evaluation.name",
                                    "gen_ai.evaluation.score.value"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(LOG_KEYS), children, max_size=5)
    ),
    max_leaves=30,
)  # fmt: skip
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(WriteAheadLog(tmp_path_factory.mktemp("wal")), NormalizeConfig(), Pricer())


def ingest_if_decoded(pipeline: Pipeline, body: bytes, kind: str) -> None:
    try:
        request = otlp.decode_logs(body, kind)
    except otlp.RequestError as error:
        assert error.status == 400 and error.message
        return
    result = pipeline.ingest_logs(request, "fuzz", request_digest(body))
    if result.wal_end:  # what was acknowledged reads back whole from the log
        *_, frame = pipeline.wal.read(pipeline.wal.oldest, result.wal_end)
        assert frame.evaluation_count == result.evaluations
        assert len(read_blocks(frame.evaluations)) == result.evaluations


def test_the_valid_bodies_store_both_evaluations(pipeline: Pipeline) -> None:
    for body, kind in ((VALID, otlp.PROTOBUF), (VALID_JSON, otlp.JSON)):
        result = pipeline.ingest_logs(otlp.decode_logs(body, kind), "fuzz", request_digest(body))
        assert (result.evaluations, result.ignored, result.rejected) == (2, 1, 0)


@fixture_ok
@given(body=mutated(VALID) | st.binary(max_size=1024))
def test_mutated_protobuf_logs_are_stored_or_rejected_cleanly(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.PROTOBUF)


@fixture_ok
@given(body=mutated(VALID_JSON))
def test_mutated_json_logs_are_stored_or_rejected_cleanly(pipeline: Pipeline, body: bytes) -> None:
    ingest_if_decoded(pipeline, body, otlp.JSON)


@fixture_ok
@given(document=json_values | log_shaped)
def test_json_documents_of_any_shape_are_stored_or_rejected(pipeline: Pipeline, document: Any) -> None:
    ingest_if_decoded(pipeline, json.dumps(document).encode(), otlp.JSON)


@fixture_ok
@given(
    key=st.sampled_from(["gen_ai.evaluation.name", "gen_ai.evaluation.score.value",
                         "gen_ai.evaluation.score.label", "tokenpulse.route", "gen_ai.response.model"]),
    kind=st.sampled_from(
        ["stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue"]
    ),
    value=json_values,
)  # fmt: skip
def test_any_value_of_an_evaluation_attribute(pipeline: Pipeline, key: str, kind: str, value: Any) -> None:
    document = json.loads(VALID_JSON)
    record = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"].append({"key": key, "value": {kind: value}})
    ingest_if_decoded(pipeline, json.dumps(document).encode(), otlp.JSON)
