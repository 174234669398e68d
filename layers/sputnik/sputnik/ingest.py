"""Scene ingestion: catalogue new STAC items and match them to projects, at least once, idempotently."""

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import boto3
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError

from sputnik import geo, stac
from sputnik.errors import InvalidItem
from sputnik.models import MetaModel, ProjectModel, ProjectTileModel, SceneModel
from sputnik.settings import get_settings

log = logging.getLogger(__name__)

MAX_ITEM_BYTES = 2 * 1024 * 1024  # real items are ~20-60 KB; anything huge is not an item


@dataclass(frozen=True)
class ObjectEvent:
    """One 'object created' notification: which object, and how to order it against others."""

    bucket: str
    key: str
    order: str


def order_key(record: dict[str, Any]) -> str:
    """A sortable position of an S3 event among the events of the same key.

    S3's `sequencer` is hex to compare after left-padding to equal length; without one (some
    emulators) the event time is used. A tie is not 'older', so a redelivery may rewrite equal data.
    """
    s3 = record.get("s3") or {}
    sequencer = str((s3.get("object") or {}).get("sequencer") or "")
    if sequencer:
        return "s" + sequencer.upper().rjust(32, "0")
    return "t" + str(record.get("eventTime") or "")


def object_events(event: dict[str, Any]) -> Iterator[ObjectEvent]:
    """Yield the created objects of an S3 event, also when SNS wraps it (as public archives send)."""
    for record in event.get("Records") or []:
        if "Sns" in record:
            try:
                inner = json.loads(record["Sns"].get("Message") or "")
            except ValueError:
                log.error("SNS message is not JSON; skipped")
                continue
            if isinstance(inner, dict):
                yield from object_events(inner)
            continue
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            # S3 sends keys URL-encoded with '+' for spaces.
            yield ObjectEvent(bucket, unquote_plus(key), order_key(record))


def handle_event(event: dict[str, Any], s3_client: Any = None) -> dict[str, int]:
    """Ingest every STAC item an event announces; bad objects are logged and skipped, never retried."""
    settings = get_settings()
    s3 = s3_client or boto3.client("s3")
    counts = {"ingested": 0, "skipped": 0, "stale": 0, "matched": 0}
    for created in object_events(event):
        if created.bucket != settings.archive_bucket:
            log.warning("object in bucket %s is not in the archive bucket; skipped", created.bucket)
            counts["skipped"] += 1
            continue
        if not stac.is_item_key(created.key):
            log.info("%s is not a STAC item of the archive layout; skipped", created.key)
            counts["skipped"] += 1
            continue
        try:
            scene = stac.parse_item(read_object(s3, created.bucket, created.key))
        except InvalidItem as exc:
            # A bad item never becomes good by retrying: log it and let the batch go on.
            log.error("bad STAC item %s: %s", created.key, exc)
            counts["skipped"] += 1
            continue
        matched = ingest_scene(scene, created.key, created.order)
        if matched is None:
            counts["stale"] += 1
        else:
            counts["ingested"] += 1
            counts["matched"] += matched
    log.info("ingest done: %s", counts)
    return counts


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    """Read an archive object, refusing anything too large to be a STAC item."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey as exc:
        raise InvalidItem(f"{key} no longer exists") from exc
    if int(obj.get("ContentLength") or 0) > MAX_ITEM_BYTES:
        raise InvalidItem(f"{key} is larger than {MAX_ITEM_BYTES} bytes")
    return bytes(obj["Body"].read())


def ingest_scene(scene: stac.Scene, item_key: str, order: str) -> int | None:
    """Match a scene to projects and catalogue it; return the matches, or None for a stale event.

    Meta records are written before the scene record, which is the commit point: if anything fails
    in between, the invocation fails whole and its redelivery redoes every (idempotent) write.
    DynamoDB calls: GetItem, Query, one PutItem per matching project, one PutItem for the scene.
    (One TransactWriteItems would do it in three calls, but costs twice the write capacity.)
    A newer version of a scene that no longer meets a project (or moved date) removes the meta
    record the older version left there.
    """
    previous: stac.Scene | None = None
    try:
        current = SceneModel.get(scene.scene_id, consistent_read=True)
        if current.sequencer > order:
            log.info("event for %s is older than what is stored; ignored", scene.scene_id)
            return None
        previous = scene_from_record(current)
    except DoesNotExist:
        pass
    candidates = ProjectTileModel.query(scene.tile)  # one Query: the projects that touch this tile
    matched = 0
    for row in candidates:
        now = _matches(row, scene)
        if now:
            write_meta(int(row.project_id), scene, order)
            matched += 1
        if previous is not None and _matches(row, previous) and (not now or previous.date != scene.date):
            remove_meta(int(row.project_id), previous, order)
    record = SceneModel(
        scene.scene_id,
        tile=scene.tile,
        date=scene.date,
        date_scene=f"{scene.date}#{scene.scene_id}",
        datetime=scene.datetime,
        footprint=geo.to_wkt(scene.footprint),
        bbox=list(scene.bbox),
        filename=scene.filename,
        cloud_cover=scene.cloud_cover,
        epsg=scene.epsg,
        assets=dict(scene.assets),
        item_key=item_key,
        sequencer=order,
    )
    try:
        record.save(condition=_not_newer(record, order))
    except PutError as exc:
        if not _condition_failed(exc):
            raise
        log.info("a newer event for %s won the race; this one is ignored", scene.scene_id)
        return None
    if not matched:
        log.info("scene %s (%s) matches no project", scene.scene_id, scene.tile)
    return matched


def _matches(row: ProjectTileModel | ProjectModel, scene: stac.Scene) -> bool:
    """Whether a project's dates contain the scene's date and its border meets the footprint."""
    if row.start_date and scene.date < row.start_date:
        return False
    if row.end_date and scene.date > row.end_date:
        return False
    return bool(geo.from_wkt(row.border).intersects(scene.footprint))


def meta_record(project_id: int, scene: stac.Scene, order: str) -> MetaModel:
    """The meta record of a scene for one project, in the contract's terms."""
    minx, miny, maxx, maxy = scene.bbox
    return MetaModel(
        project_id,
        f"{scene.date}#{scene.scene_id}",
        scene_id=scene.scene_id,
        date=scene.date,
        border=geo.to_wkb_hex(scene.footprint),
        filename=scene.filename,
        xg0=minx,
        xg1=maxx,
        yg0=miny,
        yg1=maxy,
        border_gj=geo.to_geojson(scene.footprint),
        cloud_cover=scene.cloud_cover,
        tci_url=tci_url(scene),
        sequencer=order,
    )


