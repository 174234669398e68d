"""/task/list, /task/run and /proc/list through the local HTTP front, with the tasks run by Step Functions."""

import json
from typing import Any

import httpx
import pytest
from shapely.geometry import box

from sputnik import stac
from sputnik.settings import get_settings
from sputnik.tasks.registry import TASKS
from sputnik_tools import archive
from sputnik_tools.local.stack import LocalStack
from tests.conftest import new_user, owner_of
from tests.support.tasks import (
    DATES,
    execution_status,
    finished,
    run,
    tile_border_bounds,
    tile_project,
    unannounced_scenes,
)


def executions(stack: LocalStack, task: str) -> list[dict[str, Any]]:
    """Executions of a task's state machine."""
    arn = TASKS[task].machine_arn(get_settings())
    return list(stack.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"])


# ---------------------------------------------------------------------------------------------- routes


def test_task_list_is_the_task_registry(api: httpx.Client) -> None:
    tasks = api.get("/task/list").json()["tasks"]
    assert [t["name"] for t in tasks] == ["s2_load_meta", "s2_load_data", "s2_index", "s2_composite"]
    assert all(t["descr"] for t in tasks)


def test_task_routes_need_credentials(anon: httpx.Client) -> None:
    assert anon.get("/task/list").status_code == 401
    assert (
        anon.post("/task/run", json={"task": "s2_load_meta", "title": "t", "project_id": 1}).status_code
        == 401
    )
    assert anon.get("/proc/list", params={"project_id": 1}).status_code == 401


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"task": "s2_load_everything", "title": "t"}, "unknown task"),
        ({"task": "s2_load_meta", "title": ""}, "title"),
        ({"task": "s2_load_meta", "title": "   "}, "title"),
        ({"task": "s2_load_meta", "title": "x" * 201}, "title"),
        ({"task": "s2_load_meta", "title": "t", "params": {"scene_ids": ["a"]}}, "scene_ids"),
        ({"task": "s2_load_meta", "title": "t", "params": [1, 2]}, "JSON object"),
        ({"task": "s2_load_meta", "title": "t", "params": {"archive": "elsewhere"}}, "archive"),
        ({"task": "s2_load_data", "title": "t", "params": {"scenes": ["a"]}}, "scenes"),
        ({"task": "s2_load_data", "title": "t", "params": {"scene_ids": []}}, "scene_ids"),
        ({"task": "s2_load_data", "title": "t", "params": {"scene_ids": ["../etc"]}}, "scene_ids"),
        ({"task": "s2_load_data", "title": "t", "params": {"scene_ids": "S2A_x"}}, "scene_ids"),
        ({"task": "s2_load_data", "title": "t", "params": {"date": "2021-02-30"}}, "date"),
        (
            {"task": "s2_load_data", "title": "t", "params": {"date": "2021-06-05", "scene_ids": ["a"]}},
            "not both",
        ),
        ({"task": "s2_load_data", "title": "t", "params": "everything"}, "JSON object"),
        ({"task": "s2_index", "title": "t", "params": {}}, "index: Field required"),
        ({"task": "s2_index", "title": "t", "params": {"index": "ndxx"}}, "unknown index 'ndxx'"),
        (
            {
                "task": "s2_index",
                "title": "t",
                "params": {"index": {"expression": "__import__('os').getcwd()"}},
            },
            "not a function call",
        ),
        (
            {
                "task": "s2_index",
                "title": "t",
                "params": {"index": {"expression": "(B99 - B04) / (B99 + B04)"}},
            },
            "unknown band 'B99'",
        ),
        ({"task": "s2_index", "title": "t", "params": {"index": {"expression": "B04 ** 2"}}}, "not '**'"),
        (
            {"task": "s2_index", "title": "t", "params": {"index": {"expression": "B04" * 80}}},
            "longer than 200",
        ),
        ({"task": "s2_index", "title": "t", "params": {"index": "ndvi", "mask": [12]}}, "mask.0"),
    ],
)
def test_bad_run_is_422_and_creates_nothing(
    stack: LocalStack, api: httpx.Client, body: dict[str, Any], says: str
) -> None:
    project_id = tile_project(api, "34TDQ")
    before = {task: len(executions(stack, task)) for task in TASKS}
    answer = api.post("/task/run", json={**body, "project_id": project_id})
    assert answer.status_code == 422
    assert says in json.dumps(answer.json()["detail"])
    assert api.get("/proc/list", params={"project_id": project_id}).json() == {"procs": []}
    assert {task: len(executions(stack, task)) for task in TASKS} == before


