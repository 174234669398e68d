"""An execution that ended past its Catch (timed out, aborted, failed in the runtime) ends its proc FATAL.

Step Functions tells EventBridge of every execution's end ("Step Functions Execution Status Change",
source aws.states); the template's rule sends the task machines' FAILED, TIMED_OUT and ABORTED ones
here. The proc is found from the event alone: the execution's name is made from the proc's event id,
and its input carries the proc's key. Anything else (another machine, an unknown execution, a proc
already DONE, the same event twice) changes nothing.
"""

import json
import logging
import re
from typing import Any

from sputnik import aws
from sputnik.errors import NotFound
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.failures import failure_message, one_line
from sputnik.tasks.registry import TASKS, Task
from sputnik.tasks.runner import execution_name

log = logging.getLogger(__name__)

SOURCE = "aws.states"
DETAIL_TYPE = "Step Functions Execution Status Change"
FAILED, TIMED_OUT, ABORTED = "FAILED", "TIMED_OUT", "ABORTED"
_DIGITS = re.compile(r"\d{1,20}")
_NOT_OURS = frozenset({"ExecutionDoesNotExist", "InvalidArn", "AccessDeniedException"})


def _task_of(machine_arn: Any) -> Task | None:
    """The task whose state machine this is, or None (a Map's child executions have their own ARN)."""
    settings = get_settings()
    return next((t for t in TASKS.values() if t.machine_arn(settings) == machine_arn), None)


def _event_id(name: Any) -> int | None:
    """The proc's event id that an execution's name was made from, or None for a name not made so."""
    digits = next(iter(_DIGITS.findall(str(name))), None)
    if digits is None or execution_name(int(digits)) != name:
        return None
    return int(digits)


def _input(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The execution's input: the event's copy, or (left out when too large) the execution's own."""
    text = detail.get("input")
    if not isinstance(text, str):
        from botocore.exceptions import ClientError  # only here: most events carry their input

        arn = str(detail["executionArn"])
        try:
            text = aws.client("stepfunctions").describe_execution(executionArn=arn).get("input")
        except ClientError as exc:
            # Gone, or not this stack's to describe: nothing to end. Throttling and outages raise,
            # and Lambda retries the event.
            if exc.response.get("Error", {}).get("Code") not in _NOT_OURS:
                raise
            log.warning("execution %s cannot be described: %s", arn, one_line(str(exc)))
            return None
    try:
        found = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _proc_ref(detail: dict[str, Any], task: Task) -> procs.ProcRef | None:
    """The proc an execution ran for, when its name, ARN and input all agree on it."""
    event_id = _event_id(detail.get("name"))
    machine = task.machine_arn(get_settings())
    if event_id is None or detail.get("executionArn") != (
        machine.replace(":stateMachine:", ":execution:") + f":{detail.get('name')}"
    ):
        return None
    data = _input(detail)
    try:
        ref = procs.ProcRef.of(data or {})
    except (KeyError, TypeError, ValueError):
        return None
    return ref if ref.event_id == event_id else None


def message(status: str, what: str, detail: dict[str, Any]) -> str:
    """The proc's one-line message for how its execution ended."""
    if status == TIMED_OUT:
        return failure_message(what, {"Error": "States.Timeout"})
    if status == ABORTED:
        return f"{what} stopped: the task's execution was aborted"
    if detail.get("error"):
        return failure_message(what, {"Error": detail["error"], "Cause": detail.get("cause")})
    return f"{what} failed: the task's execution failed"


def _ignored(why: str, detail: Any) -> dict[str, Any]:
    """Nothing to end: say why at warning level, and count it."""
    arn = detail.get("executionArn") if isinstance(detail, dict) else None
    log.warning("execution event ignored (%s): %s", why, arn)
    return {"procs_failed": 0, "ignored": 1}


def run(event: dict[str, Any]) -> dict[str, Any]:
    """End the proc of a failed, timed-out or aborted execution FATAL, unless it is already DONE."""
    detail = event.get("detail")
    kind = (event.get("source"), event.get("detail-type"))
    if not isinstance(detail, dict) or kind != (SOURCE, DETAIL_TYPE):
        return _ignored("not an execution status change", detail)
    status = detail.get("status")
    if status not in (FAILED, TIMED_OUT, ABORTED):
        return _ignored(f"status {one_line(str(status))}", detail)
    task = _task_of(detail.get("stateMachineArn"))
    if task is None:
        return _ignored("not a task's state machine", detail)
    ref = _proc_ref(detail, task)
    if ref is None:
        return _ignored("no proc named by the execution", detail)
    try:
        proc = procs.get_proc(ref)
    except NotFound:
        return _ignored("unknown proc", detail)
    if proc.task != task.name:
        return _ignored("the proc runs another task", detail)
    text = message(str(status), procs.running_script(proc) or task.name, detail)
    ended = procs.proc_failed(proc, text)
    if ended:
        log.warning("proc %s of project %s ended FATAL: %s", ref.event_id, ref.project_id, text)
    return {"procs_failed": int(ended), "ignored": 0}
