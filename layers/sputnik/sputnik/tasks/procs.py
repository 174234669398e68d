"""Proc records: one run of a task for a project, with the status and result of each script."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition

from sputnik import quotas
from sputnik.errors import NotFound
from sputnik.ids import next_id
from sputnik.models import ProcModel, ScriptAttribute
from sputnik.tasks.registry import TASKS, Task

# Proc status, script status and results, in the contract's words.
WAIT, NEXT, RUN, DONE = "WAIT", "NEXT", "RUN", "DONE"
SUCCESS, FATAL, ERRORS = "SUCCESS", "FATAL", "ERRORS"
MAX_LISTED = 30


@dataclass(frozen=True)
class ProcRef:
    """Which proc a stage works for: the key of its record, as the execution's input carries it."""

    project_id: int
    event_id: int

    @classmethod
    def of(cls, event: dict[str, Any]) -> "ProcRef":
        """The proc a stage's event names."""
        return cls(int(event["project_id"]), int(event["event_id"]))

    def update(self, actions: list[Any], condition: Condition | None = None) -> ProcModel:
        """Update the record in one UpdateItem if it is there (and `condition` holds); the record after."""
        exists = ProcModel.event_id.exists()
        proc = ProcModel(self.project_id, self.event_id)
        proc.update(actions=actions, condition=exists if condition is None else exists & condition)
        return proc


def create_proc(
    owner: str, login: str, project_id: int, task: Task, title: str, params: dict[str, Any]
) -> ProcModel:
    """Write a new proc, waiting for its first script, if the quotas allow; ids from atomic counters."""
    proc = ProcModel(
        project_id,
        next_id("event_id"),
        proc_id=next_id("proc_id"),
        task_id=next_id("task_id"),
        owner=owner,
        login=login,
        task=task.name,
        title=title,
        params=params,
        ctime=datetime.now(UTC).isoformat(timespec="seconds"),
        status=WAIT,
        scripts=[
            ScriptAttribute(iscript=i, name=name, status=NEXT if i == 0 else WAIT)
            for i, name in enumerate(task.scripts)
        ],
    )
    quotas.save_proc_counted(proc, owner)
    return proc


def list_procs(project_id: int) -> list[ProcModel]:
    """The project's last procs, newest first: one Query."""
    return list(ProcModel.query(project_id, scan_index_forward=False, limit=MAX_LISTED))


def get_proc(ref: ProcRef) -> ProcModel:
    """The proc record, or NotFound."""
    try:
        return ProcModel.get(ref.project_id, ref.event_id, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound(f"proc {ref.event_id} of project {ref.project_id} not found") from exc


def _index(task: str, script: str) -> int:
    """Position of a script in its task."""
    return TASKS[task].scripts.index(script)


def script_started(ref: ProcRef, task: str, script: str) -> None:
    """A stage began: the proc runs and so does this script."""
    i = _index(task, script)
    ref.update([ProcModel.status.set(RUN), ProcModel.scripts[i].status.set(RUN)])


def script_done(ref: ProcRef, task: str, script: str, result: str = SUCCESS) -> None:
    """A stage ended well: its script is done and the next one runs."""
    i = _index(task, script)
    actions = [ProcModel.scripts[i].status.set(DONE), ProcModel.scripts[i].result.set(result)]
    if i + 1 < len(TASKS[task].scripts):
        actions.append(ProcModel.scripts[i + 1].status.set(RUN))
    ref.update(actions)


def proc_done(ref: ProcRef, task: str, results: dict[str, str], summary: dict[str, Any]) -> str:
    """The last stage ended: set the results of the scripts named, the proc's result and its summary."""
    result = ERRORS if ERRORS in results.values() else SUCCESS
    actions: list[Any] = [
        ProcModel.status.set(DONE),
        ProcModel.result.set(result),
        ProcModel.summary.set(summary),
    ]
    for script, script_result in results.items():
        i = _index(task, script)
        actions += [ProcModel.scripts[i].status.set(DONE), ProcModel.scripts[i].result.set(script_result)]
    # The end and the slot's release in one write when the proc holds a slot (read first: whose it is).
    if not quotas.end_holding_slot(get_proc(ref), actions):
        ref.update(actions)  # no slot held: given back already (a repeated report), or none taken
    return result


def running_script(proc: ProcModel) -> str | None:
    """The script a failure stopped: the first one not done."""
    return next((str(s.name) for s in proc.scripts if s.status != DONE), None)


def proc_failed(proc: ProcModel, message: str) -> bool:
    """A stage failed (or the execution ended outside the machine's Catch): the proc ends FATAL.

    The script that was running ends FATAL too, and the proc's running slot is given back (once).
    Only a proc that has not ended: False, and nothing written, when it is already DONE (a retried
    or duplicate report of the same failure, or a proc that ended well before its execution failed).
    """
    actions: list[Any] = [
        ProcModel.status.set(DONE),
        ProcModel.result.set(FATAL),
        ProcModel.message.set(message),
    ]
    failed = next((s for s in proc.scripts if s.status != DONE), None)
    if failed is not None:
        i = int(failed.iscript)
        actions += [ProcModel.scripts[i].status.set(DONE), ProcModel.scripts[i].result.set(FATAL)]
    if quotas.end_holding_slot(proc, actions, ProcModel.status != DONE):
        return True
    try:
        ended = ProcRef(int(proc.project_id), int(proc.event_id)).update(actions, ProcModel.status != DONE)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    quotas.release_running(ended)
    return True
