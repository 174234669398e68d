"""What the benchmarks share: a local stack, a user, call counting, percentiles."""

import os
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.client
import httpx

from sputnik_tools.local.front import Front
from sputnik_tools.local.ports import free_port
from sputnik_tools.local.stack import LocalStack

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
LOGIN, PASSWORD = "bench", "bench password"


@contextmanager
def running_stack(*, record_requests: bool = False) -> Iterator[tuple[LocalStack, Front]]:
    """The local stack and its HTTP front on free ports, with the bench user.

    With `record_requests`, the stack logs every request its moto server serves (`stack.requests`).
    """
    from sputnik import auth

    # No EMF metrics line per invocation in the benchmarks' output (`sputnik local` does the same).
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with LocalStack(REPO / "template.yaml", aws_port=free_port(), record_requests=record_requests) as stack:
        front = Front(stack, port=free_port()).start()
        auth.add_user(LOGIN, PASSWORD)
        try:
            yield stack, front
        finally:
            front.stop()
            # moto keeps one state per process: forget this stack's tables, buckets and functions,
            # so that the next benchmark's stack starts from nothing.
            httpx.post(f"{stack.endpoint}/moto-api/reset", timeout=60)


@contextmanager
def dynamodb_calls() -> Iterator[Counter[str]]:
    """Count DynamoDB operations made by this process while the block runs."""
    counts: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, name: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            counts[name] += 1
        return original(self, name, params)

    botocore.client.BaseClient._make_api_call = counting
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of some values."""
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def row(name: str, *cells: object) -> str:
    """One aligned line of a result table."""
    return f"  {name:<44}" + "".join(f"{c!s:>14}" for c in cells)
