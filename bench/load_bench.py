"""Load benchmark: concurrent loopback clients mixing tiles, meta and project calls through the local front.

A fixed count of requests at 1, 8 and 32 concurrent clients (each its own keep-alive connection),
then the 32-client load three more times: throughput, latency percentiles, errors (anything but a 2xx), and
the peak resident memory of the process that runs the stack (moto, the functions, the front).
"""

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import morecantile

from bench.common import FIXTURES, LOGIN, PASSWORD, percentile, row, running_stack
from sputnik_tools.local.stack import LocalStack

SCENE = FIXTURES / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
BORDER = {"type": "Polygon", "coordinates": [[[-11.6, 24.6], [-11.2, 24.6], [-11.2, 25], [-11.6, 24.6]]]}
REQUESTS = 480
LEVELS = [1, 8, 32, 32, 32, 32]


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def setup(stack: LocalStack, client: httpx.Client) -> list[str]:
    """The real scene in the archive, a project over it with its RGB product; the request mix."""
    from sputnik.settings import get_settings
    from sputnik_tools.archive import upload_fixture_scene
    from sputnik_tools.local.demo import load_rgb_product

    bucket = get_settings().archive_bucket
    item_key = upload_fixture_scene(stack.client("s3"), bucket, SCENE)
    url = f"s3://{bucket}/{item_key.rsplit('/', 1)[0]}/TCI.tif"
    created = client.post(
        "/project/new",
        json={
            "name": "load",
            "start_date": "2020-02-01",
            "end_date": "2020-02-29",
            "border": json.dumps(BORDER),
        },
    )
    project = int(created.json()["project_id"])
    product = load_rgb_product(stack, project, SCENE.name)
    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [t for z in (10, 11) for t in tms.tiles(-11.6, 24.6, -11.2, 25.0, [z])]
    paths = []
    for i, t in enumerate(tiles):
        # Per tile: a COG tile, an RGB product tile, and four calls that read DynamoDB only.
        paths += [
            f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png?url={url}",
            f"/rgb/tile/{project}/{product}/{t.z}/{t.x}/{t.y}",
            f"/meta/dates?project_id={project}",
            f"/meta/list?project_id={project}&date=2020-02-19",
            "/project/list" if i % 2 else f"/project/info?project_id={project}",
            f"/rgb/list?project_id={project}",
        ]
    return paths


@dataclass
class Run:
    """Figures of one run."""

    rps: float
    p50: float
    p95: float
    p99: float
    errors: Counter[str]
    peak_mb: float


def run_level(base_url: str, paths: list[str], clients: int) -> Run:
    """REQUESTS requests of the mix over `clients` concurrent connections; figures of the run."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    peak = [rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_mb())

    def client(worker: int) -> None:
        with httpx.Client(base_url=base_url, auth=(LOGIN, PASSWORD), timeout=120) as http:
            for n in range(worker, REQUESTS, clients):
                started = time.perf_counter()
                try:
                    status = str(http.get(paths[n % len(paths)]).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed * 1000)
                    if status != "200":
                        errors[status] += 1

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    return Run(
        REQUESTS / wall,
        percentile(latencies, 50),
        percentile(latencies, 95),
        percentile(latencies, 99),
        errors,
        max(peak[0], rss_mb()),
    )


def main() -> dict[str, float]:
    """Run the load benchmark and print its figures."""
    with running_stack() as (stack, front):
        client = httpx.Client(base_url=front.url, auth=(LOGIN, PASSWORD), timeout=120)
        paths = setup(stack, client)
        # Warm every function and the mix once (cold starts are not load).
        for path in paths:
            assert client.get(path).status_code == 200, path
        before = rss_mb()
        results = [run_level(front.url, paths, clients) for clients in LEVELS]
    print(
        f"\nload: {REQUESTS} requests per run through the local front, mixing COG and RGB tiles (z10-11 over "
        f"the real scene), /meta/dates, /meta/list, /project/list or /project/info and /rgb/list; "
        f"resident memory after warm-up {before:.0f} MB"
    )
    print(row("", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "peak MB"))
    for clients, r in zip(LEVELS, results, strict=True):
        label = f"{clients} client{'s' if clients > 1 else ''}"
        print(
            row(
                label,
                f"{r.rps:.1f}",
                f"{r.p50:.1f}",
                f"{r.p95:.1f}",
                f"{r.p99:.1f}",
                r.errors.total(),
                f"{r.peak_mb:.0f}",
            )
        )
        if r.errors:
            print(f"    errors: {dict(r.errors)}")
    print(row("throughput ratio, 8 / 1 clients", f"{results[1].rps / results[0].rps:.2f}"))
    print(row("throughput ratio, 32 / 1 clients", f"{results[2].rps / results[0].rps:.2f}"))
    # The caches (GDAL blocks, fetched ranges, open datasets) fill over the first runs, then memory stays.
    print(
        row(
            "peak memory ratio, last 32-client run / first", f"{results[-1].peak_mb / results[2].peak_mb:.2f}"
        )
    )
    print(
        row(
            "peak memory ratio, last 32-client run / previous",
            f"{results[-1].peak_mb / results[-2].peak_mb:.2f}",
        )
    )
    return {"errors": sum(r.errors.total() for r in results), "rps_32": results[2].rps}
