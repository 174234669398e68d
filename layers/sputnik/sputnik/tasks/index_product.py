"""One index product: a scene's spectral index over a project's border, clouds masked: a COG and statistics.

How it is built (figures in BENCHMARKS.md, "Index product"):

- the grid is the scene's own grid of the index's finest band over the border's bounding box (10 m
  for every named index), so a 10 m band's pixels are its source pixels; 20 m bands and `SCL` are
  repeated 2 x 2 onto it (`sputnik.bands`);
- the window is computed in strips of rows: each strip's bands are read as reflectance (the item's
  scale and offset, so values agree across the 2022 baseline change), the index computed, and
  every pixel that is not clear (no data, a masked SCL class) or lies outside the border set to
  nodata. The bands are opened once and read together, the border's mask made meanwhile. Memory
  stays at a few strips plus the clear values whatever the window's size;
- a field's window (up to 2048 x 2048 px) is a dataset in memory and its COG a file in GDAL's
  memory; a larger window is an uncompressed GeoTIFF in a temporary folder;
- float32 with NaN as nodata, DEFLATE with the floating-point predictor: lossless (clients read the
  index itself, rescaled by the colormap's range); ZSTD was 2 % smaller but slower to write and read,
  int16 x 10000 2.5 times smaller but scaled; average overviews of the clear pixels; 512 px blocks,
  or one block of the next power of two for a smaller product;
- statistics are over the clear pixels inside the border with a value: the clear values are kept in
  one float32 array (4 bytes a pixel at most, 482 MB for a whole tile) so the percentiles are
  exact (numpy's linear interpolation), computed in place; a whole tile peaks at about 800 MB.
"""

import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetWriter, MemoryFile
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from sputnik.bands import CLOUDY_SCL, Grid, SceneBands, open_scene_bands, to_crs
from sputnik.indices import Index
from sputnik.stac import Scene
from sputnik.tasks.rgb_product import (
    BLOCK_SIZE,
    MAX_PIXELS,
    PRODUCT_GDAL_OPTIONS,
    ProductError,
    overview_factors,
    parse_border,
    publish,
)
from sputnik.tiles.gdal import configure_gdal, gdal_env

STRIP_ROWS = 512  # rows computed at a time: ~22 MB a float32 band for a full-width window
# The clear values (up to 482 MB) share the memory with the strips and GDAL's block cache: a smaller
# cache than the RGB product's keeps a whole tile's build under 1.5 GB (BENCHMARKS.md).
INDEX_GDAL_OPTIONS = {**PRODUCT_GDAL_OPTIONS, "GDAL_CACHEMAX": 128 * 1024 * 1024}
NODATA = math.nan
CREATION_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "3",
    "OVERVIEWS": "FORCE_USE_EXISTING",
    "NUM_THREADS": "ALL_CPUS",
}
MIN_BLOCK_SIZE = 16  # TIFF tiles are multiples of 16 pixels
# A window up to this size (16 MB of float32, a field of 20 x 20 km) and its product are written in
# GDAL's memory: creating and removing a temporary folder cost more than writing a field's product.
IN_MEMORY_PIXELS = 2048 * 2048
STD_CHUNK = 1 << 22  # values a chunk: 32 MB of float64 deviations
STATISTICS = ("valid_pixels", "clear_fraction", "mean", "std", "min", "p10", "median", "p90", "max")
UNWRITABLE = "cannot write the index product"


@dataclass(frozen=True)
class IndexProduct:
    """What was written: the product's size in pixels and bytes, and the statistics of its clear pixels."""

    width: int
    height: int
    bytes_written: int
    stats: dict[str, Any]


def build_index_product(
    scene: Scene,
    index: Index,
    border_wkt: str,
    destination: str,
    mask: Sequence[int] = CLOUDY_SCL,
) -> IndexProduct:
    """Write the COG of the scene's index over the border (lon/lat WKT) to `destination`; its statistics.

    Bands that are missing, outside the archive or unreadable raise BandError; `destination` is an
    s3:// URL or a local path, overwritten whole.
    """
    configure_gdal()  # the S3 settings the tile functions use (idempotent)
    border = parse_border(border_wkt)
    with rasterio.Env(**gdal_env(), **INDEX_GDAL_OPTIONS), ExitStack() as scratch:
        with open_scene_bands(scene, index.bands, mask) as bands:
            grid = bands.grid(border)
            if grid.width * grid.height > MAX_PIXELS:
                raise ProductError(f"window of {grid.width} x {grid.height} pixels is over the limit")
            window, output, finished = scratch.enter_context(_scratch(grid))
            stats = _write_window(bands, index, grid, border, window)
        # The bands are closed, their blocks out of GDAL's cache, before the COG is written.
        try:
            rasterio.shutil.copy(
                window, output, driver="COG", BLOCKSIZE=str(block_size(grid)), **CREATION_OPTIONS
            )
        except RasterioError as exc:
            raise ProductError(UNWRITABLE) from exc
        written = finished()
        size = len(written) if isinstance(written, bytes) else written.stat().st_size
        publish(written, destination)
    return IndexProduct(width=grid.width, height=grid.height, bytes_written=size, stats=stats)


