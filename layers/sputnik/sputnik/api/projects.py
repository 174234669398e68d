"""HTTP routes /project/new, /project/list and /project/info."""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sputnik import projects
from sputnik.api.common import CurrentUser, create_app
from sputnik.models import ProjectModel
from sputnik.settings import get_settings


class ProjectNewParams(BaseModel):
    """Body of POST /project/new."""

    name: str = Field(max_length=10_000)
    start_date: str | None = None
    end_date: str | None = None
    border: str | dict[str, Any] = Field(description="GeoJSON geometry, Feature or FeatureCollection (text)")


class ProjectNewRes(BaseModel):
    """Answer of POST /project/new."""

    project_id: int


class Project(BaseModel):
    """A project as /project/list shows it."""

    project_id: int
    login: str
    name: str
    start_date: str | None = None
    end_date: str | None = None
    border: str


class ProjectListRes(BaseModel):
    """Answer of GET /project/list."""

    projects: list[Project]


class ProjectInfoRes(Project):
    """Answer of GET /project/info: the project with its border as GeoJSON too."""

    border_gj: str


def _project(p: ProjectModel, login: str) -> dict[str, Any]:
    """Return the contract's fields of a stored project of the user signed in as `login`."""
    return {
        "project_id": int(p.project_id),
        "login": login,
        "name": p.name,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "border": p.border,
    }


def create_projects_app() -> FastAPI:
    """Build the projects app."""
    # A new project asks IngestFunction for its backfill: without its name, fail init, not a request.
    get_settings().require("ingest_function")
    app = create_app("sputnik projects")

    @app.post("/project/new", summary="Save project", response_model=ProjectNewRes)
    def project_new(params: ProjectNewParams, user: CurrentUser) -> ProjectNewRes:
        """Save project to database."""
        new = projects.validate(params.name, params.start_date, params.end_date, params.border)
        project = projects.create_project(user.id, user.login, new)
        return ProjectNewRes(project_id=int(project.project_id))

    @app.get("/project/list", summary="Project list", response_model=ProjectListRes)
    async def project_list(user: CurrentUser) -> ProjectListRes:
        """List the caller's projects."""
        found = await run_in_threadpool(projects.list_projects, user.id)
        return ProjectListRes(projects=[Project(**_project(p, user.login)) for p in found])

    @app.get("/project/info", summary="Project info", response_model=ProjectInfoRes)
    async def project_info(project_id: int, user: CurrentUser) -> ProjectInfoRes:
        """Return one of the caller's projects."""
        # Geometry (shapely, numpy) is imported by the routes using it (this, /project/new), not at init.
        from sputnik import geo

        p = await run_in_threadpool(projects.get_project, user.id, project_id)
        return ProjectInfoRes(**_project(p, user.login), border_gj=geo.to_geojson(geo.from_wkt(p.border)))

    return app
