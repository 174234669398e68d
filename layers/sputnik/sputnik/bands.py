"""Sentinel-2 L2A bands as reflectance on a chosen grid, with the scene classification's clouds masked.

What the index and composite tasks read, one scene at a time:

- a band's digital numbers become reflectance by the item's own `raster:bands` scale and offset
  (Earth Search v1); without them (v0 items, old records) by the processing baseline: from 04.00
  (2022-01-25 on) L2A numbers carry +1000 (BOA_ADD_OFFSET), so the same surface reads the same
  reflectance before and after the change;
- every band is read onto one target grid (`Grid`) with nearest resampling, so only the source
  blocks under the grid are fetched; on the scene's own 10 m grid a 10 m band's pixels are its
  source pixels, and 20 m bands and `SCL` are repeated 2 x 2 (never interpolated). Such a grid is
  read as a plain window at the band's own resolution and repeated in numpy; any other (another
  zone's) through a warped VRT, which picks the same pixels at several times the cost;
- a scene's bands are opened once for all the strips of a window, opened and read a thread a band,
  each band read as soon as it is open: GDAL fetches and decodes without holding the GIL, so the
  round trips and the decoding overlap;
- a pixel is clear where every band has data and its `SCL` class is not in the mask (by default no
  data, defective, cloud shadow, cloud medium and high probability, cirrus).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.features import geometry_mask
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_geom
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from sputnik.band_names import (  # noqa: F401 (names of bands, light enough for any function)
    CLOUDY_SCL,
    REFLECTANCE_BANDS,
    REFLECTANCE_SCALE,
    RESOLUTION,
    SCL,
    SCL_CLASSES,
    V0_TO_V1,
    BandError,
    band_name,
)
from sputnik.errors import Forbidden, SputnikError
from sputnik.stac import Scene
from sputnik.tiles.urls import archive_url

BASELINE_OFFSET = -0.1  # reflectance of BOA_ADD_OFFSET (-1000 digital numbers) from baseline 04.00
BASELINE_CHANGE = "04.00"
BASELINE_CHANGE_DATE = "2022-01-25"
DENSIFY_DEGREES = 0.001  # about 100 m: border edges are straight in lon/lat, curved in UTM
GRID_TOLERANCE = 1e-3  # pixels
# A source whose blocks are larger (e.g. one 8192 px tile) would make GDAL decode that much for
# every read: refused before any pixel is read. (GDAL reads a single-strip image row by row.)
MAX_BLOCK_PIXELS = 4096 * 4096
# Bands read at once (a named index reads at most three bands and SCL).
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bands")


def scaling(scene: Scene, band: str) -> tuple[float, float]:
    """(scale, offset) taking the band's digital numbers to reflectance, from the item or its baseline."""
    band = band_name(band)
    if band in scene.scaling:
        return scene.scaling[band]
    if scene.processing_baseline is not None:
        newer = scene.processing_baseline >= BASELINE_CHANGE
    else:
        newer = scene.date >= BASELINE_CHANGE_DATE
    return REFLECTANCE_SCALE, BASELINE_OFFSET if newer else 0.0


def band_url(scene: Scene, band: str) -> str:
    """The s3:// URL of a scene's band that GDAL may open (the tiler's archive policy), else BandError."""
    band = band_name(band)
    try:
        href = scene.asset_href(band)
    except SputnikError as exc:
        raise BandError(f"scene {scene.scene_id} has no {band} ({V0_TO_V1.get(band, band)}) asset") from exc
    try:
        return archive_url(href)
    except Forbidden as exc:
        raise BandError(f"scene {scene.scene_id}: its {band} is not an object of an archive bucket") from exc


@dataclass(frozen=True)
class Grid:
    """A target pixel grid: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return min(left, right), min(top, bottom), max(left, right), max(top, bottom)

    def window(self, window: Window) -> Grid:
        """The part of this grid under a pixel window."""
        return Grid(
            self.crs,
            rasterio.windows.transform(window, self.transform),
            int(window.width),
            int(window.height),
        )

    def border_mask(self, border: BaseGeometry) -> np.ndarray:
        """True inside a lon/lat border, on this grid."""
        return self.mask(to_crs(border, self.crs))

    def mask(self, shape: BaseGeometry) -> np.ndarray:
        """True inside a geometry in this grid's CRS (a pixel whose centre is inside)."""
        return geometry_mask([shape], out_shape=self.shape, transform=self.transform, invert=True)


