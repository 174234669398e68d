"""Failures of stages and items, told in one line a user can read: no traceback, no internal paths."""

import json
import re
from typing import Any

from sputnik.errors import SputnikError

MAX_MESSAGE = 300
# Errors whose message was written for users; any other error is named, its message kept out.
USER_ERRORS = frozenset({"StageError", "ProductError", "InvalidItem", "InvalidInput", "NotFound"})
_PATH_RE = re.compile(r"(?<![\w:])(?:/[^\s/'\":,;]+){2,}/?")


class StageError(SputnikError):
    """A stage or one of its items cannot be done, for a reason the user should read."""


def _lambda_message(cause: str) -> tuple[str, str]:
    """(errorType, errorMessage) of a Lambda function error's Cause, or ("", cause) for any other."""
    try:
        data = json.loads(cause)
    except ValueError:
        return "", cause
    if not isinstance(data, dict):
        return "", cause
    return str(data.get("errorType") or ""), str(data.get("errorMessage") or "")


def one_line(text: str) -> str:
    """First line of a text, internal paths replaced, cut to a readable length."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _PATH_RE.sub("<path>", line)
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def failure_message(what: str, error: dict[str, Any] | None) -> str:
    """A one-line message for a Step Functions error (its `Error` and `Cause`) of a stage or an item."""
    error = error or {}
    name = str(error.get("Error") or "")
    kind, message = _lambda_message(str(error.get("Cause") or ""))
    kind = kind or name
    if kind in USER_ERRORS and message:
        return one_line(f"{what}: {message}")
    if name == "States.Timeout":
        return f"{what} timed out"
    if name.startswith("Lambda."):
        return f"{what} failed: AWS Lambda answered {name.removeprefix('Lambda.')}"
    if name.startswith("States."):
        return f"{what} failed: {name}"
    return f"{what} failed: internal error ({kind or 'unknown'})"
