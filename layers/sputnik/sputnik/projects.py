"""Projects: create, list and read a user's projects; a border maps to the MGRS tiles it touches."""

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from sputnik import aws, quotas
from sputnik.errors import InvalidInput, NotFound
from sputnik.ids import next_id
from sputnik.models import (
    ITEM_BYTES,
    TRANSACTION_BYTES,
    ProjectModel,
    ProjectTileModel,
    item_bytes,
    transaction_connection,
)
from sputnik.settings import get_settings

MAX_NAME = 200
# One TransactWriteItems holds at most 100 items: the project and up to 99 tile rows.
MAX_TILES = 99
# /project/list answers all of a user's projects, borders included, in one response, and Lambda
# answers at most 6 MB: a user's borders together stay under this (a 20,000-vertex border of full
# precision is about 0.8 MB of WKT), leaving room for two creations racing past the check.
LIST_BORDERS_BYTES = 4_000_000
# Project ids are DynamoDB numbers from a counter: anything outside this range cannot exist.
MAX_PROJECT_ID = 2**53
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


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
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
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
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InvalidInput("name must be printable text (no control characters)")
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


def create_project(owner: str, login: str, new: NewProject) -> ProjectModel:
    """Store a validated project of the user `owner` (signed in as `login`) and its tile rows atomically.

    Each tile row carries only the part of the border a scene of that tile can meet, so a detailed
    border is stored about once in all, and ingest still tests a scene against one row. A user at
    their project limit gets QuotaExceeded, and nothing is written.
    """
    from sputnik import geo, mgrs

    border = geo.to_wkt(new.border)
    _check_listable(owner, border)
    project = ProjectModel(
        0,
        owner=owner,
        login=login,
        name=new.name,
        start_date=new.start_date,
        end_date=new.end_date,
        border=border,
        tiles=sorted(new.tiles),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    rows = [
        ProjectTileModel(
            tile,
            0,
            owner=owner,
            border=geo.to_wkt(geo.clip(new.border, mgrs.tile_lonlat_bounds(tile))),
            start_date=new.start_date,
            end_date=new.end_date,
        )
        for tile in sorted(new.tiles)
    ]
    _check_fits([project, *rows])
    # Counted first, so that parallel creations can never pass the limit; given back if the write fails.
    quotas.reserve_project(owner)
    try:
        project.project_id = next_id("project_id")
        for row in rows:
            row.project_id = project.project_id
        # All or nothing: a project never exists without its tile rows, nor rows without it.
        with TransactWrite(connection=transaction_connection()) as tx:
            tx.save(project, condition=ProjectModel.project_id.does_not_exist())
            for row in rows:
                tx.save(row)
    except Exception:
        quotas.release_project(owner)
        raise
    try:
        request_backfill(int(project.project_id))
    except Exception:
        # The caller is told it failed, so no project may stay behind to be created twice.
        delete_project(project)
        raise
    return project


def _check_listable(owner: str, border: str) -> None:
    """Refuse a border that would take the user's projects past what /project/list can answer at once."""
    held = sum(len(p.border or "") for p in list_projects(owner))
    if held + len(border) > LIST_BORDERS_BYTES:
        raise InvalidInput(
            f"your projects' borders would total {(held + len(border)) / 1e6:.1f} MB of text, over the "
            f"{LIST_BORDERS_BYTES / 1e6:.0f} MB that /project/list returns at once: simplify this border "
            "(fewer vertices or fewer decimals)"
        )


def _check_fits(items: list[ProjectModel | ProjectTileModel]) -> None:
    """Refuse, before anything is written, a project too large for DynamoDB's item or transaction limits."""
    sizes = [item_bytes(item) + 16 for item in items]  # + room for the id the counter will give
    if max(sizes) > ITEM_BYTES or sum(sizes) > TRANSACTION_BYTES:
        from sputnik import geo

        raise InvalidInput(
            f"border is too detailed to store ({sum(sizes):,} bytes): simplify it, "
            f"e.g. to fewer than {geo.MAX_VERTICES:,} vertices"
        )


def delete_project(project: ProjectModel) -> None:
    """Remove a project and its tile rows in one transaction; its owner has one project less."""
    with TransactWrite(connection=transaction_connection()) as tx:
        tx.delete(project)
        for tile in project.tiles:
            tx.delete(ProjectTileModel(tile, project.project_id))
    if project.owner:
        quotas.release_project(str(project.owner))


def request_backfill(
    project_id: int, resume: dict[str, Any] | None = None, function: str | None = None
) -> None:
    """Ask IngestFunction, asynchronously, to bring in the scenes already catalogued for a project.

    Asynchronous so the caller gets the id at once and Lambda retries a failed backfill itself;
    every write of the backfill is idempotent, and scenes arriving meanwhile are matched by ingest.
    A backfill longer than one invocation asks for its next part with where to `resume` (naming
    itself as the `function`: a function cannot be given its own name by the template).
    """
    request: dict[str, Any] = {"backfill_project": project_id}
    if resume is not None:
        request["resume"] = resume
    aws.client("lambda").invoke(
        FunctionName=function or get_settings().value("ingest_function"),
        InvocationType="Event",
        Payload=json.dumps(request).encode(),
    )


def get_project(owner: str, project_id: int) -> ProjectModel:
    """Return the caller's project; another user's project is NotFound, exactly like a missing one."""
    project: ProjectModel | None = None
    if 0 < project_id < MAX_PROJECT_ID:
        try:
            project = ProjectModel.get(project_id)
        except DoesNotExist:
            project = None
    if project is None or not owner or project.owner != owner:
        raise NotFound(f"project {project_id} not found")
    return project


def check_owner(owner: str, project_id: int) -> None:
    """Raise NotFound unless the project is the user's (by id); another user's project looks missing."""
    if not 0 < project_id < MAX_PROJECT_ID:
        raise NotFound(f"project {project_id} not found")
    try:
        found = _owner(ProjectModel.Meta.table_name, ProjectModel.Meta.host, project_id)
    except DoesNotExist:
        found = ""
    if not owner or found != owner:
        raise NotFound(f"project {project_id} not found")


# A project's owner is a user id, made once and never given to anyone else: a login removed and made
# again is a new id, so a cached owner can never grant a project to the wrong person. Project ids are
# never reused either, so a warm function reads the owner once per project: a map tile then costs no
# project read. Missing projects are not kept (lru_cache keeps no exceptions), so one created since is
# found; neither are projects without an owner yet (before `sputnik users migrate-ids`).
@functools.lru_cache(maxsize=4096)
def _owner(table: str, host: str | None, project_id: int) -> str:
    """The user id owning a project (its owner attribute only, not the border)."""
    owner = ProjectModel.get(project_id, attributes_to_get=["owner"]).owner
    if not owner:
        raise DoesNotExist()
    return str(owner)


def list_projects(owner: str) -> list[ProjectModel]:
    """Return the user's projects, oldest first (one Query on the owner index)."""
    return list(ProjectModel.by_owner.query(owner))
