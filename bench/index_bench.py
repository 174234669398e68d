"""Index product benchmark: one ~1 km² field over many scenes, a whole tile's memory, and the encodings.

Scenes are laid out as the archive's are: B04 and B08 10980 x 10980 (10 m), SCL 5490 x 5490 (20 m),
DEFLATE, 1024 px blocks, overviews, nodata 0. The block holding the field is the real fixture
scene's pixels (upsampled to 10 m with pixel noise, its SCL repeated), the rest is nodata: files stay
a few MB, so three hundred distinct scenes fit in a moto S3 that logs every request, served from a
process of its own as S3 serves from other machines (`bench/separate_s3.py`). Each scene is its own
set of objects: nothing one build read is in GDAL's cache for the next.

- per scene, `build_index_product` (NDVI, the default SCL mask, the product written to a local file)
  against the usual way with rio-tiler: `Reader.feature` of each band over the field on the 10 m
  grid (SCL at the same size, nearest), then numpy masking and statistics; both with the same GDAL
  settings. Ranged GETs and bytes per scene against the compressed bytes of the blocks the field
  touches (read from the files' own block tables);
- two batches of 10 scenes, 100 others, two tens, 100, two tens: the hundreds' mean time against the tens';
- a whole 10980 x 10980 window (every pixel valid and clear, the worst case for the statistics), in
  a child process: its peak resident memory;
- the product's candidate encodings on the real scene's NDVI and on the whole-tile product.

`python -m bench index` runs it.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy
import rasterio
import rasterio.shutil
import shapely
from rasterio.transform import Affine
from rasterio.warp import transform_geom
from rasterio.windows import Window, from_bounds
from rio_tiler.io import Reader
from shapely.geometry import box, mapping, shape

from bench.common import FIXTURES, row, running_stack
from bench.separate_s3 import SeparateS3, separate_s3
from sputnik import stac
from sputnik.bands import CLOUDY_SCL
from sputnik.indices import INDICES
from sputnik.settings import get_settings
from sputnik.tasks.index_product import build_index_product
from sputnik.tasks.rgb_product import PRODUCT_GDAL_OPTIONS
from sputnik.tiles.gdal import configure_gdal, gdal_env

SCENE = FIXTURES / "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
SIZE, RES, BLOCK = 10980, 10.0, 1024
LEFT, TOP = 199980.0, 2800020.0  # the tile's UTM origin (29RKH)
# The field: 1 km x 1 km in the middle of the 10 m block (row 5, column 5): the usual case of a field
# within one block (a field across a block edge reads two or four).
FIELD_UTM = box(
    LEFT + 5 * BLOCK * RES + 4620,
    TOP - 5 * BLOCK * RES - 5620,
    LEFT + 5 * BLOCK * RES + 5620,
    TOP - 5 * BLOCK * RES - 4620,
)
FEW, MANY = 10, 100
TENS, HUNDREDS = 2, 2  # batches of FEW scenes before and after each of the batches of MANY
PAIRS = 20  # scenes built each way for the time and GET figures
ENCODINGS: dict[str, dict[str, str]] = {
    "float32 DEFLATE + predictor 3 (chosen)": {"COMPRESS": "DEFLATE", "PREDICTOR": "3"},
    "float32 ZSTD + predictor 3": {"COMPRESS": "ZSTD", "PREDICTOR": "3"},
    "float32 LZW + predictor 3": {"COMPRESS": "LZW", "PREDICTOR": "3"},
    "int16 x 10000 DEFLATE + predictor 2": {"COMPRESS": "DEFLATE", "PREDICTOR": "2"},
    "int16 x 10000 ZSTD + predictor 2": {"COMPRESS": "ZSTD", "PREDICTOR": "2"},
}


def _upsampled(array: numpy.ndarray, factor: int, rows: slice, cols: slice) -> numpy.ndarray:
    """Part of an image repeated `factor` times in each direction (nearest)."""
    r = numpy.arange(rows.start, rows.stop) // factor
    c = numpy.arange(cols.start, cols.stop) // factor
    return numpy.asarray(array[numpy.ix_(r, c)])


def _band_cog(folder: Path, name: str, dtype: str, size: int, res: float, fill: Any) -> Path:
    """A COG laid out as the archive's: `fill(rows, cols)` gives each strip's data (None: nodata)."""
    plain, out = folder / f"{name}-plain.tif", folder / f"{name}.tif"
    profile = {
        "driver": "GTiff",
        "dtype": dtype,
        "count": 1,
        "width": size,
        "height": size,
        "crs": "EPSG:32629",
        "transform": Affine(res, 0, LEFT, 0, -res, TOP),
        "nodata": 0,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "sparse_ok": True,
    }
    with rasterio.open(plain, "w", **profile) as dst:
        for top in range(0, size, BLOCK):
            rows = slice(top, min(size, top + BLOCK))
            data = fill(rows, slice(0, size))
            if data is not None:
                dst.write(data.astype(dtype), 1, window=Window(0, top, size, rows.stop - rows.start))
    rasterio.shutil.copy(
        str(plain), str(out), driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=str(BLOCK), NUM_THREADS="ALL_CPUS"
    )
    plain.unlink()
    return out


def make_bands(folder: Path, whole: bool) -> dict[str, Path]:
    """B04, B08 and SCL from the real scene: only the field's block (`whole=False`) or every pixel."""
    rng = numpy.random.default_rng(18)
    small: dict[str, numpy.ndarray] = {}
    for band in ("B04", "B08", "SCL"):
        with rasterio.open(SCENE / f"{band}.tif") as src:
            small[band] = src.read(1)
    field_rows = slice(5 * BLOCK, 6 * BLOCK)

    def reflectance(band: str) -> Any:
        def fill(rows: slice, cols: slice) -> numpy.ndarray | None:
            if not whole and rows != field_rows:
                return None
            data = _upsampled(small[band], 10, rows, cols).astype(numpy.float32)
            data += rng.normal(0, 30, data.shape).astype(numpy.float32)
            data = numpy.clip(data, 1, 10000)
            if not whole:
                outside = numpy.ones(data.shape, bool)
                outside[:, 5 * BLOCK : 6 * BLOCK] = False
                data[outside] = 0
            return data

        return fill

    def classes(rows: slice, cols: slice) -> numpy.ndarray | None:
        # At 20 m the field is in block (row 2, column 2); in the whole case every class is kept.
        if not whole and rows != slice(2 * BLOCK, 3 * BLOCK):
            return None
        data = _upsampled(small["SCL"], 10, rows, cols)
        if not whole:
            data = data.copy()
            data[:, : 2 * BLOCK] = 0
            data[:, 3 * BLOCK :] = 0
        return data

    return {
        "B04": _band_cog(folder, "B04", "uint16", SIZE, RES, reflectance("B04")),
        "B08": _band_cog(folder, "B08", "uint16", SIZE, RES, reflectance("B08")),
        "SCL": _band_cog(folder, "SCL", "uint8", SIZE // 2, RES * 2, classes),
    }


def lonlat(geom: Any) -> Any:
    """A UTM (29N) geometry in lon/lat, densified so that its edges keep their course."""
    dense = shapely.segmentize(geom, 50.0)
    return shape(transform_geom("EPSG:32629", "EPSG:4326", mapping(dense)))


def block_bytes(path: Path, field: Any) -> int:
    """Compressed bytes of the full-resolution blocks of a band file that the field touches."""
    with rasterio.open(path) as src:
        window = from_bounds(*field.bounds, transform=src.transform)
        rows = range(int(window.row_off // BLOCK), int((window.row_off + window.height - 1e-6) // BLOCK) + 1)
        cols = range(int(window.col_off // BLOCK), int((window.col_off + window.width - 1e-6) // BLOCK) + 1)
        return sum(src.block_size(1, r, c) for r in rows for c in cols)


def upload_scenes(s3: Any, bucket: str, bands: dict[str, Path], count: int) -> list[stac.Scene]:
    """`count` scenes, each its own copy of the band files in the archive; the real item pointing at them."""
    item = (SCENE / f"{SCENE.name}.json").read_text()
    scenes = []
    bodies = {band: path.read_bytes() for band, path in bands.items()}
    for i in range(count):
        prefix = f"sentinel-s2-l2a-cogs/29/R/KH/2020/2/BENCH_{i:03d}"
        for band, body in bodies.items():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{band}.tif", Body=body)
        scene = stac.parse_item(item)
        assets = dict(scene.assets)
        for band, v1 in (("B04", "red"), ("B08", "nir"), ("SCL", "scl")):
            assets[band] = assets[v1] = f"s3://{bucket}/{prefix}/{band}.tif"
        scenes.append(stac.Scene(**{**scene.__dict__, "assets": assets}))
    return scenes


def rio_tiler_way(scene: stac.Scene, field: dict[str, Any]) -> dict[str, Any]:
    """NDVI statistics over the field the usual way: Reader.feature per band, numpy masking and statistics."""
    with Reader(scene.asset_href("B04")) as src:
        red = src.feature(field, dst_crs=src.crs, max_size=None)
    height, width = red.height, red.width
    with Reader(scene.asset_href("B08")) as src:
        nir = src.feature(field, dst_crs=src.crs, height=height, width=width)
    with Reader(scene.asset_href("SCL")) as src:
        scl = src.feature(field, dst_crs=src.crs, height=height, width=width)
    r = red.array.data[0].astype(numpy.float32) * 1e-4
    n = nir.array.data[0].astype(numpy.float32) * 1e-4
    masked = red.array.mask[0] | nir.array.mask[0] | numpy.isin(scl.array[0].filled(0), CLOUDY_SCL)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        ndvi = (n - r) / (n + r)
    values = ndvi[~masked & numpy.isfinite(ndvi)]
    p10, median, p90 = numpy.percentile(values, [10, 50, 90])
    return {"valid_pixels": values.size, "mean": values.mean(), "median": median, "p10": p10, "p90": p90}


def s3_reads(s3: SeparateS3, bucket: str) -> tuple[int, int]:
    """(ranged GETs, bytes) of the archive bucket among the requests served since the last call."""
    gets = size = 0
    for method, path, ranged in s3.requests():
        if method == "GET" and path.startswith(f"/{bucket}/") and ranged:
            start, _, end = ranged.removeprefix("bytes=").partition("-")
            gets += 1
            size += int(end) - int(start) + 1
    return gets, size


def bench_field(s3: SeparateS3, folder: Path) -> None:
    """The field over many scenes: ours against rio-tiler's, GETs and bytes, 100 scenes against 10."""
    bucket = get_settings().archive_bucket
    t = time.perf_counter()
    bands = make_bands(folder, whole=False)
    touched = sum(block_bytes(path, FIELD_UTM) for path in bands.values())
    scenes = upload_scenes(
        s3.client(), bucket, bands, 2 * PAIRS + (HUNDREDS + 1) * TENS * FEW + HUNDREDS * MANY
    )
    print(f"  scenes generated and uploaded in {time.perf_counter() - t:.0f} s")
    field = lonlat(FIELD_UTM)
    field_geojson = mapping(field)
    ndvi = INDICES["ndvi"]
    out = folder / "product.tif"
    configure_gdal()
    ours: list[float] = []
    theirs: list[float] = []
    reads: list[tuple[int, int]] = []
    their_reads: list[tuple[int, int]] = []
    with rasterio.Env(**gdal_env(), **PRODUCT_GDAL_OPTIONS):
        for i in range(PAIRS):
            s3.requests()
            t = time.perf_counter()
            made = build_index_product(scenes[2 * i], ndvi, field.wkt, str(out))
            ours.append(time.perf_counter() - t)
            reads.append(s3_reads(s3, bucket))
            t = time.perf_counter()
            usual = rio_tiler_way(scenes[2 * i + 1], field_geojson)
            theirs.append(time.perf_counter() - t)
            their_reads.append(s3_reads(s3, bucket))
    print(f"  field: {made.width} x {made.height} px, blocks it touches in B04, B08, SCL: {touched:,} bytes")
    print(
        f"  the same answer: {made.stats['valid_pixels']} clear pixels, median {made.stats['median']:.4f};"
        f" rio-tiler's {usual['valid_pixels']}, {usual['median']:.4f}"
    )
    print(row("per scene", "GETs", "bytes", "x blocks", "median s"))
    for name, figures, times in (
        ("build_index_product", reads, ours),
        ("rio-tiler feature + numpy", their_reads, theirs),
    ):
        gets = statistics.median(g for g, _ in figures)
        size = statistics.median(b for _, b in figures)
        print(
            row(
                name,
                f"{gets:.0f}",
                f"{size:,.0f}",
                f"{size / touched:.2f}",
                f"{statistics.median(times):.3f}",
            )
        )
    print(
        row("time, ours / rio-tiler's (median)", f"{statistics.median(ours) / statistics.median(theirs):.2f}")
    )

    # Tens of scenes around each of two hundreds, one after the other: at some 40 ms a scene one
    # batch of 10 is under half a second, which a moment of the machine's load moves by a tenth (0.36 s
    # and 0.41 s in one run), and a single hundred drifts with the load as much; the means compare.
    batches = iter(range(2 * PAIRS, len(scenes), 1))

    def build_batch(count: int) -> float:
        t = time.perf_counter()
        for _ in range(count):
            build_index_product(scenes[next(batches)], ndvi, field.wkt, str(out))
        return time.perf_counter() - t

    tens = [build_batch(FEW) for _ in range(TENS)]
    hundreds = []
    for _ in range(HUNDREDS):
        hundreds.append(build_batch(MANY))
        tens += [build_batch(FEW) for _ in range(TENS)]
    print(row(f"{FEW} scenes, s, in order", *(f"{t:.2f}" for t in tens[:TENS])))
    for i in range(HUNDREDS):
        print(
            row(
                f"{MANY} scenes, s, then {FEW} scenes",
                f"{hundreds[i]:.2f}",
                "",
                *(f"{t:.2f}" for t in tens[(i + 1) * TENS : (i + 2) * TENS]),
            )
        )
    print(
        row(
            f"{MANY} / {FEW} scenes (means of the {HUNDREDS} and {len(tens)})",
            f"{statistics.mean(hundreds) / statistics.mean(tens):.2f}",
        )
    )


WHOLE = """
import json, os, sys, time
from shapely import wkt
from sputnik import stac
from sputnik.indices import INDICES
from sputnik.tasks.index_product import build_index_product
item = stac.parse_item(open(sys.argv[1]).read())
scene = stac.Scene(**{**item.__dict__, "assets": json.loads(sys.argv[2])})
t = time.perf_counter()
border = open(sys.argv[3]).read()
made = build_index_product(scene, INDICES["ndvi"], border, sys.argv[4], mask=[])
seconds = time.perf_counter() - t
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"seconds": seconds, "peak_kb": int(peak), "width": made.width, "height": made.height,
                  "valid": made.stats["valid_pixels"], "bytes": made.bytes_written}))
"""


def bench_whole(s3: SeparateS3, folder: Path) -> Path:
    """A whole tile's window in a child process: time and peak resident memory; the product."""
    bucket = get_settings().archive_bucket
    t = time.perf_counter()
    bands = make_bands(folder, whole=True)
    prefix = "sentinel-s2-l2a-cogs/29/R/KH/2020/2/BENCH_WHOLE"
    client = s3.client()
    assets = {}
    for band, path in bands.items():
        client.upload_file(str(path), bucket, f"{prefix}/{band}.tif")
        assets[band] = f"s3://{bucket}/{prefix}/{band}.tif"
        path.unlink()
    print(f"  whole-tile bands generated and uploaded in {time.perf_counter() - t:.0f} s")
    border = lonlat(box(LEFT - 500, TOP - SIZE * RES - 500, LEFT + SIZE * RES + 500, TOP + 500))
    out = folder / "whole.tif"
    border_file = folder / "border.wkt"  # too long for a command line
    border_file.write_text(border.wkt)

    answer = subprocess.run(
        [
            sys.executable,
            "-c",
            WHOLE,
            str(SCENE / f"{SCENE.name}.json"),
            json.dumps(assets),
            str(border_file),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    figures = json.loads(answer.stdout.strip().splitlines()[-1])
    print(row("whole tile", "pixels", "s", "peak MB", "product MB"))
    print(
        row(
            "build_index_product, NDVI, all clear",
            f"{figures['width']} x {figures['height']}",
            f"{figures['seconds']:.1f}",
            f"{figures['peak_kb'] / 1024:.0f}",
            f"{figures['bytes'] / 1e6:.1f}",
        )
    )
    return out


def bench_encodings(folder: Path, products: dict[str, Path]) -> None:
    """Each candidate encoding of index products: size and time to write the COG, time to read it back."""
    for label, path in products.items():
        with rasterio.open(path) as src:
            values = src.read(1)
            profile = {
                "driver": "GTiff",
                "count": 1,
                "width": src.width,
                "height": src.height,
                "crs": src.crs,
                "transform": src.transform,
                "tiled": True,
                "blockxsize": 512,
                "blockysize": 512,
            }
        print(row(f"encodings, {label}", "MB", "write s", "read s", "max error"))
        for name, options in ENCODINGS.items():
            plain = folder / "plain.tif"
            if name.startswith("int16"):
                data = numpy.where(numpy.isnan(values), -32768, numpy.rint(values * 10000)).astype(
                    numpy.int16
                )
                nodata: float = -32768
            else:
                data, nodata = values, float("nan")
            with rasterio.open(plain, "w", dtype=data.dtype, nodata=nodata, **profile) as dst:
                dst.write(data, 1)
                dst.build_overviews([2, 4, 8, 16], rasterio.enums.Resampling.average)
            out = folder / "encoded.tif"
            t = time.perf_counter()
            rasterio.shutil.copy(
                str(plain),
                str(out),
                driver="COG",
                OVERVIEWS="FORCE_USE_EXISTING",
                NUM_THREADS="ALL_CPUS",
                BLOCKSIZE="512",
                **options,
            )
            written = time.perf_counter() - t
            t = time.perf_counter()
            with rasterio.open(out) as src:
                back = src.read(1).astype(numpy.float32)
            read = time.perf_counter() - t
            if name.startswith("int16"):
                back = numpy.where(back == -32768, numpy.nan, back / 10000)
            error = numpy.nanmax(numpy.abs(back - values))
            print(
                row(name, f"{out.stat().st_size / 1e6:.2f}", f"{written:.2f}", f"{read:.2f}", f"{error:.1e}")
            )
            plain.unlink()


def real_scene_product(s3: SeparateS3, folder: Path) -> Path:
    """The real scene's NDVI over its whole extent (its bands as they are in the fixture)."""
    bucket = get_settings().archive_bucket
    prefix = "sentinel-s2-l2a-cogs/29/R/KH/2020/2/BENCH_REAL"
    client = s3.client()
    scene = stac.parse_item((SCENE / f"{SCENE.name}.json").read_text())
    assets = dict(scene.assets)
    for band, v1 in (("B04", "red"), ("B08", "nir"), ("SCL", "scl")):
        client.upload_file(str(SCENE / f"{band}.tif"), bucket, f"{prefix}/{band}.tif")
        assets[band] = assets[v1] = f"s3://{bucket}/{prefix}/{band}.tif"
    real = stac.Scene(**{**scene.__dict__, "assets": assets})
    out = folder / "real.tif"
    border = lonlat(box(LEFT - 500, TOP - SIZE * RES - 500, LEFT + SIZE * RES + 500, TOP + 500))
    build_index_product(real, INDICES["ndvi"], border.wkt, str(out))
    return out


def main() -> None:
    """Run the index benchmark and print its figures."""
    print("index product benchmark (bench/index_bench.py)")
    with running_stack(), separate_s3() as s3, tempfile.TemporaryDirectory() as tmp:
        # The archive is read from S3 in a process of its own, as from S3 itself (bench/separate_s3.py).
        os.environ["AWS_ENDPOINT_URL_S3"] = s3.endpoint
        configure_gdal()
        s3.client().create_bucket(Bucket=get_settings().archive_bucket)
        folder = Path(tmp)
        bench_field(s3, folder)
        real = real_scene_product(s3, folder)
        whole = bench_whole(s3, folder)
        bench_encodings(
            folder, {"real scene (1098 x 1098, 100 m)": real, "whole tile (10980 x 10980)": whole}
        )


if __name__ == "__main__":
    main()
