"""The /cog factory: titiler's TilerFactory behind the URL policy, with the contract's paths and checks."""

from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import attr
import numpy
import rasterio
from attrs import define, field
from fastapi import Depends, Path, Query
from pydantic import BaseModel, Field
from rasterio.dtypes import dtype_ranges
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import BaseReader
from rio_tiler.models import ImageData
from rio_tiler.utils import CRS_to_uri, linear_rescale
from starlette.requests import Request
from starlette.responses import Response
from titiler.core.algorithm import BaseAlgorithm
from titiler.core.dependencies import (
    DefaultDependency,
    HistogramParams,
    PartFeatureParams,
    PreviewParams,
    TileParams,
)
from titiler.core.factory import TilerFactory, img_endpoint_params
from titiler.core.models.mapbox import TileJSON
from titiler.core.resources.enums import ImageType
from titiler.core.resources.responses import XMLResponse
from titiler.core.utils import render_image

from sputnik.tiles.caching import tile_response
from sputnik.tiles.errors import QUERY, InvalidParameter
from sputnik.tiles.gdal import gdal_env
from sputnik.tiles.params import (
    DEFAULT_TMS,
    BoundedHistogramParams,
    BoundedPartParams,
    BoundedPreviewParams,
    BoundedStatisticsParams,
    BoundedTileParams,
    FormatParam,
    MaxZoomParam,
    ScaleParam,
    TileMatrixSetName,
    TileScaleParam,
    TileSizeParam,
    TmsPath,
    ZoomParam,
    algorithm_dependency,
    check_coordinates,
    check_tile,
    colormap_dependency,
)
from sputnik.tiles.reader import TileReader
from sputnik.tiles.urls import policy_dependency
from sputnik.tiles.wmts import wmts_capabilities

# Lambda answers at most 6 MB, and an image travels base64-encoded (a third larger): 4 MiB of image.
MAX_IMAGE_BYTES = 4 * 2**20
# The sample types each format holds (titiler's table; with the format left to titiler, bytes only).
FORMAT_DTYPES: dict[ImageType | None, tuple[str, ...]] = {
    None: ("uint8",),
    ImageType.png: ("uint8", "uint16"),
    ImageType.jpeg: ("uint8",),
    ImageType.jpg: ("uint8",),
    ImageType.webp: ("uint8",),
    ImageType.jp2: ("uint8", "int16", "uint16"),
}


def as_bytes(image: ImageData) -> ImageData:
    """An image's bands rescaled onto 0-255 from its statistics (else its type's range), masked pixels 0.

    titiler does this itself but indexes the image's one mask per band (as rows of it): wrong
    pixels, and an IndexError (a 500) for an image with fewer rows than bands, such as 1x1.
    """
    count = image.count
    ranges = list(image.dataset_statistics or [dtype_ranges[str(image.array.dtype)]] * count)
    if len(ranges) != count:
        ranges = [ranges[0]] * count
    valid = ~numpy.ma.getmaskarray(image.array)
    bands = [
        numpy.where(valid[b], linear_rescale(image.array.data[b], in_range=ranges[b], out_range=(0, 255)), 0)
        for b in range(count)
    ]
    data = numpy.ma.MaskedArray(numpy.stack(bands).astype("uint8"), mask=~valid)
    return attr.evolve(image, array=data, dataset_statistics=None)


def render_bounded(
    image: ImageData,
    colormap: Any = None,
    output_format: ImageType | None = None,
    rescale: Any = None,
    color_formula: str | None = None,
    **kwargs: Any,
) -> tuple[bytes, str]:
    """Render an image as titiler does, rescaling it for its format ourselves, refusing one too large."""
    if rescale:
        image.rescale(rescale)
    if color_formula:
        image.apply_color_formula(color_formula)
    wanted = FORMAT_DTYPES.get(output_format, ())
    if wanted and not colormap and str(image.array.dtype) not in wanted:
        image = as_bytes(image)
    content, media_type = render_image(image, colormap=colormap, output_format=output_format, **kwargs)
    if len(content) > MAX_IMAGE_BYTES:
        raise InvalidParameter(
            QUERY,
            "format",
            f"the image takes {len(content):,} bytes, over the {MAX_IMAGE_BYTES:,} an answer may hold: "
            "ask for fewer pixels or bands, or a compressed format (png, jpeg, webp)",
        )
    return content, media_type


