"""IngestFunction: what announces new STAC items (S3 events, SNS messages) into the scene catalogue.

Three kinds of delivery arrive: S3 `ObjectCreated` events of an archive bucket (the item is read
from S3); the same events wrapped in SNS; and the public archive's feed, whose SNS message is the
whole STAC item (nothing to read). Project creation also asks, asynchronously, for a backfill.
Anything else is logged at warning level and counted as `unrecognised`, never silently dropped.
"""

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from sputnik import aws, catalogue, projects, stac
from sputnik.errors import InvalidItem
from sputnik.settings import get_settings

log = logging.getLogger(__name__)

# How deliveries of one scene are ordered (the catalogue stores the order and never lets a lower one
# overwrite a higher one): a pull of s2_load_meta ("s" and zeros) < an S3 event's `sequencer`
# ("s" + hex) < an S3 event without one, by event time ("t") < the feed's whole items, by the time
# the item says it was updated ("u"). A tie is not older: a redelivery rewrites equal data.
SEQUENCER, EVENT_TIME, ITEM_TIME = "s", "t", "u"


@dataclass(frozen=True)
class ObjectCreated:
    """An S3 'object created' notification: which object, and how to order it against others."""

    bucket: str
    key: str
    order: str


@dataclass(frozen=True)
class ItemMessage:
    """A STAC item delivered whole in an SNS message, and its order."""

    item: Mapping[str, Any]
    order: str
    message_id: str


@dataclass(frozen=True)
class Unrecognised:
    """A record or message that is neither an S3 event nor a STAC item, and what it looked like."""

    what: str


Delivery = ObjectCreated | ItemMessage | Unrecognised


def order_key(record: Mapping[str, Any]) -> str:
    """A sortable position of an S3 event among the events of the same key.

    S3's `sequencer` is hex to compare after left-padding to equal length; without one (some
    emulators) the event time is used.
    """
    s3 = record.get("s3") or {}
    sequencer = str((s3.get("object") or {}).get("sequencer") or "")
    if sequencer:
        return SEQUENCER + sequencer.upper().rjust(32, "0")
    return EVENT_TIME + str(record.get("eventTime") or "")


def item_order(item: Mapping[str, Any], published: object) -> str:
    """The position of a whole item among deliveries of its scene, from its `updated` time.

    Else its `created`, else the time SNS published it; each as UTC with microseconds, so that text
    order is time order.
    """
    props = item.get("properties")
    props = props if isinstance(props, Mapping) else {}
    for value in (props.get("updated"), props.get("created"), published):
        when = _utc(value)
        if when is not None:
            return ITEM_TIME + when
    return ITEM_TIME


