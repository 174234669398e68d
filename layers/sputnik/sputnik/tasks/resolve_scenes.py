"""s2_load_data and s2_index, stage 1: the scenes to make products of, from the project's meta."""

from typing import Any

from sputnik.models import MetaModel
from sputnik.tasks import procs
from sputnik.tasks.manifests import write_manifest

SCRIPT = "resolve_scenes"


def resolve(project_id: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One item per scene: `{scene_id, date}`, date None for an id not in the project's meta.

    An unknown id stays in the list so that its item, and only it, fails with a message.
    """
    day = params.get("date")
    condition = MetaModel.date_scene.startswith(f"{day}#") if day else None
    held = {
        m.scene_id: m.date
        for m in MetaModel.query(project_id, condition, attributes_to_get=["scene_id", "date"])
    }
    wanted = params.get("scene_ids")
    if wanted is None:
        return [{"scene_id": scene_id, "date": held[scene_id]} for scene_id in sorted(held)]
    return [{"scene_id": scene_id, "date": held.get(scene_id)} for scene_id in dict.fromkeys(wanted)]


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest of scenes; where it is."""
    ref = procs.ProcRef.of(event)
    task = str(event["task"])  # every task that makes products per scene starts with this stage
    procs.script_started(ref, task, SCRIPT)
    items = resolve(ref.project_id, dict(event.get("params") or {}))
    manifest = write_manifest(ref.event_id, "scenes", items)
    procs.script_done(ref, task, SCRIPT)
    return manifest
