"""Every handler logs JSON with the request id and publishes metrics (sputnik.observability)."""

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sputnik.observability import logger, observe
from sputnik_tools.local.runtime import LambdaContext, invocation
from tests.support.logs import json_lines, metrics_of

log = logging.getLogger("sputnik.test_observability")


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the Powertools logger writes (its handler keeps the stdout it found at import)."""
    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_library_logs_are_json_lines_with_the_request_id(
    capfd: pytest.CaptureFixture[str], logged: io.StringIO
) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        log.info("working on %s", event["n"])
        return {"statusCode": 201, "body": ""}

    context = LambdaContext("observed-http")
    # As the local stack runs every handler (Lambda runs one function per process).
    with invocation(context):
        assert observe(handler)({"n": 7}, context) == {"statusCode": 201, "body": ""}
    lines = [line for line in json_lines(logged.getvalue()) if line.get("message") == "working on 7"]
    assert len(lines) == 1
    assert lines[0]["level"] == "INFO"
    assert lines[0]["function_request_id"] == context.aws_request_id
    assert lines[0]["function_name"] == "observed-http"
    assert metrics_of(json_lines(capfd.readouterr().out), "observed-http")["Http2xx"] == 1


def test_counts_a_handler_returns_are_published_as_metrics(capfd: pytest.CaptureFixture[str]) -> None:
    result = {"ingested": 2, "skipped": 1, "stale": 0, "ok": True}
    assert observe(lambda event, context: result)({}, LambdaContext("observed-counts")) == result
    lines = json_lines(capfd.readouterr().out)
    assert metrics_of(lines, "observed-counts") == {"Ingested": 2, "Skipped": 1, "Stale": 0}
    emf = next(line for line in lines if line.get("function_name") == "observed-counts" and "_aws" in line)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "sputnik"


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_failing_handler_raises_and_still_logs_its_request(logged: io.StringIO) -> None:
    def handler(event: dict[str, Any], context: Any) -> None:
        log.warning("about to fail")
        raise RuntimeError("boom")

    context = LambdaContext("observed-failure")
    with pytest.raises(RuntimeError, match="boom"), invocation(context):
        observe(handler)({}, context)
    lines = json_lines(logged.getvalue())
    assert [line["function_request_id"] for line in lines if line.get("message") == "about to fail"] == [
        context.aws_request_id
    ]


def test_a_call_without_a_lambda_context_runs_the_handler_alone(capfd: pytest.CaptureFixture[str]) -> None:
    assert observe(lambda event, context: {"statusCode": 204, "seen": event})({"n": 1}, None) == {
        "statusCode": 204,
        "seen": {"n": 1},
    }
    assert "_aws" not in capfd.readouterr().out


def test_with_metrics_disabled_nothing_is_printed_not_even_the_cold_start(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `sputnik local` sets by default: no EMF line at all, the first invocation's ColdStart included."""
    from aws_lambda_powertools.metrics.provider import cold_start

    monkeypatch.setattr(cold_start, "is_cold_start", True)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    result = {"ingested": 2}
    assert observe(lambda event, context: result)({}, LambdaContext("observed-quiet")) == result
    assert [line for line in json_lines(capfd.readouterr().out) if "_aws" in line] == []
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    assert observe(lambda event, context: result)({}, LambdaContext("observed-loud")) == result
    assert metrics_of(json_lines(capfd.readouterr().out), "observed-loud") == {"ColdStart": 1, "Ingested": 2}
