"""HTTP routes /meta/dates and /meta/list: the scenes matched to a project."""

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sputnik import meta
from sputnik.api.common import Caller, create_app


class MetaRes(BaseModel):
    """One scene of a project on one date."""

    project_id: int
    scene_id: str
    date: str
    border: str = Field(description="the scene footprint as WKB, hex text as PostGIS prints it (EPSG:4326)")
    filename: str = Field(description="the ESA product id (sentinel:product_id)")
    xg0: float = Field(description="footprint min longitude")
    xg1: float = Field(description="footprint max longitude")
    yg0: float = Field(description="footprint min latitude")
    yg1: float = Field(description="footprint max latitude")
    border_gj: str = Field(description="the footprint as GeoJSON text")
    cloud_cover: float | None = Field(None, description="cloud cover of the scene in percent")
    tci_url: str | None = Field(None, description="the scene's true-colour image, as /cog's `url` takes it")


class MetaDatesRes(BaseModel):
    """Answer of GET /meta/dates."""

    dates: list[str]


class MetaListRes(BaseModel):
    """Answer of GET /meta/list."""

    metas: list[MetaRes]


def create_meta_app() -> FastAPI:
    """Build the meta app."""
    app = create_app("sputnik meta")

    @app.get("/meta/dates", summary="Date list of available metadata", response_model=MetaDatesRes)
    async def meta_dates(project_id: int, login: Caller) -> MetaDatesRes:
        """Distinct dates, sorted, that have scenes for the project."""
        return MetaDatesRes(dates=await run_in_threadpool(meta.dates, login, project_id))

    @app.get("/meta/list", summary="Scenes metadata for date", response_model=MetaListRes)
    async def meta_list(project_id: int, date: str, login: Caller) -> MetaListRes:
        """The project's scenes of one date."""
        records = await run_in_threadpool(meta.scenes, login, project_id, date)
        return MetaListRes(metas=[MetaRes(**r) for r in records])

    return app
