"""s2_index, stage 2 (one Map iteration): one scene's index over the project's border, a COG and a record."""

from typing import Any

from sputnik.band_names import CLOUDY_SCL, BandError
from sputnik.indices import get_index
from sputnik.models import ProductModel
from sputnik.settings import get_settings
from sputnik.tasks.build_product import project_scene
from sputnik.tasks.failures import StageError
from sputnik.tasks.index_product import build_index_product

KIND = "index"


def product_id(index: str, day: str, scene_id: str) -> str:
    """Id of a scene's index product: one Query on `index:{index}:` gives the series oldest first."""
    return f"{KIND}:{index}:{day}:{scene_id}"


def product_key(project_id: int, index: str, scene_id: str) -> str:
    """Deterministic key of a scene's index product: a second run overwrites it."""
    return f"projects/{project_id}/{KIND}/{index}/{scene_id}.tif"


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Build the index product of the item's scene and record it with its statistics; what was written."""
    project_id = int(event["project_id"])
    params = dict(event.get("params") or {})
    index = get_index(params["index"])
    mask = params.get("mask", list(CLOUDY_SCL))
    scene, project = project_scene(project_id, event.get("item") or {})
    key = product_key(project_id, index.name, scene.scene_id)
    try:
        made = build_index_product(
            scene, index, project.border, f"s3://{get_settings().products_bucket}/{key}", mask
        )
    except BandError as exc:
        raise StageError(f"scene {scene.scene_id}: {exc}") from exc
    pid = product_id(index.name, scene.date, scene.scene_id)
    ProductModel(
        project_id,
        pid,
        kind=KIND,
        scene_id=scene.scene_id,
        date=scene.date,
        key=key,
        index=index.name,
        stats=made.stats,
        details={"expression": index.expression, "bands": list(index.bands), "mask": list(mask)},
    ).save()
    return {
        "scene_id": scene.scene_id,
        "product_id": pid,
        "pixels": made.width * made.height,
        "clear_pixels": made.stats["valid_pixels"],
        "bytes_written": made.bytes_written,
    }
