"""schemathesis against the API's own OpenAPI document: no 5xx for any generated request, and every
response is documented and matches its schema (status code, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.api_app import api_over
from tests.factories import call_record

# The API validates its query strings itself (ISO times, known dimensions) and answers a documented
# 400 to values the schema's plain strings allow, so "schema-valid data is accepted" is not its contract.
# Every other default check runs: no 5xx, documented status codes, content types, headers and bodies.
NOT_ITS_CONTRACT = [positive_data_acceptance]


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    calls = [call_record(route=f"/r{i % 3}", user=f"u{i}") for i in range(20)]
    with api_over(tmp_path_factory.mktemp("schema"), calls) as (app, _):
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: OpenApiSchema) -> list[str]:
    return [result.ok().label for result in schema.get_all_operations()]


@pytest.mark.parametrize(
    "label",
    ["GET /healthz", "GET /readyz", "GET /metrics", "GET /api/v1/summary", "GET /api/v1/summary.csv",
     "GET /api/v1/calls", "GET /api/v1/alerts", "GET /api/v1/reconcile",
     "GET /api/v1/alerts/{alert_id}", "GET /api/v1/timeseries", "GET /api/v1/alert-events",
     "GET /runbooks", "GET /runbooks/{detector}", "GET /api/v1/silences", "POST /api/v1/silences",
     "GET /api/v1/silences/{silence_id}", "DELETE /api/v1/silences/{silence_id}",
     "GET /api/v1/incidents", "GET /api/v1/incidents/{incident_id}", "GET /incidents/{incident_id}"],
)  # fmt: skip
def test_generated_requests_get_documented_non_5xx_answers(schema: OpenApiSchema, label: str) -> None:
    assert label in operations(schema)
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == label)

    @given(case=operation.as_strategy())
    @settings(max_examples=40, suppress_health_check=list(HealthCheck))
    def property(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=NOT_ITS_CONTRACT)

    property()


def test_every_operation_of_the_schema_is_tested(schema: OpenApiSchema) -> None:
    tested = test_generated_requests_get_documented_non_5xx_answers.pytestmark[0].args[1]
    assert sorted(operations(schema)) == sorted(tested)
