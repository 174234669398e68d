"""Cloud-free composites: many scenes reduced to one picture over a project's border, block by block.

The output grid is the border's bounding box at 10 m in the UTM zone of the border's centroid
(scenes of other zones are warped into it by `bands.read_reflectance`). It is cut into square
blocks; each block is reduced on its own from the windows of the scenes whose footprint meets it,
so a worker holds one block, never the whole grid:

- `median`: per pixel and band the median of the clear observations (as `numpy.nanmedian`);
- `max_ndvi`: per pixel every band of the observation whose NDVI is the highest;
- `least_cloud`: per pixel the clear observation of the scene with the lowest cloud cover.

A count band says how many clear observations lie behind each pixel. The median needs every
scene's window of the block at once, so the block's side follows the number of scenes: a worker's
arrays stay under a memory bound (`block_bytes`) for 5 scenes or 1,000; the two other methods
stream the scenes and keep a few arrays per block whatever their number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from sputnik.bands import Grid, read_reflectance, to_crs
from sputnik.errors import SputnikError
from sputnik.indices import INDICES, Index
from sputnik.stac import Scene
from sputnik.tiles.gdal import gdal_env

RESOLUTION = 10.0  # m: Sentinel-2's finest bands
MEDIAN, MAX_NDVI, LEAST_CLOUD = "median", "max_ndvi", "least_cloud"
METHODS = (MEDIAN, MAX_NDVI, LEAST_CLOUD)
RGB = "rgb"
RGB_BANDS = ("B04", "B03", "B02")  # red, green, blue
# What a worker may hold (bytes): the block function has 2,560 MB; Python, GDAL and its block
# cache take the rest.
DEFAULT_MEMORY = 1536 * 1024 * 1024
# Bytes a block pixel costs, measured with tracemalloc on a worker (tests/test_composite.py holds
# a worker to its bound). Per scene and output band, the median's stack (float32). Per band read,
# once per scene at a time: the masked digital numbers, their float32 reflectance and the
# arithmetic's temporaries. Per output band: the result and the count, the border mask.
STACK_BYTES = 4
READ_BYTES = 28
FIXED_BYTES = 48
MIN_SIDE, MAX_SIDE = 16, 2048  # px: GeoTIFF tiles are multiples of 16; a block is at most 20 km
ALIGN = 256  # px: blocks of this size or more are whole tiles of the assembled file
MAX_PIXELS = 20000 * 20000  # the grid: 200 x 200 km at 10 m
MAX_SCENES = 1000


class CompositeError(SputnikError):
    """A composite cannot be made as asked (too large, too many scenes, no scene, unknown product)."""


@dataclass(frozen=True)
class Block:
    """One block of the output grid: its number, its pixel window and the scenes that meet it."""

    index: int
    window: Window
    scene_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """The output grid, cut into blocks of `side` pixels."""

    grid: Grid
    side: int
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class BlockComposite:
    """A reduced block: the product's bands (float32, NaN where none) and the clear observations per pixel."""

    bands: np.ndarray  # (bands, rows, cols)
    count: np.ndarray  # (rows, cols) uint16
    inside: np.ndarray  # (rows, cols) inside the border


def output_bands(product: str) -> tuple[str, ...]:
    """Names of the product's bands in the composite (the count band comes after them)."""
    return RGB_BANDS if product == RGB else (product,)


def read_bands(product: str, method: str) -> tuple[str, ...]:
    """The archive bands a scene is read in for this product and method."""
    needed = RGB_BANDS if product == RGB else product_index(product).bands
    if method == MAX_NDVI:
        needed = (*needed, *INDICES["ndvi"].bands)
    return tuple(dict.fromkeys(needed))


def product_index(product: str) -> Index:
    """The named index a product is (as s2_index names them), else CompositeError."""
    index = INDICES.get(product)
    if index is None:
        raise CompositeError(f"unknown product {product!r}; products are rgb, {', '.join(INDICES)}")
    return index


def utm_crs(border: BaseGeometry) -> CRS:
    """The UTM zone (WGS 84) of the border's centroid."""
    point = border.centroid
    zone = min(60, max(1, math.floor((point.x + 180.0) / 6.0) + 1))
    return CRS.from_epsg((32600 if point.y >= 0 else 32700) + zone)


