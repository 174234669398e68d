"""s2_load_meta, stage 2 (one Map iteration): list one tile-month of the archive and ingest its new items."""

import logging
import re
from typing import Any

from sputnik import aws, catalogue, stac
from sputnik.errors import InvalidItem
from sputnik.models import MetaModel, SceneModel
from sputnik.settings import ARCHIVE_PREFIX, get_settings
from sputnik.tasks.failures import StageError

log = logging.getLogger(__name__)

_MONTH_PREFIX_RE = re.compile(rf"^{ARCHIVE_PREFIX}/\d{{1,2}}/[C-X]/[A-Z]{{2}}/(\d{{4}})/(\d{{1,2}})/$")
# The order of a pulled item: below any real S3 sequencer, so an event for the same item always wins
# and a pull never overwrites what an event brought.
PULL_ORDER = "s" + "0" * 32


def list_scene_folders(s3: Any, bucket: str, prefix: str) -> tuple[list[str], int]:
    """Scene folders under a month prefix (ListObjectsV2 with a delimiter, every page); and the calls made."""
    folders: list[str] = []
    calls = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        calls += 1
        folders += [common["Prefix"] for common in page.get("CommonPrefixes") or []]
    return folders, calls


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Ingest the items of one tile-month not catalogued yet, as IngestFunction would; the counts."""
    project_id = int(event["project_id"])
    prefix = str((event.get("item") or {}).get("prefix") or "")
    m = _MONTH_PREFIX_RE.match(prefix)
    if m is None:
        raise StageError(f"not a tile-month prefix of the archive: {prefix!r}")
    # The bucket plan_months chose; only an archive the stack reads (its own, or the public one).
    bucket = str((event.get("item") or {}).get("bucket") or get_settings().archive_bucket)
    if bucket not in get_settings().archive_buckets:
        raise StageError(f"not an archive bucket of this stack: {bucket!r}")
    s3 = aws.client("s3")
    folders, list_calls = list_scene_folders(s3, bucket, prefix)
    scene_ids = {folder: folder.rstrip("/").rsplit("/", 1)[-1] for folder in folders}
    # One BatchGetItem per 100 scenes: what is catalogued already came by event (or an earlier pull).
    known = {
        s.scene_id
        for s in SceneModel.batch_get(list(set(scene_ids.values())), attributes_to_get=["scene_id"])
    }
    new = read = bad = 0
    for folder, scene_id in scene_ids.items():
        key = f"{folder}{scene_id}.json"
        if scene_id in known or not stac.is_item_key(key):
            continue
        try:
            scene = catalogue.read_scene(s3, bucket, key)
        except InvalidItem as exc:
            log.error("bad STAC item %s: %s", key, exc)
            bad += 1
            continue
        finally:
            read += 1
        if catalogue.ingest_scene(scene, key, PULL_ORDER, bucket) is not None:
            new += 1
    year, month = int(m.group(1)), int(m.group(2))
    month_start = f"{year:04d}-{month:02d}-01"
    held = {
        meta.scene_id
        for meta in MetaModel.query(
            project_id,
            MetaModel.date_scene.between(month_start, f"{year:04d}-{month:02d}-31#\uffff"),
            attributes_to_get=["scene_id"],
        )
    }
    return {
        "found": len(folders),
        "new": new,
        "matched": len(held & set(scene_ids.values())),
        "items_read": read,
        "bad_items": bad,
        "list_calls": list_calls,
    }
