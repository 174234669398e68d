"""RGB product benchmark: a product of a full-size generated TCI against `rio cogeo create` of its window.

The source is a 10980 x 10980 TCI COG (the 10 m grid of tile 29RKH): the real fixture scene's TCI
upsampled tenfold with pixel noise, written like the archive's (DEFLATE, 1024 px blocks, overviews,
nodata 0), generated once per run into a temporary folder. The border holds the whole tile, so the
window is the whole scene and `rio cogeo create` of the source itself is the same window. Both run
as child processes, alternating, with the same encoding (JPEG q90 YCbCr, internal mask, 512 px
blocks, average overviews, as many levels); time is wall clock, memory the child's peak RSS.
Then the compressions that were candidates for the product, by size against the source TCI.

`python -m bench.product_bench` runs it alone.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window
from shapely.geometry import Polygon, box, mapping, shape

from bench.common import FIXTURES, row
from sputnik.tasks import rgb_product
from sputnik.tasks.rgb_product import build_rgb_product, overview_factors

FIXTURE_TCI = FIXTURES / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A/TCI.tif"
SIZE, RES = 10980, 10.0
UPSAMPLE = 10  # the fixture is the same tile at 100 m
NOISE = 3.0  # standard deviation of the pixel noise added to the smooth upsampled image
ROUNDS = 2
COMPRESSIONS: dict[str, dict[str, str]] = {
    "JPEG q90 (chosen)": {"COMPRESS": "JPEG", "QUALITY": "90"},
    "JPEG q75": {"COMPRESS": "JPEG", "QUALITY": "75"},
    "DEFLATE + predictor": {"COMPRESS": "DEFLATE", "PREDICTOR": "YES"},
    "ZSTD + predictor": {"COMPRESS": "ZSTD", "PREDICTOR": "YES"},
    "WEBP lossless": {"COMPRESS": "WEBP", "QUALITY": "100"},  # the COG driver: 100 means lossless
    "WEBP q90": {"COMPRESS": "WEBP", "QUALITY": "90"},
}
GENERATE = (
    "import sys, pathlib; from bench.product_bench import generate_tci as g; g(pathlib.Path(sys.argv[1]))"
)
SLOW_ON_FULL_SIZE = {"WEBP lossless"}  # about 3 minutes a product here: measured on the real scene only


def generate_tci(folder: Path) -> Path:
    """Write the full-size TCI COG into `folder`, in strips (a few hundred MB of memory at most)."""
    with rasterio.open(FIXTURE_TCI) as fixture:
        small = fixture.read().astype(numpy.float32)
        crs, (left, top) = fixture.crs, (fixture.transform.c, fixture.transform.f)
    rng = numpy.random.default_rng(2026)
    strip_rows = 1098
    plain = folder / "plain.tif"
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 3,
        "width": SIZE,
        "height": SIZE,
        "crs": crs,
        "transform": Affine(RES, 0, left, 0, -RES, top),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 1024,
        "blockysize": 1024,
    }
    # Bilinear upsampling: source coordinates of every output pixel centre.
    xs = (numpy.arange(SIZE) + 0.5) / UPSAMPLE - 0.5
    x0 = numpy.clip(numpy.floor(xs).astype(int), 0, small.shape[2] - 1)
    x1 = numpy.clip(x0 + 1, 0, small.shape[2] - 1)
    fx = (xs - numpy.floor(xs))[None, :]
    with rasterio.open(plain, "w", **profile) as dst:
        for top_row in range(0, SIZE, strip_rows):
            ys = (numpy.arange(top_row, top_row + strip_rows) + 0.5) / UPSAMPLE - 0.5
            y0 = numpy.clip(numpy.floor(ys).astype(int), 0, small.shape[1] - 1)
            y1 = numpy.clip(y0 + 1, 0, small.shape[1] - 1)
            fy = (ys - numpy.floor(ys))[:, None]
            strip = numpy.empty((3, strip_rows, SIZE), numpy.uint8)
            for band in range(3):
                s = small[band]
                upper = s[y0][:, x0] * (1 - fx) + s[y0][:, x1] * fx
                lower = s[y1][:, x0] * (1 - fx) + s[y1][:, x1] * fx
                noise = rng.normal(0, NOISE, (strip_rows, SIZE)).astype(numpy.float32)
                strip[band] = numpy.clip(upper * (1 - fy) + lower * fy + noise, 1, 255)
            dst.write(strip, window=Window(0, top_row, SIZE, strip_rows))
    tci = folder / "TCI.tif"
    rasterio.shutil.copy(
        str(plain),
        str(tci),
        driver="COG",
        COMPRESS="DEFLATE",
        BLOCKSIZE="1024",
        OVERVIEW_RESAMPLING="AVERAGE",
        NUM_THREADS="ALL_CPUS",
    )
    plain.unlink()
    return tci


def whole_tile_border(tci: Path) -> str:
    """A lon/lat border holding the whole scene, with a margin."""
    with rasterio.open(tci) as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return box(west - 0.05, south - 0.05, east + 0.05, north + 0.05).wkt


def measured(command: list[str]) -> tuple[float, int]:
    """Run a child process; return its wall-clock seconds and peak resident memory in bytes."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with exit code {child.returncode}")
    return seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def sputnik_command(tci: Path, border: str, out: Path) -> list[str]:
    """The product builder in a fresh interpreter, as a cold Lambda invocation would run it."""
    script = "import sys; from sputnik.tasks.rgb_product import build_rgb_product as b; b(*sys.argv[1:])"
    return [sys.executable, "-c", script, str(tci), border, str(out)]


