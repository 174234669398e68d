"""Scene ingestion: catalogue new STAC items and match them to projects, at least once, idempotently."""

import json
import logging
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from sputnik import aws, geo, stac
from sputnik.errors import InvalidItem
from sputnik.models import (
    ITEM_BYTES,
    TRANSACTION_BYTES,
    MetaModel,
    ProjectModel,
    ProjectTileModel,
    SceneModel,
    item_bytes,
    transaction_connection,
)
from sputnik.settings import get_settings

log = logging.getLogger(__name__)

MAX_ITEM_BYTES = 2 * 1024 * 1024  # real items are ~20-60 KB; anything huge is not an item
TRANSACTION_ITEMS = 100  # DynamoDB's limit on one TransactWriteItems
CONFLICT_ATTEMPTS = 4  # a transaction that meets a concurrent one on the same record is tried again


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
    s3 = s3_client or aws.client("s3")
    buckets = get_settings().archive_buckets
    counts = {"ingested": 0, "skipped": 0, "stale": 0, "matched": 0}
    for created in object_events(event):
        if created.bucket not in buckets:
            log.warning("object in bucket %s is not in an archive bucket; skipped", created.bucket)
            counts["skipped"] += 1
            continue
        if not stac.is_item_key(created.key):
            log.info("%s is not a STAC item of the archive layout; skipped", created.key)
            counts["skipped"] += 1
            continue
        try:
            scene = read_scene(s3, created)
            matched = ingest_scene(scene, created.key, created.order, created.bucket)
        except InvalidItem as exc:
            # A bad item never becomes good by retrying: log it and let the batch go on.
            log.error("bad STAC item %s: %s", created.key, exc)
            counts["skipped"] += 1
            continue
        if matched is None:
            counts["stale"] += 1
        else:
            counts["ingested"] += 1
            counts["matched"] += matched
    log.info("ingest done: %s", counts)
    return counts


def read_scene(s3: Any, created: ObjectEvent) -> stac.Scene:
    """Read and parse the item an event names, refusing one that is not the scene its key names."""
    data = read_object(s3, created.bucket, created.key)
    try:
        scene = stac.parse_item(data)
    except InvalidItem:
        raise
    except Exception as exc:
        # Parsing is pure: whatever else it raises, the same bytes raise it again on every retry.
        log.exception("parsing %s failed", created.key)
        raise InvalidItem(f"cannot parse the item: {type(exc).__name__}") from exc
    named = stac.item_key_scene(created.key)
    if named != (scene.tile, scene.scene_id):
        # Its records are keyed by id: an item in another scene's folder would replace that scene.
        raise InvalidItem(
            f"item {scene.scene_id} of tile {scene.tile} is not the scene its key names {named}"
        )
    return scene


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    """Read an archive object, refusing anything too large to be a STAC item."""
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey as exc:
        raise InvalidItem(f"{key} no longer exists") from exc
    if int(obj.get("ContentLength") or 0) > MAX_ITEM_BYTES:
        raise InvalidItem(f"{key} is larger than {MAX_ITEM_BYTES} bytes")
    return bytes(obj["Body"].read())


