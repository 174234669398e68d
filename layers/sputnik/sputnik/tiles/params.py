"""The tile routes' parameters and their validation: tile matrix sets, tiles, sizes, bins, coordinates."""

import functools
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import HTTPException, Query
from morecantile import TileMatrixSet
from morecantile import tms as morecantile_tms
from pydantic import Field, ValidationError
from starlette.requests import Request
from titiler.core.algorithm import BaseAlgorithm
from titiler.core.algorithm import algorithms as default_algorithms
from titiler.core.dependencies import (
    ColorMapParams,
    HistogramParams,
    PartFeatureParams,
    PreviewParams,
    StatisticsParams,
    TileParams,
)
from titiler.core.resources.enums import ImageType

from sputnik.tiles.errors import PATH, QUERY, InvalidParameter

DEFAULT_TMS = "WebMercatorQuad"
MAX_SCALE = 4
MAX_TILESIZE = 1024
MAX_IMAGE_SIZE = 4096
MAX_BUFFER = 64

if TYPE_CHECKING:
    TileMatrixSetName = str
else:
    # A named enum, as the contract's schema has it (`TileMatrixSetName`).
    TileMatrixSetName = StrEnum("TileMatrixSetName", {name: name for name in morecantile_tms.list()})

TmsPath = Annotated[TileMatrixSetName, Field(description="TileMatrixSet Name (default: 'WebMercatorQuad')")]
ScaleParam = Annotated[
    int | None, Field(ge=1, le=MAX_SCALE, description="Tile size scale. 1=256x256, 2=512x512...")
]
FormatParam = Annotated[ImageType | None, Field(description="Output image type. Default is auto.")]
TileSizeParam = Annotated[
    int | None, Query(gt=0, le=MAX_TILESIZE, description="Tilesize in pixels (overrides `scale`).")
]
TileScaleParam = Annotated[
    int, Query(ge=1, le=MAX_SCALE, description="Tile size scale. 1=256x256, 2=512x512...")
]
ZoomParam = Annotated[int | None, Query(ge=0, le=30, description="Overwrite default minzoom.")]
MaxZoomParam = Annotated[int | None, Query(ge=0, le=30, description="Overwrite default maxzoom.")]


@dataclass
class BoundedTileParams(TileParams):
    """Tile buffer and padding, bounded so one request cannot ask for a giant image."""

    buffer: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_BUFFER,
            title="Tile buffer.",
            description="Buffer on each side of the given tile. It must be a multiple of `0.5`. "
            "Output **tilesize** will be expanded to `tilesize + 2 * tile_buffer` "
            "(e.g 0.5 = 257x257, 1.0 = 258x258).",
        ),
    ] = None
    padding: Annotated[
        int | None,
        Query(gt=0, le=MAX_BUFFER, title="Tile padding.", description="Padding to apply to each tile edge."),
    ] = None


