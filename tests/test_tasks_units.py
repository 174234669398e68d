"""The parts of processing that need no running task: planning, params, messages, the local Map results."""

import json
from datetime import date
from typing import Any

import httpx
import pytest

from sputnik.errors import InvalidInput
from sputnik.settings import get_settings
from sputnik.tasks import reconcile
from sputnik.tasks.failures import failure_message, one_line
from sputnik.tasks.plan_months import ARCHIVE_START, date_range, months
from sputnik.tasks.registry import TASKS
from sputnik_tools.local import moto_patches
from sputnik_tools.local.stack import LocalStack


def test_months_include_both_ends_and_cross_years() -> None:
    assert months(date(2020, 11, 30), date(2021, 2, 1)) == [(2020, 11), (2020, 12), (2021, 1), (2021, 2)]
    assert months(date(2021, 12, 1), date(2021, 12, 31)) == [(2021, 12)]
    assert months(date(2021, 3, 1), date(2021, 2, 28)) == []


def test_open_dates_mean_the_archive_start_and_today() -> None:
    today = date(2026, 11, 25)
    assert date_range(None, None, today) == (ARCHIVE_START, today)
    assert date(2015, 6, 23) == ARCHIVE_START
    assert date_range("2010-01-01", "2030-01-01", today) == (ARCHIVE_START, today)
    assert date_range("2021-06-01", "2021-07-31", today) == (date(2021, 6, 1), date(2021, 7, 31))
    assert len(months(*date_range(None, "2015-12-31", today))) == 7  # June to December 2015


def test_params_are_checked_against_each_tasks_schema() -> None:
    data = TASKS["s2_load_data"]
    assert data.check_params(None) == {}
    assert data.check_params({"date": "2021-06-05"}) == {"date": "2021-06-05"}
    assert data.check_params({"scene_ids": ["S2A_33TWL_20210620_0_L2A"]}) == {
        "scene_ids": ["S2A_33TWL_20210620_0_L2A"]
    }
    with pytest.raises(InvalidInput, match="scene_ids"):
        data.check_params({"scene_ids": ["x"] * 501})
    with pytest.raises(InvalidInput, match="Extra inputs"):
        TASKS["s2_load_meta"].check_params({"anything": 1})


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            {
                "Error": "StageError",
                "Cause": json.dumps({"errorMessage": "scene X is gone", "errorType": "StageError"}),
            },
            "s: scene X is gone",
        ),
        (
            {
                "Error": "ProductError",
                "Cause": json.dumps({"errorMessage": "/vsis3/b/k/TCI.tif: not a TIFF\nmore"}),
            },
            "s: <path>: not a TIFF",
        ),
        ({"Error": "ZeroDivisionError", "Cause": json.dumps({"errorMessage": "division by zero"})}, None),
        ({"Error": "States.Timeout", "Cause": ""}, "s timed out"),
        (
            {"Error": "Lambda.ServiceException", "Cause": "internal"},
            "s failed: AWS Lambda answered ServiceException",
        ),
        ({"Error": "States.Runtime", "Cause": "at /opt/python/x.py line 3"}, "s failed: States.Runtime"),
        (None, "s failed: internal error (unknown)"),
    ],
)
def test_failures_read_in_one_line_without_internals(
    error: dict[str, str] | None, message: str | None
) -> None:
    said = failure_message("s", error)
    assert said == (message or "s failed: internal error (ZeroDivisionError)")
    assert "\n" not in said and "/opt" not in said and "/vsis3" not in said


@pytest.mark.parametrize(
    ("status", "detail", "message"),
    [
        ("ABORTED", {}, "s stopped: the task's execution was aborted"),
        ("TIMED_OUT", {}, "s timed out"),
        ("FAILED", {}, "s failed: the task's execution failed"),
        # Where the event names the error, the message says it, internals left out.
        (
            "FAILED",
            {"error": "States.DataLimitExceeded", "cause": "at /var/task/x"},
            "s failed: States.DataLimitExceeded",
        ),
    ],
)
def test_an_execution_that_ended_past_its_catch_reads_in_one_line(
    status: str, detail: dict[str, str], message: str
) -> None:
    assert reconcile.message(status, "s", detail) == message


def test_one_line_cuts_long_messages() -> None:
    assert len(one_line("x" * 1000)) == 300
    assert one_line("\n\n  first  \nsecond") == "first"


def test_map_results_patch_fails_loudly_when_moto_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = moto_patches.map_worker.DistributedItemProcessorWorker
    monkeypatch.setattr(worker, "_eval_job", lambda self, env, job, extra: None)
    with pytest.raises(RuntimeError, match=r"distributed Map internals .* changed"):
        moto_patches.patch_map_results()


def test_map_results_are_written_as_aws_writes_them(stack: LocalStack, api: httpx.Client) -> None:
    from tests.support.tasks import finished, run
    from tests.support.tasks import tile_project as new_project

    project_id = new_project(api, "34TDQ")
    proc = finished(
        api, project_id, run(api, "s2_load_data", project_id, {"scene_ids": ["nope_1", "nope_2"]})
    )
    assert (proc["result"], [s["result"] for s in proc["scripts"]]) == (
        "ERRORS",
        ["SUCCESS", "ERRORS", "SUCCESS"],
    )
    assert proc["summary"]["failures"] == [
        "nope_1: scene nope_1 is not among the project's scenes",
        "nope_2: scene nope_2 is not among the project's scenes",
    ]
    s3 = stack.client("s3")
    bucket = get_settings().task_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="procs/results/")["Contents"]]
    manifests = [
        json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
        for k in keys
        if k.endswith("manifest.json")
    ]
    ours: list[dict[str, Any]] = []
    for manifest in manifests:
        for entry in manifest["ResultFiles"]["FAILED"]:
            runs = json.loads(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
            if any("nope_1" in r["Input"] for r in runs):
                assert entry["Size"] > 0 and manifest["DestinationBucket"] == bucket
                ours = runs
    assert [json.loads(r["Input"])["scene_id"] for r in ours] == ["nope_1", "nope_2"]
    assert {r["Status"] for r in ours} == {"FAILED"} and {r["Error"] for r in ours} == {"StageError"}
    assert json.loads(ours[0]["Cause"])["errorMessage"] == "scene nope_1 is not among the project's scenes"