def output_grid(border: BaseGeometry) -> Grid:
    """The border's bounding box at 10 m in its centroid's UTM zone, on whole multiples of 10 m."""
    crs = utm_crs(border)
    left, bottom, right, top = to_crs(border, crs).bounds
    left = math.floor(left / RESOLUTION) * RESOLUTION
    top = math.ceil(top / RESOLUTION) * RESOLUTION
    width = max(1, math.ceil((right - left) / RESOLUTION))
    height = max(1, math.ceil((top - bottom) / RESOLUTION))
    if width * height > MAX_PIXELS:
        raise CompositeError(
            f"the border's bounding box is {width} x {height} pixels at 10 m, over the limit of "
            f"{MAX_PIXELS:,} pixels (200 x 200 km)"
        )
    return Grid(crs, Affine(RESOLUTION, 0.0, left, 0.0, -RESOLUTION, top), width, height)


def pixel_bytes(method: str, scenes: int, bands: int, read: int) -> int:
    """Bytes a worker holds per block pixel: the median's stack grows with the scenes, the others do not."""
    stack = STACK_BYTES * scenes * bands if method == MEDIAN else STACK_BYTES * 2 * (bands + 1)
    return stack + READ_BYTES * read + FIXED_BYTES + STACK_BYTES * bands


