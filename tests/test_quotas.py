"""Per-user quotas: running procs, runs per day and projects; exact under concurrency, 429 when over."""

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest

from sputnik import quotas
from sputnik.models import CounterModel, ProcModel
from sputnik.tasks import procs, runner
from sputnik_tools.local.stack import LocalStack
from tests.conftest import owner_of
from tests.support import faults
from tests.support.tasks import finished, tile_border, tile_project


def _count(key: str) -> int:
    """A quota counter's value (0 when it was never written)."""
    try:
        return int(CounterModel.get(key, consistent_read=True).value)
    except CounterModel.DoesNotExist:
        return 0


def _run(api: httpx.Client, project_id: int, title: str = "run") -> httpx.Response:
    """POST /task/run of s2_load_meta on a project."""
    return api.post("/task/run", json={"task": "s2_load_meta", "title": title, "project_id": project_id})


@pytest.fixture
def unstarted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Procs are written but their executions not started, so none ends while a test counts."""
    started: list[int] = []

    def record(proc: ProcModel) -> str:
        started.append(int(proc.event_id))
        return f"event-{proc.event_id}"

    monkeypatch.setattr(runner, "start_execution", record)
    return started


@pytest.fixture
def set_limits(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Change some of the stack's limits for one test: `set_limits(projects=2)`."""
    template_defaults = quotas.limits()

    def apply(**changes: int) -> None:
        monkeypatch.setattr(quotas, "limits", lambda: replace(template_defaults, **changes))

    return apply


def _assert_quota_answer(r: httpx.Response, limit_words: str) -> None:
    """A 429 whose detail names the limit and whose Retry-After is a positive number of seconds."""
    assert r.status_code == 429, r.text
    assert limit_words in r.json()["detail"]
    assert int(r.headers["retry-after"]) > 0


def test_ten_simultaneous_runs_against_a_limit_of_three_start_exactly_three(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str], unstarted: list[int]
) -> None:
    assert quotas.limits().running_procs == 3  # the template's default
    project_id = tile_project(api, "34TDQ")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: _run(api, project_id, f"run {i}"), range(10)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 3 + [429] * 7
    for refused in (r for r in answers if r.status_code == 429):
        _assert_quota_answer(refused, "at most 3 running procs per user")
    # Nothing of the refused runs was written: three procs, three slots, three runs today.
    written = list(ProcModel.query(project_id, consistent_read=True))
    assert sorted(int(p.event_id) for p in written) == sorted(unstarted)
    assert len(written) == 3
    owner = owner_of(user[0])
    assert _count(quotas.running_key(owner)) == 3
    assert all(p.running_slot == 1 for p in written)


def test_a_proc_ended_twice_gives_its_slot_back_once(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str], unstarted: list[int]
) -> None:
    project_id = tile_project(api, "34TDQ")
    event_ids = [_run(api, project_id).json()["event_id"] for _ in range(3)]
    owner = owner_of(user[0])
    _assert_quota_answer(_run(api, project_id), "running procs")
    first = procs.get_proc(procs.ProcRef(project_id, event_ids[0]))
    procs.proc_failed(first, "timed out")
    procs.proc_failed(first, "timed out")  # the Catch and the reconciler both saw it end
    assert _count(quotas.running_key(owner)) == 2
    ref = procs.ProcRef(project_id, event_ids[1])
    procs.proc_done(ref, "s2_load_meta", {}, {"items": 0})
    procs.proc_done(ref, "s2_load_meta", {}, {"items": 0})
    assert _count(quotas.running_key(owner)) == 1
    assert procs.get_proc(ref).running_slot is None
    # Two slots are free again: two runs start, the third is refused.
    assert [_run(api, project_id).status_code for _ in range(3)] == [200, 200, 429]