def rio_cogeo_command(tci: Path, out: Path, levels: int) -> list[str]:
    """`rio cogeo create` with the product's encoding: JPEG q90, mask from nodata, average overviews."""
    rio = shutil.which("rio", path=str(Path(sys.executable).parent)) or "rio"
    return [
        rio,
        "cogeo",
        "create",
        str(tci),
        str(out),
        "--cog-profile",
        "jpeg",
        "--co",
        f"JPEG_QUALITY={rgb_product.JPEG_QUALITY}",  # the GTiff driver's name for it
        "--blocksize",
        str(rgb_product.BLOCK_SIZE),
        "--add-mask",
        "--overview-resampling",
        "average",
        "--overview-level",
        str(levels),
        "--quiet",
    ]


@contextmanager
def encoding(options: dict[str, str]) -> Iterator[None]:
    """Build products with another compression for a while (the benchmark's comparison only)."""
    saved = dict(rgb_product.CREATION_OPTIONS)
    rgb_product.CREATION_OPTIONS.pop("QUALITY", None)
    rgb_product.CREATION_OPTIONS.update(options)
    try:
        yield
    finally:
        rgb_product.CREATION_OPTIONS.clear()
        rgb_product.CREATION_OPTIONS.update(saved)


def mean_error(product: Path, source: Path) -> float:
    """Mean absolute difference from the source over the product's valid pixels, in 1024-row strips."""
    total, count = 0.0, 0
    with rasterio.open(product) as out, rasterio.open(source) as src:
        col, row_off = (~src.transform) @ (out.bounds.left, out.bounds.top)
        for start in range(0, out.height, 1024):
            rows = min(1024, out.height - start)
            mine = out.read(window=Window(0, start, out.width, rows)).astype(numpy.int16)
            theirs = src.read(window=Window(round(col), round(row_off) + start, out.width, rows))
            valid = out.dataset_mask(window=Window(0, start, out.width, rows)) > 0
            total += float(numpy.abs(mine - theirs.astype(numpy.int16))[:, valid].sum())
            count += int(valid.sum()) * 3
    return total / count if count else 0.0


def compression_rows(label: str, tci: Path, border: str, folder: Path, skip: set[str]) -> list[str]:
    """One line per candidate compression: seconds, bytes versus the source TCI, mean error."""
    lines = []
    source_bytes = tci.stat().st_size
    for name, options in COMPRESSIONS.items():
        if name in skip:
            continue
        out = folder / "candidate.tif"
        with encoding(options):
            started = time.perf_counter()
            product = build_rgb_product(str(tci), border, str(out))
            seconds = time.perf_counter() - started
        error = mean_error(out, tci)
        lines.append(
            row(
                f"  {label}: {name}",
                f"{seconds:.1f}",
                f"{product.bytes_written / 1e6:.1f}",
                f"{product.bytes_written / source_bytes:.3f}",
                f"{error:.2f}",
            )
        )
        out.unlink()
    return lines


PENTAGON_UTM = [
    (231_234, 2_771_111),
    (262_345, 2_761_999),
    (270_007, 2_730_456),
    (240_555, 2_715_321),
    (225_432, 2_740_000),
]
EDGE_PIXELS = 3


def near_mask_edge(valid: numpy.ndarray) -> numpy.ndarray:
    """Valid pixels with a masked pixel within EDGE_PIXELS (JPEG's 8-16 px blocks straddle the edge there)."""
    masked = numpy.pad(~valid, EDGE_PIXELS, constant_values=False)
    near = numpy.zeros_like(valid)
    height, width = valid.shape
    for dy in range(2 * EDGE_PIXELS + 1):
        for dx in range(2 * EDGE_PIXELS + 1):
            near |= masked[dy : dy + height, dx : dx + width]
    return near & valid