def to_crs(border: BaseGeometry, crs: CRS) -> BaseGeometry:
    """A lon/lat geometry in `crs`, densified first so that its edges keep their course."""
    # A build projects the same border for its grid and for its mask: the second is a look-up.
    return _projected(border.wkb, crs.to_wkt())


@functools.lru_cache(maxsize=8)
def _projected(wkb: bytes, crs_wkt: str) -> BaseGeometry:
    """to_crs of a geometry's WKB (shapely geometries are immutable: the cached one is shared)."""
    dense = shapely.segmentize(shapely.from_wkb(wkb), DENSIFY_DEGREES)
    return shape(transform_geom(CRS.from_epsg(4326), CRS.from_wkt(crs_wkt), mapping(dense)))


def border_grid(source: DatasetReader | Grid, border: BaseGeometry) -> Grid:
    """The source's own pixel grid over the border's bounding box, snapped outward, clipped to the source."""
    crs, transform = source.crs, source.transform
    width, height = source.width, source.height
    inside = to_crs(border, crs)
    if not inside.intersects(box(*rasterio.transform.array_bounds(height, width, transform))):
        raise BandError("border is not over the scene")
    left, bottom, right, top = inside.bounds
    inverse = ~transform
    col0, row0 = inverse @ (left, top)
    col1, row1 = inverse @ (right, bottom)
    col0 = max(0, math.floor(col0 + GRID_TOLERANCE))
    row0 = max(0, math.floor(row0 + GRID_TOLERANCE))
    col1 = min(width, math.ceil(col1 - GRID_TOLERANCE))
    row1 = min(height, math.ceil(row1 - GRID_TOLERANCE))
    if col1 <= col0 or row1 <= row0:
        raise BandError("border is not over the scene")
    window = Window(col0, row0, col1 - col0, row1 - row0)
    return Grid(crs, rasterio.windows.transform(window, transform), int(window.width), int(window.height))


@dataclass(frozen=True)
class Reflectance:
    """Bands of one scene on one grid: float32 reflectance, NaN wherever the pixel is not clear."""

    bands: Mapping[str, np.ndarray]
    valid: np.ndarray  # every band has data
    clear: np.ndarray  # valid, and its SCL class is not masked


def grid_problem(src: DatasetReader) -> str | None:
    """What makes a source unfit for windowed reads (no projected CRS, not north-up, huge blocks), if any."""
    if src.crs is None or not src.crs.is_projected:
        return "source has no projected CRS"
    if not src.transform.is_rectilinear or src.transform.e >= 0:
        return "source is not a north-up image"
    if any(rows * cols > MAX_BLOCK_PIXELS for rows, cols in src.block_shapes):
        return "source blocks are too large to read in windows"
    return None


def gdal_path(url: str) -> str:
    """GDAL's own name of an s3:// URL (`/vsis3/bucket/key`), any other path as it is.

    Opening the s3:// form, rasterio builds a boto3 session first (about 50 ms, four times a scene);
    GDAL signs its requests itself from the same credentials.
    """
    return "/vsis3/" + url.removeprefix("s3://") if url.startswith("s3://") else url


def _open_checked(url: str) -> DatasetReader:
    """Open one band (GeoTIFF only), checked to be a single band in a projected, north-up grid."""
    try:
        # GTiff only: GDAL would otherwise pick a driver from the bytes (a VRT could name any file).
        src = rasterio.open(gdal_path(url), driver="GTiff")
    except RasterioError as exc:
        raise BandError("cannot read a band: missing, not a GeoTIFF, corrupt or truncated") from exc
    problem = f"a band file has {src.count} bands, not one" if src.count != 1 else None
    if problem is None and (grid := grid_problem(src)):
        problem = f"band {grid}"
    if problem:
        src.close()
        raise BandError(problem)
    return src


@contextmanager
def open_band(url: str) -> Iterator[DatasetReader]:
    """Open one band (GeoTIFF only) and check it is a single band in a projected, north-up grid."""
    with _open_checked(url) as src:
        yield src


