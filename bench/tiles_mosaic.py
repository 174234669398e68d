"""Date mosaic tiles against single-scene /cog tiles: latency and S3 requests per tile, side by side.

Two generated scenes of one date overlap (MGRS 29RKH and 29RKJ share a strip about 11 km wide); a project's
border lies over the strip. Each tile over it is asked of `/mosaic/tile` (both scenes merged, clipped
to the border), of `/mosaic/tile?mask=clouds` (each scene's SCL read too) and of `/cog/tiles` over
one of the two TCIs, one request at a time through the local stack's HTTP front, interleaved, so
the S3 requests logged between a request and its answer are that tile's.
"""

import statistics
import time
from collections import Counter
from collections.abc import Callable

import httpx
import shapely
from morecantile import Tile
from morecantile import tms as tms_registry
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from bench.common import LOGIN, PASSWORD, percentile, row, running_stack
from bench.tiles_bench import classify, pixels
from sputnik.settings import get_settings
from sputnik_tools.local.stack import LocalStack

DAY = "2020-02-19"
MGRS_TILES = ("29RKH", "29RKJ")
SIZE = 1024  # 107 m pixels with overviews; generating larger scenes takes minutes
TMS = tms_registry.get("WebMercatorQuad")
ZOOMS = (10, 11, 12, 13)
PER_ZOOM = 12
PASSES = 2
TARGETS = ("/cog/tiles (first scene)", "/mosaic/tile (two scenes)", "/mosaic/tile?mask=clouds")
KEYS = dict(zip(TARGETS, ("cog", "mosaic", "mosaic_clouds"), strict=True))


def setup(stack: LocalStack, client: httpx.Client) -> tuple[int, str, BaseGeometry, BaseGeometry]:
    """A project over the scenes' overlap, then the scenes (ingested); its id, first TCI, border, strip."""
    from sputnik_tools.archive import render_scene

    archive = get_settings().archive_bucket
    scenes = [render_scene(archive, tile, DAY, size=SIZE) for tile in MGRS_TILES]
    footprints = [shape(s.item["geometry"]) for s in scenes]
    overlap = footprints[0].intersection(footprints[1])
    # Across the strip and 0.1 degrees into each scene beyond it: tiles at the strip's edges need both.
    _, south, _, north = overlap.bounds
    middle = overlap.centroid.x
    area = shapely.box(middle - 0.15, south - 0.1, middle + 0.15, north + 0.1)
    border = area.intersection(shapely.union_all(footprints)).simplify(0.001)
    created = client.post("/project/new", json={"name": "mosaic bench", "border": shapely.to_geojson(border)})
    assert created.status_code == 200, created.text
    project_id = int(created.json()["project_id"])
    s3 = stack.client("s3")
    for scene in scenes:
        for key, body in scene.files.items():
            if key != scene.item_key:
                s3.put_object(Bucket=archive, Key=key, Body=body)
        s3.put_object(Bucket=archive, Key=scene.item_key, Body=scene.files[scene.item_key])
    deadline = time.monotonic() + 120
    while True:  # the archive's notifications ingest the scenes into the project
        metas = client.get("/meta/list", params={"project_id": project_id, "date": DAY}).json()["metas"]
        if len(metas) == 2:
            break
        assert time.monotonic() < deadline, metas
        time.sleep(0.5)
    # The /cog target is the scene the mosaic reads first: the least cloudy.
    first = min(metas, key=lambda m: (m["cloud_cover"] is None, m["cloud_cover"] or 0.0, m["scene_id"]))
    return project_id, first["tci_url"], border, overlap.intersection(border)


