"""Projects: create, list and read a user's projects; a border maps to the MGRS tiles it touches."""

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from sputnik.errors import InvalidInput, NotFound
from sputnik.ids import next_id
from sputnik.models import ProjectModel, ProjectTileModel
from sputnik.settings import get_settings

MAX_NAME = 200
# One TransactWriteItems holds at most 100 items: the project and up to 99 tile rows.
MAX_TILES = 99
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class NewProject:
    """A validated request for a new project."""

    name: str
    start_date: str | None
    end_date: str | None
    border: Any
    tiles: frozenset[str]


def parse_date(value: str | None, field: str) -> str | None:
    """Return a `YYYY-MM-DD` date unchanged, None for none, or raise InvalidInput."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise InvalidInput(f"{field} must be a date as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} is not a real date: {value}") from exc
    return value


def validate(name: str, start_date: str | None, end_date: str | None, border: Any) -> NewProject:
    """Check every field of a new project before anything is written."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name must be at most {MAX_NAME} characters")
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    if start and end and start > end:
        raise InvalidInput("start_date is after end_date")
    # Imported here: the functions that only read projects (meta) run without shapely and pyproj.
    from sputnik import geo, mgrs

    geom = geo.parse_border(border)
    tiles = frozenset(mgrs.tiles_for_border(geom))
    if len(tiles) > MAX_TILES:
        raise InvalidInput(f"border touches {len(tiles)} Sentinel-2 tiles; the limit is {MAX_TILES}")
    return NewProject(name, start, end, geom, tiles)


def create_project(login: str, new: NewProject) -> ProjectModel:
    """Store a validated project and its tile index rows atomically; return it."""
    from sputnik import geo

    project = ProjectModel(
        next_id("project_id"),
        login=login,
        name=new.name,
        start_date=new.start_date,
        end_date=new.end_date,
        border=geo.to_wkt(new.border),
        tiles=sorted(new.tiles),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # All or nothing: a project never exists without its tile rows, nor rows without it.
    with TransactWrite(
        connection=Connection(region=ProjectModel.Meta.region, host=ProjectModel.Meta.host)
    ) as tx:
        tx.save(project, condition=ProjectModel.project_id.does_not_exist())
        for tile in sorted(new.tiles):
            tx.save(
                ProjectTileModel(
                    tile,
                    project.project_id,
                    login=login,
                    border=project.border,
                    start_date=new.start_date,
                    end_date=new.end_date,
                )
            )
    request_backfill(int(project.project_id))
    return project


def request_backfill(project_id: int) -> None:
    """Ask IngestFunction, asynchronously, to bring in the scenes already catalogued for a project.

    Asynchronous so the caller gets the id at once and Lambda retries a failed backfill itself;
    every write of the backfill is idempotent, and scenes arriving meanwhile are matched by ingest.
    """
    import boto3  # here: the functions that only read projects never load it

    boto3.client("lambda").invoke(
        FunctionName=get_settings().ingest_function,
        InvocationType="Event",
        Payload=json.dumps({"backfill_project": project_id}).encode(),
    )


def get_project(login: str, project_id: int) -> ProjectModel:
    """Return the caller's project; another user's project is NotFound, exactly like a missing one."""
    try:
        project = ProjectModel.get(project_id)
    except DoesNotExist:
        project = None
    if project is None or project.login != login:
        raise NotFound(f"project {project_id} not found")
    return project


def list_projects(login: str) -> list[ProjectModel]:
    """Return the caller's projects, oldest first (one Query on the login index)."""
    return list(ProjectModel.by_login.query(login))
