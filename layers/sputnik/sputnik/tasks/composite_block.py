"""s2_composite, stage 2 (one Map iteration): one block reduced from its scenes, as a small GeoTIFF."""

from typing import Any

import numpy as np
import rasterio
from pynamodb.exceptions import DoesNotExist
from rasterio.io import MemoryFile
from rasterio.windows import Window

from sputnik import aws, composite
from sputnik.bands import BandError, Grid
from sputnik.catalogue import scene_from_record
from sputnik.geo import from_wkt
from sputnik.models import ProjectModel, SceneModel
from sputnik.settings import get_settings
from sputnik.stac import Scene
from sputnik.tasks.failures import StageError
from sputnik.tiles.gdal import configure_gdal, gdal_env

# Batch work, not a tile: a slow read waits longer and is retried more before the block fails. The
# block cache (bytes: an int through rasterio.Env) is part of the memory above the arrays' bound.
BLOCK_GDAL_OPTIONS = {
    "GDAL_HTTP_TIMEOUT": "30",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_CACHEMAX": 128 * 1024 * 1024,
}


def block_key(event_id: int, block: int) -> str:
    """Where a block waits for the assembly: a temporary prefix of the products bucket."""
    return f"tmp/composite/{event_id}/block-{block:05d}.tif"


def scenes(scene_ids: list[str]) -> list[Scene]:
    """The catalogue's scenes, in the order given (one BatchGetItem per 100)."""
    found = {record.scene_id: scene_from_record(record) for record in SceneModel.batch_get(scene_ids)}
    missing = [sid for sid in scene_ids if sid not in found]
    if missing:
        raise StageError(f"scene {missing[0]} is no longer in the catalogue")
    return [found[sid] for sid in scene_ids]


def block_file(made: composite.BlockComposite, grid: Grid, names: tuple[str, ...]) -> bytes:
    """The block as a GeoTIFF: the product's bands then the count, float32, NaN outside the border."""
    count = made.count.astype(np.float32)
    count[~made.inside] = np.nan
    profile = composite.file_profile(grid, len(names) + 1)
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(made.bands, indexes=list(range(1, len(names) + 1)))
            dst.write(count, len(names) + 1)
        return bytes(memfile.read())


def coverage(made: composite.BlockComposite) -> dict[str, int]:
    """The block's share of the coverage statistics: pixels in the border, observed ones, counts."""
    inside = made.count[made.inside]
    return {
        "pixels": int(inside.size),
        "observed": int(np.count_nonzero(inside)),
        "count_sum": int(inside.sum(dtype=np.int64)),
        "count_min": int(inside.min()) if inside.size else 0,
        "count_max": int(inside.max()) if inside.size else 0,
    }


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Reduce the item's block and put it in the products bucket's temporary prefix; what was written."""
    project_id, event_id = int(event["project_id"]), int(event["event_id"])
    params, item = dict(event["params"]), dict(event["item"])
    grid = composite.grid_from_json(event["grid"]).window(Window(*item["window"]))
    try:
        border = from_wkt(ProjectModel.get(project_id).border)
    except DoesNotExist as exc:
        raise StageError(f"project {project_id} not found") from exc
    configure_gdal()
    try:
        with rasterio.Env(**gdal_env(), **BLOCK_GDAL_OPTIONS):
            made = composite.composite_block(
                scenes(list(item["scenes"])), str(params["product"]), str(params["method"]), grid, border
            )
    except (BandError, composite.CompositeError) as exc:
        raise StageError(str(exc)) from exc
    body = block_file(made, grid, composite.output_bands(str(params["product"])))
    key = block_key(event_id, int(item["block"]))
    aws.client("s3").put_object(
        Bucket=get_settings().products_bucket, Key=key, Body=body, ContentType="image/tiff"
    )
    return {"block": int(item["block"]), "key": key, "window": item["window"], **coverage(made)}
