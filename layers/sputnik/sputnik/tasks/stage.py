"""The Lambda handler of a stage: the stage's `run`, observed as every handler is (logs, traces, metrics)."""

from collections.abc import Callable
from typing import Any

from sputnik.observability import Handler, observe

Stage = Callable[[dict[str, Any]], dict[str, Any]]


def stage_handler(run: Stage) -> Handler:
    """Wrap a stage's `run` as a Lambda handler."""
    return observe(lambda event, context: run(event))
