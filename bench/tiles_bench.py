"""Tile benchmark: sputnik's /cog and /rgb tiles against stock titiler.application, side by side.

All three read the same COG from the local stack's S3 (moto), which logs every request it serves:
sputnik's /cog/tiles and titiler read the same s3:// URL of the archive bucket, sputnik's /rgb/tile
reads the byte-identical copy registered as the project's RGB product. sputnik runs as on AWS
(its Lambda handlers behind the local HTTP front, every request with Basic auth); titiler runs in
its own process under uvicorn, with nothing of sputnik's GDAL tuning. The client asks for one tile
at a time, so the S3 requests logged between sending a request and its answer are that tile's.
"""

import importlib.util
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy
from morecantile import Tile
from morecantile import tms as tms_registry
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds

from bench import tiles_lowzoom
from bench.common import LOGIN, PASSWORD, percentile, row, running_stack
from sputnik.models import ProductModel
from sputnik.settings import get_settings
from sputnik_tools.local.ports import free_port
from sputnik_tools.local.runtime import REGION
from sputnik_tools.local.stack import LocalStack

# A generated Sentinel-2 TCI at 4096 px over the 109.8 km tile (26.8 m pixels, 512-px blocks and
# five overviews): at 25 N z8-z11 read overviews and z12-z14 the full resolution (z14 is 8.7 m a
# pixel there), a pyramid used across these zooms as a real 10 m TCI's is.
# The real fixture TCI is 1098 px at 100 m: from z11 on every tile would read the same few
# full-resolution blocks, which flatters any cache.
MGRS_TILE, DAY, SIZE = "29RKH", "2020-02-19", 4096
TMS = tms_registry.get("WebMercatorQuad")
ZOOMS = range(8, 15)
SAMPLE = {11: 30, 12: 45, 13: 55, 14: 60}  # tiles drawn per zoom; z8-z10 take every tile
SEED = 2026
PASSES = 2
WARMUP = 3  # tiles outside the list, per target
TARGETS = ("sputnik /cog/tiles", "sputnik /rgb/tile", "titiler.application")
TITILER = TARGETS[2]
KEYS = dict(zip(TARGETS, ("cog", "rgb", "titiler"), strict=True))  # names in the returned figures
FAR_AWAY = TMS.tile(0.5, 0.5, 8)  # outside the COG: a request that only opens the dataset


@dataclass
class Target:
    """One tile server and how to ask it for a tile of one of its objects."""

    name: str
    client: httpx.Client
    path: Callable[[str, Tile], str]
    obj: str  # what the list is read from (an s3:// URL or an RGB product id)
    cold: list[str]  # fresh objects for the cold figures, never read before
    ms: list[list[float]] = field(default_factory=list)  # per pass
    s3: list[Counter[str]] = field(default_factory=list)  # per pass
    gets: list[list[int]] = field(default_factory=list)  # per pass: each tile's ranged GETs

    def get(
        self, stack: LocalStack, tile: Tile, obj: str | None = None
    ) -> tuple[float, httpx.Response, Counter[str]]:
        """Fetch one tile; return its latency (ms), the response and the S3 requests it caused."""
        stack.clear_requests()
        t = time.perf_counter()
        response = self.client.get(self.path(obj or self.obj, tile))
        ms = (time.perf_counter() - t) * 1000
        return ms, response, classify(stack.requests)


def classify(requests: list[tuple[str, str, str | None]]) -> Counter[str]:
    """Count logged requests: GET (ranged or not), HEAD, LIST of S3 objects; anything else (DynamoDB).

    `mergeable` counts the ranged GETs that begin where another GET of the same request ended: one
    request could have fetched both. Without any, every GET is its own run of bytes not cached yet,
    which is the floor: one GET per run of adjacent internal blocks a tile needs and lacks.
    """
    buckets = {get_settings().archive_bucket, get_settings().products_bucket}
    counts: Counter[str] = Counter()
    ranges: list[tuple[str, int, int]] = []
    for method, path, rng in requests:
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket not in buckets:
            counts["DynamoDB"] += 1  # API calls are POST / to the same endpoint
        elif not key:
            counts["LIST" if method == "GET" else f"bucket {method}"] += 1
        elif method == "GET" and rng:
            counts["GET"] += 1
            first, _, last = rng.removeprefix("bytes=").partition("-")
            if first.isdigit() and last.isdigit():
                ranges.append((path, int(first), int(last)))
        elif method == "GET":
            counts["full GET"] += 1
        else:
            counts[method] += 1
    ends = {(path, last + 1) for path, _, last in ranges}
    counts["mergeable"] = sum((path, first) in ends for path, first, _ in ranges)
    return counts


