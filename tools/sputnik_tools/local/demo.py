"""Demo data for `make run`: generated scenes and the real one, ingested through S3 notifications."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sputnik.settings import get_settings
from sputnik_tools.local.stack import LocalStack

DEMO_TILES = ["33TWL", "33TXL"]
DEMO_DATES = ["2021-06-05", "2021-06-20", "2021-07-10"]
# A scene put in the archive without an event: only s2_load_meta finds it.
UNANNOUNCED = ("33TWL", "2021-07-25")
# A real Sentinel-2 L2A scene (contains modified Copernicus Sentinel data 2020), kept in the repository.
REAL_SCENE = Path("tests/fixtures/sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A")


def _square(lon0: float, lat0: float, lon1: float, lat1: float) -> str:
    """A GeoJSON Polygon of a lon/lat box, as text."""
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


DEMO_PROJECTS = [
    ("Pannonian fields", "2021-06-01", "2021-07-31", _square(15.9, 45.3, 16.3, 45.6)),
    ("Saharan coast (real scene)", "2020-02-01", "2020-02-29", _square(-11.6, 24.6, -11.2, 25.0)),
    # Small, for a composite that `make run` makes in seconds.
    ("Pannonian village", "2021-06-01", "2021-07-31", _square(16.0, 45.4, 16.04, 45.43)),
]
# The demo composite: every scene of the village's dates, their median.
DEMO_COMPOSITE = {"start_date": "2021-06-01", "end_date": "2021-07-31", "product": "rgb", "method": "median"}


def has_real_scene(stack: LocalStack) -> bool:
    """Whether the real scene is in the checkout (it is not in an installed package)."""
    return (stack.template.root / REAL_SCENE).is_dir()


def load_scenes(stack: LocalStack, size: int = 256) -> str:
    """Upload generated scenes and the real one to the archive; S3 notifications ingest them."""
    from sputnik_tools.archive import generate_archive, upload_fixture_scene

    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket
    keys = generate_archive(s3, bucket, DEMO_TILES, DEMO_DATES, size=size)
    if has_real_scene(stack):
        keys.append(upload_fixture_scene(s3, bucket, stack.template.root / REAL_SCENE))
        note = ", the real S2A_29RKH_20200219 among them (Copernicus Sentinel data 2020)"
    else:
        note = f" (real scene not found at {REAL_SCENE})"
    return f"{len(keys)} scenes in s3://{bucket}{note}"


def load_projects(login: str) -> list[int]:
    """Create the demo projects for a login; they pick up the catalogued scenes at once."""
    from sputnik import auth, projects

    owner = str(auth.get_user(login).user_id)
    return [
        int(projects.create_project(owner, login, projects.validate(name, start, end, border)).project_id)
        for name, start, end, border in DEMO_PROJECTS
    ]


@contextmanager
def archive_without_events(stack: LocalStack) -> Iterator[Any]:
    """An S3 client while the archive's notifications are off: what is written then is never announced."""
    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield s3
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)


def load_unannounced_scene(stack: LocalStack, size: int = 256) -> str:
    """Put a scene in the archive that no event announces, for s2_load_meta to find; its id."""
    from sputnik_tools.archive import write_scene

    tile, day = UNANNOUNCED
    with archive_without_events(stack) as s3:
        key = write_scene(s3, get_settings().archive_bucket, tile, day, size=size)
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def run_to_end(project_id: int, task: str, title: str, params: dict[str, Any]) -> Any:
    """Run a task on a demo project as its owner and wait for its proc to end well; the proc."""
    from sputnik.models import ProjectModel
    from sputnik.tasks import procs, runner

    project = ProjectModel.get(project_id)
    event_id = runner.run_task(str(project.owner), str(project.login), task, title, project_id, params)
    ref = procs.ProcRef(project_id, event_id)
    for _ in range(1200):  # the local stack runs it in a few seconds; a bound, not a deadline
        proc = procs.get_proc(ref)
        if proc.status == procs.DONE:
            if proc.result != procs.SUCCESS:
                raise RuntimeError(f"{task} ended {proc.result}: {proc.message or proc.summary}")
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"{task} on project {project_id} did not finish")


