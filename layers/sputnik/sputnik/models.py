"""DynamoDB tables as PynamoDB models; template.yaml declares them, `bind_tables` names them."""

import functools
import json
import os
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

from pynamodb.attributes import (
    Attribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.constants import BINARY
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from sputnik.settings import Settings, get_settings

ITEM_BYTES = 400 * 1024  # DynamoDB's limit on one item
TRANSACTION_BYTES = 4 * 1024 * 1024  # and on one TransactWriteItems


class CompressedTextAttribute(Attribute[str]):
    """Text kept zlib-compressed, so a detailed border (20,000 vertices of WKT) fits in an item."""

    attr_type = BINARY

    def serialize(self, value: str) -> bytes:
        """Compress the text."""
        return zlib.compress(value.encode(), 6)

    def deserialize(self, value: bytes) -> str:
        """Decompress the text."""
        return zlib.decompress(value).decode()


def item_bytes(model: Model) -> int:
    """A model's size as DynamoDB counts it against its limits (names plus values; a slight overcount)."""
    size = 0
    for name, typed in model.serialize(null_check=False).items():
        ((kind, value),) = typed.items()
        size += len(name.encode())
        if kind == "S":
            size += len(value.encode())
        elif kind == "B":
            size += len(value)
        else:
            size += len(json.dumps(value))
    return size


class UserModel(Model):
    """A login with its argon2id hash, immutable id and credential version; `!fail:` items count failures.

    `user_id` is made once, when the login is created, and owns everything the user makes: a login
    removed and added again is a new user. `credential_version` grows with every password change, so
    a credential cached before the change is no longer honoured.
    """

    class Meta:
        table_name = "sputnik-users"

    login = UnicodeAttribute(hash_key=True)
    password_hash = UnicodeAttribute(null=True)
    user_id = UnicodeAttribute(null=True)
    credential_version = NumberAttribute(null=True)
    created = UnicodeAttribute(null=True)
    failures = NumberAttribute(null=True)
    window_start = NumberAttribute(null=True)
    locked_until = NumberAttribute(null=True)
    expires = TTLAttribute(null=True)


class CounterModel(Model):
    """An atomic integer: a sequence (the next project id) or a user's quota count."""

    class Meta:
        table_name = "sputnik-counters"

    name = UnicodeAttribute(hash_key=True)
    value = NumberAttribute(default=0)
    expires = TTLAttribute(null=True)


class ProjectsByOwner(GlobalSecondaryIndex["ProjectModel"]):
    """Projects of one user (by immutable user id), by project id."""

    class Meta:
        index_name = "by_owner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)
    project_id = NumberAttribute(range_key=True)


class ProjectModel(Model):
    """A user's project: a border (WKT, lon/lat), a date range and the MGRS tiles it touches."""

    class Meta:
        table_name = "sputnik-projects"

    project_id = NumberAttribute(hash_key=True)
    owner = UnicodeAttribute(null=True)  # the user id; None only before `sputnik users migrate-ids`
    login = UnicodeAttribute(null=True)  # the owner's login when the project was made (before ids: the owner)
    name = UnicodeAttribute()
    start_date = UnicodeAttribute(null=True)
    end_date = UnicodeAttribute(null=True)
    border = CompressedTextAttribute()  # WKT
    tiles = ListAttribute(of=UnicodeAttribute, default=list)
    created = UnicodeAttribute()
    by_owner = ProjectsByOwner()


class ProjectTileModel(Model):
    """One (MGRS tile, project) pair, carrying what ingest needs to match a scene in one Query."""

    class Meta:
        table_name = "sputnik-project-tiles"

    tile = UnicodeAttribute(hash_key=True)
    project_id = NumberAttribute(range_key=True)
    owner = UnicodeAttribute(null=True)
    login = UnicodeAttribute(null=True)  # before ids: the owner's login
    border = CompressedTextAttribute()  # WKT of the project's border within reach of this tile
    start_date = UnicodeAttribute(null=True)
    end_date = UnicodeAttribute(null=True)


class ScenesByTile(GlobalSecondaryIndex["SceneModel"]):
    """Scenes of one MGRS tile, by date."""

    class Meta:
        index_name = "by_tile"
        projection = AllProjection()

    tile = UnicodeAttribute(hash_key=True)
    date_scene = UnicodeAttribute(range_key=True)


class SceneModel(Model):
    """The archive catalogue: one Sentinel-2 scene as its STAC item describes it."""

    class Meta:
        table_name = "sputnik-scenes"

    scene_id = UnicodeAttribute(hash_key=True)
    tile = UnicodeAttribute()
    date = UnicodeAttribute()
    date_scene = UnicodeAttribute()
    datetime = UnicodeAttribute()
    footprint = UnicodeAttribute()
    bbox = ListAttribute(of=NumberAttribute)
    filename = UnicodeAttribute()
    cloud_cover = NumberAttribute(null=True)
    epsg = NumberAttribute(null=True)
    assets = MapAttribute[str, Any](default=dict)
    # Band -> [scale, offset] from the item's raster:bands, and the processing baseline (reflectance).
    scaling = JSONAttribute(null=True)
    processing_baseline = UnicodeAttribute(null=True)
    item_key = UnicodeAttribute()
    # The archive bucket the item was read from (the stack's own, or the public one it follows).
    archive_bucket = UnicodeAttribute(null=True)
    sequencer = UnicodeAttribute()
    by_tile = ScenesByTile()


class MetaModel(Model):
    """A scene matched to a project: what /meta/dates and /meta/list serve."""

    class Meta:
        table_name = "sputnik-meta"

    project_id = NumberAttribute(hash_key=True)
    date_scene = UnicodeAttribute(range_key=True)
    scene_id = UnicodeAttribute()
    date = UnicodeAttribute()
    border = UnicodeAttribute()
    filename = UnicodeAttribute()
    xg0 = NumberAttribute()
    xg1 = NumberAttribute()
    yg0 = NumberAttribute()
    yg1 = NumberAttribute()
    border_gj = UnicodeAttribute()
    cloud_cover = NumberAttribute(null=True)
    tci_url = UnicodeAttribute(null=True)
    sequencer = UnicodeAttribute()


class ProductModel(Model):
    """A product made for a project (an RGB COG, an index, a composite) and where it lies in S3.

    Ids sort by what a listing wants: `{scene_id}-rgb`; `index:{name}:{date}:{scene_id}`, so one
    Query on the prefix `index:{name}:` gives an index's series oldest first;
    `composite:{product}:{method}:{start}:{end}`.
    """

    class Meta:
        table_name = "sputnik-products"

    project_id = NumberAttribute(hash_key=True)
    product_id = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    scene_id = UnicodeAttribute(null=True)
    date = UnicodeAttribute(null=True)
    key = UnicodeAttribute()
    index = UnicodeAttribute(null=True)  # an index product's index name (`ndvi`, `expr-…`)
    # Statistics over the project's border: valid_pixels, clear_fraction, mean, std, min, p10,
    # median, p90, max (an index); a composite's period, method and coverage.
    stats = JSONAttribute(null=True)
    details = JSONAttribute(null=True)


class ScriptAttribute(MapAttribute[str, Any]):
    """One script (stage) of a proc: its position, name, status and result."""

    iscript = NumberAttribute()
    name = UnicodeAttribute()
    status = UnicodeAttribute()
    result = UnicodeAttribute(null=True)


class ProcModel(Model):
    """One run of a task for a project: its request, its scripts and how it ended."""

    class Meta:
        table_name = "sputnik-procs"

    project_id = NumberAttribute(hash_key=True)
    event_id = NumberAttribute(range_key=True)
    proc_id = NumberAttribute()
    task_id = NumberAttribute()
    owner = UnicodeAttribute(null=True)
    login = UnicodeAttribute(null=True)
    # Set while the proc holds one of its owner's running slots: removed, once, when the proc ends.
    running_slot = NumberAttribute(null=True)
    task = UnicodeAttribute()
    title = UnicodeAttribute()
    params = JSONAttribute(null=True)
    ctime = UnicodeAttribute()
    status = UnicodeAttribute()
    result = UnicodeAttribute(null=True)
    message = UnicodeAttribute(null=True)
    summary = JSONAttribute(null=True)
    scripts = ListAttribute(of=ScriptAttribute, default=list)


TABLES: dict[type[Model], str] = {
    UserModel: "users_table",
    CounterModel: "counters_table",
    ProjectModel: "projects_table",
    ProjectTileModel: "project_tiles_table",
    SceneModel: "scenes_table",
    MetaModel: "meta_table",
    ProductModel: "products_table",
    ProcModel: "procs_table",
}


def bind_tables(settings: Settings | None = None) -> None:
    """Point every model at the table names, region and endpoint of this environment."""
    settings = settings or get_settings()
    host = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    # Lambda always sets AWS_REGION; elsewhere the tools set AWS_DEFAULT_REGION (or boto's own rules apply).
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    for model, field in TABLES.items():
        model.Meta.table_name = getattr(settings, field)
        model.Meta.region = region
        model.Meta.host = host
        # PynamoDB caches a connection bound to the old name and host: drop it.
        model._connection = None


def transaction_connection() -> Connection:
    """The connection transactions use in this environment, made once per region and endpoint."""
    meta = ProjectModel.Meta  # bind_tables sets region and host on every model alike
    return _connection(getattr(meta, "region", None), getattr(meta, "host", None))


def transact(write: Callable[[TransactWrite], None], attempts: int) -> list[str | None]:
    """Run one transaction; its items' reason codes when a condition refused it, [] when it passed.

    A transaction cancelled only by concurrent ones on the same records (TransactionConflict, which
    the SDK does not retry) is tried again after a random pause, up to `attempts` times in all.
    """
    for attempt in range(1, attempts + 1):
        try:
            with TransactWrite(connection=transaction_connection()) as tx:
                write(tx)
            return []
        except TransactWriteError as exc:
            reasons = [(r.code if r else None) for r in (exc.cancellation_reasons or [])]
            if "ConditionalCheckFailed" in reasons:
                return reasons
            if "TransactionConflict" not in reasons or attempt == attempts:
                raise
        time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable: the last attempt returns or raises")


# Making a botocore client loads and parses the service model: ~50 ms a time, as much as the
# rest of an ingest. Models keep theirs; transactions take this one.
@functools.lru_cache(maxsize=8)
def _connection(region: str | None, host: str | None) -> Connection:
    """One PynamoDB connection per region and endpoint."""
    return Connection(region=region, host=host)


bind_tables()
