"""Composite benchmark: a median of 20 scenes over a 10 x 10 km border, three ways, each in a child process.

Scenes are laid out as the archive's are on a 10 m grid: B04, B03, B02 of 1100 x 1100 px (11 km,
uint16, DEFLATE, 512 px blocks, nodata 0) and SCL at 20 m; each scene is shifted by up to 300 m,
has a cloud field of its own (SCL 8 and 9) and, for one in four, a swath edge. The border is a
10 x 10 km square inside all of them (about 1000 x 1000 px on the output grid).

- sputnik: `composite.plan` then `composite.composite_block` over every block, in one process (a
  single machine doing the whole Map), at the task's memory bound and at a 64 MB one;
- the plain way: each scene's whole window of each band read with rasterio (SCL upsampled by
  nearest), masked into one float32 stack, `numpy.nanmedian`;
- rio-tiler: `mosaic_reader` with `MedianMethod`, each scene read by `Reader.part` over the same
  grid (bands and SCL), masked where not clear.

Wall time of the work and the child's peak resident memory above what it held before the work
(VmHWM, from /proc). The fan-out's wall time on AWS is estimated from the time per block.

`python -m bench composite` runs it.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from shapely.geometry import Polygon, box, shape

from bench.common import running_stack
from sputnik.settings import ARCHIVE_PREFIX, get_settings

SCENES = 20
EPSG = 32633
SIZE = 1100  # px of 10 m per scene
ORIGIN = (500000.0, 5000000.0)
BORDER_UTM = (500500.0, 4989500.0, 510500.0, 4999500.0)  # 10 x 10 km inside every scene
RGB = ("B04", "B03", "B02")
CLOUDY = (0, 1, 3, 8, 9, 10)
SMALL_BOUND = 64 * 1024 * 1024
LAMBDA_CONCURRENCY = 100  # the Map's MaxConcurrency


def _tiff(data: numpy.ndarray, transform: Affine) -> bytes:
    """A band as the archive lays one out: tiled, DEFLATE, nodata 0."""
    profile = {
        "driver": "GTiff",
        "dtype": data.dtype.name,
        "count": 1,
        "width": data.shape[1],
        "height": data.shape[0],
        "crs": CRS.from_epsg(EPSG),
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data, 1)
        return bytes(memfile.read())


def _smooth(rng: numpy.random.Generator, shape_: tuple[int, int], cells: int) -> numpy.ndarray:
    """A smooth random field in [0, 1): coarse noise upsampled bilinearly."""
    coarse = rng.random((cells + 1, cells + 1))
    ys = numpy.linspace(0, cells, shape_[0], endpoint=False)
    xs = numpy.linspace(0, cells, shape_[1], endpoint=False)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def write_scenes(s3: Any) -> list[dict[str, Any]]:
    """The 20 scenes in the archive; each as the fields of a sputnik Scene (footprint as GeoJSON)."""
    bucket = get_settings().archive_bucket
    rng = numpy.random.default_rng(20)
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    land = _smooth(rng, (SIZE, SIZE), 40)
    scenes = []
    for i in range(SCENES):
        dx, dy = (float(v) * 10 for v in rng.integers(-30, 30, size=2))
        origin = (ORIGIN[0] + dx, ORIGIN[1] + dy)
        transform = Affine(10.0, 0.0, origin[0], 0.0, -10.0, origin[1])
        scene_id = f"S2A_33TXX_202106{1 + i:02d}_0_L2A"
        prefix = f"{ARCHIVE_PREFIX}/composite-bench/{scene_id}/"
        valid = numpy.ones((SIZE, SIZE), dtype=bool)
        if i % 4 == 0:
            valid[:, : int(rng.integers(50, 300))] = False
        assets = {}
        for k, band in enumerate(RGB):
            values = 300 + 2500 * land + 200 * k + rng.normal(0, 40, size=land.shape)
            numbers = numpy.where(valid, numpy.clip(values, 1, 10000), 0).astype(numpy.uint16)
            s3.put_object(Bucket=bucket, Key=f"{prefix}{band}.tif", Body=_tiff(numbers, transform))
            assets[band] = f"s3://{bucket}/{prefix}{band}.tif"
        cloud = _smooth(rng, (SIZE // 2, SIZE // 2), 12)
        threshold = rng.uniform(0.55, 0.95)
        scl = numpy.where(cloud > threshold, 9, numpy.where(cloud > threshold - 0.05, 8, 4)).astype(
            numpy.uint8
        )
        scl[~valid[::2, ::2]] = 0
        s3.put_object(Bucket=bucket, Key=f"{prefix}SCL.tif", Body=_tiff(scl, transform @ Affine.scale(2.0)))
        assets["SCL"] = f"s3://{bucket}/{prefix}SCL.tif"
        corners = box(origin[0], origin[1] - 10.0 * SIZE, origin[0] + 10.0 * SIZE, origin[1])
        lon, lat = to_lonlat.transform(*numpy.asarray(corners.exterior.coords).T)
        footprint = Polygon(zip(lon.tolist(), lat.tolist(), strict=True))
        scenes.append(
            {
                "scene_id": scene_id,
                "tile": "33TXX",
                "date": f"2021-06-{1 + i:02d}",
                "datetime": f"2021-06-{1 + i:02d}T10:00:00Z",
                "footprint": footprint.__geo_interface__,
                "bbox": list(footprint.bounds),
                "filename": scene_id,
                "cloud_cover": round(float(numpy.mean(scl >= 8)) * 100, 2),
                "epsg": EPSG,
                "assets": assets,
                "processing_baseline": "03.00",
            }
        )
    return scenes


def border() -> Polygon:
    """The 10 x 10 km border in lon/lat."""
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*numpy.asarray(box(*BORDER_UTM).exterior.coords).T)
    return Polygon(zip(lon.tolist(), lat.tolist(), strict=True))


# ---------------------------------------------------------------- the three ways, in a child process
def _scenes(job: dict[str, Any]) -> list[Any]:
    from sputnik import stac

    return [
        stac.Scene(**{**s, "footprint": shape(s["footprint"]), "bbox": tuple(s["bbox"])})
        for s in job["scenes"]
    ]


def way_sputnik(job: dict[str, Any]) -> dict[str, Any]:
    """Every block of the plan, one after the other."""
    from sputnik import composite

    area, scenes = shape(job["border"]), _scenes(job)
    by_id = {s.scene_id: s for s in scenes}
    plan = composite.plan(area, [(s.scene_id, s.footprint) for s in scenes], "rgb", "median", job["memory"])
    result = numpy.full((3, *plan.grid.shape), numpy.nan, dtype=numpy.float32)
    times = []
    for block in plan.blocks:
        began = time.perf_counter()
        made = composite.composite_block(
            [by_id[sid] for sid in block.scene_ids], "rgb", "median", plan.grid.window(block.window), area
        )
        rows, cols = block.window.toslices()
        result[:, rows, cols] = made.bands
        times.append(time.perf_counter() - began)
    return {"blocks": len(plan.blocks), "side": plan.side, "block_s": max(times), "median": result}


def _grid(job: dict[str, Any]) -> Any:
    from sputnik import composite

    return composite.output_grid(shape(job["border"]))


def way_plain(job: dict[str, Any]) -> dict[str, Any]:
    """Each scene's whole window read with rasterio into one stack, then numpy.nanmedian."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    from sputnik.bands import gdal_path
    from sputnik.tiles.gdal import gdal_env

    grid, scenes = _grid(job), _scenes(job)
    stack = numpy.full((len(scenes), 3, *grid.shape), numpy.nan, dtype=numpy.float32)
    with rasterio.Env(**gdal_env()):
        for i, scene in enumerate(scenes):
            bands = []
            for band in RGB:
                with rasterio.open(gdal_path(scene.assets[band])) as src:
                    window = (
                        from_bounds(*grid.bounds, transform=src.transform).round_offsets().round_lengths()
                    )
                    bands.append(src.read(1, window=window, boundless=True, fill_value=0))
            with rasterio.open(gdal_path(scene.assets["SCL"])) as src:
                window = from_bounds(*grid.bounds, transform=src.transform)
                scl = src.read(
                    1,
                    window=window,
                    out_shape=grid.shape,
                    resampling=Resampling.nearest,
                    boundless=True,
                    fill_value=0,
                )
            clear = ~numpy.isin(scl, CLOUDY) & numpy.logical_and.reduce([b != 0 for b in bands])
            for k, numbers in enumerate(bands):
                values = numbers.astype(numpy.float32) * numpy.float32(1e-4)
                values[~clear] = numpy.nan
                stack[i, k] = values
    return {"median": numpy.nanmedian(stack, axis=0)}