def load_rgb_product(stack: LocalStack, project_id: int, scene_id: str) -> str:
    """Make a scene's RGB product `{scene_id}-rgb` by running s2_load_data, and wait for it."""
    proc = run_to_end(project_id, "s2_load_data", "demo RGB product", {"scene_ids": [scene_id]})
    keep_map_results(stack, int(proc.event_id))
    return f"{scene_id}-rgb"


def load_index_series(project_id: int, index: str = "ndvi") -> str:
    """Run s2_index on every scene of a demo project, so that its series can be charted at once."""
    proc = run_to_end(project_id, "s2_index", f"demo {index} series", {"index": index})
    return f"{index} of {proc.summary.get('succeeded', 0)} scenes (s2_index) in project {project_id}"


def results_key(event_id: int) -> str:
    """Where the demo keeps a copy of proc `event_id`'s Map run result manifest."""
    return f"procs/results/demo-{event_id}/manifest.json"


def keep_map_results(stack: LocalStack, event_id: int) -> str:
    """Copy a proc's Map run result manifest to `results_key(event_id)`; that key.

    Step Functions writes it under the Map run's random id; events/SummariseFunction's sample
    names the fixed copy, so that `sputnik invoke` can run it on a plain `make run`.
    """
    s3, bucket = stack.client("s3"), get_settings().task_bucket

    def read(key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    # The run whose items are this proc's scenes (its item manifest, procs/{event_id}/scenes.json).
    scenes = sorted(item["scene_id"] for item in read(f"procs/{event_id}/scenes.json"))
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="procs/results/")
    for key in (o["Key"] for page in pages for o in page.get("Contents", [])):
        if not key.endswith("/manifest.json") or key.startswith("procs/results/demo-"):
            continue
        files = read(key)["ResultFiles"].get("SUCCEEDED", [])
        items = [json.loads(run["Input"]) for entry in files for run in read(entry["Key"])]
        if sorted(item.get("scene_id", "") for item in items) == scenes:
            copy = {"Bucket": bucket, "Key": key}
            s3.copy_object(Bucket=bucket, Key=results_key(event_id), CopySource=copy)
            return results_key(event_id)
    raise RuntimeError(f"no Map run results of proc {event_id}")


def load_index_products(project_id: int) -> str:
    """Run s2_index (NDVI) on a demo project: each of its scenes gets an index product and statistics."""
    proc = run_to_end(project_id, "s2_index", "demo NDVI", {"index": "ndvi"})
    return f"s2_index (NDVI) proc {proc.event_id} on project {project_id}"


def load_meta_pull(stack: LocalStack, project_id: int) -> str:
    """Run s2_load_meta on a project, so that the demo has a proc of each task (events/ use them)."""
    proc = run_to_end(project_id, "s2_load_meta", "demo archive pull", {})
    return f"s2_load_meta proc {proc.event_id} on project {project_id}"


def load_composite(stack: LocalStack, project_id: int) -> str:
    """Run s2_composite on a project and keep its Map run's results where events/ expects them."""
    proc = run_to_end(project_id, "s2_composite", "demo composite", DEMO_COMPOSITE)
    s3, bucket = stack.client("s3"), get_settings().task_bucket

    def read(key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    # The Map run whose children made this proc's blocks (each one's output names the block's key).
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="procs/results/")
    for key in (o["Key"] for page in pages for o in page.get("Contents", [])):
        if not key.endswith("/manifest.json") or key.startswith("procs/results/demo-"):
            continue
        files = read(key)["ResultFiles"].get("SUCCEEDED", [])
        outputs = [json.loads(run["Output"]) for entry in files for run in read(entry["Key"])]
        prefix = f"tmp/composite/{proc.event_id}/"
        if outputs and all(str(o.get("key", "")).startswith(prefix) for o in outputs):
            copy = {"Bucket": bucket, "Key": key}
            s3.copy_object(Bucket=bucket, Key=results_key(int(proc.event_id)), CopySource=copy)
            made = "composite:{product}:{method}:{start_date}:{end_date}".format(**DEMO_COMPOSITE)
            return f"{made} of project {project_id} (s2_composite proc {proc.event_id})"
    raise RuntimeError(f"no Map run results of proc {proc.event_id}")
