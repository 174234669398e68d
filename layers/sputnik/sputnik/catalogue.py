"""The scene catalogue: archive items checked, catalogued and matched to projects, idempotently.

IngestFunction (new items) and the s2_load_meta scan (items no event announced) write through here;
so does a project's backfill (the scenes catalogued before the project). Every write is conditional
on the order of what it carries, so duplicates leave one record and an older delivery never
overwrites newer data.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from sputnik import geo, stac
from sputnik.errors import InvalidItem
from sputnik.models import (
    ITEM_BYTES,
    TRANSACTION_BYTES,
    MetaModel,
    ProjectModel,
    ProjectTileModel,
    SceneModel,
    item_bytes,
    transact,
)
from sputnik.settings import get_settings

log = logging.getLogger(__name__)

MAX_ITEM_BYTES = 2 * 1024 * 1024  # real items are ~20-60 KB; anything huge is not an item
TRANSACTION_ITEMS = 100  # DynamoDB's limit on one TransactWriteItems
CONFLICT_ATTEMPTS = 4  # a transaction that meets a concurrent one on the same record is tried again

# A backfill reads the catalogue a page (a Query of up to BACKFILL_PAGE scenes) at a time and writes
# a page's meta records in transactions of 100; one invocation examines at most BACKFILL_SCENES scenes
# and starts no page with less than BACKFILL_RESERVE_MS of its time left (IngestFunction has 120 s),
# then hands the rest to a new invocation. Whole records are read: a projection would not lower the
# read capacity DynamoDB counts (the whole item) nor the 1 MB a page holds.
BACKFILL_PAGE = 1_000
BACKFILL_SCENES = 5_000
BACKFILL_RESERVE_MS = 40_000


def read_scene(s3: Any, bucket: str, key: str) -> stac.Scene:
    """Read and parse the archive item at a key, refusing one that is not the scene its key names."""
    scene = parse_scene(read_object(s3, bucket, key), key)
    check_named(scene, key)
    return scene


def parse_scene(data: bytes | str | Mapping[str, Any], where: str) -> stac.Scene:
    """Parse an item, whatever it is: anything but a usable item is an InvalidItem."""
    try:
        return stac.parse_item(data)
    except InvalidItem:
        raise
    except Exception as exc:
        # Parsing is pure: whatever else it raises, the same bytes raise it again on every retry.
        log.exception("parsing %s failed", where)
        raise InvalidItem(f"cannot parse the item: {type(exc).__name__}") from exc


def check_named(scene: stac.Scene, key: str) -> None:
    """Refuse an item that is not the scene its archive key names (id = folder, tile = path)."""
    named = stac.item_key_scene(key)
    if named != (scene.tile, scene.scene_id):
        # Its records are keyed by id: an item in another scene's folder would replace that scene.
        raise InvalidItem(
            f"item {scene.scene_id} of tile {scene.tile} is not the scene its key names {named}"
        )


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
    """Match a scene to projects and catalogue it; return the matches, or None for a stale delivery.

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
            log.info("delivery of %s is older than what is stored; ignored", scene.scene_id)
            return None
        previous = scene_from_record(current)
    except DoesNotExist:
        pass
    writes: list[Write] = []
    matched = 0
    for row in ProjectTileModel.query(scene.tile):  # one Query: the projects that touch this tile
        now = matches(row, scene)
        if now:
            meta = meta_record(int(row.project_id), scene, order, bucket)
            writes.append(Write(meta, _not_newer(meta, order)))
            matched += 1
        if previous is not None and matches(row, previous) and (not now or previous.date != scene.date):
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
        log.info("a newer delivery of %s won the race; this one is ignored", scene.scene_id)
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


def _batches(writes: list[Write]) -> list[list[Write]]:
    """The writes in order, cut into transactions within DynamoDB's item count and size limits."""
    batches: list[list[Write]] = [[]]
    size = 0
    for write in writes:
        bytes_ = item_bytes(write.model)
        if batches[-1] and (len(batches[-1]) == TRANSACTION_ITEMS or size + bytes_ > TRANSACTION_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(write)
        size += bytes_
    return batches


def commit(writes: list[Write]) -> bool:
    """Write all in as few transactions as DynamoDB allows, in order; False if a newer record is stored."""
    return all(not _transact(batch) for batch in _batches(writes))


def write_each(writes: list[Write]) -> None:
    """Write each record whose condition holds, in as few transactions as DynamoDB allows.

    A transaction whose conditions fail for some records (a newer one is stored) is tried again
    without them: DynamoDB names each record's reason.
    """
    for batch in _batches(writes):
        while batch:
            failed = _transact(batch)
            if not failed:
                break
            batch = [write for i, write in enumerate(batch) if i not in failed]


def _transact(writes: list[Write]) -> set[int]:
    """Run one transaction; the positions whose condition failed (nothing written), else none."""

    def write(tx: TransactWrite) -> None:
        for w in writes:
            if w.delete:
                tx.delete(w.model, condition=w.condition)
            else:
                tx.save(w.model, condition=w.condition)

    codes = transact(write, CONFLICT_ATTEMPTS)
    return {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}


def scene_record(scene: stac.Scene, item_key: str, order: str, bucket: str) -> SceneModel:
    """The catalogue record of a scene of an archive bucket."""
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
        scaling={band: list(pair) for band, pair in scene.scaling.items()} or None,
        processing_baseline=scene.processing_baseline,
        item_key=item_key,
        archive_bucket=bucket,
        sequencer=order,
    )


