"""Ingest benchmark: scenes per second through the local stack, DynamoDB calls per scene,
and /meta/list latency with a small versus a 10,000-scene catalogue."""

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.common import FIXTURES, LOGIN, PASSWORD, dynamodb_calls, percentile, row, running_stack
from sputnik import stac
from sputnik.models import MetaModel, SceneModel
from sputnik.settings import get_settings

ITEM = FIXTURES / "stac-items" / "v1" / "S2A_33TWN_20210629_0_L2A.json"
BORDER = {
    "type": "Polygon",
    "coordinates": [[[15.2, 47.3], [15.5, 47.3], [15.5, 47.5], [15.2, 47.5], [15.2, 47.3]]],
}


def items(count: int, offset: int = 0) -> list[dict[str, Any]]:
    """Real-item clones with distinct ids and dates (ingest reads only the item)."""
    base = json.loads(ITEM.read_text())
    out = []
    for i in range(offset, offset + count):
        item = json.loads(json.dumps(base))
        day = f"2021-{1 + (i // 28) % 12:02d}-{1 + i % 28:02d}"
        item["id"] = f"S2A_33TWN_{day.replace('-', '')}_{i // 336}_L2A"
        item["properties"]["datetime"] = f"{day}T10:00:00Z"
        out.append(item)
    return out


def bulk_scenes(count: int) -> None:
    """Add scene records straight to the catalogue (other tiles and dates), to grow it fast."""
    with SceneModel.batch_write() as scenes:
        for i in range(count):
            tile, day = f"3{i % 10}TXM", f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}"
            scene_id = f"S2B_{tile}_{day.replace('-', '')}_{i}_L2A"
            scenes.save(
                SceneModel(
                    scene_id,
                    tile=tile,
                    date=day,
                    date_scene=f"{day}#{scene_id}",
                    datetime=day,
                    footprint="POLYGON ((0 0, 1 0, 1 1, 0 0))",
                    bbox=[0, 0, 1, 1],
                    filename=scene_id,
                    item_key=scene_id,
                    sequencer="s0",
                )
            )


def bulk_other_meta(count: int) -> None:
    """Add meta records of other projects, as a busy deployment has."""
    with MetaModel.batch_write() as metas:
        for i in range(count):
            day = f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}"
            metas.save(
                MetaModel(
                    10_000_000 + i % 97,
                    f"{day}#S2B_{i}",
                    scene_id=f"S2B_{i}",
                    date=day,
                    border="00",
                    filename="x",
                    xg0=0,
                    xg1=1,
                    yg0=0,
                    yg1=1,
                    border_gj="{}",
                    sequencer="s0",
                )
            )


def latencies(client: httpx.Client, project_id: int, requests: int) -> tuple[list[float], list[float]]:
    """Latencies (ms) of /meta/list and, interleaved, of /project/info as a control that reads no scenes."""
    meta: list[float] = []
    control: list[float] = []
    for i in range(requests + 10):
        queries: tuple[tuple[str, dict[str, Any], list[float]], ...] = (
            ("/meta/list", {"project_id": project_id, "date": "2021-01-01"}, meta),
            ("/project/info", {"project_id": project_id}, control),
        )
        for path, params, out in queries:
            t = time.perf_counter()
            r = client.get(path, params=params)
            if i >= 10:  # the first ten warm up
                out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    return meta, control


def own_work_ms(batch: list[tuple[str, bytes]], projects: int) -> float:
    """Milliseconds per scene of sputnik's own ingest work (parse, match, build records), no AWS calls."""
    from sputnik import catalogue, geo
    from sputnik.models import ProjectTileModel

    border = geo.to_wkt(geo.parse_border(BORDER))
    rows = [
        ProjectTileModel("33TWN", i, login="x", border=border, start_date="2021-01-01")
        for i in range(projects)
    ]
    t = time.perf_counter()
    for _, body in batch:
        scene = stac.parse_item(body)
        for row_ in rows:
            if catalogue.matches(row_, scene):
                catalogue.meta_record(int(row_.project_id), scene, "s0", get_settings().archive_bucket)
    return (time.perf_counter() - t) * 1000 / len(batch)


