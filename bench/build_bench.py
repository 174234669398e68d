"""Build benchmark (run `make build` first): what each function weighs and how fast it starts.

For every function of template.yaml, as `sam build` left it in .aws-sam/build: its size with its
layer, unzipped (what Lambda's 250 MB limit counts), and its cold init, i.e. importing its handler
module (which builds the app), in a fresh interpreter that sees only the built function, its layer
and the runtime's own boto3 (.aws-sam/runtime), with bytecode writes off as on Lambda's read-only
/opt; median of 5, the functions interleaved. The budgets are read against the CPU time of that
import (wall time, printed beside it, also counts whoever else shares the machine). A stock
titiler.core app (a `TilerFactory` behind Mangum) is measured the same way on the imagery layer,
as the reference for the imagery functions.
Before timing, each layer passes a smoke run of real work (a tile rendered from a fixture COG,
PROJ transforms, geometry, a password hash), so that slimming cannot break a library unseen.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from bench.common import FIXTURES, REPO
from sputnik_tools.template import Template

BUILD = REPO / ".aws-sam" / "build"
RUNTIME = REPO / ".aws-sam" / "runtime"
RUNS = 5
MB = 1e6  # decimal, as Lambda's documented limits are read against `du --apparent-size -B1`
# Per layer: the size budget of a function with it (MB), and its cold-init budget (ms).
SIZE_BUDGET = {"SputnikLayer": 25, "GeometryLayer": 80, "GeoLayer": 150}
INIT_BUDGET_MS = {"SputnikLayer": 400, "GeometryLayer": 400, "GeoLayer": 1200}
STOCK = "stock titiler.core"
STOCK_APP = """\
from fastapi import FastAPI
from mangum import Mangum
from titiler.core.factory import TilerFactory

app = FastAPI()
app.include_router(TilerFactory().router, prefix="/cog")
handler = Mangum(app, lifespan="off")
"""
# An HTTP API v2 request (the shape API Gateway hands a function) for a path no function serves.
PROBE = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/cold-start-probe",
    "rawQueryString": "",
    "headers": {"host": "probe"},
    "requestContext": {
        "http": {"method": "GET", "path": "/cold-start-probe", "sourceIp": "192.0.2.1"},
        "stage": "$default",
        "requestId": "probe",
    },
    "isBase64Encoded": False,
}
TCI = next((FIXTURES / "sentinel-cogs").rglob("TCI.tif"))
ITEM = next((FIXTURES / "stac-items" / "v1").glob("*.json"))
SMOKE = {
    "SputnikLayer": """
        from argon2 import PasswordHasher
        ph = PasswordHasher()
        assert ph.verify(ph.hash("secret"), "secret")
        import pydantic, fastapi, pynamodb.models, aws_lambda_powertools
        print("argon2, pydantic, fastapi, pynamodb, powertools")
    """,
    "GeometryLayer": f"""
        from sputnik import geo, mgrs, stac
        square = '{{"type": "Polygon", "coordinates": [[[-10, 40], [-9, 40], [-9, 41], [-10, 40]]]}}'
        border = geo.parse_border(square)
        tiles = sorted(mgrs.tiles_for_border(border))
        assert "29TNE" in tiles, tiles
        assert geo.from_wkt(geo.to_wkt(border)).equals(border) and geo.area_km2(border) > 4000
        scene = stac.parse_item(open({str(ITEM)!r}).read())
        assert geo.parse_border(geo.to_geojson(scene.footprint)).intersects(scene.footprint)
        print("shapely + pyproj: border -> tiles", tiles, "; STAC item", scene.scene_id)
    """,
    "GeoLayer": f"""
        from rio_tiler.io import Reader
        from rio_tiler.utils import render
        from morecantile import tms
        from pyproj import Transformer
        from sputnik import geo, mgrs
        square = '{{"type": "Polygon", "coordinates": [[[-10, 40], [-9, 40], [-9, 41], [-10, 40]]]}}'
        assert "29TNE" in mgrs.tiles_for_border(geo.parse_border(square))
        with Reader({str(TCI)!r}) as cog:
            west, south, east, north = cog.get_geographic_bounds("EPSG:4326")
            t = tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, 9)
            png = render(cog.tile(t.x, t.y, t.z).data, img_format="PNG")
        assert png[:4] == b"\\x89PNG", png[:8]
        x, y = Transformer.from_crs(4326, 32629, always_xy=True).transform(-9, 40)
        print("GDAL + PROJ + rio-tiler: tile", t, len(png), "bytes of PNG; pyproj", round(x))
    """,
}


@dataclass
class Target:
    """A handler to measure: its code folder and its layer."""

    name: str
    code: Path
    layer: str
    api: bool


def functions() -> list[Target]:
    """The template's functions as sam build left them."""
    template = Template.load(REPO / "template.yaml")
    found = []
    for logical, res in sorted(template.of_type("AWS::Serverless::Function").items()):
        props = res.get("Properties") or {}
        (layer,) = [ref["Ref"] for ref in props["Layers"]]
        events = (props.get("Events") or {}).values()
        found.append(Target(logical, BUILD / logical, layer, any(e.get("Type") == "HttpApi" for e in events)))
    return found


def size(*folders: Path) -> int:
    """Bytes of the files under some folders."""
    return sum(p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file() and not p.is_symlink())