def test_malformed_run_body_is_422(api: httpx.Client) -> None:
    assert api.post("/task/run", json={"task": "s2_load_meta"}).status_code == 422
    assert (
        api.post("/task/run", json={"task": "s2_load_meta", "title": "t", "project_id": "one"}).status_code
        == 422
    )
    assert (
        api.post("/task/run", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_another_users_or_an_unknown_project_is_404_and_creates_nothing(
    stack: LocalStack, api: httpx.Client, front: Any
) -> None:
    project_id = tile_project(api, "34TDQ")
    before = {task: len(executions(stack, task)) for task in TASKS}
    with httpx.Client(base_url=front.url, auth=new_user("other"), timeout=60) as other:
        theirs = other.post(
            "/task/run", json={"task": "s2_load_meta", "title": "t", "project_id": project_id}
        )
        unknown = other.post(
            "/task/run", json={"task": "s2_load_meta", "title": "t", "project_id": 99_999_999}
        )
        listed = other.get("/proc/list", params={"project_id": project_id})
    assert theirs.status_code == unknown.status_code == listed.status_code == 404
    assert theirs.json() == {"detail": f"project {project_id} not found"}
    assert api.get("/proc/list", params={"project_id": project_id}).json() == {"procs": []}
    assert {task: len(executions(stack, task)) for task in TASKS} == before


def test_proc_list_needs_a_project_id(api: httpx.Client) -> None:
    assert api.get("/proc/list").status_code == 422
    assert api.get("/proc/list", params={"project_id": "x"}).status_code == 422
    assert api.get("/proc/list", params={"project_id": 99_999_999}).status_code == 404


def test_proc_list_is_the_last_30_newest_first_in_one_query(
    stack: LocalStack,
    api: httpx.Client,
    user: tuple[str, str],
    dynamo_calls: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sputnik import quotas
    from sputnik.tasks import procs

    monkeypatch.setattr(quotas, "limits", lambda: quotas.Limits(100, 100, 100))  # 32 procs wait at once
    project_id = tile_project(api, "34TDQ")
    made = [
        procs.create_proc(owner_of(user[0]), user[0], project_id, TASKS["s2_load_meta"], f"run {i}", {})
        for i in range(32)
    ]
    before = dynamo_calls.count("Query")
    listed = api.get("/proc/list", params={"project_id": project_id}).json()["procs"]
    assert dynamo_calls.count("Query") - before == 1
    assert [p["event_id"] for p in listed] == sorted((int(p.event_id) for p in made), reverse=True)[:30]
    waiting = listed[0]
    assert waiting["status"] == "WAIT" and waiting["result"] is None
    assert [(s["iscript"], s["name"], s["status"]) for s in waiting["scripts"]] == [
        (0, "plan_months", "NEXT"),
        (1, "scan_month", "WAIT"),
        (2, "summarise", "WAIT"),
    ]
    assert all(s["proc_id"] == waiting["proc_id"] for s in waiting["scripts"])


# ---------------------------------------------------------------------------------------------- s2_load_meta


def test_s2_load_meta_brings_in_what_no_event_announced(stack: LocalStack, api: httpx.Client) -> None:
    tile = "35TLK"
    project_id = tile_project(api, tile)
    scenes = unannounced_scenes(stack, tile, ["2021-05-30", *DATES, "2021-08-02"])
    assert api.get("/meta/dates", params={"project_id": project_id}).json() == {"dates": []}

    proc = finished(api, project_id, run(api, "s2_load_meta", project_id))

    assert (proc["status"], proc["result"], proc["message"]) == ("DONE", "SUCCESS", None)
    assert [(s["status"], s["result"]) for s in proc["scripts"]] == [("DONE", "SUCCESS")] * 3
    in_range = {sid: s for sid, s in scenes.items() if "2021-06-01" <= s.date <= "2021-07-31"}
    outline = box(*tile_border_bounds(tile))
    matching = {sid for sid, s in in_range.items() if s.footprint.intersects(outline)}
    summary = proc["summary"]
    # Two tile-months (June, July), one LIST each; the May and August scenes are outside the plan.
    assert summary["items"] == summary["succeeded"] == summary["list_calls"] == 2
    assert summary["found"] == summary["new"] == summary["items_read"] == len(in_range)
    assert summary["matched"] == len(matching)
    dates = api.get("/meta/dates", params={"project_id": project_id}).json()["dates"]
    assert dates == sorted({in_range[sid].date for sid in matching})

    again = finished(api, project_id, run(api, "s2_load_meta", project_id))
    assert again["result"] == "SUCCESS"
    assert (again["summary"]["found"], again["summary"]["new"], again["summary"]["items_read"]) == (
        len(in_range),
        0,
        0,
    )
    assert api.get("/meta/dates", params={"project_id": project_id}).json()["dates"] == dates


def test_a_failing_stage_ends_the_proc_fatal_with_one_line(
    stack: LocalStack, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sputnik.tasks import plan_months
    from sputnik.tasks.failures import StageError

    project_id = tile_project(api, "34TDQ")

    def broken(*args: Any) -> list[str]:
        raise StageError(
            "cannot plan: /var/task/sputnik/secret.json is gone\nTraceback (most recent call last):"
        )

    monkeypatch.setattr(plan_months, "month_prefixes", broken)
    proc = finished(api, project_id, run(api, "s2_load_meta", project_id))
    assert (proc["status"], proc["result"]) == ("DONE", "FATAL")
    assert proc["message"] == "plan_months: cannot plan: <path> is gone"
    assert [(s["status"], s["result"]) for s in proc["scripts"]] == [
        ("DONE", "FATAL"),
        ("WAIT", None),
        ("WAIT", None),
    ]

    def crashing(*args: Any) -> list[str]:
        raise KeyError("/home/builder/internal")

    monkeypatch.setattr(plan_months, "month_prefixes", crashing)
    proc = finished(api, project_id, run(api, "s2_load_meta", project_id))
    assert proc["result"] == "FATAL"
    assert proc["message"] == "plan_months failed: internal error (KeyError)"
    # The proc is DONE once its failure is recorded; the execution ends just after.
    name = f"event-{proc['event_id']}"
    [arn] = [e["executionArn"] for e in executions(stack, "s2_load_meta") if e["name"] == name]
    assert execution_status(stack, arn) == "FAILED"


def test_a_transient_lambda_error_is_absorbed_by_retry(
    stack: LocalStack, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.core.exceptions import JsonRESTError

    project_id = tile_project(api, "34TDQ")
    dispatch = LambdaFunction.invoke
    calls: list[str] = []

    def throttled_once(self: Any, body: str, request_headers: Any, response_headers: Any) -> Any:
        calls.append(self.function_name)
        if self.function_name.endswith("PlanMonthsFunction") and calls.count(self.function_name) == 1:
            error = JsonRESTError("TooManyRequestsException", "Rate exceeded")
            error.code = 429
            raise error
        return dispatch(self, body, request_headers, response_headers)

    monkeypatch.setattr(LambdaFunction, "invoke", throttled_once)
    proc = finished(api, project_id, run(api, "s2_load_meta", project_id))
    assert (proc["result"], proc["message"]) == ("SUCCESS", None)
    assert sum(name.endswith("PlanMonthsFunction") for name in calls) == 2


def test_a_duplicate_start_runs_one_execution(
    stack: LocalStack, api: httpx.Client, user: tuple[str, str]
) -> None:
    from sputnik.tasks import procs, runner

    project_id = tile_project(api, "34TDQ")
    proc = procs.create_proc(owner_of(user[0]), user[0], project_id, TASKS["s2_load_meta"], "twice", {})
    first = runner.start_execution(proc)
    second = runner.start_execution(proc)
    finished(api, project_id, int(proc.event_id))
    third = runner.start_execution(proc)  # after it finished, too
    assert first == second == third
    named = [e for e in executions(stack, "s2_load_meta") if e["name"] == f"event-{proc.event_id}"]
    assert len(named) == 1


def test_s2_load_meta_lists_the_public_archive_when_asked(stack: LocalStack, api: httpx.Client) -> None:
    """{"archive": "public"} pulls the scenes of the public archive (ExternalArchiveBucket), which only
    announces new ones: the stack's own archive, listed by default, has none of these."""
    # A tile no other test uses: scene records outlive a test, and these keep the public bucket.
    tile, external = "31TCJ", get_settings().external_archive_bucket
    s3 = stack.client("s3")
    if external not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=external)  # moto's stand-in for the public archive: no notifications
    keys = [archive.write_scene(s3, external, tile, day, size=256) for day in DATES]
    project_id = tile_project(api, tile)

    own = finished(api, project_id, run(api, "s2_load_meta", project_id))
    assert own["result"] == "SUCCESS"
    assert api.get("/meta/dates", params={"project_id": project_id}).json() == {"dates": []}

    public = finished(api, project_id, run(api, "s2_load_meta", project_id, {"archive": "public"}))
    assert public["result"] == "SUCCESS", public
    assert api.get("/meta/dates", params={"project_id": project_id}).json()["dates"] == DATES
    for day, key in zip(DATES, keys, strict=True):
        metas = api.get("/meta/list", params={"project_id": project_id, "date": day}).json()["metas"]
        assert [m["scene_id"] for m in metas] == [
            stac.parse_item(s3.get_object(Bucket=external, Key=key)["Body"].read()).scene_id
        ]
        assert metas[0]["tci_url"].startswith(f"s3://{external}/")