def ingest_scene(scene: stac.Scene, item_key: str, order: str, bucket: str) -> int | None:
    """Match a scene to projects and catalogue it; return the matches, or None for a stale event.

    The scene record and its meta records are written together in one transaction, so a meta
    record never exists without its scene, whatever fails; a record too large for DynamoDB makes
    the item invalid before anything is written. Beyond 99 matching projects the writes take
    several transactions, the scene record in the last (the commit point: a failure in between
    is retried whole). DynamoDB calls: GetItem, Query, TransactWriteItems.
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
    writes: list[Write] = []
    matched = 0
    for row in ProjectTileModel.query(scene.tile):  # one Query: the projects that touch this tile
        now = _matches(row, scene)
        if now:
            meta = meta_record(int(row.project_id), scene, order, bucket)
            writes.append(Write(meta, _not_newer(meta, order)))
            matched += 1
        if previous is not None and _matches(row, previous) and (not now or previous.date != scene.date):
            gone = MetaModel(int(row.project_id), f"{previous.date}#{previous.scene_id}")
            writes.append(
                Write(gone, MetaModel.project_id.does_not_exist() | (MetaModel.sequencer < order), True)
            )
    record = scene_record(scene, item_key, order, bucket)
    writes.append(Write(record, _not_newer(record, order)))
    for write in writes:
        if not write.delete and item_bytes(write.model) > ITEM_BYTES:
            raise InvalidItem(f"{scene.scene_id}: its records would pass DynamoDB's 400 KB item limit")
    if not commit(writes):
        log.info("a newer event for %s won the race; this one is ignored", scene.scene_id)
        return None
    if not matched:
        log.info("scene %s (%s) matches no project", scene.scene_id, scene.tile)
    return matched


@dataclass(frozen=True)
class Write:
    """One conditional put (or delete) of a transaction."""

    model: Model
    condition: Any
    delete: bool = False


def commit(writes: list[Write]) -> bool:
    """Write in as few transactions as DynamoDB allows, in order; False if a newer record is stored."""
    batch: list[Write] = []
    size = 0
    for write in writes:
        bytes_ = item_bytes(write.model)
        if batch and (len(batch) == TRANSACTION_ITEMS or size + bytes_ > TRANSACTION_BYTES):
            if not _transact(batch):
                return False
            batch, size = [], 0
        batch.append(write)
        size += bytes_
    return _transact(batch)


def _transact(writes: list[Write]) -> bool:
    """Run one transaction; False if a condition failed, retried when it met a concurrent one."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            with TransactWrite(connection=transaction_connection()) as tx:
                for write in writes:
                    if write.delete:
                        tx.delete(write.model, condition=write.condition)
                    else:
                        tx.save(write.model, condition=write.condition)
            return True
        except TransactWriteError as exc:
            codes = {reason.code for reason in exc.cancellation_reasons if reason is not None}
            if "ConditionalCheckFailed" in codes:
                return False
            if "TransactionConflict" not in codes or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1) * random.random())  # noqa: S311 - jitter, not secrecy
    raise AssertionError("unreachable")


def scene_record(scene: stac.Scene, item_key: str, order: str, bucket: str) -> SceneModel:
    """The catalogue record of a scene read from an archive bucket."""
    return SceneModel(
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
        archive_bucket=bucket,
        sequencer=order,
    )


def _matches(row: ProjectTileModel | ProjectModel, scene: stac.Scene) -> bool:
    """Whether a project's dates contain the scene's date and its border meets the footprint."""
    if row.start_date and scene.date < row.start_date:
        return False
    if row.end_date and scene.date > row.end_date:
        return False
    return bool(geo.from_wkt(row.border).intersects(scene.footprint))


def meta_record(project_id: int, scene: stac.Scene, order: str, bucket: str) -> MetaModel:
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
        tci_url=tci_url(scene, bucket),
        sequencer=order,
    )


def tci_url(scene: stac.Scene, bucket: str) -> str:
    """The scene's TCI beside its item in the archive bucket it came from: the URL /cog accepts for it."""
    folder = stac.scene_prefix(scene.tile, scene.date, scene.scene_id)
    return f"s3://{bucket}/{folder}TCI.tif"


def _not_newer(model: SceneModel | MetaModel, order: str) -> Any:
    """Condition of a write: nothing stored yet, or what is stored is not newer than this event."""
    if isinstance(model, SceneModel):
        return SceneModel.scene_id.does_not_exist() | (SceneModel.sequencer <= order)
    return MetaModel.project_id.does_not_exist() | (MetaModel.sequencer <= order)


def write_meta(project_id: int, scene: stac.Scene, order: str, bucket: str) -> None:
    """Write one project's meta record of a scene unless a newer one is stored."""
    record = meta_record(project_id, scene, order, bucket)
    try:
        record.save(condition=_not_newer(record, order))
    except PutError as exc:
        if not _condition_failed(exc):
            raise


def _condition_failed(exc: PutError) -> bool:
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
            # Records from before the bucket was kept came from the stack's own archive.
            bucket = record.archive_bucket or get_settings().archive_bucket
            write_meta(project_id, scene, record.sequencer, bucket)
            matched += 1
    log.info("project %s: %s catalogued scenes matched", project_id, matched)
    return matched


def handler_event(event: dict[str, Any]) -> dict[str, int]:
    """IngestFunction's entry: S3/SNS notifications, or `{"backfill_project": id}` from project creation."""
    if "backfill_project" in event:
        return {"matched": backfill_project(int(event["backfill_project"]))}
    return handle_event(event)