def matches(row: ProjectTileModel | ProjectModel, scene: stac.Scene) -> bool:
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
    """Condition of a write: nothing stored yet, or what is stored is not newer than this delivery."""
    if isinstance(model, SceneModel):
        return SceneModel.scene_id.does_not_exist() | (SceneModel.sequencer <= order)
    return MetaModel.project_id.does_not_exist() | (MetaModel.sequencer <= order)


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
        scaling={band: (float(pair[0]), float(pair[1])) for band, pair in (record.scaling or {}).items()},
        processing_baseline=record.processing_baseline,
    )


# ---------------------------------------------------------------- backfill


def _unlimited() -> int:
    """Time left when nothing limits it (no Lambda context)."""
    return 1 << 62


@dataclass(frozen=True)
class Budget:
    """What one backfill invocation may spend: scenes examined, and Lambda time (left, in ms)."""

    scenes: int
    remaining_ms: Callable[[], int] = _unlimited
    reserve_ms: int = BACKFILL_RESERVE_MS

    @classmethod
    def of(cls, context: Any) -> "Budget":
        """The budget of a Lambda invocation, timed by its context (by nothing without one)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return cls(BACKFILL_SCENES, remaining if callable(remaining) else _unlimited)

    def allows_page(self, examined: int) -> bool:
        """Whether another page fits; the first always does, so every invocation makes progress."""
        if not examined:
            return True
        return examined + BACKFILL_PAGE <= self.scenes and self.remaining_ms() >= self.reserve_ms


@dataclass(frozen=True)
class Backfilled:
    """What one backfill invocation did, and where the next one resumes (None: the backfill is done)."""

    matched: int
    examined: int
    resume: dict[str, Any] | None


def backfill_project(
    project_id: int, resume: dict[str, Any] | None = None, budget: Budget | None = None
) -> Backfilled:
    """Bring a new project the scenes catalogued for it, a budget's worth, from where the last part stopped.

    The catalogue is read one Query page at a time per tile (by date), and each page's matching
    scenes are written in one transaction; writes never overwrite a newer meta record, so a part
    done twice (a redelivery) changes nothing. `resume` is the tile and the page key to go on from.
    """
    budget = budget or Budget.of(None)
    try:
        project = ProjectModel.get(project_id)
    except DoesNotExist:
        log.warning("project %s does not exist; nothing to backfill", project_id)
        return Backfilled(0, 0, None)
    tiles = sorted(project.tiles)
    first, after = _resume_at(tiles, resume)
    border = geo.from_wkt(project.border)
    shapely.prepare(border)
    low = project.start_date or "0000-00-00"
    high = (project.end_date or "9999-99-99") + "#\uffff"
    matched = examined = 0
    for tile in tiles[first:]:
        while True:
            if not budget.allows_page(examined):
                log.info("project %s: %s scenes examined; the backfill goes on", project_id, examined)
                return Backfilled(matched, examined, {"tile": tile, "after": after})
            page = SceneModel.by_tile.query(
                tile,
                SceneModel.date_scene.between(low, high),
                limit=BACKFILL_PAGE,
                page_size=BACKFILL_PAGE,
                last_evaluated_key=after,
            )
            records = list(page)
            examined += len(records)
            matched += _backfill_page(project_id, border, records)
            after = page.last_evaluated_key
            if after is None:
                break
    log.info("project %s: backfill done (%s matched of %s examined here)", project_id, matched, examined)
    return Backfilled(matched, examined, None)


def _resume_at(tiles: list[str], resume: dict[str, Any] | None) -> tuple[int, dict[str, Any] | None]:
    """The position of the resumed tile among the project's and the page key to go on from."""
    if resume is None:
        return 0, None
    tile, after = (resume.get("tile"), resume.get("after")) if isinstance(resume, dict) else (None, None)
    if tile not in tiles or not (after is None or isinstance(after, dict)):
        raise ValueError(f"not a place to resume this project's backfill: {resume!r}")
    return tiles.index(tile), after


def _backfill_page(project_id: int, border: Any, records: list[SceneModel]) -> int:
    """Write the meta records of a page's scenes that meet the border (dates are the Query's); how many."""
    default_bucket = get_settings().archive_bucket
    writes = []
    for record in records:
        scene = scene_from_record(record)
        if border.intersects(scene.footprint):
            # Records from before the bucket was kept came from the stack's own archive.
            meta = meta_record(project_id, scene, record.sequencer, record.archive_bucket or default_bucket)
            writes.append(Write(meta, _not_newer(meta, record.sequencer)))
    write_each(writes)
    return len(writes)
