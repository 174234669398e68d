"""One RGB product: a scene's TCI window over a project's border, masked outside it, as a COG.

How it is built (figures in BENCHMARKS.md, "RGB product"):

- the window is the border's bounding box in the scene's CRS, snapped outward to the TCI's pixel
  grid and clipped to the scene, so product pixels are source pixels (no resampling);
- the window is copied in strips of rows into an uncompressed tiled GeoTIFF in a temporary folder,
  with an internal mask (inside the border and valid in the source) and average overviews; GDAL's
  COG driver then compresses it and lays the file out. Memory stays at a few strips plus GDAL's
  block cache whatever the window's size; the temporary folder holds 3 bytes a pixel (380 MB
  for a whole tile) plus the product;
- JPEG (YCbCr, quality 90) with the internal mask: on the real scene 2.6-4.5 times smaller than the
  lossless choices (DEFLATE or ZSTD with predictor, WEBP lossless) at a mean error of about 2
  levels; rio-tiler reads it like any COG. The product is for display (the TCI is a rendering);
- pixels outside the border keep their source values under the mask: zeroed, they made JPEG ring
  into the pixels just inside the border (mean error 5.5 instead of 2.0 within 3 pixels of it).
"""

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import rasterio
import rasterio.shutil
import shapely
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.features import geometry_mask
from rasterio.io import DatasetReader
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from sputnik import aws
from sputnik.bands import grid_problem
from sputnik.errors import SputnikError
from sputnik.geo import from_wkt
from sputnik.tiles.gdal import configure_gdal, gdal_env

# A whole Sentinel-2 tile at 10 m: the largest window a real TCI can give.
MAX_PIXELS = 10980 * 10980
STRIP_ROWS = 1024  # rows copied at a time: 3 x 1024 x 10980 bytes (34 MB) for a full-width window
BLOCK_SIZE = 512
OVERVIEW_MIN_SIZE = 256  # the smallest overview is at most this wide: one web tile at low zoom
JPEG_QUALITY = 90
GRID_TOLERANCE = 1e-3  # pixels
DENSIFY_DEGREES = 0.001  # about 100 m: border edges are straight in lon/lat, curved in UTM
CREATION_OPTIONS = {
    "COMPRESS": "JPEG",
    "QUALITY": str(JPEG_QUALITY),
    "BLOCKSIZE": str(BLOCK_SIZE),
    # The window's own overviews, built uncompressed beside it: 4-5 times faster here than letting the
    # COG driver build them (it writes them compressed to a temporary file and decodes them again).
    "OVERVIEWS": "FORCE_USE_EXISTING",
    "NUM_THREADS": "ALL_CPUS",
}
# Decode the source's blocks on every core; the block cache is a bound on memory (bytes, see
# sputnik.tiles.gdal on GDAL_CACHEMAX through rasterio.Env).
PRODUCT_GDAL_OPTIONS = {
    "GDAL_NUM_THREADS": "ALL_CPUS",
    "GDAL_CACHEMAX": 256 * 1024 * 1024,
    # A build is batch work with minutes to run, not a tile with API Gateway's 29 s: a slow read
    # (ten builds at once on one store) waits longer and is retried more before a scene fails.
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_MAX_RETRY": "4",
}


# GDAL's own messages name the URL or path: the error a proc shows must not.
UNREADABLE = "cannot read the source TCI: missing, not a GeoTIFF, corrupt or truncated"


class ProductError(SputnikError):
    """The product cannot be built from this source and border (unreadable, not over the scene, too large)."""


@dataclass(frozen=True)
class RgbProduct:
    """What was written: the product's size in pixels and in bytes."""

    width: int
    height: int
    bytes_written: int


def build_rgb_product(source: str, border_wkt: str, destination: str) -> RgbProduct:
    """Write the COG of `source`'s TCI window over the border (lon/lat WKT) to `destination`.

    `source` and `destination` are s3:// URLs or local paths; a destination is overwritten whole.
    """
    configure_gdal()  # the S3 settings the tile functions use (idempotent)
    border = parse_border(border_wkt)
    with tempfile.TemporaryDirectory(prefix="rgb-product-") as folder:
        output = Path(folder) / "product.tif"
        try:
            with rasterio.Env(**gdal_env(), **PRODUCT_GDAL_OPTIONS):
                with _open(source) as src:
                    window, inside = _window(src, border)
                    masked = Path(folder) / "window.tif"
                    _copy_masked(src, window, inside, masked)
                rasterio.shutil.copy(str(masked), str(output), driver="COG", **CREATION_OPTIONS)
                masked.unlink()
        except RasterioError as exc:
            raise ProductError(UNREADABLE) from exc
        size = output.stat().st_size
        publish(output, destination)
    return RgbProduct(width=int(window.width), height=int(window.height), bytes_written=size)