MaxSize = Annotated[int, Field(gt=0, le=MAX_IMAGE_SIZE, description="Maximum image size to read onto.")]
OptionalMaxSize = Annotated[
    int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Maximum image size to read onto.")
]
Height = Annotated[int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Force output image height.")]
Width = Annotated[int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Force output image width.")]


@dataclass
class BoundedPreviewParams(PreviewParams):
    """Preview and statistics sizes, bounded."""

    max_size: MaxSize = 1024
    height: Height = None
    width: Width = None


@dataclass
class BoundedPartParams(PartFeatureParams):
    """Crop sizes, bounded (they may come from the path, as in `/crop/.../{width}x{height}.png`)."""

    max_size: OptionalMaxSize = None
    height: Height = None
    width: Width = None

    def __post_init__(self) -> None:
        """Read at the dataset's resolution as titiler does, but never onto more than MAX_IMAGE_SIZE px."""
        super().__post_init__()
        if not (self.width or self.height or self.max_size):
            self.max_size = MAX_IMAGE_SIZE


MAX_HISTOGRAM_BINS = 1000


@dataclass
class BoundedHistogramParams(HistogramParams):
    """Histogram bins and range that numpy accepts, bounded: numpy allocates whatever count is named."""

    def __post_init__(self) -> None:
        """Parse as titiler does, then refuse what numpy would fail on or cannot afford."""
        super().__post_init__()
        bins: Any = self.bins
        if isinstance(bins, list):
            count = len(bins) - 1
            if any(b >= c for b, c in itertools.pairwise(bins)) or not all(map(math.isfinite, bins)):
                raise InvalidParameter(QUERY, "histogram_bins", "bin edges must be finite and increasing")
        else:
            count = int(bins)
            if count < 1:
                raise InvalidParameter(QUERY, "histogram_bins", "histogram_bins must be at least 1")
        if count > MAX_HISTOGRAM_BINS:
            raise InvalidParameter(
                QUERY,
                "histogram_bins",
                f"histogram_bins asks for {count} bins; the limit is {MAX_HISTOGRAM_BINS}",
            )
        if self.range is not None:
            low, high = cast(list[float], self.range)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise InvalidParameter(
                    QUERY, "histogram_range", "histogram_range must be min,max with min < max"
                )


MAX_PERCENTILES = 100
MAX_CATEGORIES = 1000


@dataclass
class BoundedStatisticsParams(StatisticsParams):
    """Percentiles numpy can compute (0 to 100) and bounded lists of percentiles and categories."""

    def __post_init__(self) -> None:
        """Default as titiler does, then refuse what numpy would fail on (e.g. a 101st percentile)."""
        super().__post_init__()
        percentiles = cast(list[int], self.percentiles)
        if not all(0 <= p <= 100 for p in percentiles):
            raise InvalidParameter(QUERY, "p", "a percentile is a number from 0 to 100")
        if len(percentiles) > MAX_PERCENTILES:
            raise InvalidParameter(QUERY, "p", f"at most {MAX_PERCENTILES} percentiles")
        if self.categories is not None and len(self.categories) > MAX_CATEGORIES:
            raise InvalidParameter(QUERY, "c", f"at most {MAX_CATEGORIES} categories")


def check_tile(tms: TileMatrixSet, z: int, x: int, y: int) -> None:
    """Refuse a tile that is not in the tile matrix set (zoom range, then column and row ranges)."""
    if not tms.minzoom <= z <= tms.maxzoom:
        raise InvalidParameter(PATH, "z", f"zoom {z} is not in {tms.id} (zoom {tms.minzoom}-{tms.maxzoom})")
    matrix = tms.matrix(z)
    if not 0 <= x < matrix.matrixWidth:
        raise InvalidParameter(
            PATH, "x", f"column {x} is not in {tms.id} at zoom {z} (0-{matrix.matrixWidth - 1})"
        )
    if not 0 <= y < matrix.matrixHeight:
        raise InvalidParameter(
            PATH, "y", f"row {y} is not in {tms.id} at zoom {z} (0-{matrix.matrixHeight - 1})"
        )


def check_zooms(tms: TileMatrixSet, minzoom: int | None, maxzoom: int | None) -> None:
    """Refuse a minzoom/maxzoom override outside the tile matrix set, or a reversed pair."""
    for name, zoom in (("minzoom", minzoom), ("maxzoom", maxzoom)):
        if zoom is not None and not tms.minzoom <= zoom <= tms.maxzoom:
            raise InvalidParameter(
                QUERY, name, f"{name} {zoom} is not in {tms.id} (zoom {tms.minzoom}-{tms.maxzoom})"
            )
    if minzoom is not None and maxzoom is not None and minzoom > maxzoom:
        raise InvalidParameter(QUERY, "minzoom", "minzoom must not be above maxzoom")


def _number(request: Request, name: str) -> float | None:
    """A numeric path parameter as sent, or None when absent or not a number (FastAPI reports that)."""
    try:
        return float(request.path_params[name])
    except (KeyError, ValueError):
        return None


def check_coordinates(request: Request) -> None:
    """Refuse points and areas in the path (`lon,lat`, `minx,miny,maxx,maxy`) off the Earth or empty."""
    geographic = request.query_params.get("coord_crs") in (None, "", "epsg:4326", "EPSG:4326")
    limits = {"lon": 180.0, "lat": 90.0, "minx": 180.0, "maxx": 180.0, "miny": 90.0, "maxy": 90.0}
    values = {name: _number(request, name) for name in limits}
    for name, value in values.items():
        if value is None:
            continue
        if not math.isfinite(value):
            raise InvalidParameter(PATH, name, f"{name} must be a finite number")
        if geographic and abs(value) > limits[name]:
            raise InvalidParameter(
                PATH, name, f"{name} must be within -{limits[name]:g} and {limits[name]:g}"
            )
    for low, high in (("minx", "maxx"), ("miny", "maxy")):
        low_value, high_value = values[low], values[high]
        if low_value is not None and high_value is not None and not low_value < high_value:
            raise InvalidParameter(PATH, high, f"{high} must be greater than {low}")
    _check_zoom_overrides(request)


def _check_zoom_overrides(request: Request) -> None:
    """Refuse minzoom/maxzoom overrides beyond the route's tile matrix set, on every route that takes them.

    The set is the path's, else the `TileMatrixSetId` query parameter of the contract's TMS-less
    forms (`/tilejson.json`, `/WMTSCapabilities.xml`), else the default. A tile set's limits are
    computed per zoom: a maxzoom of 48709 overflows before any read.
    """
    zooms = {name: request.query_params.get(name) for name in ("minzoom", "maxzoom")}
    if not any(zooms.values()):
        return
    tms_id = (
        request.path_params.get("tileMatrixSetId")
        or request.path_params.get("TileMatrixSetId")
        or request.query_params.get("TileMatrixSetId")
        or DEFAULT_TMS
    )
    if tms_id not in morecantile_tms.list():
        return  # FastAPI's own validation names it
    try:
        minzoom, maxzoom = (int(z) if z else None for z in zooms.values())
    except ValueError:
        return  # not a number: FastAPI's own validation names it
    check_zooms(morecantile_tms.get(tms_id), minzoom, maxzoom)


@functools.wraps(ColorMapParams)
def colormap_dependency(*args: Any, **kwargs: Any) -> Any:
    """Titiler's colormap parameters, answering 422 for a `colormap` it cannot parse."""
    try:
        return ColorMapParams(*args, **kwargs)
    except (ValueError, TypeError, KeyError, AttributeError, HTTPException) as exc:
        raise InvalidParameter(
            QUERY, "colormap", "colormap must map band values to colors, or list [[min, max], color] pairs"
        ) from exc


def algorithm_dependency() -> Callable[..., BaseAlgorithm | None]:
    """Build titiler's post-processing dependency, answering 422 for unusable `algorithm_params`."""
    names = tuple(default_algorithms.list())

    def post_process(
        algorithm: Annotated[Literal[names] | None, Query(description="Algorithm name")] = None,  # type: ignore[valid-type]
        algorithm_params: Annotated[
            str | None, Query(description="Algorithm parameter (a JSON object)")
        ] = None,
    ) -> BaseAlgorithm | None:
        """Data post-processing options."""
        try:
            params = json.loads(algorithm_params) if algorithm_params else {}
        except ValueError as exc:
            raise InvalidParameter(QUERY, "algorithm_params", "algorithm_params must be JSON") from exc
        if not isinstance(params, dict):
            raise InvalidParameter(QUERY, "algorithm_params", "algorithm_params must be a JSON object")
        if algorithm is None:
            return None
        try:
            return default_algorithms.get(algorithm)(**params)
        except (ValidationError, TypeError, ValueError) as exc:
            message = f"algorithm_params do not suit {algorithm}"
            if isinstance(exc, ValidationError):
                message += ": " + "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
                )
            raise InvalidParameter(QUERY, "algorithm_params", message[:500]) from exc

    return post_process
