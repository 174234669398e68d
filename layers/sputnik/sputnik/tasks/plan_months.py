"""s2_load_meta, stage 1: the project's MGRS tiles x every month of its dates, as a manifest of prefixes."""

from datetime import UTC, date, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist

from sputnik import stac
from sputnik.models import ProjectModel
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.failures import StageError
from sputnik.tasks.manifests import write_manifest

TASK, SCRIPT = "s2_load_meta", "plan_months"
# The first Sentinel-2 scene (Sentinel-2A's launch): where an open start date begins.
ARCHIVE_START = date(2015, 6, 23)


def months(start: date, end: date) -> list[tuple[int, int]]:
    """Every (year, month) from start's month to end's month, both included."""
    found = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        found.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def date_range(start: str | None, end: str | None, today: date) -> tuple[date, date]:
    """A project's dates as the archive can have them: open ends are the archive's start and today."""
    first = max(date.fromisoformat(start), ARCHIVE_START) if start else ARCHIVE_START
    last = min(date.fromisoformat(end), today) if end else today
    return first, last


def month_prefixes(project: ProjectModel, today: date) -> list[str]:
    """Archive prefixes of every tile-month of a project, tile by tile, oldest month first."""
    first, last = date_range(project.start_date, project.end_date, today)
    return [
        stac.month_prefix(tile, year, month)
        for tile in sorted(project.tiles)
        for year, month in months(first, last)
    ]


def archive_bucket(params: dict[str, Any]) -> str:
    """The bucket the task lists: the stack's own archive, or with {"archive": "public"} the public one."""
    settings = get_settings()
    if params.get("archive") != "public":
        return settings.archive_bucket
    if not settings.external_archive_bucket:
        raise StageError("no public archive is set for this stack (template parameter ExternalArchiveBucket)")
    return settings.external_archive_bucket


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Plan the scan: write the manifest of tile-month prefixes (and the bucket to list); where it is."""
    ref = procs.ProcRef.of(event)
    procs.script_started(ref, TASK, SCRIPT)
    try:
        project = ProjectModel.get(ref.project_id)
    except DoesNotExist as exc:
        raise StageError(f"project {ref.project_id} no longer exists") from exc
    bucket = archive_bucket(event.get("params") or {})
    prefixes = month_prefixes(project, datetime.now(UTC).date())
    manifest = write_manifest(ref.event_id, "months", [{"prefix": p, "bucket": bucket} for p in prefixes])
    procs.script_done(ref, TASK, SCRIPT)
    return manifest
