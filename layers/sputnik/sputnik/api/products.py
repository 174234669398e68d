"""Routes of every product kind: /product/list, tiles with a colormap, TileJSON, legend; /stats/series.

They live in the rgb function beside /rgb/tile: the same reader, pool and GDAL settings serve them.
"""

from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from sputnik import products
from sputnik.api.common import Caller
from sputnik.models import ProductModel
from sputnik.tiles import rgb
from sputnik.tiles.caching import tile_response
from sputnik.tiles.products import (
    COLORMAP_NAMES,
    Styling,
    legend,
    product_extent,
    render_product_tile,
    rgb_composite_styling,
    styling,
)
from sputnik.tiles.urls import ProjectCheck

ProjectId = Annotated[int, Query()]
ProductIdPath = Annotated[str, Path(max_length=256)]
ColormapName = Annotated[
    str | None,
    Query(
        max_length=32,
        description="a colormap of rio-tiler (e.g. rdylgn, viridis); default: the index's own",
        json_schema_extra={"enum": list(COLORMAP_NAMES)},
    ),
]
Rescale = Annotated[
    str | None,
    Query(
        max_length=64,
        description="min,max: the values at the colormap's two ends (min < max); default: the index's own",
    ),
]
IndexName = Annotated[
    str,
    Query(
        max_length=80,
        description="a named index (ndvi, ndwi, ndmi, nbr, evi, savi) or an expression's expr-… name",
        # Stated for clients; checked by products.index_name, whose 422 names the known indices.
        json_schema_extra={"pattern": products.INDEX_PATTERN, "example": "ndvi"},
    ),
]


class ProductRes(BaseModel):
    """A product of a project: what it is, of which scene and date, its statistics (an index's) or details."""

    product_id: str
    kind: str
    index: str | None = None
    scene_id: str | None = None
    date: str | None = None
    stats: dict[str, float | int | None] | None = None
    details: dict[str, Any] | None = Field(
        None,
        description="a composite's record: start_date, end_date, product, method, max_scene_cloud, scenes, "
        "blocks, bands, result, failed_blocks and coverage (pixels, observed_fraction, mean_count, "
        "min_count, max_count)",
    )


class ProductList(BaseModel):
    """A project's products, ordered by id (an index's by date)."""

    products: list[ProductRes]


class SeriesPoint(BaseModel):
    """One scene's statistics of an index over the project's border; None when no pixel was clear."""

    date: str
    scene_id: str
    product_id: str
    valid_pixels: int | None = None
    clear_fraction: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    p10: float | None = None
    median: float | None = None
    p90: float | None = None
    max: float | None = None


class Series(BaseModel):
    """An index's statistics per scene, oldest first; several scenes of one date are several points."""

    project_id: int
    index: str
    min_clear: float
    points: list[SeriesPoint]


class LegendStop(BaseModel):
    """A value and the colour it is drawn in, `#rrggbbaa`."""

    value: float
    color: str


class Legend(BaseModel):
    """A colormap over a value range as 256 stops, lowest value first: what a client draws as the legend."""

    index: str
    colormap_name: str
    rescale: tuple[float, float]
    stops: list[LegendStop]


class TileJson(BaseModel):
    """TileJSON 2.2.0 of a product's tiles."""

    tilejson: str = "2.2.0"
    name: str
    tiles: list[str]
    bounds: list[float] = Field(min_length=4, max_length=4, description="west, south, east, north (lon/lat)")
    minzoom: int
    maxzoom: int
    legend: str | None = Field(None, description="the URL of the legend's stops for this styling")


def list_products(
    login: Caller,
    owns_project: ProjectCheck,
    project_id: ProjectId,
    kind: Annotated[Literal["rgb", "index", "composite"] | None, Query()] = None,
) -> ProductList:
    """List the caller's project's products (one Query), of one kind if asked."""
    found = products.list_products(login, project_id, owns_project, kind)
    return ProductList(
        products=[
            ProductRes(
                product_id=p.product_id,
                kind=p.kind,
                index=p.index,
                scene_id=p.scene_id,
                date=p.date,
                stats=p.stats if isinstance(p.stats, dict) and p.kind == products.INDEX else None,
                details=p.details if isinstance(p.details, dict) and p.kind == products.COMPOSITE else None,
            )
            for p in found
        ]
    )


