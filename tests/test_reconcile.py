"""A proc never stays RUN: an execution that ends past its Catch (aborted, timed out) ends its proc FATAL.

Through the local stack, which sends the template's EventBridge rule the event Step Functions sends
(AWS's documented shape, tests/fixtures/eventbridge), asynchronously, as AWS does.
"""

import copy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sputnik.settings import get_settings
from sputnik.tasks.registry import TASKS
from sputnik_tools.local.stack import LocalStack
from sputnik_tools.template import Template
from tests.conftest import FIXTURES, TEMPLATE
from tests.support.tasks import execution_status, finished, run, tile_project

SAMPLE: dict[str, Any] = json.loads((FIXTURES / "eventbridge" / "states-execution-aborted.json").read_text())
HOLD = 600  # seconds a held execution waits before its first stage: far beyond any test's life


def machine(task: str) -> str:
    """The ARN of a task's state machine."""
    return TASKS[task].machine_arn(get_settings())


def execution_arn(task: str, event_id: int) -> str:
    """The ARN of the execution that runs a proc."""
    return machine(task).replace(":stateMachine:", ":execution:") + f":event-{event_id}"


def status_event(task: str, event_id: int, project_id: int, status: str, **detail: Any) -> dict[str, Any]:
    """AWS's sample event, made to tell of the execution of one proc."""
    event = copy.deepcopy(SAMPLE)
    arn = execution_arn(task, event_id)
    event["resources"] = [arn]
    event["detail"] |= {
        "executionArn": arn,
        "stateMachineArn": machine(task),
        "name": f"event-{event_id}",
        "status": status,
        "input": json.dumps({"event_id": event_id, "project_id": project_id, "task": task, "params": {}}),
    }
    event["detail"] |= detail
    return event


@contextmanager
def held(
    stack: LocalStack, task: str, timeout: int | None = None, first: dict[str, Any] | None = None
) -> Iterator[None]:
    """Executions started meanwhile pass `first` (by default, a long wait) before their first stage.

    With `timeout`, they time out after that many seconds. moto snapshots a machine's definition
    when an execution starts, so only those are changed.
    """
    sfn = stack.client("stepfunctions")
    arn = machine(task)
    original = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
    definition = json.loads(original)
    state = first or {"Type": "Wait", "Seconds": HOLD}
    definition["States"]["Hold"] = state | {"Next": definition["StartAt"]}
    definition["StartAt"] = "Hold"
    if timeout is not None:
        definition["TimeoutSeconds"] = timeout
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))
    try:
        yield
    finally:
        sfn.update_state_machine(stateMachineArn=arn, definition=original)


def held_proc(
    stack: LocalStack, api: httpx.Client, task: str, timeout: int | None = None
) -> tuple[int, int, str]:
    """A new project's proc whose execution is held before its first stage: (project, event, execution)."""
    project_id = tile_project(api, "34TDQ")
    with held(stack, task, timeout):
        event_id = run(api, task, project_id)
    return project_id, event_id, execution_arn(task, event_id)


def proc(api: httpx.Client, project_id: int, event_id: int) -> dict[str, Any]:
    """A proc as /proc/list shows it."""
    procs = api.get("/proc/list", params={"project_id": project_id}).json()["procs"]
    return dict(next(p for p in procs if p["event_id"] == event_id))


class Reconciler:
    """ReconcileFunction in the local stack, its invocations recorded (event, result)."""

    def __init__(self, stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack = stack
        self.name = stack.function_for("ReconcileFunction")
        function = stack.functions[self.name]
        handler = function.handler()
        self.calls: list[tuple[dict[str, Any], Any]] = []
        self.threads: dict[str, str] = {}  # event id -> the thread that invoked the function
        self._changed = threading.Condition()

        def recording(event: dict[str, Any], context: Any) -> Any:
            result = handler(event, context)
            with self._changed:
                self.threads[str(event.get("id"))] = threading.current_thread().name
                self.calls.append((event, result))
                self._changed.notify_all()
            return result

        monkeypatch.setattr(function, "_handler", recording)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke it with an event, as EventBridge would."""
        return dict(self.stack.invoke(self.name, event))

    def delivered(self, execution: str, count: int = 1) -> list[tuple[dict[str, Any], Any]]:
        """The invocations for one execution, once there are `count` (a bound on waiting, not a deadline)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._for(execution)) >= count, timeout=120)
            return self._for(execution)

    def _for(self, execution: str) -> list[tuple[dict[str, Any], Any]]:
        return [(e, r) for e, r in self.calls if e.get("detail", {}).get("executionArn") == execution]