def tile_list(bounds: tuple[float, float, float, float]) -> tuple[list[Tile], list[Tile]]:
    """Tiles z8-z14 over the COG (from z10 on wholly inside it), and a few others to warm up on."""
    rng = random.Random(SEED)
    w, s, e, n = bounds
    chosen: list[Tile] = []
    spare: list[Tile] = []
    for z in ZOOMS:
        tiles = list(TMS.tiles(w, s, e, n, [z]))
        if z >= 10:
            tiles = [t for t in tiles if _within(TMS.bounds(t), bounds)]
        count = SAMPLE.get(z, len(tiles))
        picked = rng.sample(tiles, min(count, len(tiles)))
        chosen += picked
        spare += [t for t in tiles if t not in picked]
    return chosen, rng.sample([t for t in spare if t.z >= 12], WARMUP * len(TARGETS))


def _within(inner: Any, outer: tuple[float, float, float, float]) -> bool:
    """Whether a tile's bounds lie inside a lon/lat box."""
    return (
        inner.left >= outer[0]
        and inner.bottom >= outer[1]
        and inner.right <= outer[2]
        and inner.top <= outer[3]
    )


def describe_cog(data: bytes) -> tuple[str, tuple[float, float, float, float]]:
    """A one-line description of a COG and its lon/lat bounds."""
    with MemoryFile(data) as memfile, memfile.open() as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        text = (
            f"{src.width} px, {src.res[0]:.1f} m, {src.block_shapes[0][0]}-px blocks, "
            f"{len(src.overviews(1))} overviews, {src.profile.get('compress', 'no compression')}, "
            f"{len(data) / 1e6:.1f} MB"
        )
    return text, bounds


