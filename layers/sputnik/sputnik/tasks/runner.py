"""Running a task: check the request, write the proc, start its state machine exactly once."""

import json
import logging
from typing import Any

from sputnik import aws
from sputnik.errors import InvalidInput
from sputnik.models import ProcModel
from sputnik.projects import get_project
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.registry import get_task

log = logging.getLogger(__name__)

MAX_TITLE = 200


def check_title(title: str) -> str:
    """A proc's title: 1-200 characters once trimmed, or InvalidInput."""
    title = (title or "").strip()
    if not title:
        raise InvalidInput("title must not be empty")
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be at most {MAX_TITLE} characters")
    return title


def execution_name(event_id: int) -> str:
    """The execution's name, derived from the event: Step Functions refuses a second one of that name."""
    return f"event-{event_id}"


def execution_input(proc: ProcModel) -> dict[str, Any]:
    """What every stage reads from the execution's input: the proc's key, its task and its params."""
    return {
        "event_id": int(proc.event_id),
        "project_id": int(proc.project_id),
        "task": proc.task,
        "params": proc.params or {},
    }


def start_execution(proc: ProcModel) -> str:
    """Start the proc's execution, or find the one already started for it; its ARN."""
    # boto3 loads on this first call (aws.client), for /task/run: not in every cold start of TasksFunction.
    sfn = aws.client("stepfunctions")
    machine = get_task(str(proc.task)).machine_arn(get_settings())
    name = execution_name(int(proc.event_id))
    try:
        started = sfn.start_execution(
            stateMachineArn=machine, name=name, input=json.dumps(execution_input(proc))
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        # A retried start of the same event: the first execution is the one that counts.
        log.info("execution %s already exists; not started again", name)
        arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
        return arn
    return str(started["executionArn"])


def run_task(owner: str, login: str, task_name: str, title: str, project_id: int, params: Any) -> int:
    """Check everything, then write the proc and start it; its event id.

    A bad request, or one over the owner's quotas, writes nothing.
    """
    task = get_task(task_name)
    title = check_title(title)
    checked = task.check_params(params)
    get_project(owner, project_id)
    proc = procs.create_proc(owner, login, project_id, task, title, checked)
    try:
        start_execution(proc)
    except Exception:
        procs.proc_failed(proc, "the task could not be started; run it again")
        raise
    return int(proc.event_id)