def put_items(stack: Any, batch: list[tuple[str, bytes]], threads: int = 1) -> float:
    """Put items into the archive; each put fires the notification that runs IngestFunction."""
    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kb: s3.put_object(Bucket=bucket, Key=kb[0], Body=kb[1]), batch))
    return time.perf_counter() - t


def main(scenes: int = 300, projects: int = 5, requests: int = 200) -> dict[str, float]:
    """Run the ingest benchmark and print its figures."""
    with running_stack() as (stack, front):
        client = httpx.Client(base_url=front.url, auth=(LOGIN, PASSWORD), timeout=60)
        body = {"start_date": "2021-01-01", "end_date": "2021-12-31", "border": json.dumps(BORDER)}
        ids = [
            client.post("/project/new", json={"name": f"b{i}", **body}).json()["project_id"]
            for i in range(projects)
        ]
        batch = [(stac.parse_item(i).key, json.dumps(i).encode()) for i in items(scenes)]
        # One upload at a time (S3 events one after another), then four at once (as S3 delivers
        # events to concurrent Lambda invocations); each half of the scenes is new to the catalogue.
        with dynamodb_calls() as calls:
            serial = put_items(stack, batch[:100])
            concurrent = put_items(stack, batch[100:], threads=4)
        per_scene = {op: n / scenes for op, n in calls.items()}
        matched = sum(1 for _ in MetaModel.query(ids[0]))
        assert matched == scenes, f"project {ids[0]} got {matched} of {scenes} scenes"
        # The catalogue now holds 300 scenes: measure, grow it to 10,000, measure again.
        small, small_control = latencies(client, ids[0], requests)
        bulk_scenes(10_000 - scenes)
        large, large_control = latencies(client, ids[0], requests)
        bulk_other_meta(10_000)
        busy, busy_control = latencies(client, ids[0], requests)

    own = own_work_ms(batch, projects)
    med = statistics.median
    figures = {
        "own_work_ms_per_scene": own,
        "scenes_per_s_serial": 100 / serial,
        "scenes_per_s_concurrent": (scenes - 100) / concurrent,
        "dynamodb_calls_per_scene": sum(per_scene.values()),
        "meta_list_ms_300": med(small),
        "meta_list_ms_10000": med(large),
        "meta_list_ratio": med(large) / med(small),
        "meta_list_p95_ratio": percentile(large, 95) / percentile(small, 95),
        "control_ratio": med(large_control) / med(small_control),
        "meta_list_busy_ratio": med(busy) / med(small),
        "control_busy_ratio": med(busy_control) / med(small_control),
    }
    print(f"\ningest: {scenes} STAC items put to the archive bucket, each matching {projects} projects")
    print(row("scenes ingested per second, 1 upload at a time", f"{figures['scenes_per_s_serial']:.1f}"))
    print(row("scenes ingested per second, 4 at once", f"{figures['scenes_per_s_concurrent']:.1f}"))
    print(row("sputnik's own work per scene, ms (no AWS calls)", f"{own:.2f}"))
    print(row("DynamoDB calls per scene", f"{figures['dynamodb_calls_per_scene']:.2f}"))
    for op, n in sorted(per_scene.items()):
        print(row(f"  {op} per scene", f"{n:.2f}"))
    print(f"/meta/list (1 scene) and /project/info (control: reads no scenes), {requests} requests each")
    print(row("", "meta ms", "control ms"))
    print(row("median, catalogue of 300 scenes", f"{med(small):.2f}", f"{med(small_control):.2f}"))
    print(row("median, catalogue of 10,000 scenes", f"{med(large):.2f}", f"{med(large_control):.2f}"))
    print(
        row(
            "ratio 10,000 / 300 (median)",
            f"{figures['meta_list_ratio']:.2f}",
            f"{figures['control_ratio']:.2f}",
        )
    )
    print(row("ratio 10,000 / 300 (p95)", f"{figures['meta_list_p95_ratio']:.2f}"))
    print(
        row(
            "ratio, + 10,000 other projects' meta rows",
            f"{figures['meta_list_busy_ratio']:.2f}",
            f"{figures['control_busy_ratio']:.2f}",
        )
    )
    return figures


if __name__ == "__main__":
    main()