def way_riotiler(job: dict[str, Any]) -> dict[str, Any]:
    """rio-tiler's mosaic_reader with its median method over the same grid."""
    import rasterio
    from rio_tiler.io import Reader
    from rio_tiler.models import ImageData
    from rio_tiler.mosaic import mosaic_reader
    from rio_tiler.mosaic.methods import MedianMethod

    from sputnik.bands import gdal_path
    from sputnik.tiles.gdal import gdal_env

    grid, scenes = _grid(job), _scenes(job)

    def read(scene: Any, **kwargs: Any) -> ImageData:
        options = {
            "dst_crs": grid.crs,
            "bounds_crs": grid.crs,
            "width": grid.width,
            "height": grid.height,
            "resampling_method": "nearest",
        }
        arrays = []
        for band in RGB:
            with Reader(gdal_path(scene.assets[band])) as src:
                arrays.append(src.part(grid.bounds, **options).array[0])
        with Reader(gdal_path(scene.assets["SCL"])) as src:
            scl = src.part(grid.bounds, **options).array[0]
        data = numpy.ma.MaskedArray(numpy.ma.stack(arrays).astype(numpy.float32) * numpy.float32(1e-4))
        data.mask = numpy.ma.getmaskarray(data) | numpy.isin(scl.filled(0), CLOUDY)[numpy.newaxis]
        return ImageData(data, bounds=grid.bounds, crs=grid.crs)

    with rasterio.Env(**gdal_env()):
        image, _ = mosaic_reader(scenes, read, pixel_selection=MedianMethod())
    return {"median": numpy.ma.filled(image.array.astype(numpy.float32), numpy.nan)}


