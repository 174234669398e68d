"""Logs, traces and metrics of every Lambda handler: Powertools Logger, Tracer and Metrics in one wrapper.

A function module ends with `handler = observe(...)`. Logs are JSON lines with the request id (the
library's `sputnik.*` loggers included: Logger's service, `sputnik`, is their parent); X-Ray traces
each invocation and its AWS calls; metrics go out as CloudWatch embedded metrics (EMF) in the log.
"""

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = Callable[[dict[str, Any], Any], Any]
SERVICE = "sputnik"

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE))
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", SERVICE)


@cache
def tracer() -> "Tracer":
    """The X-Ray tracer, made at the first invocation, not at import.

    Importing the X-Ray SDK builds two boto3 X-Ray clients for its sampler (~0.3 s measured), which
    would count against every cold start's init; only AWS calls (botocore) are patched, not every
    library X-Ray knows.
    """
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE, patch_modules=("botocore",))


def record(metrics: EphemeralMetrics, result: Any) -> None:
    """Count what an invocation returned: an HTTP response's status class, or a handler's counts."""
    if not isinstance(result, dict):
        return
    if "statusCode" in result:
        metrics.add_metric(name=f"Http{int(result['statusCode']) // 100}xx", unit=MetricUnit.Count, value=1)
        return
    for name, value in result.items():
        if isinstance(value, int) and not isinstance(value, bool):
            metrics.add_metric(name=name.title().replace("_", ""), unit=MetricUnit.Count, value=value)


def observe(handler: Handler) -> Handler:
    """Wrap a Lambda handler: JSON logs with the request id, an X-Ray trace, metrics of its result."""
    traced: list[Handler] = []

    def invoke(event: dict[str, Any], context: Any) -> Any:
        """The handler, with a metric set of its own (the local stack runs many invocations at once)."""
        metrics = EphemeralMetrics(namespace=NAMESPACE)

        # Powertools prints the ColdStart metric even with POWERTOOLS_METRICS_DISABLED (it is flushed
        # on its own): asked only when metrics are on.
        @metrics.log_metrics(capture_cold_start_metric=not is_metrics_disabled())
        def counted(event: dict[str, Any], context: Any) -> Any:
            metrics.add_dimension(name="function_name", value=str(getattr(context, "function_name", SERVICE)))
            result = handler(event, context)
            record(metrics, result)
            return result

        return counted(event, context)

    @logger.inject_lambda_context(clear_state=True)
    def in_lambda(event: dict[str, Any], context: Any) -> Any:
        if not traced:
            traced.append(tracer().capture_lambda_handler(invoke, capture_response=False))
        return traced[0](event, context)

    def observed(event: dict[str, Any], context: Any) -> Any:
        # Lambda always passes a context; a call without one (a test, a script) has no request to
        # log or trace by, so it runs the handler alone.
        return handler(event, context) if context is None else in_lambda(event, context)

    # What the handler wraps (a Mangum adapter and its app) stays reachable, as functools.wraps leaves it.
    observed.__wrapped__ = handler  # type: ignore[attr-defined]
    return observed
