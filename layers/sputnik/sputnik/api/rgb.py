"""The /rgb app: a project's RGB products and their web-mercator tiles."""

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from sputnik import rgb
from sputnik.api.common import Caller, create_app
from sputnik.tiles.caching import tile_response
from sputnik.tiles.prefix import MountPrefixMiddleware
from sputnik.tiles.urls import ProjectCheck

PREFIX = "/rgb"

router = APIRouter()


class RgbList(BaseModel):
    """The ids of a project's RGB products."""

    product_ids: list[str]


@router.get("/list", response_model=RgbList, summary="RGB products of a project")
def list_products(login: Caller, owns_project: ProjectCheck, project_id: Annotated[int, Query()]) -> RgbList:
    """List the RGB product ids of the caller's project (empty until a task made some)."""
    return RgbList(product_ids=rgb.list_rgb(login, project_id, owns_project))


@router.get(
    "/tile/{project_id}/{product_id}/{z}/{x}/{y}",
    summary="Get tile",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "A 256x256 PNG tile."}},
)
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
    """Build the /rgb app."""
    app = create_app("sputnik rgb")
    app.include_router(router, prefix=PREFIX, tags=["rgb"])
    app.add_middleware(MountPrefixMiddleware, mount=PREFIX)
    return app