def run_isolated(code: str, target: Target, env: dict[str, str]) -> str:
    """Run code in a fresh interpreter that sees only the target's code, its layer and the runtime."""
    paths = [str(target.code), str(BUILD / target.layer / "python"), str(RUNTIME)]
    # -I -S: no site-packages, no PYTHONPATH, no user site: only the standard library and these.
    prelude = f"import sys; sys.path[:0] = {paths!r}\n"
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(code)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{target.name}: {out.stderr.strip().splitlines()[-1]}\n{out.stderr}")
    return out.stdout.strip()


def cold_init_ms(target: Target, env: dict[str, str]) -> tuple[float, float, float]:
    """Import the handler module once, as Lambda's init phase does, then serve a first request.

    Returns CPU and wall milliseconds of init, and CPU milliseconds of an HTTP function's first
    request (a GET of an unknown path: routing alone, but every route's one-time setup that a
    framework leaves to the first request) minus a second one's; 0 for other functions.
    """
    code = f"""
        import time
        cpu, wall = time.process_time(), time.perf_counter()
        import app
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert callable(app.handler)
        first = 0.0
        if {target.api}:
            event = {PROBE!r}
            spent = []
            for _ in range(2):
                start = time.process_time()
                assert app.handler(event, None)["statusCode"] == 404
                spent.append(time.process_time() - start)
            first = spent[0] - spent[1]
        print(cpu * 1000, wall * 1000, first * 1000)
    """
    cpu, wall, first = run_isolated(code, target, env).split()
    return float(cpu), float(wall), float(first)


def environment(template: Template, target: Target) -> dict[str, str]:
    """What Lambda gives a function: its variables from the template, a region, no bytecode writes."""
    env = template.function_environment(target.name) if target.name != STOCK else {}
    return {
        **env,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": target.name,
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "LAMBDA_TASK_ROOT": str(target.code),
    }


def main() -> None:
    """Print the size and cold-init table, and the comparison with stock titiler."""
    if not BUILD.is_dir() or not RUNTIME.is_dir():
        print("build benchmark: run `make build` first (it needs .aws-sam/build and .aws-sam/runtime)")
        return
    template = Template.load(REPO / "template.yaml")
    targets = functions()
    with tempfile.TemporaryDirectory() as stock_dir:
        (Path(stock_dir) / "app.py").write_text(STOCK_APP)
        stock = Target(STOCK, Path(stock_dir), "GeoLayer", True)
        envs = {t.name: environment(template, t) for t in [*targets, stock]}

        print("build: smoke run of each layer (real work, only the built layer and the runtime's boto3)")
        for layer, code in SMOKE.items():
            probe = next(t for t in [*targets, stock] if t.layer == layer)
            print(f"  {layer:<14} {run_isolated(code, probe, envs[probe.name])}")

        cpu: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        wall: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        first: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        load = os.getloadavg()[0]
        for _ in range(RUNS):
            for target in [*targets, stock]:
                spent, elapsed, first_request = cold_init_ms(target, envs[target.name])
                cpu[target.name].append(spent)
                wall[target.name].append(elapsed)
                first[target.name].append(first_request)
        load = max(load, os.getloadavg()[0])

    print(f"build: each function with its layer, unzipped, and its cold init, median of {RUNS}")
    # On a shared machine wall time measures the neighbours too: CPU time is what the budget reads.
    print(f"  (load average up to {load:.1f} on {os.cpu_count()} CPUs during the runs)")
    header = f"{'layer':<15}{'MB':>7}{'budget':>8}{'CPU ms':>8}{'budget':>8}{'wall ms':>9}{'1st req':>9}"
    print(f"  {'':<22}{header}  CPU ms of each run")
    for target in [*targets, stock]:
        mb = size(target.code, BUILD / target.layer / "python") / MB
        size_budget = "" if target.name == STOCK else f"{SIZE_BUDGET[target.layer]}"
        init_budget = f"{INIT_BUDGET_MS[target.layer]}" if target.api and target.name != STOCK else ""
        ms, wall_ms = statistics.median(cpu[target.name]), statistics.median(wall[target.name])
        runs = " ".join(f"{t:.0f}" for t in cpu[target.name])
        first_ms = f"{statistics.median(first[target.name]):.0f}" if target.api else ""
        figures = f"{mb:>7.1f}{size_budget:>8}{ms:>8.0f}{init_budget:>8}{wall_ms:>9.0f}{first_ms:>9}"
        print(f"  {target.name:<22}{target.layer:<15}{figures}  {runs}")
    for target in targets:
        if target.layer == "GeoLayer":
            ratio = statistics.median(cpu[target.name]) / statistics.median(cpu[STOCK])
            ratio_wall = statistics.median(wall[target.name]) / statistics.median(wall[STOCK])
            print(
                f"  {target.name} / {STOCK}, cold init: {ratio:.2f} CPU, {ratio_wall:.2f} wall (≤ 1: as fast)"
            )
            if target.api:
                both = statistics.median(map(sum, zip(cpu[target.name], first[target.name], strict=True)))
                stock_both = statistics.median(map(sum, zip(cpu[STOCK], first[STOCK], strict=True)))
                print(f"  {target.name} / {STOCK}, cold init + first request: {both / stock_both:.2f} CPU")
    for layer in SIZE_BUDGET:
        folder = BUILD / layer / "python"
        print(f"  layer {layer}: {size(folder) / MB:.1f} MB")


if __name__ == "__main__":
    main()