def tci_url(scene: stac.Scene) -> str:
    """The scene's TCI beside its item in the archive bucket: the URL /cog accepts for it."""
    folder = stac.scene_prefix(scene.tile, scene.date, scene.scene_id)
    return f"s3://{get_settings().archive_bucket}/{folder}TCI.tif"


def _not_newer(model: SceneModel | MetaModel, order: str) -> Any:
    """Condition of a write: nothing stored yet, or what is stored is not newer than this event."""
    if isinstance(model, SceneModel):
        return SceneModel.scene_id.does_not_exist() | (SceneModel.sequencer <= order)
    return MetaModel.project_id.does_not_exist() | (MetaModel.sequencer <= order)


def write_meta(project_id: int, scene: stac.Scene, order: str) -> None:
    """Write one project's meta record of a scene unless a newer one is stored."""
    record = meta_record(project_id, scene, order)
    try:
        record.save(condition=_not_newer(record, order))
    except PutError as exc:
        if not _condition_failed(exc):
            raise


def remove_meta(project_id: int, scene: stac.Scene, order: str) -> None:
    """Delete a project's meta record of an older version of a scene, unless a newer one replaced it."""
    record = MetaModel(project_id, f"{scene.date}#{scene.scene_id}")
    try:
        record.delete(condition=MetaModel.sequencer < order)
    except DeleteError as exc:
        if not _condition_failed(exc):
            raise


def _condition_failed(exc: PutError | DeleteError) -> bool:
    """Whether a write failed only because its condition did (a newer record is stored)."""
    return exc.cause_response_code == "ConditionalCheckFailedException"


def scene_from_record(record: SceneModel) -> stac.Scene:
    """Rebuild a Scene from its catalogue record."""
    return stac.Scene(
        scene_id=record.scene_id,
        tile=record.tile,
        date=record.date,
        datetime=record.datetime,
        footprint=geo.from_wkt(record.footprint),
        bbox=(record.bbox[0], record.bbox[1], record.bbox[2], record.bbox[3]),
        filename=record.filename,
        cloud_cover=record.cloud_cover,
        epsg=int(record.epsg) if record.epsg is not None else None,
        assets=dict(record.assets.as_dict() if hasattr(record.assets, "as_dict") else record.assets),
    )


def catalogued_scenes(tiles: Iterable[str], start: str | None, end: str | None) -> Iterator[SceneModel]:
    """Catalogued scenes of some tiles within a date range: one Query per tile, never a Scan."""
    low, high = (start or "0000-00-00"), (end or "9999-99-99") + "#\uffff"
    for tile in tiles:
        yield from SceneModel.by_tile.query(tile, SceneModel.date_scene.between(low, high))


def backfill_project(project_id: int) -> int:
    """Bring a new project the scenes already catalogued for it; return how many matched."""
    try:
        project = ProjectModel.get(project_id)
    except DoesNotExist:
        log.warning("project %s does not exist; nothing to backfill", project_id)
        return 0
    matched = 0
    for record in catalogued_scenes(project.tiles, project.start_date, project.end_date):
        scene = scene_from_record(record)
        if _matches(project, scene):
            write_meta(project_id, scene, record.sequencer)
            matched += 1
    log.info("project %s: %s catalogued scenes matched", project_id, matched)
    return matched


def handler_event(event: dict[str, Any]) -> dict[str, int]:
    """IngestFunction's entry: S3/SNS notifications, or `{"backfill_project": id}` from project creation."""
    if "backfill_project" in event:
        return {"matched": backfill_project(int(event["backfill_project"]))}
    return handle_event(event)
