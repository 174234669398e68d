"""s2_load_data, stage 2 (one Map iteration): the RGB product of one scene, as a COG and a record."""

from typing import Any

from pynamodb.exceptions import DoesNotExist

from sputnik.catalogue import scene_from_record
from sputnik.errors import Forbidden
from sputnik.models import MetaModel, ProductModel, ProjectModel, SceneModel
from sputnik.settings import get_settings
from sputnik.stac import Scene
from sputnik.tasks.failures import StageError
from sputnik.tasks.rgb_product import build_rgb_product
from sputnik.tiles.rgb import RGB
from sputnik.tiles.urls import archive_url


def product_id(scene_id: str) -> str:
    """Id of a scene's RGB product."""
    return f"{scene_id}-rgb"


def product_key(project_id: int, scene_id: str) -> str:
    """Deterministic key of a scene's RGB product: a second run overwrites it."""
    return f"projects/{project_id}/rgb/{product_id(scene_id)}.tif"


def project_scene(project_id: int, item: dict[str, Any]) -> tuple[Scene, ProjectModel]:
    """The scene of a Map item (`{scene_id, date}`) and its project; StageError unless it is the project's."""
    scene_id, day = str(item.get("scene_id") or ""), item.get("date")
    try:
        if not day:
            raise DoesNotExist
        MetaModel.get(project_id, f"{day}#{scene_id}")
        return scene_from_record(SceneModel.get(scene_id)), ProjectModel.get(project_id)
    except DoesNotExist as exc:
        raise StageError(f"scene {scene_id} is not among the project's scenes") from exc


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Build the product of the item's scene and record it; what was written."""
    project_id = int(event["project_id"])
    scene, project = project_scene(project_id, event.get("item") or {})
    scene_id = scene.scene_id
    key = product_key(project_id, scene_id)
    try:
        # The href came from an archive item: GDAL opens only what the tiler's URL policy allows.
        source = archive_url(scene.asset_href("visual"))
    except Forbidden as exc:
        raise StageError(f"scene {scene_id}: its TCI is not an object of an archive bucket") from exc
    made = build_rgb_product(source, project.border, f"s3://{get_settings().products_bucket}/{key}")
    ProductModel(
        project_id, product_id(scene_id), kind=RGB, scene_id=scene_id, date=scene.date, key=key
    ).save()
    return {
        "scene_id": scene_id,
        "product_id": product_id(scene_id),
        "pixels": made.width * made.height,
        "bytes_written": made.bytes_written,
    }