def outside_pixel_rows(folder: Path) -> list[str]:
    """Outside pixels kept under the mask (the builder) against zeroed: the real scene, a pentagon border."""
    with rasterio.open(FIXTURE_TCI) as src:
        pentagon = transform_geom(src.crs, "EPSG:4326", mapping(Polygon(PENTAGON_UTM)))
    kept = folder / "kept.tif"
    build_rgb_product(str(FIXTURE_TCI), shape(pentagon).wkt, str(kept))
    with rasterio.open(kept) as product, rasterio.open(FIXTURE_TCI) as src:
        valid = product.dataset_mask() > 0
        col, row_off = (~src.transform) @ (product.bounds.left, product.bounds.top)
        source = src.read(window=Window(round(col), round(row_off), product.width, product.height))
        kept_data = product.read()
        profile = product.profile
    zeroed_source = numpy.where(valid, source, 0).astype(numpy.uint8)
    plain = folder / "zeroed-plain.tif"
    profile.update(driver="GTiff", compress=None, photometric="RGB")
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(plain, "w", **profile) as dst:
        dst.write(zeroed_source)
        dst.write_mask(valid)
        dst.build_overviews(overview_factors(Window(0, 0, dst.width, dst.height)), Resampling.average)
    zeroed = folder / "zeroed.tif"
    rasterio.shutil.copy(str(plain), str(zeroed), driver="COG", **rgb_product.CREATION_OPTIONS)
    with rasterio.open(zeroed) as product:
        zeroed_data = product.read()
    edge, inner = near_mask_edge(valid), valid & ~near_mask_edge(valid)
    lines = []
    for label, data, path in [
        ("kept under the mask (chosen)", kept_data, kept),
        ("zeroed", zeroed_data, zeroed),
    ]:
        error = numpy.abs(data.astype(numpy.int16) - source.astype(numpy.int16))
        lines.append(
            row(
                f"  outside pixels {label}",
                f"{path.stat().st_size / 1e3:.0f}",
                f"{error[:, edge].mean():.2f}",
                f"{numpy.percentile(error[:, edge], 99):.0f}",
                f"{error[:, inner].mean():.2f}",
            )
        )
    return lines


def main() -> dict[str, float]:
    """Run the product benchmark and print its figures."""
    with tempfile.TemporaryDirectory(prefix="product-bench-") as name:
        folder = Path(name)
        # In a child: a child's peak memory counts the parent's resident pages at fork (Linux keeps
        # the high-water mark across exec), and the generator leaves a large heap behind.
        generated, _ = measured([sys.executable, "-c", GENERATE, str(folder)])
        tci = folder / "TCI.tif"
        border = whole_tile_border(tci)
        levels = len(overview_factors(Window(0, 0, SIZE, SIZE)))
        ours, theirs = folder / "sputnik.tif", folder / "rio-cogeo.tif"
        runs: dict[str, list[tuple[float, int]]] = {"sputnik": [], "rio cogeo create": []}
        for _ in range(ROUNDS):
            runs["sputnik"].append(measured(sputnik_command(tci, border, ours)))
            runs["rio cogeo create"].append(measured(rio_cogeo_command(tci, theirs, levels)))
        sizes = {"sputnik": ours.stat().st_size, "rio cogeo create": theirs.stat().st_size}
        errors = {"sputnik": mean_error(ours, tci), "rio cogeo create": mean_error(theirs, tci)}
        source_bytes = tci.stat().st_size

        print(
            f"\nproduct: one RGB product of a generated {SIZE} x {SIZE} TCI ({source_bytes / 1e6:.1f} MB, "
            f"made in {generated:.0f} s), border holding the whole tile; {ROUNDS} rounds, alternating"
        )
        print(row("", "median s", "peak MB", "MB written", "/ source", "mean error", "time ratio"))
        reference = statistics.median(s for s, _ in runs["rio cogeo create"])
        figures: dict[str, float] = {}
        for label, measures in runs.items():
            seconds = statistics.median(s for s, _ in measures)
            peak = max(m for _, m in measures)
            print(
                row(
                    f"  {label}",
                    f"{seconds:.1f}",
                    f"{peak / 2**20:.0f}",
                    f"{sizes[label] / 1e6:.1f}",
                    f"{sizes[label] / source_bytes:.3f}",
                    f"{errors[label]:.2f}",
                    f"{seconds / reference:.2f}",
                )
            )
            key = label.replace(" ", "_")
            figures |= {
                f"{key}_seconds": seconds,
                f"{key}_peak_mb": peak / 2**20,
                f"{key}_bytes": sizes[label],
            }
        rounds = "; ".join(
            f"{k} " + ", ".join(f"{s:.1f} s {m / 2**20:.0f} MB" for s, m in v) for k, v in runs.items()
        )
        print(f"  each round: {rounds}")
        ours.unlink()
        theirs.unlink()

        print("product compressions (sputnik's builder, the whole window)")
        print(row("", "s", "MB", "/ source", "mean error"))
        real_border = whole_tile_border(FIXTURE_TCI)
        for line in compression_rows("real 1098 px TCI", FIXTURE_TCI, real_border, folder, set()):
            print(line)
        for line in compression_rows(f"generated {SIZE} px", tci, border, folder, SLOW_ON_FULL_SIZE):
            print(line)
        print(f"JPEG and the pixels outside the border (real scene, pentagon border; edge: {EDGE_PIXELS} px)")
        print(row("", "KB", "edge error", "edge p99", "inner error"))
        for line in outside_pixel_rows(folder):
            print(line)
    return figures


if __name__ == "__main__":
    main()
