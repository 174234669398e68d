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
The layers leave the AWS SDK to the runtime; what bundling the pinned one would cost is measured
beside it: the SDK as a layer would ship it (.aws-sam/sdk), whole and with botocore's data cut to
the services the library calls, against the budgets, and each function's cold init with it.
"""

import os
import re
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
SDK = REPO / ".aws-sam" / "sdk"
LIBRARY = REPO / "layers" / "sputnik" / "sputnik"
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


def run_isolated(code: str, target: Target, env: dict[str, str], *, sdk: bool = False) -> str:
    """Run code in a fresh interpreter that sees only the target's code, its layer and the runtime.

    With `sdk`, the pinned SDK sits in the layer, before the runtime's (as Lambda orders them).
    """
    layer = [str(BUILD / target.layer / "python"), *([str(SDK)] if sdk else [])]
    paths = [str(target.code), *layer, str(RUNTIME)]
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


def cold_init_ms(target: Target, env: dict[str, str], *, sdk: bool = False) -> tuple[float, float, float]:
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
    cpu, wall, first = run_isolated(code, target, env, sdk=sdk).split()
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

        bundled = SDK.is_dir()
        versions = "import boto3, botocore; print(boto3.__version__, botocore.__version__)"
        sdk_versions = {
            kind: run_isolated(versions, targets[0], envs[targets[0].name], sdk=kind == "bundled")
            for kind in ("runtime", *(["bundled"] if bundled else []))
        }
        cpu: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        wall: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        first: dict[str, list[float]] = {t.name: [] for t in [*targets, stock]}
        with_sdk: dict[str, list[float]] = {t.name: [] for t in targets}
        load = os.getloadavg()[0]
        for _ in range(RUNS):
            for target in [*targets, stock]:
                spent, elapsed, first_request = cold_init_ms(target, envs[target.name])
                cpu[target.name].append(spent)
                wall[target.name].append(elapsed)
                first[target.name].append(first_request)
                if bundled and target.name != STOCK:
                    with_sdk[target.name].append(cold_init_ms(target, envs[target.name], sdk=True)[0])
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
    if bundled:
        sdk_report(targets, cpu, with_sdk, sdk_versions)
    else:
        print("build: no .aws-sam/sdk (`make build` makes it): the bundled SDK is not measured")


def called_services() -> set[str]:
    """The AWS services the library calls: its `client("...")` calls, and DynamoDB (PynamoDB's)."""
    found = {"dynamodb"}
    for path in LIBRARY.rglob("*.py"):
        found.update(re.findall(r"""\bclient\(["']([a-z0-9-]+)["']\)""", path.read_text()))
    return found


def sdk_report(
    targets: list[Target],
    cpu: dict[str, list[float]],
    with_sdk: dict[str, list[float]],
    versions: dict[str, str],
) -> None:
    """What bundling the pinned SDK would cost: sizes against the budgets, and cold init with it."""
    services = called_services()
    data = SDK / "botocore" / "data"
    unused = [d for d in data.iterdir() if d.is_dir() and d.name not in services]
    whole, cut = size(SDK), size(SDK) - size(*unused)
    (boto3, botocore), (pinned_boto3, pinned_botocore) = (versions[k].split() for k in ("runtime", "bundled"))
    print(
        f"build: the AWS SDK left to the runtime (boto3 {boto3}, botocore {botocore}, .aws-sam/runtime)"
        f" or bundled (the pinned {pinned_boto3}, {pinned_botocore}, .aws-sam/sdk)"
    )
    print(
        f"  bundled SDK as a layer ships it: {whole / MB:.1f} MB; with botocore's data cut to the"
        f" services the library calls ({', '.join(sorted(services))}): {cut / MB:.1f} MB"
    )
    print(f"  {'largest function with its layer':<32}{'MB':>7}{'+ SDK':>8}{'+ cut SDK':>11}{'budget':>8}")
    for layer, budget in SIZE_BUDGET.items():
        mb = max(size(t.code, BUILD / layer / "python") for t in targets if t.layer == layer) / MB
        print(f"  {layer:<32}{mb:>7.1f}{mb + whole / MB:>8.1f}{mb + cut / MB:>11.1f}{budget:>8}")
    print(f"  {'cold init, CPU ms, median':<32}{'runtime':>9}{'bundled':>9}{'ratio':>7}")
    for target in targets:
        runtime, sdk = statistics.median(cpu[target.name]), statistics.median(with_sdk[target.name])
        print(f"  {target.name:<32}{runtime:>9.0f}{sdk:>9.0f}{sdk / runtime:>7.2f}")


if __name__ == "__main__":
    main()
