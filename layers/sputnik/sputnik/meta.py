"""Reading a project's scene metadata: one Query each, whatever the catalogue's size."""

from typing import Any

from sputnik.errors import InvalidInput
from sputnik.models import MetaModel
from sputnik.projects import check_owner, parse_date


def dates(login: str, project_id: int) -> list[str]:
    """Distinct dates with scenes for the caller's project, sorted."""
    check_owner(login, project_id)
    found = MetaModel.query(project_id, attributes_to_get=["date_scene"])
    # date_scene sorts by date, so the distinct dates come out sorted.
    return sorted({m.date_scene.split("#", 1)[0] for m in found})


def scenes(login: str, project_id: int, date: str) -> list[dict[str, Any]]:
    """The caller's project's scenes of one date, as the contract's MetaRes fields."""
    day = parse_date(date, "date")
    if day is None:
        raise InvalidInput("date must be a date as YYYY-MM-DD")
    check_owner(login, project_id)
    return [
        {
            "project_id": int(m.project_id),
            "scene_id": m.scene_id,
            "date": m.date,
            "border": m.border,
            "filename": m.filename,
            "xg0": m.xg0,
            "xg1": m.xg1,
            "yg0": m.yg0,
            "yg1": m.yg1,
            "border_gj": m.border_gj,
            "cloud_cover": m.cloud_cover,
            "tci_url": m.tci_url,
        }
        for m in MetaModel.query(project_id, MetaModel.date_scene.startswith(f"{day}#"))
    ]