def pixels(content: bytes) -> numpy.ndarray:
    """Decode a PNG into (bands, rows, cols)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memfile, memfile.open() as dataset:
            return dataset.read()


def same_image(a: bytes, b: bytes) -> bool:
    """Whether two PNGs hold the same pixels (alpha included)."""
    if a == b:
        return True
    pa, pb = pixels(a), pixels(b)
    return pa.shape == pb.shape and bool((pa == pb).all())


@contextmanager
def titiler_server(aws_endpoint: str) -> Iterator[str]:
    """Stock titiler.application under uvicorn in its own process; only what it needs to reach S3."""
    port = free_port()
    env = {
        "AWS_S3_ENDPOINT": aws_endpoint.removeprefix("http://"),
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    command = [sys.executable, "-m", "uvicorn", "titiler.application.main:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    with tempfile.TemporaryDirectory() as cwd, open(Path(cwd) / "stderr", "w+") as err:
        # Its own empty working directory: titiler reads a `.env` file from it if there is one.
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise RuntimeError(f"titiler did not start:\n{err.read()[-2000:]}")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def setup_data(stack: LocalStack, client: httpx.Client, cogs: int) -> tuple[int, list[str], list[str], bytes]:
    """Put the COG in the archive `cogs` times and register `cogs` copies as RGB products of a new project.

    Returns the project id, the archive s3:// URLs, the product ids and the COG's bytes.
    """
    from sputnik_tools.archive import render_scene

    settings = get_settings()
    archive, products = settings.archive_bucket, settings.products_bucket
    scene = render_scene(archive, MGRS_TILE, DAY, size=SIZE)
    tci_key = next(key for key in scene.files if key.endswith("/TCI.tif"))
    tci = scene.files[tci_key]
    border = '{"type":"Polygon","coordinates":[[[-11.6,24.6],[-11.2,24.6],[-11.2,25.0],[-11.6,24.6]]]}'
    created = client.post("/project/new", json={"name": "tiles bench", "border": border})
    assert created.status_code == 200, created.text
    project_id = int(created.json()["project_id"])
    s3 = stack.client("s3")
    urls, product_ids = [], []
    for i in range(cogs):
        # The first is the scene's own key; the others stand for objects nobody has read yet.
        key = tci_key if i == 0 else f"bench/cold{i}/{scene.scene_id}/TCI.tif"
        s3.put_object(Bucket=archive, Key=key, Body=tci)
        urls.append(f"s3://{archive}/{key}")
        product_id = f"{scene.scene_id}-rgb" if i == 0 else f"{scene.scene_id}-cold{i}-rgb"
        product_key = f"projects/{project_id}/rgb/{product_id}.tif"
        s3.copy_object(Bucket=products, Key=product_key, CopySource={"Bucket": archive, "Key": key})
        ProductModel(
            project_id, product_id, kind="rgb", scene_id=scene.scene_id, date=DAY, key=product_key
        ).save()
        product_ids.append(product_id)
    return project_id, urls, product_ids, tci


def per_tile(counts: list[Counter[str]], tiles: int, key: str) -> float:
    """Requests of one kind per tile over some passes."""
    return sum(c[key] for c in counts) / (tiles * len(counts)) if counts else 0.0


def main() -> dict[str, float]:
    """Run the low-zoom comparison, the date mosaics, then the tile benchmark, and print their figures."""
    from bench import tiles_mosaic  # here: it reuses this module's request counting

    low_zoom = tiles_lowzoom.main() | tiles_mosaic.main()
    if importlib.util.find_spec("titiler.application") is None or importlib.util.find_spec("uvicorn") is None:
        print("\ntiles: titiler.application and uvicorn are not installed (`make bench` installs them)")
        return low_zoom
    started = time.perf_counter()
    with running_stack(record_requests=True) as (stack, front):
        sputnik = httpx.Client(base_url=front.url, auth=(LOGIN, PASSWORD), timeout=60)
        project_id, urls, product_ids, tci = setup_data(stack, sputnik, cogs=5)
        cog_text, bounds = describe_cog(tci)
        tiles, warmup = tile_list(bounds)
        with titiler_server(stack.endpoint) as titiler_url:
            titiler = httpx.Client(base_url=titiler_url, timeout=60)

            def cog_path(url: str, t: Tile) -> str:
                return f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?url={url}"

            def rgb_path(product_id: str, t: Tile) -> str:
                return f"/rgb/tile/{project_id}/{product_id}/{t.z}/{t.x}/{t.y}"

            # Cold objects: [open only, open + first tile], distinct per target.
            targets = [
                Target(TARGETS[0], sputnik, cog_path, urls[0], urls[1:3]),
                Target(TARGETS[1], sputnik, rgb_path, product_ids[0], product_ids[1:3]),
                Target(TARGETS[2], titiler, cog_path, urls[0], urls[3:5]),
            ]
            for i, target in enumerate(targets):
                for tile in warmup[i * WARMUP : (i + 1) * WARMUP]:
                    _, response, _ = target.get(stack, tile)
                    assert response.status_code == 200, (target.name, response.text)

            mismatches: Counter[str] = Counter()
            for p in range(PASSES):
                for target in targets:
                    target.ms.append([])
                    target.s3.append(Counter())
                    target.gets.append([])
                for i, tile in enumerate(tiles):
                    # Rotate who goes first, so no target always meets a just-warmed machine.
                    order = targets[i % 3 :] + targets[: i % 3]
                    bodies: dict[str, bytes] = {}
                    for target in order:
                        ms, response, counts = target.get(stack, tile)
                        assert response.status_code == 200, (target.name, tile, response.text)
                        target.ms[p].append(ms)
                        target.s3[p].update(counts)
                        target.gets[p].append(counts["GET"])
                        bodies[target.name] = response.content
                    for name in TARGETS[:2]:
                        if not same_image(bodies[name], bodies[TITILER]):
                            mismatches[name] += 1

            cold: dict[str, tuple[Counter[str], Counter[str]]] = {}
            for target in targets:
                _, opened, open_counts = target.get(stack, FAR_AWAY, target.cold[0])
                assert opened.status_code in (200, 404), (target.name, opened.text)
                _, first, first_counts = target.get(stack, tiles[len(tiles) // 2], target.cold[1])
                assert first.status_code == 200, (target.name, first.text)
                cold[target.name] = (open_counts, first_counts)
    elapsed = time.perf_counter() - started

    by_name = {t.name: t for t in targets}
    ref_all = [ms for run in by_name[TITILER].ms for ms in run]
    ref_first = by_name[TITILER].ms[0]
    figures: dict[str, float] = {"tiles": len(tiles), "passes": PASSES, "seconds": elapsed, **low_zoom}
    zooms = Counter(t.z for t in tiles)
    print(
        f"\ntiles: {len(tiles)} WebMercatorQuad tiles ("
        + ", ".join(f"z{z} {n}" for z, n in sorted(zooms.items()))
        + f"), {PASSES} passes, interleaved; 256 px PNG with alpha"
    )
    print(f"  COG: generated {MGRS_TILE} TCI.tif, {cog_text}, in the local stack's S3 (moto)")
    print(f"  titiler.application {version('titiler.application')} (uvicorn, stock GDAL settings)")
    print(row("latency, all passes", "median ms", "p95 ms", "median ratio", "p95 ratio"))
    for target in targets:
        values = [ms for run in target.ms for ms in run]
        med, p95 = statistics.median(values), percentile(values, 95)
        med_ratio = med / statistics.median(ref_all)
        p95_ratio = p95 / percentile(ref_all, 95)
        print(row(f"  {target.name}", f"{med:.1f}", f"{p95:.1f}", f"{med_ratio:.2f}", f"{p95_ratio:.2f}"))
        key = KEYS[target.name]
        figures |= {f"{key}_median_ms": med, f"{key}_p95_ms": p95}
        figures |= {f"{key}_median_ratio": med_ratio, f"{key}_p95_ratio": p95_ratio}
    print(row("latency, first pass only", "median ms", "p95 ms", "median ratio", "p95 ratio"))
    for target in targets:
        values = target.ms[0]
        med, p95 = statistics.median(values), percentile(values, 95)
        med_ratio = med / statistics.median(ref_first)
        p95_ratio = p95 / percentile(ref_first, 95)
        print(row(f"  {target.name}", f"{med:.1f}", f"{p95:.1f}", f"{med_ratio:.2f}", f"{p95_ratio:.2f}"))

    # Warm: the dataset was opened before (warm-up tiles); a tile whose blocks an earlier tile
    # fetched may need no GET at all, so "GET/reading" is the figure per tile that did read.
    kinds = ("GET", "HEAD", "LIST")
    for label, passes in (("first pass", slice(0, 1)), ("later passes", slice(1, None))):
        print(row(f"S3 requests per tile, warm: {label}", *kinds, "tiles w/ GET", "GETs each", "mergeable"))
        for target in targets:
            key = KEYS[target.name]
            values = [per_tile(target.s3[passes], len(tiles), k) for k in kinds]
            reading = [n for run in target.gets[passes] for n in run if n]
            per_reading = sum(reading) / len(reading) if reading else 0.0
            mergeable = sum(c["mergeable"] for c in target.s3[passes])
            cells = [f"{v:.2f}" for v in values]
            cells += [f"{len(reading)} of {len(tiles)}", f"{per_reading:.2f}", str(mergeable)]
            print(row(f"  {target.name}", *cells))
            full = sum(c["full GET"] for c in target.s3[passes])
            if full:
                print(row(f"  {target.name}: whole-object GETs", full))
            if label == "first pass":
                figures |= {f"{key}_warm_{k}_per_tile": v for k, v in zip(kinds, values, strict=True)}
                figures[f"{key}_warm_get_per_reading_tile"] = per_reading
                figures[f"{key}_warm_mergeable_gets"] = mergeable
                figures[f"{key}_warm_full_gets"] = full
    probe = tiles[len(tiles) // 2]
    print(f"  cold: a fresh object; open only = tile outside it, open + tile = {probe.z}/{probe.x}/{probe.y}")
    print(row("S3 requests, cold: open only / open + tile", "GET", "HEAD", "LIST", "total"))
    for target in targets:
        key = KEYS[target.name]
        open_counts, tile_counts = cold[target.name]
        cells = [f"{open_counts[k]} / {tile_counts[k]}" for k in ("GET", "HEAD", "LIST")]
        s3_total = [sum(v for k, v in c.items() if k != "DynamoDB") for c in (open_counts, tile_counts)]
        print(row(f"  {target.name}", *cells, f"{s3_total[0]} / {s3_total[1]}"))
        figures |= {f"{key}_cold_open_requests": s3_total[0], f"{key}_cold_tile_requests": s3_total[1]}
    print(
        row(
            "DynamoDB calls per tile: /cog, /rgb, titiler",
            *(f"{per_tile(t.s3[:1], len(tiles), 'DynamoDB'):.2f}" for t in targets),
        )
    )
    for name in TARGETS[:2]:
        print(row(f"pixel mismatches, {name} vs titiler", f"{mismatches[name]} of {len(tiles) * PASSES}"))
        figures[f"{KEYS[name]}_mismatches"] = mismatches[name]
    print(row("seconds for this benchmark", f"{elapsed:.0f}"))
    return figures


if __name__ == "__main__":
    main()
