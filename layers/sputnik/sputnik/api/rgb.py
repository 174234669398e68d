"""The /rgb app: a project's RGB products and their web-mercator tiles; beside them /product and /stats."""

from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from sputnik.api import mosaic
from sputnik.api.common import Caller, add_routes, create_app, prefixed_router
from sputnik.api.products import add_product_routes
from sputnik.tiles import rgb
from sputnik.tiles.caching import tile_response
from sputnik.tiles.mosaic import scenes_ttl
from sputnik.tiles.prefix import MountPrefixMiddleware
from sputnik.tiles.urls import ProjectCheck

PREFIX = "/rgb"


class RgbList(BaseModel):
    """The ids of a project's RGB products."""

    product_ids: list[str]


def list_products(login: Caller, owns_project: ProjectCheck, project_id: Annotated[int, Query()]) -> RgbList:
    """List the RGB product ids of the caller's project (empty until a task made some)."""
    return RgbList(product_ids=rgb.list_rgb(login, project_id, owns_project))


def get_tile(
    request: Request,
    login: Caller,
    owns_project: ProjectCheck,
    project_id: Annotated[int, Path()],
    product_id: Annotated[str, Path(max_length=256)],
    z: Annotated[int, Path()],
    x: Annotated[int, Path()],
    y: Annotated[int, Path()],
) -> Response:
    """Return a WebMercatorQuad PNG tile of an RGB product; transparent outside the product."""
    product = rgb.get_rgb(login, project_id, product_id, owns_project)
    content = rgb.render_tile(rgb.product_url(product), z, x, y)
    return tile_response(request, content, "image/png")


def create_rgb_app() -> FastAPI:
    """Build the /rgb app, with /product (index tiles with a colormap), /stats/series and /mosaic."""
    scenes_ttl()  # a missing or unusable setting fails init, naming it, not the first tile
    app = create_app("sputnik rgb")
    router = prefixed_router(app, PREFIX, ["rgb"])
    router.add_api_route(
        "/list", list_products, methods=["GET"], response_model=RgbList, summary="RGB products of a project"
    )
    router.add_api_route(
        "/tile/{project_id}/{product_id}/{z}/{x}/{y}",
        get_tile,
        methods=["GET"],
        summary="Get tile",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "A 256x256 PNG tile."}},
    )
    add_routes(app, router)
    product_router = prefixed_router(app, "/product", ["products"])
    stats_router = prefixed_router(app, "/stats", ["products"])
    add_product_routes(product_router, stats_router)
    add_routes(app, product_router)
    add_routes(app, stats_router)
    mosaic_router = prefixed_router(app, "", ["mosaic"])
    mosaic.add_mosaic_routes(mosaic_router)
    add_routes(app, mosaic_router)
    app.add_middleware(MountPrefixMiddleware, mount=(PREFIX, "/product", "/stats", mosaic.PREFIX))
    return app
