"""events/: a sample event per function, and `sputnik invoke` runs each one in the local stack.

The events refer to `make run`'s demo data (user demo; project 1 with generated scenes and proc 1,
an s2_load_data run; project 2 with the real scene, its RGB product, proc 2 of s2_load_data, proc 3
of s2_load_meta; project 3 with proc 4 of s2_composite; then s2_index on projects 1 and 2), so this
starts `sputnik local` as a user does and invokes every event through the CLI.
A stage's event is its input as its state machine hands it over; each kind of event has its own check
of what the function did, and every invocation must publish the function's metrics (it is observed).
Only the summarise stage needs a setup: it reads a Map run's results, whose key AWS (and the local
stack) names by a random id, so its sample's key is given a demo run's results.
"""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest

from sputnik import stac
from sputnik.models import MetaModel, ProcModel, ProductModel, ProjectModel, SceneModel, bind_tables
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.registry import TASKS
from sputnik.tiles.rgb import RGB
from sputnik_tools import cli
from sputnik_tools.local.ports import free_port
from sputnik_tools.local_settings import local_region
from sputnik_tools.template import Template
from tests.conftest import REPO, TEMPLATE
from tests.support.logs import json_lines, metrics_of

EVENTS = REPO / "events"
STACK_TEMPLATE = Template.load(TEMPLATE)
FUNCTIONS = sorted(STACK_TEMPLATE.of_type("AWS::Serverless::Function"))
EVENT_FILES = sorted(EVENTS.glob("*/*.json"))
PNG = b"\x89PNG\r\n\x1a\n"
TIFF = (b"II*\x00", b"II+\x00")
Event = dict[str, Any]