def test_procs_that_end_well_or_fatally_give_their_slots_back(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sputnik.tasks import plan_months

    project_id = tile_project(api, "34TDQ")
    owner = owner_of(user[0])
    done = finished(api, project_id, _run(api, project_id).json()["event_id"])
    assert done["result"] == "SUCCESS"
    assert _count(quotas.running_key(owner)) == 0

    def broken(*args: Any) -> list[str]:
        raise KeyError("broken")

    monkeypatch.setattr(plan_months, "month_prefixes", broken)
    fatal = finished(api, project_id, _run(api, project_id).json()["event_id"])
    assert fatal["result"] == "FATAL"
    assert _count(quotas.running_key(owner)) == 0


def test_a_run_that_cannot_start_gives_its_slot_back(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    project_id = tile_project(api, "34TDQ")

    def unavailable(proc: ProcModel) -> str:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "busy"}}, "StartExecution")

    monkeypatch.setattr(runner, "start_execution", unavailable)
    assert _run(api, project_id).status_code == 503
    (proc,) = ProcModel.query(project_id)
    assert (proc.status, proc.result) == ("DONE", "FATAL")
    assert _count(quotas.running_key(owner_of(user[0]))) == 0


# What DynamoDB answers a transaction that collided with another on one of its items.
TRANSACTION_CONFLICT = (
    400,
    {"Content-Type": "application/x-amz-json-1.0"},
    json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
            "[None, TransactionConflict, None]",
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
                {"Code": "None"},
            ],
        }
    ).encode(),
)


def test_a_run_that_collides_with_another_is_tried_again_and_counted_once(
    stack: LocalStack,
    api: httpx.Client,
    user: tuple[str, str],
    unstarted: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_id = tile_project(api, "34TDQ")
    conflict = faults.Fault(faults.dynamodb("TransactWriteItems"), TRANSACTION_CONFLICT, times=2)
    faults.inject(monkeypatch, conflict)
    assert _run(api, project_id).status_code == 200
    assert conflict.failed == 2
    assert len(list(ProcModel.query(project_id))) == 1
    assert _count(quotas.running_key(owner_of(user[0]))) == 1


def test_runs_per_day_answer_429_until_the_next_utc_day(
    stack: LocalStack,
    api: httpx.Client,
    user: tuple[str, str],
    unstarted: list[int],
    set_limits: Callable[..., None],
) -> None:
    set_limits(running_procs=10, runs_per_day=2)
    project_id = tile_project(api, "34TDQ")
    assert [_run(api, project_id).status_code for _ in range(2)] == [200, 200]
    refused = _run(api, project_id)
    _assert_quota_answer(refused, "at most 2 runs per user per day (UTC)")
    assert int(refused.headers["retry-after"]) <= 24 * 3600
    assert len(list(ProcModel.query(project_id))) == 2
    # The refused run took no running slot either.
    assert _count(quotas.running_key(owner_of(user[0]))) == 2


def test_projects_over_the_limit_answer_429_and_write_nothing(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str], set_limits: Callable[..., None]
) -> None:
    set_limits(projects=2)
    tile_project(api, "34TDQ")
    tile_project(api, "34TDQ")
    before = _count("project_id")
    refused = api.post("/project/new", json={"name": "third", "border": json.dumps(tile_border("34TDQ"))})
    _assert_quota_answer(refused, "at most 2 projects per user")
    assert len(api.get("/project/list").json()["projects"]) == 2
    assert _count("project_id") == before  # not even an id was taken
    assert _count(quotas.projects_key(owner_of(user[0]))) == 2


@pytest.mark.parametrize(
    "matches",
    [faults.dynamodb("TransactWriteItems"), faults.lambda_invoke],  # the write; the backfill request after it
)
def test_a_project_whose_creation_fails_gives_its_count_back(
    api: httpx.Client, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch, matches: Any
) -> None:
    answer = faults.LAMBDA_THROTTLED if matches is faults.lambda_invoke else faults.DYNAMODB_THROTTLED
    fault = faults.Fault(matches, answer)
    faults.inject(monkeypatch, fault)
    refused = api.post("/project/new", json={"name": "failing", "border": json.dumps(tile_border("34TDQ"))})
    assert refused.status_code == 503
    fault.stop()
    assert api.get("/project/list").json() == {"projects": []}
    assert _count(quotas.projects_key(owner_of(user[0]))) == 0