WAYS = {"sputnik": way_sputnik, "plain": way_plain, "rio-tiler": way_riotiler}


def _vm(field: str) -> int:
    """A /proc/self/status figure, in kB."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1])


def child(way: str, path: str) -> None:
    """Run one way on the job; print its time, memory and result's location as JSON."""
    from sputnik.tiles.gdal import configure_gdal

    configure_gdal()
    with open(path) as f:
        job = json.load(f)
    import rasterio  # noqa: F401 - imported before the baseline, as a warm worker has it
    import rio_tiler.io  # noqa: F401

    before = _vm("VmRSS")
    began = time.perf_counter()
    done = WAYS[way](job)
    seconds = time.perf_counter() - began
    out = f"{path}.{way}.npy"
    numpy.save(out, done.pop("median"))
    print(json.dumps({"seconds": seconds, "peak_mb": (_vm("VmHWM") - before) / 1024, "result": out, **done}))


def measure(way: str, job: Path, env: dict[str, str]) -> dict[str, Any]:
    """One way in a child process."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.composite_bench", "--child", way, str(job)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Generate the scenes, run the ways, print the table."""
    from sputnik import composite
    from sputnik.tiles.gdal import configure_gdal

    with running_stack() as (stack, _), tempfile.TemporaryDirectory() as folder:
        configure_gdal()
        scenes = write_scenes(stack.client("s3"))
        env = dict(os.environ)
        figures = {}
        for name, way, memory in (
            ("plain (rasterio + nanmedian)", "plain", 0),
            ("rio-tiler mosaic_reader median", "rio-tiler", 0),
            ("sputnik blocks, 1.5 GiB bound", "sputnik", composite.DEFAULT_MEMORY),
            ("sputnik blocks, 64 MiB bound", "sputnik", SMALL_BOUND),
        ):
            job = Path(folder) / f"job-{way}-{memory}.json"
            job.write_text(
                json.dumps({"border": border().__geo_interface__, "scenes": scenes, "memory": memory})
            )
            figures[name] = measure(way, job, env)
        plain = figures["plain (rasterio + nanmedian)"]
        reference = numpy.load(plain["result"])
        # sputnik masks outside the border; the others give the whole box: compared inside it.
        inside = composite.output_grid(border()).border_mask(border())
        width, height = reference.shape[2], reference.shape[1]
        print(f"\ncomposite of {SCENES} scenes over a 10 x 10 km border ({width} x {height} px, 3 bands)")
        print(
            f"{'way':34} {'time s':>7} {'x plain':>8} {'peak MB':>8} {'x plain':>8}  pixels inside the border"
        )
        for name, got in figures.items():
            mine, theirs = numpy.load(got["result"])[:, inside], reference[:, inside]
            same = numpy.array_equal(mine, theirs, equal_nan=True)
            close = numpy.allclose(mine, theirs, equal_nan=True, atol=1e-4)
            note = "as plain" if same else ("within 1e-4 of plain" if close else "NOT as plain")
            if "blocks" in got:
                note += f"; {got['blocks']} blocks of {got['side']} px, slowest {got['block_s']:.2f} s"
            print(
                f"{name:34} {got['seconds']:7.2f} {got['seconds'] / plain['seconds']:8.2f} "
                f"{got['peak_mb']:8.0f} {got['peak_mb'] / plain['peak_mb']:8.2f}  {note}"
            )
        small = figures["sputnik blocks, 64 MiB bound"]
        # On AWS every block is its own Lambda: the Map runs them MaxConcurrency at a time.
        waves = math.ceil(small["blocks"] / LAMBDA_CONCURRENCY)
        estimate = waves * small["block_s"] + 2 + 2
        print(
            f"fan-out on AWS (estimate): {small['blocks']} blocks in {waves} wave(s) of up to "
            f"{LAMBDA_CONCURRENCY} Lambdas, each about its slowest block here ({small['block_s']:.2f} s), "
            f"plus a cold start (~2 s), plan and assembly (~2 s): ~{estimate:.0f} s, against "
            f"{small['seconds']:.0f} s for every block on one machine"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