class Local(NamedTuple):
    """A `sputnik local` process: its AWS endpoint, and the file its output (functions' logs) goes to."""

    endpoint: str
    output: Path


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """`sputnik local` with its demo data, in a process of its own."""
    aws_port = free_port()
    output = tmp_path_factory.mktemp("local") / "output.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPUTNIK_", "MOTO_"))}
    # Each metric line in the output as it is printed, not when a buffer fills.
    env["PYTHONUNBUFFERED"] = "1"
    with output.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sputnik_tools.cli",
                "local",
                "--port",
                str(free_port()),
                "--aws-port",
                str(aws_port),
                "--metrics",  # every invocation's metrics line in the output: the tests read them
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        while "sputnik local stack is up" not in output.read_text():
            if process.poll() is not None:
                pytest.fail(f"sputnik local exited with {process.returncode}:\n{output.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Local(f"http://127.0.0.1:{aws_port}", output)
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def rebind_tables() -> Iterator[None]:
    """After this module, point the models back at this process's stack (use_local moved them)."""
    yield
    bind_tables()


@pytest.fixture(scope="module")
def local_endpoint(local: Local) -> str:
    """The AWS endpoint of `sputnik local`."""
    return local.endpoint


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_every_function_has_a_sample_event(logical: str) -> None:
    assert sorted((EVENTS / logical).glob("*.json")), f"events/{logical}/ has no sample event"


def test_every_event_belongs_to_a_function_of_the_template() -> None:
    assert EVENT_FILES
    assert {path.parent.name for path in EVENT_FILES} <= set(FUNCTIONS)


def test_http_events_are_routes_of_their_function() -> None:
    routes = STACK_TEMPLATE.routes()
    for path in EVENT_FILES:
        event = json.loads(path.read_text())
        if event.get("version") == "2.0":
            function = path.parent.name
            assert any(r.route_key == event["routeKey"] and r.function == function for r in routes), path
            method, _ = event["routeKey"].split(" ", 1)
            assert event["requestContext"]["http"]["method"] == method


def use_local(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point boto3 and the models at the local stack, as `sputnik invoke` does."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    region = local_region(Template.load(TEMPLATE))
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    bind_tables()


def invoke(
    endpoint: str, path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> tuple[int, Any]:
    """`sputnik invoke FUNCTION EVENT` against the local endpoint: exit code and printed result."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    code = cli.main(["invoke", path.parent.name, str(path.relative_to(REPO))])
    return code, json.loads(capsys.readouterr().out)


def read_json(bucket: str, key: str) -> Any:
    """A JSON object of the local stack's S3."""
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def script(proc: ProcModel, name: str) -> tuple[str, str | None]:
    """Status and result of one script of a proc."""
    found = next(s for s in proc.scripts if s.name == name)
    return str(found.status), found.result


def finished_proc(project_id: int, event_id: int) -> ProcModel:
    """The proc once its execution has ended (the local stack runs it in a few seconds)."""
    for _ in range(1200):  # a bound on the polls, not a deadline
        proc = procs.get_proc(procs.ProcRef(project_id, event_id))
        if proc.status == procs.DONE:
            return proc
        time.sleep(0.1)
    pytest.fail(f"proc {event_id} of project {project_id} did not end")


def metas(project_id: int, day: str) -> list[MetaModel]:
    """The project's meta of one date."""
    return list(MetaModel.query(project_id, MetaModel.date_scene.startswith(f"{day}#")))


def assert_product(project_id: int, scene_id: str) -> int:
    """The scene's RGB product is recorded and its COG is in the products bucket; the COG's size."""
    product = ProductModel.get(project_id, f"{scene_id}-rgb")
    assert (product.kind, product.scene_id) == (RGB, scene_id)
    cog = boto3.client("s3").get_object(Bucket=get_settings().products_bucket, Key=product.key)
    assert cog["Body"].read(4) in TIFF
    return int(cog["ContentLength"])


# ---------------------------------------------------------------- HTTP routes


def check_task_list(event: Event, data: Any) -> None:
    assert {t["name"] for t in data["tasks"]} == set(TASKS)
    assert all(t["descr"] for t in data["tasks"])


def check_task_run(event: Event, data: Any) -> None:
    request = json.loads(event["body"])
    project_id, day = request["project_id"], request["params"]["date"]
    proc = finished_proc(project_id, data["event_id"])
    assert (proc.task, proc.title, proc.result) == (request["task"], request["title"], procs.SUCCESS)
    scenes = [m.scene_id for m in metas(project_id, day)]
    assert scenes and proc.summary["succeeded"] == proc.summary["items"] == len(scenes), proc.summary
    for scene_id in scenes:
        assert_product(project_id, scene_id)


def check_proc_list(event: Event, data: Any) -> None:
    project_id = int(event["queryStringParameters"]["project_id"])
    listed = [p["event_id"] for p in data["procs"]]
    assert listed == [int(p.event_id) for p in ProcModel.query(project_id, scan_index_forward=False)]
    assert listed == sorted(listed, reverse=True)
    # The demo ran s2_load_data, s2_load_meta and s2_index once on this project (s2_composite, elsewhere).
    assert sorted(p["task"] for p in data["procs"]) == ["s2_index", "s2_load_data", "s2_load_meta"]
    assert {p["task"] for p in data["procs"]} <= set(TASKS)
    assert all(p["scripts"] and p["ctime"] for p in data["procs"])


def check_openapi(event: Event, data: Any) -> None:
    # One document for every function's routes, the viewer's own among them.
    assert {"/project/new", "/meta/list", "/task/run", "/proc/list", "/rgb/list", "/cog/info"} <= set(
        data["paths"]
    )


ROUTE_CHECKS: dict[str, Callable[[Event, Any], None]] = {
    "GET /openapi.json": check_openapi,
    "GET /task/list": check_task_list,
    "POST /task/run": check_task_run,
    "GET /proc/list": check_proc_list,
}


def check_http(event: Event, result: Any) -> None:
    assert result["statusCode"] == 200, result
    body = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
    content_type = result["headers"]["content-type"]
    if content_type == "image/png":
        assert body.startswith(PNG)
    elif content_type.startswith("text/html"):
        assert b"<html" in body.lower()
    else:
        data = json.loads(body)
        assert data, result
        if event["routeKey"] in ROUTE_CHECKS:
            ROUTE_CHECKS[event["routeKey"]](event, data)


# ---------------------------------------------------------------- S3 / SNS / direct events


def check_ingest(event: Event, result: Any) -> None:
    messages = [json.loads(r["Sns"]["Message"]) for r in event.get("Records", []) if "Sns" in r]
    items = [m for m in messages if m.get("type") == "Feature"]
    if not items:
        # Every object the event announces is catalogued, and the scene meets a demo project.
        assert result.get("skipped", 0) == result.get("unrecognised", 0) == 0, result
        assert result["matched"] >= 1, result
        return
    # The public archive's feed: each item catalogued from the message alone (no demo project lies
    # in its tile), where it lies in the public archive, its hrefs there as the tiler's s3:// URLs.
    assert result == {"ingested": len(items), "skipped": 0, "stale": 0, "matched": 0, "unrecognised": 0}
    external = get_settings().external_archive_bucket
    for item in items:
        record = SceneModel.get(item["id"])
        assert (record.archive_bucket, record.item_key) == (external, stac.parse_item(item).key)
        visual = item["assets"]["visual"]["href"]
        assert record.assets["visual"] == f"s3://{external}/{visual.split('.amazonaws.com/', 1)[1]}"


# ---------------------------------------------------------------- stages


def check_plan_months(event: Event, result: Any) -> None:
    project = ProjectModel.get(event["project_id"])
    start, end = date.fromisoformat(project.start_date), date.fromisoformat(project.end_date)
    assert (start.year, start.month) == (end.year, end.month)  # the demo project spans one month
    items = read_json(result["bucket"], result["key"])
    assert result == {
        "bucket": get_settings().task_bucket,
        "key": f"procs/{event['event_id']}/months.json",
        "count": len(items),
    }
    assert sorted(i["prefix"] for i in items) == sorted(
        stac.month_prefix(tile, start.year, start.month) for tile in project.tiles
    )
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert proc.task == "s2_load_meta"
    assert script(proc, "plan_months") == (procs.DONE, procs.SUCCESS)


def check_scan_month(event: Event, result: Any) -> None:
    prefix = event["item"]["prefix"]
    listed = boto3.client("s3").list_objects_v2(
        Bucket=get_settings().archive_bucket, Prefix=prefix, Delimiter="/"
    )
    folders = [c["Prefix"] for c in listed.get("CommonPrefixes", [])]
    scenes = {f.rstrip("/").rsplit("/", 1)[-1] for f in folders}
    year, month = prefix.rstrip("/").split("/")[-2:]
    held = {
        m.scene_id
        for m in MetaModel.query(
            event["project_id"], MetaModel.date_scene.startswith(f"{year}-{int(month):02d}-")
        )
    }
    # The demo's scenes all came by S3 events: the scan finds them and reads none again.
    assert scenes and scenes <= held
    assert result == {
        "found": len(folders),
        "new": 0,
        "matched": len(scenes),
        "items_read": 0,
        "bad_items": 0,
        "list_calls": 1,
    }


def check_resolve_scenes(event: Event, result: Any) -> None:
    items = read_json(result["bucket"], result["key"])
    assert result == {
        "bucket": get_settings().task_bucket,
        "key": f"procs/{event['event_id']}/scenes.json",
        "count": len(items),
    }
    day = event["params"]["date"]
    expected = [{"scene_id": m.scene_id, "date": day} for m in metas(event["project_id"], day)]
    assert expected and items == expected
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert proc.task == "s2_load_data"
    assert script(proc, "resolve_scenes") == (procs.DONE, procs.SUCCESS)


def check_build_product(event: Event, result: Any) -> None:
    scene_id = event["item"]["scene_id"]
    size = assert_product(event["project_id"], scene_id)
    assert result["product_id"] == f"{scene_id}-rgb"
    assert result["bytes_written"] == size
    assert result["pixels"] > 0


def check_build_index(event: Event, result: Any) -> None:
    scene_id, day = event["item"]["scene_id"], event["item"]["date"]
    product = ProductModel.get(event["project_id"], f"index:ndvi:{day}:{scene_id}")
    assert (product.kind, product.index, product.scene_id, product.date) == ("index", "ndvi", scene_id, day)
    assert product.key == f"projects/{event['project_id']}/index/ndvi/{scene_id}.tif"
    cog = boto3.client("s3").get_object(Bucket=get_settings().products_bucket, Key=product.key)
    assert cog["Body"].read(4) in TIFF
    assert result["bytes_written"] == int(cog["ContentLength"])
    # The real scene's border meets clear land: some pixels have an NDVI, within its range.
    stats = product.stats
    assert 0 < stats["valid_pixels"] <= result["pixels"] and 0 < stats["clear_fraction"] <= 1
    assert -1 <= stats["min"] <= stats["p10"] <= stats["median"] <= stats["p90"] <= stats["max"] <= 1


def results_of(event: Event) -> tuple[str, list[dict[str, Any]]]:
    """The demo's Map run for this proc (its task's, over its scenes): result manifest and outputs."""
    bucket = get_settings().task_bucket
    scenes = sorted(i["scene_id"] for i in read_json(bucket, f"procs/{event['event_id']}/scenes.json"))
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="procs/results/")["Contents"]
    written = [o["Key"] for o in listed if o["Key"].endswith("/manifest.json") and "/demo-" not in o["Key"]]
    for manifest_key in written:  # the ones Step Functions wrote, not the demo's copy
        manifest = read_json(bucket, manifest_key)
        if f"-{event['task']}/" not in manifest.get("MapRunArn", ""):
            continue  # another task's run over the same scenes (the demo indexes them too)
        outputs = [
            json.loads(run["Output"])
            for entry in manifest["ResultFiles"]["SUCCEEDED"]
            for run in read_json(bucket, entry["Key"])
        ]
        if sorted(o.get("scene_id", "") for o in outputs) == scenes:
            return manifest_key, outputs
    pytest.fail(f"no Map run results of proc {event['event_id']}")


def check_summarise(event: Event, result: Any) -> None:
    # The demo keeps a copy of its Map run's result manifest where the sample points: the same run.
    manifest_key, outputs = results_of(event)
    details = event["results"]["ResultWriterDetails"]
    assert read_json(details["Bucket"], details["Key"]) == read_json(get_settings().task_bucket, manifest_key)
    assert result == {
        "result": procs.SUCCESS,
        "items": len(outputs),
        "succeeded": len(outputs),
        "failed": 0,
        "pixels": sum(o["pixels"] for o in outputs),
        "bytes_written": sum(o["bytes_written"] for o in outputs),
    }
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert (proc.status, proc.result) == (procs.DONE, procs.SUCCESS)
    assert proc.summary == {k: v for k, v in result.items() if k != "result"}
    assert script(proc, "summarise") == (procs.DONE, procs.SUCCESS)


def check_plan_blocks(event: Event, result: Any) -> None:
    items = read_json(result["bucket"], result["key"])
    assert (result["key"], result["count"]) == (f"procs/{event['event_id']}/blocks.json", len(items))
    params = event["params"]
    held = {
        m.scene_id
        for m in MetaModel.query(
            event["project_id"],
            MetaModel.date_scene.between(f"{params['start_date']}#", f"{params['end_date']}#~"),
        )
    }
    assert result["scenes"] == len(held) > 0 and result["grid"]["crs"].startswith("EPSG:326")
    assert items and all(set(item["scenes"]) <= held for item in items)
    # The blocks tile the grid: their pixels add up to the grid's (this border's box is one block).
    assert (
        sum(i["window"][2] * i["window"][3] for i in items)
        == result["grid"]["width"] * result["grid"]["height"]
    )
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert script(proc, "plan_blocks") == (procs.DONE, procs.SUCCESS)


def check_composite_block(event: Event, result: Any) -> None:
    assert result["key"] == f"tmp/composite/{event['event_id']}/block-{event['item']['block']:05d}.tif"
    block = boto3.client("s3").get_object(Bucket=get_settings().products_bucket, Key=result["key"])
    assert block["Body"].read(4) in TIFF
    assert (
        0 < result["observed"] <= result["pixels"] <= event["item"]["window"][2] * event["item"]["window"][3]
    )
    assert result["count_max"] <= len(event["item"]["scenes"])


def blocks_made_again(event: Event) -> None:
    """The demo's assembly deleted its blocks: the proc's blocks are reduced again, as its Map did."""
    from sputnik.tasks import composite_block

    for item in read_json(event["plan"]["bucket"], event["plan"]["key"]):
        composite_block.run(
            {
                **{k: event[k] for k in ("event_id", "project_id", "params")},
                "grid": event["plan"]["grid"],
                "item": item,
            }
        )


def check_assemble_composite(event: Event, result: Any) -> None:
    params = event["params"]
    product_id = "composite:{product}:{method}:{start_date}:{end_date}".format(**params)
    assert (result["result"], result["product_id"], result["failed"]) == (procs.SUCCESS, product_id, 0)
    product = ProductModel.get(event["project_id"], product_id)
    assert product.kind == "composite" and product.details["scenes"] == event["plan"]["scenes"]
    coverage = product.details["coverage"]
    assert 0 < coverage["observed_fraction"] <= 1 and coverage["min_count"] <= coverage["max_count"]
    cog = boto3.client("s3").get_object(Bucket=get_settings().products_bucket, Key=product.key)
    assert cog["Body"].read(4) in TIFF and result["bytes_written"] == int(cog["ContentLength"])
    left = boto3.client("s3").list_objects_v2(
        Bucket=get_settings().products_bucket, Prefix=f"tmp/composite/{event['event_id']}/"
    )
    assert left["KeyCount"] == 0
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert (proc.status, proc.result) == (procs.DONE, procs.SUCCESS)


def check_record_failure(event: Event, result: Any) -> None:
    assert (result["result"], result["procs_failed"]) == (procs.FATAL, 1)
    message = result["message"]
    # An internal error is named; its message, request and stack trace stay out of the user's view.
    assert message.endswith("failed: internal error (ClientError)"), message
    assert "AccessDenied" not in message and "/var/task" not in message
    proc = procs.get_proc(procs.ProcRef.of(event))
    assert (proc.status, proc.result, proc.message) == (procs.DONE, procs.FATAL, message)


def check_reconcile(event: Event, result: Any) -> None:
    assert result == {"procs_failed": 1, "ignored": 0}
    proc = procs.get_proc(procs.ProcRef.of(json.loads(event["detail"]["input"])))
    assert (proc.status, proc.result) == (procs.DONE, procs.FATAL)
    assert proc.message == "resolve_scenes stopped: the task's execution was aborted"


def a_stage_runs(event: Event) -> None:
    """Where a failure sample's execution was when it failed: its proc running its first script.

    The demo's procs have ended, and an ended proc keeps its end whatever is reported later.
    """
    ref = procs.ProcRef.of(json.loads(event["detail"]["input"]) if "detail" in event else event)
    proc = procs.get_proc(ref)
    procs.script_started(ref, str(proc.task), str(proc.scripts[0].name))


SETUPS: dict[str, Callable[[Event], None]] = {
    "RecordFailureFunction": a_stage_runs,
    "ReconcileFunction": a_stage_runs,
    "AssembleCompositeFunction": blocks_made_again,
}
CHECKS: dict[str, Callable[[Event, Any], None]] = {
    "ReconcileFunction": check_reconcile,
    "IngestFunction": check_ingest,
    "PlanMonthsFunction": check_plan_months,
    "ScanMonthFunction": check_scan_month,
    "ResolveScenesFunction": check_resolve_scenes,
    "BuildProductFunction": check_build_product,
    "BuildIndexFunction": check_build_index,
    "SummariseFunction": check_summarise,
    "RecordFailureFunction": check_record_failure,
    "PlanBlocksFunction": check_plan_blocks,
    "CompositeBlockFunction": check_composite_block,
    "AssembleCompositeFunction": check_assemble_composite,
}


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_event_runs_through_sputnik_invoke(
    path: Path, local: Local, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    function, event = path.parent.name, json.loads(path.read_text())
    is_http = event.get("version") == "2.0"
    assert is_http or function in CHECKS, f"no check of what {function} does with {path.name}"
    use_local(local.endpoint, monkeypatch)
    if function in SETUPS:
        SETUPS[function](event)
    logged = local.output.stat().st_size
    code, result = invoke(local.endpoint, path, capsys, monkeypatch)
    assert code == 0, result
    # The function is observed: its invocation published metrics (EMF lines in the stack's output).
    with local.output.open("rb") as output:
        output.seek(logged)
        printed = output.read().decode(errors="replace")
    assert metrics_of(json_lines(printed), STACK_TEMPLATE.physical_name(function)), f"{function}: no metrics"
    use_local(local.endpoint, monkeypatch)
    (check_http if is_http else CHECKS[function])(event, result)


def test_invoke_names_the_functions_of_the_template_when_the_function_is_unknown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["invoke", "NoSuchFunction", "events/MetaFunction/meta-dates.json"]) == 1
    err = capsys.readouterr().err
    assert "has no function NoSuchFunction" in err and "MetaFunction" in err


def test_invoke_reports_a_failing_function_with_exit_code_1(
    local_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "IngestFunction" / "broken.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps({"backfill_project": "not a number"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", local_endpoint)
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    assert cli.main(["invoke", "IngestFunction", str(broken)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["errorType"] == "ValueError"
    assert "IngestFunction failed" in captured.err
