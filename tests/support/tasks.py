"""Running tasks through the API: projects over one MGRS tile, scenes no event announced, procs."""

import time
from typing import Any

import httpx
from pyproj import Transformer
from shapely.geometry import box, mapping

from sputnik import mgrs, stac
from sputnik.settings import get_settings
from sputnik_tools import archive
from sputnik_tools.local.demo import archive_without_events
from sputnik_tools.local.stack import LocalStack
from tests.support.projects import new_project

DATES = ["2021-06-05", "2021-06-20", "2021-07-10"]


def tile_border(tile: str, half: float = 0.03) -> dict[str, Any]:
    """A small lon/lat square at the middle of a tile: it touches that tile only."""
    epsg, (x0, y0, x1, y1) = mgrs.tile_utm_bounds(tile)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    return dict(mapping(box(lon - half, lat - half, lon + half, lat + half)))


def tile_border_bounds(tile: str) -> tuple[float, float, float, float]:
    """Bounds of tile_border(tile)."""
    ring = tile_border(tile)["coordinates"][0]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return min(lons), min(lats), max(lons), max(lats)


def unannounced_scenes(stack: LocalStack, tile: str, dates: list[str]) -> dict[str, stac.Scene]:
    """Generated scenes written to the archive without events; by scene id."""
    bucket = get_settings().archive_bucket
    with archive_without_events(stack) as s3:
        keys = [archive.write_scene(s3, bucket, tile, day, size=256) for day in dates]
    return {
        scene.scene_id: scene
        for scene in (stac.parse_item(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys)
    }


def tile_project(
    api: httpx.Client, tile: str, start: str | None = "2021-06-01", end: str | None = "2021-07-31"
) -> int:
    """A project over the middle of a tile; its id."""
    return new_project(api, tile_border(tile), start, end, name=f"tasks {tile}")


def run(api: httpx.Client, task: str, project_id: int, params: Any = None) -> int:
    """Start a task; its event id."""
    body: dict[str, Any] = {"task": task, "title": f"{task} test", "project_id": project_id}
    if params is not None:
        body["params"] = params
    answer = api.post("/task/run", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["event_id"])


def finished(api: httpx.Client, project_id: int, event_id: int) -> dict[str, Any]:
    """The proc of an event once it is DONE (a bound on polling, not a timed assertion)."""
    for _ in range(600):
        procs = api.get("/proc/list", params={"project_id": project_id}).json()["procs"]
        proc = next(p for p in procs if p["event_id"] == event_id)
        if proc["status"] == "DONE":
            return dict(proc)
        time.sleep(0.1)
    raise AssertionError(f"proc {event_id} did not finish: {proc}")


def execution_status(stack: LocalStack, arn: str) -> str:
    """An execution's status once it has ended (a bound on polling, not a timed assertion)."""
    sfn = stack.client("stepfunctions")
    for _ in range(1200):
        status = str(sfn.describe_execution(executionArn=arn)["status"])
        if status != "RUNNING":
            return status
        time.sleep(0.1)
    raise AssertionError(f"{arn} did not end")