def tiles_over(strip: BaseGeometry) -> list[Tile]:
    """Up to PER_ZOOM tiles per zoom that meet the strip where both scenes lie, spread over it."""
    chosen = []
    w, s, e, n = strip.bounds
    for z in ZOOMS:
        inside = [t for t in TMS.tiles(w, s, e, n, [z]) if strip.intersects(shapely.box(*TMS.bounds(t)))]
        step = max(1, len(inside) // PER_ZOOM)
        chosen += inside[::step][:PER_ZOOM]
    return chosen


def from_other_scene(mosaic: bytes, first: bytes) -> bool:
    """Whether a mosaic tile shows pixels where the scene it reads first has none (the other's)."""
    return bool(((pixels(mosaic)[3] == 255) & (pixels(first)[3] == 0)).any())


def main() -> dict[str, float]:
    """Run the mosaic comparison and print its figures."""
    started = time.perf_counter()
    with running_stack(record_requests=True) as (stack, front):
        client = httpx.Client(base_url=front.url, auth=(LOGIN, PASSWORD), timeout=60)
        project_id, tci, _, strip = setup(stack, client)
        tiles = tiles_over(strip)
        paths: dict[str, Callable[[Tile], str]] = {
            TARGETS[0]: lambda t: f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?url={tci}",
            TARGETS[1]: lambda t: f"/mosaic/tile/{project_id}/{DAY}/{t.z}/{t.x}/{t.y}",
            TARGETS[2]: lambda t: f"/mosaic/tile/{project_id}/{DAY}/{t.z}/{t.x}/{t.y}?mask=clouds",
        }
        # Cold: the first tile of each opens its datasets (the mosaic's TCIs, then their SCLs); after
        # that every target is warm, as in a warm function.
        # /cog's cold figure is taken on a fresh copy of the first TCI, since the mosaic opens the TCI itself.
        copy = tci.replace("/TCI.tif", "/copy/TCI.tif")
        bucket, _, key = tci.removeprefix("s3://").partition("/")
        stack.client("s3").copy_object(
            Bucket=bucket,
            Key=key.replace("/TCI.tif", "/copy/TCI.tif"),
            CopySource={"Bucket": bucket, "Key": key},
        )
        cold: dict[str, Counter[str]] = {}
        for name, path in (
            (TARGETS[0], lambda t: paths[TARGETS[0]](t).replace(tci, copy)),
            *((name, paths[name]) for name in TARGETS),
        ):
            stack.clear_requests()
            assert client.get(path(tiles[0])).status_code == 200
            cold.setdefault(name, classify(stack.requests))
        ms: dict[str, list[float]] = {name: [] for name in TARGETS}
        s3: dict[str, Counter[str]] = {name: Counter() for name in TARGETS}
        mixed = 0  # mosaic tiles with pixels of the second scene
        for p in range(PASSES):
            for i, tile in enumerate(tiles):
                order = TARGETS[i % 3 :] + TARGETS[: i % 3]
                bodies = {}
                for name in order:
                    stack.clear_requests()
                    t = time.perf_counter()
                    response = client.get(paths[name](tile))
                    ms[name].append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, (name, tile, response.text)
                    s3[name].update(classify(stack.requests))
                    bodies[name] = response.content
                if p == 0:
                    mixed += from_other_scene(bodies[TARGETS[1]], bodies[TARGETS[0]])
    elapsed = time.perf_counter() - started
    count = len(tiles) * PASSES
    ref = statistics.median(ms[TARGETS[0]])
    ref95 = percentile(ms[TARGETS[0]], 95)
    figures: dict[str, float] = {"mosaic_tiles": len(tiles), "mosaic_seconds": elapsed}
    zooms = Counter(t.z for t in tiles)
    print(
        f"\nmosaic: {len(tiles)} tiles ("
        + ", ".join(f"z{z} {n}" for z, n in sorted(zooms.items()))
        + f") over two overlapping generated scenes ({', '.join(MGRS_TILES)}, {SIZE} px TCI), "
        f"{PASSES} passes, interleaved, warm"
    )
    print(f"  {mixed} of {len(tiles)} mosaic tiles show pixels of both scenes")
    figures["mosaic_tiles_of_both_scenes"] = mixed
    print(row("latency", "median ms", "p95 ms", "median ratio", "p95 ratio"))
    for name in TARGETS:
        med, p95 = statistics.median(ms[name]), percentile(ms[name], 95)
        print(row(f"  {name}", f"{med:.1f}", f"{p95:.1f}", f"{med / ref:.2f}", f"{p95 / ref95:.2f}"))
        key = KEYS[name]
        figures |= {f"{key}_median_ms": med, f"{key}_p95_ms": p95, f"{key}_median_ratio": med / ref}
    print(row("S3 and DynamoDB requests per tile, warm", "GET", "HEAD", "LIST", "DynamoDB"))
    for name in TARGETS:
        cells = [s3[name][k] / count for k in ("GET", "HEAD", "LIST", "DynamoDB")]
        print(row(f"  {name}", *(f"{c:.2f}" for c in cells)))
        figures[f"{KEYS[name]}_get_per_tile"] = cells[0]
    first = tiles[0]
    print(row(f"S3 GETs, cold: the first tile, {first.z}/{first.x}/{first.y}", "GET"))
    print("    (mask=clouds after the plain mosaic: its TCIs are open, it opens the SCLs)")
    for name in TARGETS:
        print(row(f"  {name}", cold[name]["GET"]))
        figures[f"{KEYS[name]}_cold_gets"] = cold[name]["GET"]
    print(row("seconds for this benchmark", f"{elapsed:.0f}"))
    return figures


if __name__ == "__main__":
    main()