@pytest.fixture
def reconciler(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Reconciler:
    """ReconcileFunction, recorded."""
    return Reconciler(stack, monkeypatch)


def test_an_aborted_execution_ends_its_proc_fatal_with_one_line(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id, event_id, arn = held_proc(stack, api, "s2_load_meta")
    assert proc(api, project_id, event_id)["status"] == "WAIT"
    stack.client("stepfunctions").stop_execution(executionArn=arn)
    ended = finished(api, project_id, event_id)
    assert (ended["status"], ended["result"]) == ("DONE", "FATAL")
    assert ended["message"] == "plan_months stopped: the task's execution was aborted"
    assert [(s["status"], s["result"]) for s in ended["scripts"]] == [
        ("DONE", "FATAL"),
        ("WAIT", None),
        ("WAIT", None),
    ]
    assert execution_status(stack, arn) == "ABORTED"
    [(_, result)] = reconciler.delivered(arn)
    assert result == {"procs_failed": 1, "ignored": 0}


def test_a_timed_out_execution_ends_its_proc_fatal(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id, event_id, arn = held_proc(stack, api, "s2_load_data", timeout=1)
    assert execution_status(stack, arn) == "TIMED_OUT"
    ended = finished(api, project_id, event_id)
    assert (ended["result"], ended["message"]) == ("FATAL", "resolve_scenes timed out")
    [(event, result)] = reconciler.delivered(arn)
    assert event["detail"]["status"] == "TIMED_OUT" and result["procs_failed"] == 1


def test_an_execution_failing_past_every_catch_ends_its_proc_fatal(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id = tile_project(api, "34TDQ")
    # A path the input does not have: States.Runtime, which no Catch sees.
    broken = {"Type": "Pass", "InputPath": "$.no.such.path"}
    with held(stack, "s2_load_meta", first=broken):
        event_id = run(api, "s2_load_meta", project_id)
    arn = execution_arn("s2_load_meta", event_id)
    assert execution_status(stack, arn) == "FAILED"
    ended = finished(api, project_id, event_id)
    assert (ended["result"], ended["message"]) == ("FATAL", "plan_months failed: the task's execution failed")
    [(event, result)] = reconciler.delivered(arn)
    assert event["detail"]["status"] == "FAILED" and result["procs_failed"] == 1


def test_the_local_stack_sends_the_documented_event_through_the_templates_rule(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    template = Template.load(TEMPLATE)
    rule = template.resources["ExecutionFailedRule"]["Properties"]
    described = stack.client("events").describe_rule(Name=template.physical_name("ExecutionFailedRule"))
    assert json.loads(described["EventPattern"]) == template.resolve(rule["EventPattern"])

    project_id, event_id, arn = held_proc(stack, api, "s2_load_meta")
    stack.client("stepfunctions").stop_execution(executionArn=arn)
    [(event, _)] = reconciler.delivered(arn)
    # Delivered asynchronously, as EventBridge invokes its Lambda targets.
    assert reconciler.threads[event["id"]] == "eventbridge"
    # AWS's sample, key for key; the values tell of this execution.
    assert list(event) == list(SAMPLE) and list(event["detail"]) == list(SAMPLE["detail"])
    assert event["detail"]["inputDetails"] == SAMPLE["detail"]["inputDetails"]
    assert (event["source"], event["detail-type"], event["version"]) == (
        SAMPLE["source"],
        SAMPLE["detail-type"],
        SAMPLE["version"],
    )
    assert event["resources"] == [arn] and event["region"] == "us-east-1"
    detail = event["detail"]
    assert (detail["executionArn"], detail["stateMachineArn"], detail["name"], detail["status"]) == (
        arn,
        machine("s2_load_meta"),
        f"event-{event_id}",
        "ABORTED",
    )
    assert json.loads(detail["input"])["project_id"] == project_id
    assert isinstance(detail["startDate"], int) and detail["stopDate"] >= detail["startDate"]
    assert (detail["output"], detail["outputDetails"]) == (None, None)
    assert time.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")


def test_a_proc_already_done_is_left_untouched(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id = tile_project(api, "34TDQ")
    event_id = run(api, "s2_load_meta", project_id)
    done = finished(api, project_id, event_id)
    assert done["result"] == "SUCCESS"
    # Whatever an event claims afterwards, a proc that ended keeps its end.
    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        result = reconciler(status_event("s2_load_meta", event_id, project_id, status))
        assert result == {"procs_failed": 0, "ignored": 0}
    assert proc(api, project_id, event_id) == done


def test_duplicate_events_end_the_proc_once(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id, event_id, arn = held_proc(stack, api, "s2_load_meta")
    stack.client("stepfunctions").stop_execution(executionArn=arn)
    [(event, first)] = reconciler.delivered(arn)
    ended = finished(api, project_id, event_id)
    again = [
        reconciler(event),
        reconciler(event),
        reconciler(status_event("s2_load_meta", event_id, project_id, "FAILED")),
    ]
    assert first["procs_failed"] == 1
    assert again == [{"procs_failed": 0, "ignored": 0}] * 3
    assert proc(api, project_id, event_id) == ended


def test_an_event_without_its_input_reads_it_from_the_execution(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id, event_id, arn = held_proc(stack, api, "s2_load_meta")
    try:
        # EventBridge leaves the input out of an event it would make too large.
        event = status_event("s2_load_meta", event_id, project_id, "TIMED_OUT", input=None)
        event["detail"]["inputDetails"] = {"included": False}
        assert reconciler(event) == {"procs_failed": 1, "ignored": 0}
        assert proc(api, project_id, event_id)["message"] == "plan_months timed out"
    finally:
        stack.client("stepfunctions").stop_execution(executionArn=arn)
    # The execution's own end comes after: the proc keeps the end it has.
    [_, (delivered, result)] = reconciler.delivered(arn, count=2)
    assert (delivered["detail"]["status"], result) == ("ABORTED", {"procs_failed": 0, "ignored": 0})
    assert proc(api, project_id, event_id)["message"] == "plan_months timed out"


def _changed(event: dict[str, Any], change: str) -> dict[str, Any]:
    """The event of a held proc, changed so that it no longer names that proc's execution."""
    detail = event["detail"]
    other = "arn:aws:states:us-east-1:123456789012:stateMachine:another"
    changes: dict[str, Any] = {
        "another machine": {"stateMachineArn": other},
        "a Map's child execution": {"stateMachineArn": detail["stateMachineArn"] + "/ScanMonth"},
        "a name not made from an event id": {"name": "hand-started"},
        "another execution's ARN": {"executionArn": detail["executionArn"] + "0"},
        "an input naming another proc": {"input": json.dumps({"event_id": 1, "project_id": 1})},
        "an input that is not JSON": {"input": "{not json"},
        "an input that is not an object": {"input": "[1, 2]"},
        "a status that is not a failure": {"status": "SUCCEEDED"},
    }
    if change == "another source":
        return event | {"source": "aws.s3"}
    if change == "another detail-type":
        return event | {"detail-type": "Step Functions State Machine Status Change"}
    if change == "no detail":
        return event | {"detail": "ABORTED"}
    return event | {"detail": detail | changes[change]}


CHANGES = [
    "another machine",
    "a Map's child execution",
    "a name not made from an event id",
    "another execution's ARN",
    "an input naming another proc",
    "an input that is not JSON",
    "an input that is not an object",
    "a status that is not a failure",
    "another source",
    "another detail-type",
    "no detail",
]


def test_events_of_other_machines_or_unknown_executions_are_ignored(
    stack: LocalStack, api: httpx.Client, reconciler: Reconciler
) -> None:
    project_id, event_id, arn = held_proc(stack, api, "s2_load_meta")
    try:
        before = proc(api, project_id, event_id)
        event = status_event("s2_load_meta", event_id, project_id, "ABORTED")
        for change in CHANGES:
            assert reconciler(_changed(event, change)) == {"procs_failed": 0, "ignored": 1}, change
        # An execution of the other task's machine, and a proc that does not exist.
        assert reconciler(status_event("s2_load_data", event_id, project_id, "ABORTED"))["ignored"] == 1
        assert reconciler(status_event("s2_load_meta", 10**12, project_id, "ABORTED"))["ignored"] == 1
        assert proc(api, project_id, event_id) == before
    finally:
        stack.client("stepfunctions").stop_execution(executionArn=arn)
