"""Tasks benchmark: s2_load_meta over 20 tiles x 24 months, s2_load_data over 1 and 10 scenes, end to end.

Both run as a user runs them: POST /task/run through the local HTTP front, then /proc/list until
the proc is DONE; Step Functions (moto) runs the state machine and its distributed Map, the stages
run as the Lambda handlers. The moto server logs every request it serves, so LIST calls and item
reads are counted at the S3 side, not taken from the stages' own counts.
"""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pyproj import Transformer
from shapely.geometry import MultiPolygon, box, mapping
from shapely.geometry.base import BaseGeometry

from bench.common import LOGIN, PASSWORD, row, running_stack
from sputnik import mgrs, stac
from sputnik.settings import get_settings
from sputnik_tools import archive
from sputnik_tools.local.demo import archive_without_events
from sputnik_tools.local.stack import LocalStack

META_TILES = 20
META_MONTHS = [(2020 + i // 12, 1 + i % 12) for i in range(24)]
DATA_TILE = "34TDQ"
DATA_DATES = [f"2021-{m:02d}-{d:02d}" for m in (6, 7) for d in (5, 10, 15, 20, 25)]
DATA_SIZE = 1098  # a TCI at 100 m, the size of the real fixture scene


def tile_centre(tile: str) -> tuple[float, float]:
    """Lon/lat of a tile's middle."""
    epsg, (x0, y0, x1, y1) = mgrs.tile_utm_bounds(tile)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    return float(lon), float(lat)


def square(lon: float, lat: float, half: float) -> Any:
    """A lon/lat square around a point."""
    return box(lon - half, lat - half, lon + half, lat + half)


def meta_tiles() -> list[str]:
    """20 neighbouring tiles (a block over the Pannonian plain)."""
    tiles = sorted(mgrs.tiles_for_border(box(16.0, 44.0, 21.5, 47.0)))[:META_TILES]
    assert len(tiles) == META_TILES, tiles
    return tiles


def item_for(template: dict[str, Any], year: int, month: int) -> tuple[str, bytes]:
    """A copy of a rendered scene's STAC item, moved to another month: its key and body."""
    old = stac.parse_item(template)
    day = f"{year:04d}-{month:02d}-15"
    new_id = old.scene_id.replace(old.date.replace("-", ""), day.replace("-", ""))
    text = json.dumps(template).replace(old.scene_id, new_id).replace(old.datetime[:10], day)
    old_month = f"/{int(old.date[:4])}/{int(old.date[5:7])}/"
    text = text.replace(old_month, f"/{year}/{month}/")
    scene = stac.parse_item(text)
    return stac.item_key(scene.tile, scene.date, scene.scene_id), text.encode()


def run_task(
    client: httpx.Client, project_id: int, task: str, params: Any = None
) -> tuple[float, dict[str, Any]]:
    """Run a task through the API; seconds to DONE and the proc."""
    t = time.perf_counter()
    body: dict[str, Any] = {"task": task, "title": "bench", "project_id": project_id}
    if params is not None:
        body["params"] = params
    event_id = client.post("/task/run", json=body).json()["event_id"]
    while True:
        procs = client.get("/proc/list", params={"project_id": project_id}).json()["procs"]
        proc = next(p for p in procs if p["event_id"] == event_id)
        if proc["status"] == "DONE":
            return time.perf_counter() - t, proc
        time.sleep(0.05)


def s3_counts(stack: LocalStack, bucket: str) -> tuple[int, int]:
    """(LIST requests, STAC item GETs) on a bucket among the requests the moto server logged."""
    lists = items = 0
    for method, path, _ in stack.requests:
        if method != "GET" or not path.startswith(f"/{bucket}"):
            continue
        if path.rstrip("/") == f"/{bucket}":
            lists += 1
        elif path.endswith(".json"):
            items += 1
    return lists, items


@contextmanager
def handler_seconds(stack: LocalStack, logical_id: str) -> Iterator[list[float]]:
    """Seconds spent inside one function's handler, call by call, while the block runs."""
    function = stack.functions[stack.function_for(logical_id)]
    original = function.invoke
    spent: list[float] = []

    def timed(event: dict[str, Any]) -> Any:
        t = time.perf_counter()
        try:
            return original(event)
        finally:
            spent.append(time.perf_counter() - t)

    function.invoke = timed
    try:
        yield spent
    finally:
        function.invoke = original


def new_project(client: httpx.Client, name: str, start: str, end: str, border: BaseGeometry) -> int:
    """Create a project through the API; its id."""
    body = {"name": name, "start_date": start, "end_date": end, "border": json.dumps(mapping(border))}
    answer = client.post("/project/new", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["project_id"])


def bench_meta(stack: LocalStack, client: httpx.Client) -> dict[str, float]:
    """s2_load_meta over 20 tiles x 24 months of unannounced scenes, then again with all known."""
    tiles = meta_tiles()
    bucket = get_settings().archive_bucket
    border = MultiPolygon([square(*tile_centre(t), 0.05) for t in tiles])
    project_id = new_project(client, "meta bench", "2020-01-01", "2021-12-31", border)
    with archive_without_events(stack) as s3:
        for tile in tiles:
            template = archive.render_scene(bucket, tile, "2020-01-15", size=16).item
            for year, month in META_MONTHS:
                key, body = item_for(template, year, month)
                s3.put_object(Bucket=bucket, Key=key, Body=body)
    figures: dict[str, float] = {"prefixes": len(tiles) * len(META_MONTHS)}
    for run in ("first", "again"):
        stack.clear_requests()
        with handler_seconds(stack, "ScanMonthFunction") as spent:
            seconds, proc = run_task(client, project_id, "s2_load_meta")
        assert proc["result"] == "SUCCESS", proc
        lists, items = s3_counts(stack, bucket)
        figures |= {
            f"{run}_seconds": seconds,
            f"{run}_scan_handler_seconds": sum(spent),
            f"{run}_lists": lists,
            f"{run}_items_read": items,
            f"{run}_found": proc["summary"]["found"],
            f"{run}_new": proc["summary"]["new"],
            f"{run}_matched": proc["summary"]["matched"],
        }
    return figures


def bench_data(stack: LocalStack, client: httpx.Client) -> dict[str, float]:
    """s2_load_data over 1 scene, then over 10, of a border covering a fifth of the tile."""
    bucket = get_settings().archive_bucket
    border = square(*tile_centre(DATA_TILE), 0.25)
    project_id = new_project(client, "data bench", "2021-06-01", "2021-07-31", border)
    # The scenes arrive as they would on AWS: their events ingest them.
    s3 = stack.client("s3")
    for day in DATA_DATES:
        archive.write_scene(s3, bucket, DATA_TILE, day, size=DATA_SIZE)
    scene_ids = [
        m["scene_id"]
        for d in DATA_DATES
        for m in client.get("/meta/list", params={"project_id": project_id, "date": d}).json()["metas"]
    ]
    assert len(scene_ids) == len(DATA_DATES), scene_ids
    # The first run pays the stage functions' cold start (imports of rasterio and GDAL): apart.
    cold, _ = run_task(client, project_id, "s2_load_data", {"scene_ids": scene_ids[:1]})
    one, proc1 = run_task(client, project_id, "s2_load_data", {"scene_ids": scene_ids[:1]})
    ten, proc10 = run_task(client, project_id, "s2_load_data", {"scene_ids": scene_ids})
    assert proc1["result"] == proc10["result"] == "SUCCESS", (proc1, proc10)
    products = client.get("/rgb/list", params={"project_id": project_id}).json()["product_ids"]
    assert len(products) == len(scene_ids)
    return {
        "cold_seconds": cold,
        "one_seconds": one,
        "ten_seconds": ten,
        "per_scene_ten": ten / len(scene_ids),
        "ratio": ten / (len(scene_ids) * one),
        "bytes_per_product": proc10["summary"]["bytes_written"] / len(scene_ids),
        "pixels_per_product": proc10["summary"]["pixels"] / len(scene_ids),
    }


def main() -> dict[str, float]:
    """Run both task benchmarks and print their figures."""
    with running_stack(record_requests=True) as (stack, front):
        client = httpx.Client(base_url=front.url, auth=(LOGIN, PASSWORD), timeout=120)
        meta = bench_meta(stack, client)
        data = bench_data(stack, client)
    months = len(META_MONTHS)
    print(f"\ntasks: s2_load_meta over {META_TILES} tiles x {months} months (a scene each, no events)")
    print(row("", "first run", "again"))
    print(
        row(
            "seconds, POST /task/run to proc DONE",
            f"{meta['first_seconds']:.1f}",
            f"{meta['again_seconds']:.1f}",
        )
    )
    print(
        row(
            "ScanMonth handlers in flight, mean of 40 max",
            f"{meta['first_scan_handler_seconds'] / meta['first_seconds']:.1f}",
            f"{meta['again_scan_handler_seconds'] / meta['again_seconds']:.1f}",
        )
    )
    print(row("tile-month prefixes planned", int(meta["prefixes"]), int(meta["prefixes"])))
    print(row("S3 LIST requests (moto's log)", meta["first_lists"], meta["again_lists"]))
    print(row("STAC items read (S3 GETs)", meta["first_items_read"], meta["again_items_read"]))
    print(
        row(
            "scenes found / new / matched",
            "{first_found}/{first_new}/{first_matched}".format(**meta),
            "{again_found}/{again_new}/{again_matched}".format(**meta),
        )
    )
    print(f"tasks: s2_load_data, generated {DATA_SIZE} px TCIs, border a 0.5 degree square")
    print(row("seconds, 1 scene, cold functions", f"{data['cold_seconds']:.1f}"))
    print(row("seconds, 1 scene", f"{data['one_seconds']:.1f}"))
    print(row("seconds, 10 scenes", f"{data['ten_seconds']:.1f}"))
    print(row("seconds per scene, 10 scenes", f"{data['per_scene_ten']:.2f}"))
    print(row("ratio 10 scenes / (10 x 1 scene)", f"{data['ratio']:.2f}"))
    print(row("bytes per product", int(data["bytes_per_product"])))
    print(row("TCI pixels read per product", int(data["pixels_per_product"])))
    return meta | data