@contextmanager
def _scratch(grid: Grid) -> Iterator[tuple[DatasetWriter, str, Callable[[], Path | bytes]]]:
    """The window to write, where its COG goes, and what ends the window and gives the COG.

    A small window is a dataset in memory and its COG a file in GDAL's memory; a larger one is an
    uncompressed tiled GeoTIFF in a temporary folder, removed before the COG is published.
    """
    profile = {
        "dtype": "float32",
        "count": 1,
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": NODATA,
    }
    if grid.width * grid.height <= IN_MEMORY_PIXELS:
        with MemoryFile() as product, rasterio.open("", "w", driver="MEM", **profile) as window:
            yield window, product.name, product.read
        return
    block = block_size(grid)
    tiles = {"tiled": True, "blockxsize": block, "blockysize": block}
    with tempfile.TemporaryDirectory(prefix="index-product-") as folder:
        path, output = Path(folder) / "window.tif", Path(folder) / "product.tif"
        with rasterio.open(path, "w", driver="GTiff", **tiles, **profile) as window:

            def finished() -> Path:
                window.close()
                path.unlink()  # the folder holds the product alone while it is uploaded
                return output

            yield window, str(output), finished


def block_size(grid: Grid) -> int:
    """The product's block size: BLOCK_SIZE, or the power of two that holds a smaller product whole.

    A block is compressed whole, padding included: a 100 px field in a 512 px block cost four times
    the compression time of one in a 128 px block.
    """
    side = max(grid.width, grid.height, MIN_BLOCK_SIZE)
    return min(BLOCK_SIZE, 1 << (side - 1).bit_length())


def _write_window(
    bands: SceneBands, index: Index, grid: Grid, border: BaseGeometry, dst: DatasetWriter
) -> dict[str, Any]:
    """Compute the index strip by strip into the window, then its overviews; the statistics."""
    inside_border = to_crs(border, grid.crs)
    # Pages of this array are touched only as clear values arrive: a cloudy scene costs little.
    values = np.empty(grid.width * grid.height, dtype=np.float32)
    kept = inside_pixels = clear_pixels = 0
    for row in range(0, grid.height, STRIP_ROWS):
        window = Window(0, row, grid.width, min(STRIP_ROWS, grid.height - row))
        strip = grid.window(window)
        reading = bands.reading(strip)
        inside = strip.mask(inside_border)  # while the strip's bands are read
        reflectance = reading()
        clear = reflectance.clear & inside
        computed = index.compute(reflectance.bands)
        computed[~clear] = np.nan
        inside_pixels += int(np.count_nonzero(inside))
        clear_pixels += int(np.count_nonzero(clear))
        found = computed[~np.isnan(computed)]
        values[kept : kept + found.size] = found
        kept += found.size
        dst.write(computed, 1, window=window)
        del reflectance, computed, found, clear, inside
    stats = statistics(values[:kept], clear_pixels, inside_pixels)
    del values  # before the overviews, which fill GDAL's block cache
    # Averages of the clear pixels only: GDAL leaves nodata out.
    dst.build_overviews(overview_factors(Window(0, 0, grid.width, grid.height)), Resampling.average)
    return stats


def _std(values: np.ndarray, mean: float) -> float:
    """Standard deviation (numpy's, ddof 0) in chunks: np.std holds every float64 deviation at once."""
    squares = 0.0
    for start in range(0, values.size, STD_CHUNK):
        deviations = values[start : start + STD_CHUNK].astype(np.float64) - mean
        squares += float(np.dot(deviations, deviations))
    return math.sqrt(squares / values.size)


def statistics(values: np.ndarray, clear_pixels: int, inside_pixels: int) -> dict[str, Any]:
    """Statistics of an index's clear values (reordered in place); None where there is no clear value.

    clear_fraction is the share of the border's pixels that are clear (valid and not masked by SCL);
    valid_pixels counts those with an index value (a zero denominator gives none).
    """
    stats: dict[str, Any] = {
        "valid_pixels": int(values.size),
        "clear_fraction": clear_pixels / inside_pixels if inside_pixels else 0.0,
    }
    if values.size == 0:
        return stats | dict.fromkeys(STATISTICS[2:])
    mean = float(np.mean(values, dtype=np.float64))
    std = _std(values, mean)
    low, high = float(values.min()), float(values.max())
    p10, median, p90 = (float(p) for p in np.percentile(values, [10, 50, 90], overwrite_input=True))
    found = {"mean": mean, "std": std, "min": low, "p10": p10, "median": median, "p90": p90, "max": high}
    return stats | found