def _utc(value: object) -> str | None:
    """An ISO 8601 date-time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="microseconds") + "Z"


def deliveries(event: Mapping[str, Any]) -> Iterator[Delivery]:
    """What an event delivers: created objects and whole items, also inside SNS; the rest unrecognised."""
    records = event.get("Records")
    if not isinstance(records, list):
        yield Unrecognised(f"an event without Records (keys {sorted(event)[:10]})")
        return
    for record in records:
        if not isinstance(record, Mapping):
            yield Unrecognised(f"a record that is a {type(record).__name__}")
        elif isinstance(record.get("Sns"), Mapping):
            yield from _sns_deliveries(record["Sns"])
        elif isinstance(record.get("s3"), Mapping):
            yield from _s3_deliveries(record)
        else:
            yield Unrecognised(f"a record of {record.get('eventSource') or record.get('EventSource')!r}")


def _s3_deliveries(record: Mapping[str, Any]) -> Iterator[Delivery]:
    """The created object of an S3 event record (other S3 events create nothing to ingest)."""
    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
        log.info("S3 event %s is not an object creation; ignored", record.get("eventName"))
        return
    s3 = record["s3"]
    bucket = (s3.get("bucket") or {}).get("name")
    key = (s3.get("object") or {}).get("key")
    if isinstance(bucket, str) and isinstance(key, str):
        # S3 sends keys URL-encoded with '+' for spaces.
        yield ObjectCreated(bucket, unquote_plus(key), order_key(record))
    else:
        yield Unrecognised("an S3 event record without a bucket name and object key")


def _sns_deliveries(sns: Mapping[str, Any]) -> Iterator[Delivery]:
    """What one SNS message carries: an S3 event (its records), or a whole STAC item."""
    message_id = str(sns.get("MessageId") or "")
    text = sns.get("Message")
    if not isinstance(text, str) or len(text) > catalogue.MAX_ITEM_BYTES:
        yield Unrecognised(
            f"SNS message {message_id} without a Message of at most {catalogue.MAX_ITEM_BYTES} characters"
        )
        return
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        yield Unrecognised(f"SNS message {message_id} that is not JSON: {text[:80]!r}")
        return
    if isinstance(message, Mapping) and "Records" in message:
        yield from deliveries(message)
    elif isinstance(message, Mapping) and message.get("type") == "Feature":
        yield ItemMessage(message, item_order(message, sns.get("Timestamp")), message_id)
    elif isinstance(message, Mapping) and message.get("Event") == "s3:TestEvent":
        log.info("S3 test event in SNS message %s; nothing to ingest", message_id)
    else:
        yield Unrecognised(
            f"SNS message {message_id} that is neither an S3 event nor a STAC item: {text[:80]!r}"
        )


def ingest(event: Mapping[str, Any], s3_client: Any = None) -> dict[str, int]:
    """Catalogue every STAC item an event delivers; bad items are logged and skipped, never retried."""
    counts = {"ingested": 0, "skipped": 0, "stale": 0, "matched": 0, "unrecognised": 0}
    for delivery in deliveries(event):
        if isinstance(delivery, Unrecognised):
            log.warning("unrecognised delivery, ignored: %s", delivery.what)
            counts["unrecognised"] += 1
            continue
        try:
            found = _scene(delivery, s3_client)
            if found is None:
                counts["skipped"] += 1
                continue
            scene, key, bucket = found
            matched = catalogue.ingest_scene(scene, key, delivery.order, bucket)
        except InvalidItem as exc:
            # A bad item never becomes good by retrying: log it and let the batch go on.
            log.error("bad STAC item %s: %s", _name(delivery), exc)
            counts["skipped"] += 1
            continue
        if matched is None:
            counts["stale"] += 1
        else:
            counts["ingested"] += 1
            counts["matched"] += matched
    log.info("ingest done: %s", counts)
    return counts


def _name(delivery: ObjectCreated | ItemMessage) -> str:
    """How a log line names what was delivered."""
    if isinstance(delivery, ObjectCreated):
        return delivery.key
    return f"{delivery.item.get('id')!r} of SNS message {delivery.message_id}"


def _scene(delivery: ObjectCreated | ItemMessage, s3_client: Any) -> tuple[stac.Scene, str, str] | None:
    """The scene a delivery brings, its item key and bucket; None (logged) for what is no archive item."""
    settings = get_settings()
    if isinstance(delivery, ObjectCreated):
        bucket, key = delivery.bucket, delivery.key
        if bucket not in settings.archive_buckets:
            log.warning("object in bucket %s is not in an archive bucket; skipped", bucket)
            return None
        if not stac.is_item_key(key):
            log.info("%s is not a STAC item of the archive layout; skipped", key)
            return None
        return catalogue.read_scene(s3_client or aws.client("s3"), bucket, key), key, bucket
    # A whole item is the public archive's: it must say it lies there, in the scene's own folder,
    # and its asset hrefs there become the s3:// URLs the tiler reads.
    scene = catalogue.parse_scene(delivery.item, _name(delivery))
    bucket = settings.external_archive_bucket
    location = stac.item_location(delivery.item)
    if location is None or location[0] != bucket:
        raise InvalidItem(f"its canonical or self link is not an object of the archive bucket {bucket}")
    key = location[1]
    if not stac.is_item_key(key):
        raise InvalidItem(f"its link {key} is not a STAC item of the archive layout")
    catalogue.check_named(scene, key)
    return stac.in_bucket(scene, bucket), key, bucket


def backfill(event: Mapping[str, Any], context: Any = None) -> dict[str, int]:
    """One part of a project's backfill, within this invocation's budget; the rest is asked for anew."""
    project_id = int(event["backfill_project"])
    done = catalogue.backfill_project(project_id, event.get("resume"), catalogue.Budget.of(context))
    if done.resume is not None:
        # Last, after every write: a retry of this part redoes only idempotent writes.
        projects.request_backfill(project_id, done.resume, getattr(context, "function_name", None))
    return {"matched": done.matched, "examined": done.examined, "continued": int(done.resume is not None)}


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, int]:
    """IngestFunction's entry: S3/SNS notifications, or `{"backfill_project": id}` from project creation."""
    if "backfill_project" in event:
        return backfill(event, context)
    return ingest(event)