def parse_border(border_wkt: str) -> BaseGeometry:
    """Parse the border WKT; anything but a non-empty (Multi)Polygon is a ProductError."""
    try:
        border = from_wkt(border_wkt)
    except shapely.errors.GEOSException as exc:
        raise ProductError("border is not valid WKT") from exc
    if border.is_empty or border.geom_type not in ("Polygon", "MultiPolygon"):
        raise ProductError("border must be a non-empty Polygon or MultiPolygon")
    return border


def _open(source: str) -> DatasetReader:
    """Open a GeoTIFF source (GTiff only) and check it is an 8-bit 3-band TCI in a projected CRS."""
    try:
        # GTiff only: GDAL would otherwise pick a driver from the bytes (a VRT could name any file).
        src = rasterio.open(source, driver="GTiff")
    except RasterioError as exc:
        raise ProductError(UNREADABLE) from exc
    try:
        if src.count != 3 or any(dtype != "uint8" for dtype in src.dtypes):
            raise ProductError(f"source is not an 8-bit RGB TCI ({src.count} bands of {src.dtypes[0]})")
        problem = grid_problem(src)
        if problem:
            raise ProductError(problem)
    except BaseException:
        src.close()
        raise
    return src


def _window(src: DatasetReader, border: BaseGeometry) -> tuple[Window, BaseGeometry]:
    """The pixel window over the border's bounding box and the border in the scene's CRS."""
    dense = shapely.segmentize(border, DENSIFY_DEGREES)
    inside = shape(transform_geom(CRS.from_epsg(4326), src.crs, mapping(dense)))
    if not inside.intersects(box(*src.bounds)):
        raise ProductError("border is not over the scene")
    left, bottom, right, top = inside.bounds
    inverse = ~src.transform
    col0, row0 = inverse @ (left, top)
    col1, row1 = inverse @ (right, bottom)
    # Outward to whole pixels, then inside the scene; an edge within GRID_TOLERANCE of a grid line
    # is on it (a border drawn on the grid comes back from lon/lat a few nanometres off).
    col0 = max(0, math.floor(col0 + GRID_TOLERANCE))
    row0 = max(0, math.floor(row0 + GRID_TOLERANCE))
    col1 = min(src.width, math.ceil(col1 - GRID_TOLERANCE))
    row1 = min(src.height, math.ceil(row1 - GRID_TOLERANCE))
    width, height = col1 - col0, row1 - row0
    if width <= 0 or height <= 0:
        raise ProductError("border is not over the scene")
    if width * height > MAX_PIXELS:
        raise ProductError(f"window of {width} x {height} pixels is over the limit of {MAX_PIXELS:,} pixels")
    return Window(col0, row0, width, height), inside


def overview_factors(window: Window) -> list[int]:
    """Halvings down to about OVERVIEW_MIN_SIZE pixels, at least one: even a small product has a pyramid."""
    count = max(1, math.ceil(math.log2(max(window.width, window.height) / OVERVIEW_MIN_SIZE)))
    return [2**level for level in range(1, count + 1)]


def _strips(window: Window) -> Iterator[tuple[Window, Window]]:
    """Pairs of (source window, product window) covering the window in strips of rows."""
    for row in range(0, int(window.height), STRIP_ROWS):
        rows = min(STRIP_ROWS, int(window.height) - row)
        yield (
            Window(window.col_off, window.row_off + row, window.width, rows),
            Window(0, row, window.width, rows),
        )


def _copy_masked(src: DatasetReader, window: Window, inside: BaseGeometry, path: Path) -> None:
    """Copy the window into an uncompressed tiled GeoTIFF with overviews, masked outside border and source."""
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 3,
        "width": int(window.width),
        "height": int(window.height),
        "crs": src.crs,
        "transform": src.window_transform(window),
        "tiled": True,
        "blockxsize": BLOCK_SIZE,
        "blockysize": BLOCK_SIZE,
        "interleave": "pixel",
        "photometric": "RGB",
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        for source_strip, product_strip in _strips(window):
            shape_ = (int(source_strip.height), int(source_strip.width))
            in_border = geometry_mask(
                [inside], out_shape=shape_, transform=src.window_transform(source_strip), invert=True
            )
            valid = src.dataset_mask(window=source_strip)
            valid[~in_border] = 0
            dst.write(src.read(window=source_strip), window=product_strip)
            dst.write_mask(valid, window=product_strip)
        # Averages of valid pixels only: GDAL weighs each by the internal mask.
        dst.build_overviews(overview_factors(window), Resampling.average)


def publish(body: Path | bytes, destination: str) -> None:
    """Put the finished file (path or bytes) at `destination` in one step: an S3 upload or atomic rename."""
    if destination.startswith("s3://"):
        bucket, _, key = destination.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise ProductError("destination must be s3://bucket/key or a local path")
        extra = {"ContentType": "image/tiff"}
        if isinstance(body, bytes):
            aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)
        else:
            aws.client("s3").upload_file(str(body), bucket, key, ExtraArgs=extra)
        return
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name beside the target, then rename: readers never see half a file.
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    os.close(fd)
    try:
        if isinstance(body, bytes):
            Path(partial).write_bytes(body)
        else:
            shutil.copyfile(body, partial)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
