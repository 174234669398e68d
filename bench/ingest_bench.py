"""Ingest benchmark: scenes per second through the local stack, DynamoDB calls per scene,
and /meta/list latency with 100 versus 10,000 scenes in the catalogue."""

import json
import statistics
import time
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


def meta_list_latency(client: httpx.Client, project_id: int, day: str, requests: int) -> list[float]:
    """Latencies (ms) of /meta/list through the HTTP front, after a warm-up."""
    for _ in range(10):
        client.get("/meta/list", params={"project_id": project_id, "date": day})
    out = []
    for _ in range(requests):
        t = time.perf_counter()
        r = client.get("/meta/list", params={"project_id": project_id, "date": day})
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200 and r.json()["metas"], r.text
    return out


def put_items(stack: Any, batch: list[tuple[str, bytes]]) -> float:
    """Put items into the archive; each put fires the notification that runs IngestFunction."""
    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket
    t = time.perf_counter()
    for key, body in batch:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
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
        with dynamodb_calls() as calls:
            elapsed = put_items(stack, batch[:100])
            small = meta_list_latency(client, ids[0], "2021-01-01", requests)
            elapsed += put_items(stack, batch[100:])
        per_scene = {op: n / scenes for op, n in calls.items()}
        # /meta/list's own calls ran inside the block too: take them out of the per-scene figures.
        per_scene["GetItem"] -= (requests + 10) / scenes
        per_scene["Query"] -= (requests + 10) / scenes
        matched = sum(1 for _ in MetaModel.query(ids[0]))
        assert matched == scenes, f"project {ids[0]} got {matched} of {scenes} scenes"
        bulk_scenes(10_000 - scenes)
        large = meta_list_latency(client, ids[0], "2021-01-01", requests)
        bulk_other_meta(10_000)
        busy = meta_list_latency(client, ids[0], "2021-01-01", requests)

    med = statistics.median
    figures = {
        "scenes_per_s": scenes / elapsed,
        "dynamodb_calls_per_scene": sum(per_scene.values()),
        "meta_list_ms_100": med(small),
        "meta_list_ms_10000": med(large),
        "meta_list_ratio": med(large) / med(small),
        "meta_list_p95_ratio": percentile(large, 95) / percentile(small, 95),
        "meta_list_busy_ratio": med(busy) / med(small),
    }
    print(f"\ningest: {scenes} STAC items put to the archive bucket, each matching {projects} projects")
    print(row("scenes ingested per second", f"{figures['scenes_per_s']:.1f}"))
    print(row("DynamoDB calls per scene", f"{figures['dynamodb_calls_per_scene']:.2f}"))
    for op, n in sorted(per_scene.items()):
        print(row(f"  {op} per scene", f"{n:.2f}"))
    print(f"/meta/list through the HTTP front, {requests} requests each, 1 scene returned")
    print(row("median ms, catalogue of 100 scenes", f"{med(small):.2f}"))
    print(row("median ms, catalogue of 10,000 scenes", f"{med(large):.2f}"))
    print(row("ratio 10,000 / 100 (median)", f"{figures['meta_list_ratio']:.2f}"))
    print(row("ratio 10,000 / 100 (p95)", f"{figures['meta_list_p95_ratio']:.2f}"))
    print(row("ratio with 10,000 more meta rows (median)", f"{figures['meta_list_busy_ratio']:.2f}"))
    return figures


if __name__ == "__main__":
    main()
