"""The Lambda handler of a stage: the stage's `run`, with structured logs."""

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

Stage = Callable[[dict[str, Any]], dict[str, Any]]


def stage_handler(run: Stage) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Wrap a stage's `run` as a Lambda handler."""
    logger = Logger()

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Run the stage on the state's input."""
        return run(event)

    return handler