def block_side(method: str, scenes: int, bands: int, read: int, memory: int = DEFAULT_MEMORY) -> int:
    """The largest block side (px) whose pixels fit in `memory` bytes: whole tiles when large enough."""
    side = math.isqrt(memory // pixel_bytes(method, max(1, scenes), bands, read))
    if side < MIN_SIDE:
        raise CompositeError(
            f"{scenes} scenes do not fit a worker's memory even in blocks of {MIN_SIDE} pixels: "
            "choose a shorter period or a lower max_scene_cloud"
        )
    side = min(side, MAX_SIDE)
    return side // ALIGN * ALIGN if side >= ALIGN else side // MIN_SIDE * MIN_SIDE


def plan(
    border: BaseGeometry,
    footprints: Sequence[tuple[str, BaseGeometry]],
    product: str,
    method: str,
    memory: int = DEFAULT_MEMORY,
) -> Plan:
    """Cut the border's grid into blocks; each block names the scenes (in the order given) that meet it.

    `footprints` are (scene id, lon/lat footprint); blocks that do not meet the border are left out.
    """
    if len(footprints) > MAX_SCENES:
        raise CompositeError(
            f"{len(footprints)} scenes are more than {MAX_SCENES} a composite takes: "
            "choose a shorter period or a lower max_scene_cloud"
        )
    grid = output_grid(border)
    side = block_side(
        method, len(footprints), len(output_bands(product)), len(read_bands(product, method)) + 1, memory
    )
    inside = to_crs(border, grid.crs)
    shapes = [to_crs(footprint, grid.crs) for _, footprint in footprints]
    shapely.prepare(inside)
    blocks: list[Block] = []
    for row in range(0, grid.height, side):
        for col in range(0, grid.width, side):
            window = Window(col, row, min(side, grid.width - col), min(side, grid.height - row))
            square = box(*grid.window(window).bounds)
            if not inside.intersects(square):
                continue
            met = tuple(
                sid for (sid, _), shape in zip(footprints, shapes, strict=True) if shape.intersects(square)
            )
            blocks.append(Block(len(blocks), window, met))
    return Plan(grid, side, tuple(blocks))


def _values(
    scene: Scene, product: str, method: str, grid: Grid
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One scene on the block: the product's values (bands, rows, cols), where clear, and NDVI (max_ndvi)."""
    read = read_reflectance(scene, read_bands(product, method), grid)
    if product == RGB:
        values = np.stack([read.bands[band] for band in RGB_BANDS])
    else:
        values = product_index(product).compute(read.bands)[np.newaxis]
    ndvi = INDICES["ndvi"].compute(read.bands) if method == MAX_NDVI else None
    clear = read.clear & ~np.isnan(values).any(axis=0)
    values[:, ~clear] = np.nan
    return values, clear, ndvi


def nanmedian_sorted(stack: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over axis 0 of a stack with NaN where nothing was seen, as numpy.nanmedian; sorts in place.

    Sorting puts NaN last, so the middle of the `count` observations is at (count - 1) // 2 and
    count // 2; the median is their mean. One pass, no copy of the stack (nanmedian makes one).
    """
    if stack.shape[0] == 0:
        return np.full(stack.shape[1:], np.nan, dtype=np.float32)
    stack.sort(axis=0)
    last = stack.shape[0] - 1
    low = np.clip((count.astype(np.int64) - 1) // 2, 0, last)
    high = np.clip(count.astype(np.int64) // 2, 0, last)
    a = np.take_along_axis(stack, low[np.newaxis, np.newaxis], axis=0)[0]
    b = np.take_along_axis(stack, high[np.newaxis, np.newaxis], axis=0)[0]
    median = (a + b) / np.float32(2)
    median[:, count == 0] = np.nan
    return median.astype(np.float32, copy=False)


def composite_block(
    scenes: Sequence[Scene], product: str, method: str, grid: Grid, border: BaseGeometry
) -> BlockComposite:
    """Reduce the scenes over one block grid; `scenes` come in order of preference (least_cloud, ties)."""
    if method not in METHODS:
        raise CompositeError(f"unknown method {method!r}")
    bands = len(output_bands(product))
    inside = grid.border_mask(border)
    count = np.zeros(grid.shape, dtype=np.uint16)
    if method == MEDIAN:
        stack = np.full((len(scenes), bands, *grid.shape), np.nan, dtype=np.float32)
    result = np.full((bands, *grid.shape), np.nan, dtype=np.float32)
    best = np.full(grid.shape, -np.inf, dtype=np.float32)
    # One rasterio environment for every read: outside one, each open would build a boto3 session.
    with rasterio.Env(**gdal_env()):
        for i, scene in enumerate(scenes):
            values, clear, ndvi = _values(scene, product, method, grid)
            count += clear
            if method == MEDIAN:
                stack[i] = values
            elif method == MAX_NDVI:
                assert ndvi is not None
                better = clear & (ndvi > best)  # strictly: on a tie the earlier scene stays
                best[better] = ndvi[better]
                result[:, better] = values[:, better]
            else:
                fill = clear & np.isnan(result[0])
                result[:, fill] = values[:, fill]
            del values, clear, ndvi
    if method == MEDIAN:
        result = nanmedian_sorted(stack, count)
        del stack
    result[:, ~inside] = np.nan
    return BlockComposite(bands=result, count=count, inside=inside)


def file_profile(grid: Grid, bands: int) -> dict[str, object]:
    """GeoTIFF profile of a composite or its blocks: float32, NaN nodata, DEFLATE, float predictor."""
    return {
        "driver": "GTiff",
        "dtype": "float32",
        "count": bands,
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "compress": "deflate",
        "predictor": 3,
    }


def grid_json(grid: Grid) -> dict[str, object]:
    """A grid as the state machine carries it."""
    return {
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "width": grid.width,
        "height": grid.height,
    }


def grid_from_json(data: dict[str, object]) -> Grid:
    """The grid `grid_json` wrote."""
    transform = [float(v) for v in data["transform"]]  # type: ignore[attr-defined]
    return Grid(
        CRS.from_string(str(data["crs"])),
        Affine(*transform),
        int(data["width"]),  # type: ignore[call-overload]
        int(data["height"]),  # type: ignore[call-overload]
    )


def window_bounds(grid: Grid, window: Window) -> tuple[float, float, float, float]:
    """A window's extent in the grid's CRS."""
    return grid.window(window).bounds


def lonlat_bounds(grid: Grid, window: Window) -> tuple[float, float, float, float]:
    """A window's extent in lon/lat (the bounds of its corners)."""
    left, bottom, right, top = window_bounds(grid, window)
    xs, ys = warp_transform(
        grid.crs, CRS.from_epsg(4326), [left, right, left, right], [bottom, bottom, top, top]
    )
    return (round(min(xs), 6), round(min(ys), 6), round(max(xs), 6), round(max(ys), 6))