def get_series(
    login: Caller,
    owns_project: ProjectCheck,
    project_id: ProjectId,
    index: IndexName,
    min_clear: Annotated[float, Query(ge=0, le=1, description="leave out scenes less clear than this")] = 0.0,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response | Series:
    """An index's statistics for every scene of the project, oldest first, in one DynamoDB Query."""
    name = products.index_name(index)
    rows = products.series(login, project_id, name, owns_project, min_clear)
    if format == "csv":
        filename = f"sputnik-project-{project_id}-{name}.csv"
        return Response(
            products.series_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    points = [SeriesPoint(date=r.date, scene_id=r.scene_id, product_id=r.product_id, **r.stats) for r in rows]
    return Series(project_id=project_id, index=name, min_clear=min_clear, points=points)


def _styling(product: ProductModel, colormap_name: str | None, rescale: str | None) -> Styling | None:
    """The styling asked for, validated before any read; None when the request leaves it to the product."""
    if product.kind == products.COMPOSITE and not product.index:
        return rgb_composite_styling(colormap_name, rescale)
    if colormap_name is None and rescale is None:
        return None
    return styling(product.index, colormap_name, rescale)


def get_tile(
    request: Request,
    login: Caller,
    owns_project: ProjectCheck,
    project_id: Annotated[int, Path()],
    product_id: ProductIdPath,
    z: Annotated[int, Path()],
    x: Annotated[int, Path()],
    y: Annotated[int, Path()],
    colormap_name: ColormapName = None,
    rescale: Rescale = None,
) -> Response:
    """A WebMercatorQuad PNG tile of any product: an index through its colormap, RGB as it is.

    A composite is drawn without its count band, an RGB composite's reflectance rescaled.
    """
    product = products.get_product(login, project_id, product_id, owns_project)
    style = _styling(product, colormap_name, rescale)
    composite = product.kind == products.COMPOSITE
    content = render_product_tile(rgb.product_url(product), z, x, y, product.index, style, composite)
    return tile_response(request, content, "image/png")


def get_tilejson(
    request: Request,
    login: Caller,
    owns_project: ProjectCheck,
    project_id: ProjectId,
    product_id: Annotated[str, Query(max_length=256)],
    colormap_name: ColormapName = None,
    rescale: Rescale = None,
) -> TileJson:
    """A TileJSON of a product's tiles, carrying the styling asked for; bounds from the product's COG."""
    product = products.get_product(login, project_id, product_id, owns_project)
    _styling(product, colormap_name, rescale)  # refused before anything is read
    extent = product_extent(rgb.product_url(product))
    styled = urlencode(
        {k: v for k, v in (("colormap_name", colormap_name), ("rescale", rescale)) if v is not None}
    )
    base = str(request.base_url)  # with the stage prefix, so the URLs work as they are
    path = f"product/tile/{project_id}/{quote(product_id, safe='')}/{{z}}/{{x}}/{{y}}"
    legend_url = None
    if product.index:
        legend_url = (
            f"{base}product/legend?" + urlencode({"index": product.index}) + (f"&{styled}" if styled else "")
        )
    return TileJson(
        name=product_id,
        tiles=[base + path + (f"?{styled}" if styled else "")],
        bounds=list(extent.bounds),
        minzoom=extent.minzoom,
        maxzoom=extent.maxzoom,
        legend=legend_url,
    )


def get_legend(index: IndexName, colormap_name: ColormapName = None, rescale: Rescale = None) -> Legend:
    """The stops of an index's colormap over its range (or the one asked for): what a legend draws."""
    name = products.index_name(index)
    style = styling(name, colormap_name, rescale)
    stops = [LegendStop(value=value, color=color) for value, color in legend(style)]
    return Legend(index=name, colormap_name=style.colormap_name, rescale=style.rescale, stops=stops)


def add_product_routes(products_router: APIRouter, stats_router: APIRouter) -> None:
    """Put the product and statistics routes on their prefixed routers (/product, /stats)."""
    png: dict[int | str, dict[str, Any]] = {
        200: {"content": {"image/png": {}}, "description": "A 256x256 PNG tile."}
    }
    csv: dict[int | str, dict[str, Any]] = {
        200: {"content": {"text/csv": {}}, "description": "The series (JSON, or CSV with a header row)."}
    }
    add = products_router.add_api_route
    add("/list", list_products, methods=["GET"], response_model=ProductList, summary="Products of a project")
    add(
        "/tile/{project_id}/{product_id}/{z}/{x}/{y}",
        get_tile,
        methods=["GET"],
        name="product_tile",
        summary="Get a product's tile",
        response_class=Response,
        responses=png,
    )
    add(
        "/tilejson.json",
        get_tilejson,
        methods=["GET"],
        response_model=TileJson,
        summary="A product's TileJSON",
    )
    add("/legend", get_legend, methods=["GET"], response_model=Legend, summary="A colormap's legend")
    stats_router.add_api_route(
        "/series",
        get_series,
        methods=["GET"],
        response_model=Series,
        summary="An index's time series",
        responses=csv,
    )