def finest_band(bands: Iterable[str]) -> str:
    """The archive name of the finest of `bands` (10 m before 20 m): the band whose pixels make the grid."""
    return min((band_name(band) for band in bands), key=lambda band: RESOLUTION[band])


def scene_grid(scene: Scene, bands: Sequence[str], border: BaseGeometry) -> Grid:
    """The grid of the scene's finest band among `bands` over the border (its 10 m grid for 10 m bands)."""
    with open_band(band_url(scene, finest_band(bands))) as src:
        return border_grid(src, border)


def _aligned(src: DatasetReader, grid: Grid) -> tuple[int, int, int] | None:
    """(factor, row, col): a source pixel is factor x factor grid pixels; the grid starts at their (row, col).

    None when the grid needs a warp: another CRS, a pixel size that does not divide the source's, or
    an origin off the source's pixel edges.
    """
    if src.crs != grid.crs:
        return None
    source, target = src.transform, grid.transform
    if source.b or source.d or target.b or target.d:
        return None
    factor = round(source.a / target.a)
    if factor < 1 or abs(source.a - factor * target.a) > 1e-9 * abs(source.a):
        return None
    if abs(source.e - factor * target.e) > 1e-9 * abs(source.e):
        return None
    col, row = (target.c - source.c) / target.a, (target.f - source.f) / target.e
    if abs(col - round(col)) > GRID_TOLERANCE or abs(row - round(row)) > GRID_TOLERANCE:
        return None
    return factor, round(row), round(col)


