"""Evaluation results normalized to ``EvaluationRecord``: the GenAI event ``gen_ai.evaluation.result`` as an
OTLP log record (``logs``) or, from older instrumentations, as an event of the evaluated call's span.

What is kept: the evaluation's name, score, label (and the verdict it reads as), error type, response id,
the evaluated call's ids, and the dimensions tokenpulse slices by. Never the explanation: free text that
may quote the user's prompt or the model's answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tokenpulse.buffer.records import CallRecord, EvaluationRecord
from tokenpulse.collector.dialects import InvalidSpan
from tokenpulse.collector.logs import EVENT, LogView

# Private helpers of normalize shared on purpose: an evaluation reads route, prompt version and
# environment with exactly the keys and coercions a call does.
from tokenpulse.collector.normalize import _ENVIRONMENT_KEYS, NormalizeConfig, _str_attr
from tokenpulse.collector.spans import SpanEvent

NAME = "gen_ai.evaluation.name"
SCORE = "gen_ai.evaluation.score.value"
LABEL = "gen_ai.evaluation.score.label"
RESPONSE_ID = "gen_ai.response.id"
ERROR_TYPE = "error.type"
# The evaluated call's model, where the event carries it (tokenpulse.sdk sets both from the call).
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")

# Labels read as a verdict (compared lowercased); any other label is kept as it is and counts as no
# verdict, so "pass rate" is never made up from a label tokenpulse cannot read.
PASS_LABELS = frozenset(("pass", "passed", "true", "yes", "correct", "good", "relevant", "positive", "ok"))
FAIL_LABELS = frozenset(
    ("fail", "failed", "false", "no", "incorrect", "bad", "irrelevant", "negative", "wrong")
)


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidSpan(f"{SCORE} must be a finite number, got {value!r}")
    return float(value)


def _verdict(label: str) -> bool | None:
    folded = label.strip().lower()
    if folded in PASS_LABELS:
        return True
    if folded in FAIL_LABELS:
        return False
    return None


def _record(
    time_unix_nano: int,
    trace_id: str,
    span_id: str,
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any],
    evaluator: str,
    config: NormalizeConfig,
    call: CallRecord | None = None,
) -> EvaluationRecord:
    name = attributes.get(NAME)
    if type(name) is not str or not name:
        raise InvalidSpan(f"{EVENT} without {NAME}")
    label = _str_attr(attributes, (LABEL,))
    if call is not None:  # a span event: the evaluated call is the span itself
        service, environment = call["service"], call["environment"]
        route, prompt_version = call["route"], call["prompt_version"]
        model = call["response_model"] or call["request_model"]
    else:
        service = _str_attr(resource, ("service.name",))
        environment = _str_attr(resource, _ENVIRONMENT_KEYS)
        route = _str_attr(attributes, config.route_keys) or _str_attr(resource, config.route_keys)
        prompt_version = _str_attr(attributes, config.prompt_version_keys) or _str_attr(
            resource, config.prompt_version_keys
        )
        model = _str_attr(attributes, MODEL_KEYS)
    return {
        "time_unix_nano": time_unix_nano,
        "trace_id": trace_id,
        "span_id": span_id,
        "service": service,
        "environment": environment,
        "route": route,
        "model": model,
        "prompt_version": prompt_version,
        "evaluation": name,
        "score": _score(attributes.get(SCORE)),
        "label": label,
        "passed": _verdict(label),
        "evaluator": evaluator,
        "error_type": _str_attr(attributes, (ERROR_TYPE,)),
        "response_id": _str_attr(attributes, (RESPONSE_ID,)),
    }


def evaluation_from_log(view: LogView, config: NormalizeConfig) -> EvaluationRecord:
    """The evaluation a log record carries; InvalidSpan (the record is rejected) without a name, with a
    score that is not a number, or with no time at all."""
    time_unix_nano = view.time_unix_nano or view.observed_time_unix_nano
    if not time_unix_nano:
        raise InvalidSpan("log record without time_unix_nano or observed_time_unix_nano")
    return _record(
        time_unix_nano, view.trace_id, view.span_id, view.attributes, view.resource, view.scope_name, config
    )


def is_evaluation_event(event: SpanEvent) -> bool:
    return event.name == EVENT


def evaluation_from_span_event(
    event: SpanEvent, call: CallRecord, scope_name: str, config: NormalizeConfig
) -> EvaluationRecord:
    """The evaluation sent as an event of the evaluated call's own span (older instrumentations); its
    route, model and prompt version are the call's."""
    return _record(
        event.time_unix_nano or call["time_unix_nano"],
        call["trace_id"],
        call["span_id"],
        event.attributes,
        {},
        scope_name,
        config,
        call,
    )