class Bounds(BaseModel):
    """Dataset Bounding box."""

    # A list of exactly four, not a tuple: a tuple is a `prefixItems` schema, which OpenAPI tools
    # (schemathesis among them) cannot yet validate answers against.
    bounds: Annotated[list[float], Field(min_length=4, max_length=4)]


# A [name, value] pair: rio-tiler's tuples, as lists of two (see Bounds).
Pair = Annotated[list[Any], Field(min_length=2, max_length=2)]


class DatasetInfo(BaseModel):
    """Dataset Info."""

    # rio-tiler's Info, its tuples as lists of fixed length (see Bounds).
    bounds: Annotated[list[float], Field(min_length=4, max_length=4)]
    crs: str
    band_metadata: list[Pair]
    band_descriptions: list[Pair]
    dtype: str
    nodata_type: Literal["Alpha", "Mask", "Internal", "Nodata", "None"]
    colorinterp: list[str] | None = None
    scales: list[float] | None = None
    offsets: list[float] | None = None
    colormap: dict[int, Annotated[list[int], Field(min_length=4, max_length=4)]] | None = None

    model_config = {"extra": "allow"}


@define(kw_only=True)
class CogFactory(TilerFactory):
    """titiler's TilerFactory behind sputnik's URL policy, serving titiler 2.4's routes and the contract's.

    The contract's tile and tilejson paths replace titiler's same-shaped ones (one handler accepts
    both `scale` and titiler's `tilesize`); `/bounds`, `WMTSCapabilities.xml` and the `/crop`
    forms are added; titiler's `/bbox`, `/feature`, `/tiles` (tilesets), `/point`, `/preview` stay
    as they are. titiler's `map.html` is left out: it loads scripts from a CDN on the API's origin,
    and the viewer at / replaces it.
    """

    # Who is asking: the HTTP layer's authentication dependency, handed in (the library never imports it).
    caller_dependency: Callable[..., Any]
    environment_dependency: Callable[..., dict[str, Any]] = gdal_env
    reader: type[BaseReader] = TileReader
    tile_dependency: type[TileParams] = BoundedTileParams
    img_preview_dependency: type[PreviewParams] = BoundedPreviewParams
    histogram_dependency: type[HistogramParams] = BoundedHistogramParams
    stats_dependency: type[DefaultDependency] = BoundedStatisticsParams
    img_part_dependency: type[PartFeatureParams] = BoundedPartParams
    process_dependency: Callable[..., BaseAlgorithm | None] = field(factory=algorithm_dependency)
    colormap_dependency: Callable[..., Any] = colormap_dependency
    add_viewer: bool = False
    render_func: Callable[..., tuple[bytes, str]] = render_bounded

    def __attrs_post_init__(self) -> None:
        """Put every `url` through the URL policy for the caller, check coordinates, then register routes."""
        self.path_dependency = policy_dependency(self.caller_dependency)
        self.router.dependencies.append(Depends(check_coordinates))
        super().__attrs_post_init__()

    def register_routes(self) -> None:
        """Register titiler's routes, the contract's forms of them, and the contract's extra routes."""
        self.bounds()
        super().register_routes()
        self.wmts()
        self.crop()

    def url_for(self, request: Request, name: str, **path_params: Any) -> str:
        """Build a route's URL, accepting titiler's `tileMatrixSetId` for the contract's `TileMatrixSetId`."""
        if "tileMatrixSetId" in path_params and name in {"tile", "tilejson", "wmts"}:
            path_params["TileMatrixSetId"] = path_params.pop("tileMatrixSetId")
        return super().url_for(request, name, **path_params)

    def info(self) -> None:
        """Register titiler's /info and /info.geojson, /info answering a model whose schema tools can read."""
        super().info()
        titilers = [r for r in self.router.routes if getattr(r, "name", None) == "info"]
        for route in titilers:
            self.router.routes.remove(route)

        @self.router.get(
            "/info",
            response_model=DatasetInfo,
            response_model_exclude_none=True,
            responses={200: {"description": "Return dataset's basic info."}},
            operation_id=f"{self.operation_prefix}getInfo",
        )
        def info(
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> Any:
            """Return dataset's basic info."""
            with rasterio.Env(**env), self.reader(src_path, **reader_params.as_dict()) as src:
                return src.info().model_dump()  # with rio-tiler's extra members (width, count, ...)

    def bounds(self) -> None:
        """Register /bounds."""

        @self.router.get(
            "/bounds",
            response_model=Bounds,
            responses={200: {"description": "Return dataset's bounds."}},
            operation_id=f"{self.operation_prefix}getBounds",
        )
        def bounds(
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> dict[str, Any]:
            """Return the bounds of the COG."""
            with rasterio.Env(**env), self.reader(src_path, **reader_params.as_dict()) as src:
                return {"bounds": src.get_geographic_bounds(WGS84_CRS)}

    def tile(self) -> None:
        """Register the eight tile forms of the contract (titiler's two included)."""
        # Order matters: `{y}.{format}` would also swallow `5@2x.png`, so the `@{scale}x` forms go first.
        forms = [
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x.{format}", "getTileWithTmsScaleFormat"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x", "getTileWithTmsScale"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}.{format}", "getTileWithFormat"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}", "getTile"),
            ("/tiles/{z}/{x}/{y}@{scale}x.{format}", "getTileWithScaleFormat"),
            ("/tiles/{z}/{x}/{y}@{scale}x", "getTileWithScale"),
            ("/tiles/{z}/{x}/{y}.{format}", "getTileWithFormatDefaultTms"),
            ("/tiles/{z}/{x}/{y}", "getTileDefaultTms"),
        ]

        def tile(
            request: Request,
            z: Annotated[int, Path(ge=0, le=30, description="TMS tiles's zoom level")],
            x: Annotated[int, Path(ge=0, description="TMS tiles's column")],
            y: Annotated[int, Path(ge=0, description="TMS tiles's row")],
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            scale: ScaleParam = None,
            format: FormatParam = None,
            tilesize: TileSizeParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> Response:
            """Create map tile from a dataset."""
            tms = self.supported_tms.get(TileMatrixSetId)
            check_tile(tms, z, x, y)
            size = tilesize or (scale or 1) * tms.matrix(z).tileWidth
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                image = src.tile(
                    x,
                    y,
                    z,
                    tilesize=size,
                    **tile_params.as_dict(),
                    **layer_params.as_dict(),
                    **dataset_params.as_dict(),
                )
                dst_colormap = getattr(src, "colormap", None)
            if post_process:
                image = post_process(image)
            content, media_type = self.render_func(
                image, output_format=format, colormap=colormap or dst_colormap, **render_params.as_dict()
            )
            headers = {"Content-Bbox": ",".join(map(str, image.bounds))}
            if uri := CRS_to_uri(image.crs):
                headers["Content-Crs"] = f"<{uri}>"
            return tile_response(request, content, media_type, headers)

        for path, operation in forms:
            self.router.add_api_route(
                path,
                tile,
                methods=["GET"],
                name="tile",
                operation_id=f"{self.operation_prefix}{operation}",
                **img_endpoint_params,
            )

    def tilejson(self) -> None:
        """Register `/{TileMatrixSetId}/tilejson.json` and `/tilejson.json`."""

        def tilejson(
            request: Request,
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            tile_format: Annotated[
                ImageType | None, Query(description="Output image type. Default is auto.")
            ] = None,
            tile_scale: TileScaleParam = 1,
            minzoom: ZoomParam = None,
            maxzoom: MaxZoomParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> dict[str, Any]:
            """Return TileJSON document for a dataset."""
            route_params = {"z": "{z}", "x": "{x}", "y": "{y}", "scale": str(tile_scale)}
            route_params["TileMatrixSetId"] = TileMatrixSetId
            if tile_format:
                route_params["format"] = tile_format.value
            tms = self.supported_tms.get(TileMatrixSetId)
            tiles_url = self.url_for(request, "tile", **route_params) + _tile_query(request)
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                return {
                    "bounds": src.get_geographic_bounds(tms.rasterio_geographic_crs),
                    "minzoom": minzoom if minzoom is not None else src.minzoom,
                    "maxzoom": maxzoom if maxzoom is not None else src.maxzoom,
                    "tiles": [tiles_url],
                }

        for path, operation in [
            ("/{TileMatrixSetId}/tilejson.json", "getTileJSON"),
            ("/tilejson.json", "getTileJSONDefaultTms"),
        ]:
            self.router.add_api_route(
                path,
                tilejson,
                methods=["GET"],
                name="tilejson",
                response_model=TileJSON,
                response_model_exclude_none=True,
                responses={200: {"description": "Return a tilejson"}},
                operation_id=f"{self.operation_prefix}{operation}",
            )

    def wmts(self) -> None:
        """Register `/{TileMatrixSetId}/WMTSCapabilities.xml` and `/WMTSCapabilities.xml`."""

        def wmts(
            request: Request,
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            tile_format: Annotated[ImageType, Query(description="Output image type. Default is png.")] = (
                ImageType.png
            ),
            tile_scale: TileScaleParam = 1,
            minzoom: ZoomParam = None,
            maxzoom: MaxZoomParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> Response:
            """OGC WMTS endpoint."""
            route_params = {
                "z": "{TileMatrix}",
                "x": "{TileCol}",
                "y": "{TileRow}",
                "scale": str(tile_scale),
                "format": tile_format.value,
                "TileMatrixSetId": TileMatrixSetId,
            }
            ogc = ["service", "request"]  # WMTS KVP leftovers: not tile parameters
            tms = self.supported_tms.get(TileMatrixSetId)
            tiles_url = self.url_for(request, "tile", **route_params) + _tile_query(request, ogc)
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                bounds = src.get_geographic_bounds(WGS84_CRS)
                low = minzoom if minzoom is not None else src.minzoom
                high = maxzoom if maxzoom is not None else src.maxzoom
            zooms = (low, high)
            document = wmts_capabilities(
                str(request.url), tiles_url, tms, str(TileMatrixSetId), bounds, zooms, tile_format, tile_scale
            )
            return XMLResponse(document, media_type="application/xml")

        for path, operation in [
            ("/{TileMatrixSetId}/WMTSCapabilities.xml", "getWMTS"),
            ("/WMTSCapabilities.xml", "getWMTSDefaultTms"),
        ]:
            self.router.add_api_route(
                path,
                wmts,
                methods=["GET"],
                name="wmts",
                response_class=XMLResponse,
                responses={200: {"content": {"application/xml": {}}, "description": "Successful Response"}},
                operation_id=f"{self.operation_prefix}{operation}",
            )

    def crop(self) -> None:
        """Register the contract's `/crop` forms on titiler's `/bbox` and `/feature` handlers."""
        endpoints = {getattr(r, "name", None): getattr(r, "endpoint", None) for r in self.router.routes}
        bbox_image, feature_image = endpoints.get("bbox_image"), endpoints.get("feature_image")
        if bbox_image is None or feature_image is None:
            return  # add_part=False
        forms = [
            (
                "/crop/{minx},{miny},{maxx},{maxy}/{width}x{height}.{format}",
                "GET",
                bbox_image,
                "getCropSized",
            ),
            ("/crop/{minx},{miny},{maxx},{maxy}.{format}", "GET", bbox_image, "getCropWithFormat"),
            ("/crop/{width}x{height}.{format}", "POST", feature_image, "postCropWithSize"),
            ("/crop.{format}", "POST", feature_image, "postCropWithFormat"),
            ("/crop", "POST", feature_image, "postCrop"),
        ]
        for path, method, endpoint, operation in forms:
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=f"{self.operation_prefix}{operation}",
                **img_endpoint_params,
            )


def _tile_query(request: Request, also_drop: list[str] | None = None) -> str:
    """Return the query string a tile URL keeps from a tilejson/WMTS request (dataset and rendering)."""
    drop = {"tilematrixsetid", "tile_format", "tile_scale", "minzoom", "maxzoom", *(also_drop or [])}
    kept = [(key, value) for key, value in request.query_params.multi_items() if key.lower() not in drop]
    return f"?{urlencode(kept)}" if kept else ""