def _read_aligned(
    src: DatasetReader, grid: Grid, factor: int, row: int, col: int, nodata: float
) -> np.ndarray:
    """The source pixels under an aligned grid: read at the source's resolution, repeated factor x factor."""
    # Grid pixel (i, j) lies inside source pixel ((row + i) // factor, (col + j) // factor).
    top, left = row // factor, col // factor
    bottom, right = -(-(row + grid.height) // factor), -(-(col + grid.width) // factor)
    rows, cols = slice(max(top, 0), min(bottom, src.height)), slice(max(left, 0), min(right, src.width))
    window = Window.from_slices(rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None
    if window is not None and (rows.start, rows.stop, cols.start, cols.stop) == (top, bottom, left, right):
        numbers = src.read(1, window=window)
    else:
        # Part of the grid is outside the source: no data there, as a warp would give.
        numbers = np.full((bottom - top, right - left), nodata, dtype=src.dtypes[0])
        if window is not None:
            numbers[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = src.read(
                1, window=window
            )
    if factor > 1:
        numbers = numbers.repeat(factor, axis=0).repeat(factor, axis=1)
    first_row, first_col = row - top * factor, col - left * factor
    return numbers[first_row : first_row + grid.height, first_col : first_col + grid.width]


def read_numbers(src: DatasetReader, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """An open band's digital numbers on `grid` (nearest) and where the source has data there.

    On the source's own grid, or one that divides its pixels evenly (SCL at 20 m onto a 10 m grid),
    the source window is read as it is and repeated: the same pixels a warp would pick, without one.
    """
    # The archive's bands say nodata 0 in their items whether or not the file does.
    nodata = src.nodata if src.nodata is not None else 0
    try:
        aligned = _aligned(src, grid)
        if aligned is not None:
            numbers = _read_aligned(src, grid, *aligned, nodata)
        else:
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=Resampling.nearest,
                src_nodata=nodata,
                nodata=nodata,
            ) as vrt:
                numbers = vrt.read(1)
    except RasterioError as exc:
        raise BandError("cannot read a band: missing, not a GeoTIFF, corrupt or truncated") from exc
    has_data = ~np.isnan(numbers) if math.isnan(nodata) else numbers != nodata
    return numbers, has_data


@dataclass(frozen=True)
class SceneBands:
    """A scene's bands, and SCL unless `mask` is None, each opening in its own handle, to read onto grids."""

    scene: Scene
    opening: Mapping[str, Future[DatasetReader]]  # by archive band name: reflectance bands, then SCL
    mask: Sequence[int] | None
    reads: list[Future[tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)  # not yet waited for

    def source(self, band: str) -> DatasetReader:
        """The band's open dataset, once its open has ended (BandError if it failed)."""
        return self.opening[band].result()

    def grid(self, border: BaseGeometry) -> Grid:
        """The grid of the finest reflectance band over the border (as `scene_grid`)."""
        return border_grid(self.source(finest_band(band for band in self.opening if band != SCL)), border)

    def read(self, grid: Grid) -> Reflectance:
        """The bands as reflectance on `grid`; pixels whose SCL class is in the mask are not clear."""
        return self.reading(grid)()

    def reading(self, grid: Grid) -> Callable[[], Reflectance]:
        """Start reading the bands onto `grid` (the last reading waited for); what waits for them."""
        # A thread a band, each reading as soon as its own band is open: GDAL fetches and decodes
        # without the GIL, so the bands' round trips and decoding overlap. A handle is used by one
        # thread at a time; every read ends before an error is raised (and the handles closed).
        reading = {band: _POOL.submit(self._read_one, band, grid) for band in self.opening}
        self.reads[:] = [future for future in self.reads if not future.done()] + list(reading.values())

        def read() -> Reflectance:
            wait(reading.values())
            return self._reflectance(grid, {band: future.result() for band, future in reading.items()})

        return read

    def _reflectance(self, grid: Grid, read: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Reflectance:
        """The bands read, NaN where not clear: every band has data and SCL's class is not masked."""
        valid = np.ones(grid.shape, dtype=bool)
        values: dict[str, np.ndarray] = {}
        for band, (numbers, has_data) in read.items():
            if band != SCL:
                values[band] = numbers
                valid &= has_data
        clear = valid.copy()
        if self.mask is not None:
            # Where SCL has no data (outside its scene) it reads class 0, "no data".
            classes, has_data = read[SCL]
            classes[~has_data] = 0
            clear &= ~np.isin(classes, np.asarray(list(self.mask), dtype=classes.dtype))
        for array in values.values():
            array[~clear] = np.nan
        return Reflectance(bands=values, valid=valid, clear=clear)

    def _read_one(self, band: str, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """One band on the grid, reflectance (float32) or SCL's classes, and where it has data."""
        numbers, has_data = read_numbers(self.source(band), grid)
        if band == SCL:
            return numbers, has_data
        scale, offset = scaling(self.scene, band)
        # In place: one float32 array a band, no temporaries (a whole tile's strip is 22 MB a band).
        reflectance = numbers.astype(np.float32)
        reflectance *= np.float32(scale)
        reflectance += np.float32(offset)
        return reflectance, has_data


@contextmanager
def open_scene_bands(
    scene: Scene, bands: Sequence[str], mask: Sequence[int] | None = CLOUDY_SCL
) -> Iterator[SceneBands]:
    """Start opening the scene's bands (and SCL unless `mask` is None) at once; closed at the block's end.

    `mask=None` reads no SCL: clear is then valid. An empty `mask` reads SCL but masks no class.
    A band that cannot be opened raises BandError where it is first used.
    """
    names = list(dict.fromkeys(band_name(band) for band in bands))
    if SCL in names:
        raise BandError("SCL is a classification, not a reflectance band")
    # Every URL is checked before anything is opened.
    urls = {band: band_url(scene, band) for band in [*names, *([SCL] if mask is not None else [])]}
    # Opened in the background, each header read overlapping the others and the first reads. The
    # reads are submitted after every open, so the pool never waits on work queued behind it.
    opening = {band: _POOL.submit(_open_checked, url) for band, url in urls.items()}
    opened = SceneBands(scene, opening, mask)
    try:
        yield opened
    finally:
        # No handle is closed under a read still running (one started ahead, say, then an error).
        wait([*opening.values(), *opened.reads])
        for future in opening.values():
            if future.exception() is None:
                future.result().close()


def read_reflectance(
    scene: Scene, bands: Sequence[str], grid: Grid, mask: Sequence[int] | None = CLOUDY_SCL
) -> Reflectance:
    """The scene's bands as reflectance on `grid`; pixels whose SCL class is in `mask` are not clear.

    `mask=None` reads no SCL: clear is then valid. An empty `mask` reads SCL but masks no class.
    """
    with open_scene_bands(scene, bands, mask) as opened:
        return opened.read(grid)
