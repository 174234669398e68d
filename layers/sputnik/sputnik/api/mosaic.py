"""The /mosaic routes: a project's date as one map layer, every scene of that date merged into each tile."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from sputnik.api.common import Caller, error_doc
from sputnik.tiles import mosaic
from sputnik.tiles.caching import tile_response
from sputnik.tiles.urls import ProjectCheck

PREFIX = "/mosaic"
TILE_PATH = "/tile/{project_id}/{date}/{z}/{x}/{y}"

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DatePath = Annotated[
    str, Path(pattern=DATE_PATTERN, description="the date, as YYYY-MM-DD", examples=["2020-02-19"])
]
MaskQuery = Annotated[
    Literal["clouds"] | None,
    Query(
        description="`clouds`: leave out each scene's SCL-cloudy pixels, filled from the date's other scenes"
    ),
]
# In the path (`{y}.{format}`) or else PNG; one handler serves both forms, as /cog's tiles do.
FormatParam = Annotated[Literal["png", "jpg", "jpeg", "webp"] | None, Field(description="the image format")]
TILE_DOC = (
    "Every scene of the project on that date, merged into one 256x256 tile: each pixel from the least "
    "cloudy scene that has it (rio-tiler's first-valid mosaic), transparent outside the project's border "
    f"and the scenes. A tile meeting more than {mosaic.MAX_SCENES_PER_TILE} scenes is refused (zoom in)."
)


class MosaicTileJSON(BaseModel):
    """TileJSON 3.0 of a date's mosaic."""

    tilejson: str = "3.0.0"
    bounds: Annotated[list[float], Field(min_length=4, max_length=4)]
    minzoom: int
    maxzoom: int
    tiles: list[str]


def get_tile(
    request: Request,
    login: Caller,
    owns_project: ProjectCheck,
    project_id: Annotated[int, Path()],
    date: DatePath,
    z: Annotated[int, Path()],
    x: Annotated[int, Path()],
    y: Annotated[int, Path()],
    format: FormatParam = None,
    mask: MaskQuery = None,
) -> Response:
    """Return a tile of the date's mosaic (PNG unless the path names a format), with ETag and caching."""
    scenes = mosaic.date_scenes(login, project_id, date, owns_project)
    border = mosaic.project_border(project_id)
    content, media_type = mosaic.render_mosaic(scenes, border, z, x, y, mask=mask, fmt=format)
    return tile_response(request, content, media_type)


def get_tilejson(
    request: Request,
    login: Caller,
    owns_project: ProjectCheck,
    project_id: Annotated[int, Query()],
    date: Annotated[str, Query(pattern=DATE_PATTERN, description="the date, as YYYY-MM-DD")],
    mask: MaskQuery = None,
    tile_format: Annotated[Literal["png", "jpg", "jpeg", "webp"] | None, Query()] = None,
) -> MosaicTileJSON:
    """Return the TileJSON of a date's mosaic: its tile URL (with the same mask) and bounds."""
    scenes = mosaic.date_scenes(login, project_id, date, owns_project, where="query")
    border = mosaic.project_border(project_id)
    params = {"project_id": str(project_id), "date": date, "z": "{z}", "x": "{x}", "y": "{y}"}
    if tile_format:
        url = str(request.url_for("mosaic_tile_format", **params, format=tile_format))
    else:
        url = str(request.url_for("mosaic_tile", **params))
    url = url.replace("%7B", "{").replace("%7D", "}")
    if mask:
        url += f"?mask={mask}"
    return MosaicTileJSON(**mosaic.tilejson(scenes, border, url))


def add_mosaic_routes(router: APIRouter) -> None:
    """Register the /mosaic routes on a router whose prefix is the API's root."""
    image = {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "A 256x256 tile.",
    }
    refused = error_doc("A scene of the date names a file outside the archive")
    common: dict[str, Any] = {
        "methods": ["GET"],
        "response_class": Response,
        "responses": {200: image, 403: refused},
    }
    # `{y}.{format}` before `{y}`: the plain form would take `5.png` as y and refuse it.
    router.add_api_route(
        f"{PREFIX}{TILE_PATH}.{{format}}",
        get_tile,
        name="mosaic_tile_format",
        summary="Get a date's mosaic tile in a format",
        description=TILE_DOC,
        **common,
    )
    router.add_api_route(
        f"{PREFIX}{TILE_PATH}",
        get_tile,
        name="mosaic_tile",
        summary="Get a date's mosaic tile",
        description=TILE_DOC,
        **common,
    )
    router.add_api_route(
        f"{PREFIX}/tilejson.json",
        get_tilejson,
        methods=["GET"],
        name="mosaic_tilejson",
        response_model=MosaicTileJSON,
        summary="TileJSON of a date's mosaic",
    )
