"""s2_composite, stage 1: the output grid, the contributing scenes and the blocks, as a manifest."""

import json
from typing import Any

from pynamodb.exceptions import DoesNotExist
from shapely.geometry import shape

from sputnik import composite
from sputnik.geo import from_wkt
from sputnik.models import MetaModel, ProjectModel
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.failures import StageError
from sputnik.tasks.manifests import write_manifest

TASK, SCRIPT = "s2_composite", "plan_blocks"


def contributing(project_id: int, params: dict[str, Any]) -> list[tuple[str, Any]]:
    """(scene id, lon/lat footprint) of the project's scenes in the period under the cloud limit.

    In order of preference, which least_cloud follows and every method uses to break ties: lowest
    cloud cover first, then oldest, then by id.
    """
    start, end = str(params["start_date"]), str(params["end_date"])
    limit = float(params.get("max_scene_cloud", 100))
    condition = MetaModel.date_scene.between(f"{start}#", f"{end}#\uffff")
    rows = [
        (
            float(m.cloud_cover) if m.cloud_cover is not None else 100.0,
            str(m.date),
            str(m.scene_id),
            m.border_gj,
        )
        for m in MetaModel.query(project_id, condition)
    ]
    rows = [row for row in rows if row[0] <= limit]
    rows.sort(key=lambda row: row[:3])
    return [(scene_id, shape(json.loads(text))) for _, _, scene_id, text in rows]


def memory() -> int:
    """Bytes a block worker may hold: SPUTNIK_COMPOSITE_BLOCK_BYTES, which the template gives this stage."""
    return int(get_settings().value("composite_block_bytes"))


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Plan the composite and write its blocks as the Map's manifest; where it is, the grid and counts."""
    ref = procs.ProcRef.of(event)
    procs.script_started(ref, TASK, SCRIPT)
    params = dict(event.get("params") or {})
    try:
        border = from_wkt(ProjectModel.get(ref.project_id).border)
    except DoesNotExist as exc:
        raise StageError(f"project {ref.project_id} not found") from exc
    footprints = contributing(ref.project_id, params)
    if not footprints:
        raise StageError(
            f"no scene of the project between {params['start_date']} and {params['end_date']} "
            f"has cloud cover <= {params.get('max_scene_cloud', 100)}%: run s2_load_meta, or widen the period"
        )
    try:
        made = composite.plan(border, footprints, str(params["product"]), str(params["method"]), memory())
    except composite.CompositeError as exc:
        raise StageError(str(exc)) from exc
    items = [
        {
            "block": block.index,
            "window": [
                int(block.window.col_off),
                int(block.window.row_off),
                int(block.window.width),
                int(block.window.height),
            ],
            "scenes": list(block.scene_ids),
        }
        for block in made.blocks
    ]
    manifest = write_manifest(ref.event_id, "blocks", items)
    procs.script_done(ref, TASK, SCRIPT)
    return {
        **manifest,
        "grid": composite.grid_json(made.grid),
        "block_size": made.side,
        "scenes": len(footprints),
    }
