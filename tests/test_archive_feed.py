"""The public archive's feed: whole STAC items in SNS messages, as the sentinel-cogs topic sends them.

The topic (`cirrus-v0-publish`, listed on the Registry of Open Data for sentinel-cogs) sends each new
item whole as the message, with attributes `collection` (String) and `bbox.*` (Number). Here a topic
of that name stands in the local stack, IngestFunction subscribed to it as the template subscribes
it (filter policy and region included), and the real v0 item is published as it is.
"""

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import DoesNotExist

from sputnik import ingest, stac
from sputnik.models import MetaModel, SceneModel
from sputnik.projects import check_owner
from sputnik.settings import ARCHIVE_PREFIX, get_settings
from sputnik.tiles.urls import dataset_url
from tests.conftest import FIXTURES, REPO
from tests.support.logs import json_lines, metrics_of
from tests.support.projects import box, new_project

V0_ITEM = FIXTURES / "stac-items" / "v0" / "S2A_31NBJ_20190524_0_L2A.json"
SAMPLE_EVENT = REPO / "events" / "IngestFunction" / "sns-archive-item.json"
TOPIC_ARN = "arn:aws:sns:us-west-2:608149789419:cirrus-v0-publish"
L2A = "sentinel-s2-l2a-cogs"
SCENE = "S2A_31NBJ_20190524_0_L2A"
PUBLIC_HOST = "https://sentinel-cogs.s3.us-west-2.amazonaws.com/"
FOLDER = f"{ARCHIVE_PREFIX}/31/N/BJ/2019/5/{SCENE}/"


class Topic(NamedTuple):
    """The stand-in topic and a client of its region."""

    sns: Any
    arn: str


@pytest.fixture(scope="module")
def topic(stack: Any) -> Topic:
    """A topic named as the real one, in its region, with the template's subscription of IngestFunction."""
    sns = boto3.client("sns", endpoint_url=stack.endpoint, region_name=TOPIC_ARN.split(":")[3])
    arn = sns.create_topic(Name=TOPIC_ARN.rsplit(":", 1)[1])["TopicArn"]
    (subscription,) = stack.subscribe("ArchiveTopicArn", arn)
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription)["Attributes"]
    assert json.loads(attributes["FilterPolicy"]) == {"collection": [L2A]}
    assert attributes["Endpoint"] == stack.template.arn("IngestFunction")
    return Topic(sns, arn)


def publish(topic: Topic, message: str, collection: str | None = L2A) -> str:
    """Publish as the archive does: the message, its collection and bbox as message attributes.

    SNS delivers to Lambda before publish returns here (the local stack runs the function in-process).
    """
    try:
        bbox = json.loads(message)["bbox"]
    except (ValueError, KeyError, TypeError):
        bbox = [0.0, 0.0, 0.0, 0.0]
    attributes = {
        f"bbox.{name}": {"DataType": "Number", "StringValue": repr(value)}
        for name, value in zip(("xmin", "ymin", "xmax", "ymax"), bbox, strict=True)
    }
    if collection is not None:
        attributes["collection"] = {"DataType": "String", "StringValue": collection}
    return str(
        topic.sns.publish(TopicArn=topic.arn, Message=message, MessageAttributes=attributes)["MessageId"]
    )


def delivered_events(stack: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event the local stack invokes IngestFunction with from now on (the test's own)."""
    from sputnik_tools.local.runtime import FUNCTIONS

    function = FUNCTIONS[stack.function_for("IngestFunction")]
    events: list[dict[str, Any]] = []
    invoke = function.invoke

    def recording(event: dict[str, Any]) -> Any:
        events.append(copy.deepcopy(event))
        return invoke(event)

    monkeypatch.setattr(function, "invoke", recording)
    return events


def key_paths(value: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key of a JSON value as its path from the top (list items as `[]`)."""
    if isinstance(value, dict):
        return {(*path, k) for k in value} | {p for k, v in value.items() for p in key_paths(v, (*path, k))}
    if isinstance(value, list):
        return {p for v in value for p in key_paths(v, (*path, "[]"))}
    return set()


def real_message() -> str:
    """The real v0 item, byte for byte."""
    return V0_ITEM.read_text()


# Processings of one product told apart by their processing times: ingest refuses a name not ESA's.
ESA = {
    word: f"S2A_MSIL2A_20190524T101031_N0212_R022_T31NBJ_20190524T13030{i}"
    for i, word in enumerate(("OLDER", "FIRST", "SECOND", "NEWER", "THIRD"))
}


def variant(n: int, **properties: Any) -> dict[str, Any]:
    """The real item made into scene `..._{n}_L2A` (id, folder, links and hrefs), with some properties set."""
    item: dict[str, Any] = json.loads(real_message().replace(SCENE, scene_id(n)))
    item["properties"].update(properties)
    return item


def scene_id(n: int) -> str:
    """The id of the real scene's variant n."""
    return SCENE.replace("_0_L2A", f"_{n}_L2A")


def sns_event(message: str, timestamp: str | None = None) -> dict[str, Any]:
    """The sample event (Lambda's SNS event as the topic sends it) with another message and time."""
    event: dict[str, Any] = json.loads(SAMPLE_EVENT.read_text())
    event["Records"][0]["Sns"]["Message"] = message
    if timestamp is not None:
        event["Records"][0]["Sns"]["Timestamp"] = timestamp
    return event


def test_the_sample_event_is_the_topics_message_with_the_real_item_byte_exact() -> None:
    event = json.loads(SAMPLE_EVENT.read_text())
    (record,) = event["Records"]
    # Lambda's SNS event record, as AWS documents it.
    assert (record["EventSource"], record["EventVersion"]) == ("aws:sns", "1.0")
    assert record["EventSubscriptionArn"].startswith(TOPIC_ARN + ":")
    sns = record["Sns"]
    assert set(sns) == {
        "Type",
        "MessageId",
        "TopicArn",
        "Subject",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertUrl",
        "UnsubscribeUrl",
        "MessageAttributes",
    }
    assert (sns["Type"], sns["TopicArn"], sns["Subject"]) == ("Notification", TOPIC_ARN, None)
    assert sns["Message"].encode() == V0_ITEM.read_bytes()
    item = json.loads(sns["Message"])
    attributes = sns["MessageAttributes"]
    assert (
        attributes["collection"]
        == {"Type": "String", "Value": item["collection"]}
        == {
            "Type": "String",
            "Value": L2A,
        }
    )
    bbox = [attributes[f"bbox.{name}"] for name in ("xmin", "ymin", "xmax", "ymax")]
    assert {a["Type"] for a in bbox} == {"Number"}
    assert [float(a["Value"]) for a in bbox] == item["bbox"]
    assert set(attributes) == {"collection", "bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax"}


def test_the_real_item_published_to_the_topic_is_catalogued_from_the_message_alone(
    stack: Any, topic: Topic, api: httpx.Client, user: tuple[str, str]
) -> None:
    project = new_project(api, box(0.5, 7.4, 0.9, 7.8), "2019-05-24", "2019-05-24")
    key = FOLDER + SCENE + ".json"
    s3 = stack.client("s3")
    for bucket in get_settings().archive_buckets:
        # Nowhere in S3: an ingest that needed to read the item could not have found it.
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=key)
    message = real_message()
    item = json.loads(message)
    publish(topic, message)
    record = SceneModel.get(SCENE)
    assert (record.archive_bucket, record.item_key, record.tile) == ("sentinel-cogs", key, "31NBJ")
    # Ordered by when the item says it was updated.
    assert record.sequencer == "u2020-08-28T04:30:59.407000Z"
    hrefs = {name: asset["href"] for name, asset in item["assets"].items()}
    # The public archive's https hrefs become s3:// URLs of the bucket; the others stay as sent.
    assert record.assets.as_dict() == {
        name: href.replace(PUBLIC_HOST, "s3://sentinel-cogs/") for name, href in hrefs.items()
    }
    assert record.assets["thumbnail"].startswith("https://roda.sentinel-hub.com/")
    metas = api.get("/meta/list", params={"project_id": project, "date": "2019-05-24"}).json()["metas"]
    assert [(m["scene_id"], m["filename"]) for m in metas] == [
        (SCENE, item["properties"]["sentinel:product_id"])
    ]
    tci = f"s3://sentinel-cogs/{FOLDER}TCI.tif"
    assert metas[0]["tci_url"] == record.assets["visual"] == tci
    # The URL the tiler's policy accepts for a scene of the public archive.
    assert dataset_url(tci, user[0], check_owner) == tci
    # A redelivery (SNS delivers at least once) rewrites the same records: still one of each.
    publish(topic, message)
    assert SceneModel.get(SCENE).sequencer == record.sequencer
    assert [m.scene_id for m in MetaModel.query(project)] == [SCENE]


def test_other_collections_of_the_topic_never_invoke_the_function(topic: Topic) -> None:
    message = json.dumps(variant(7))
    publish(topic, message, collection="sentinel-s2-l1c")
    publish(topic, message, collection=None)  # no collection attribute: the policy does not match
    with pytest.raises(DoesNotExist):
        SceneModel.get(scene_id(7))
    # The same message as the collection sputnik reads: only the filter policy kept it out.
    publish(topic, message)
    assert SceneModel.get(scene_id(7)).archive_bucket == "sentinel-cogs"


@pytest.mark.parametrize(
    "message",
    [
        "new scene!",
        '{"hello": "world"}',
        '{"type": "FeatureCollection", "features": []}',
        "[1, 2, 3]",
        '{"Records": "not a list"}',
        '{"Records": [{"eventSource": "aws:sqs", "body": "x"}]}',
    ],
)
def test_an_unrecognised_message_is_logged_at_warning_and_counted(
    stack: Any,
    topic: Topic,
    message: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    capfd.readouterr()
    with caplog.at_level("WARNING", logger="sputnik.ingest"):
        publish(topic, message)
    warnings = [r for r in caplog.records if r.name == "sputnik.ingest" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and "unrecognised" in warnings[0].getMessage()
    counted = metrics_of(json_lines(capfd.readouterr().out), stack.function_for("IngestFunction"))
    assert counted["Unrecognised"] == 1
    assert counted["Ingested"] == counted["Skipped"] == 0


def test_an_update_older_than_what_is_stored_never_overwrites_it(topic: Topic) -> None:
    def deliver(updated: str, product: str) -> None:
        item = variant(6, updated=updated, **{"sentinel:product_id": product})
        publish(topic, json.dumps(item))

    deliver("2024-03-01T10:00:00.250Z", ESA["FIRST"])
    assert SceneModel.get(scene_id(6)).filename == ESA["FIRST"]
    # Written an hour earlier, delivered later (e.g. a retry): ignored.
    deliver("2024-03-01T09:00:00Z", ESA["OLDER"])
    assert SceneModel.get(scene_id(6)).filename == ESA["FIRST"]
    # Another offset, the same instant plus a millisecond: newer, so it wins.
    deliver("2024-03-01T11:00:00.251+01:00", ESA["NEWER"])
    record = SceneModel.get(scene_id(6))
    assert (record.filename, record.sequencer) == (ESA["NEWER"], "u2024-03-01T10:00:00.251000Z")


def test_without_item_times_the_time_sns_published_it_orders_deliveries(stack: Any) -> None:
    item = variant(5)
    for name in ("updated", "created"):
        item["properties"].pop(name)

    def deliver(timestamp: str, product: str) -> dict[str, int]:
        item["properties"]["sentinel:product_id"] = product
        return ingest.handle(sns_event(json.dumps(item), timestamp))

    assert deliver("2024-05-02T08:00:00.500Z", ESA["SECOND"])["ingested"] == 1
    assert deliver("2024-05-02T08:00:00.499Z", ESA["FIRST"]) == {
        "ingested": 0,
        "skipped": 0,
        "stale": 1,
        "matched": 0,
        "unrecognised": 0,
    }
    assert SceneModel.get(scene_id(5)).filename == ESA["SECOND"]
    assert deliver("2024-05-02T08:00:01.000Z", ESA["THIRD"])["ingested"] == 1
    assert SceneModel.get(scene_id(5)).filename == ESA["THIRD"]


def test_the_sample_event_runs_through_ingest_function(stack: Any) -> None:
    out = stack.client("lambda").invoke(
        FunctionName=stack.function_for("IngestFunction"), Payload=SAMPLE_EVENT.read_bytes()
    )
    assert "FunctionError" not in out
    assert json.loads(out["Payload"].read())["ingested"] == 1
    assert SceneModel.get(SCENE).archive_bucket == "sentinel-cogs"


HOSTILE_HREFS = {
    "B01": "https://evil.example/sentinel-s2-l2a-cogs/31/N/BJ/2019/5/{id}/B01.tif",
    "B02": "https://other-bucket.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/31/N/BJ/2019/5/{id}/B02.tif",
    "B03": "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/31/N/BJ/../../../../../private/B03.tif",
    "B04": "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/31/N/BJ/%2e%2e/%2e%2e/B04.tif",
    "B05": "https://sentinel-cogs.s3.us-west-2.amazonaws.com@evil.example/sentinel-s2-l2a-cogs/B05.tif",
    "B06": "https://sentinel-cogs.s3.us-west-2.amazonaws.com.evil.example/sentinel-s2-l2a-cogs/B06.tif",
    "B07": "https://sentinel-cogs.s3.us-west-2.amazonaws.com:8443/sentinel-s2-l2a-cogs/B07.tif",
    "B08": "http://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/B08.tif",
    "B8A": "https://sentinel-cogs.s3.us-west-2.amazonaws.com/private/B8A.tif",
    "B09": "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/B09.tif?versionId=1",
    "B11": "file:///etc/passwd",
    "B12": "/vsicurl/https://evil.example/B12.tif",
}


def test_hostile_asset_hrefs_are_never_made_archive_urls(stack: Any) -> None:
    item = variant(4)
    for name, href in HOSTILE_HREFS.items():
        item["assets"][name]["href"] = href.format(id=scene_id(4))
    assert ingest.handle(sns_event(json.dumps(item)))["ingested"] == 1
    assets = SceneModel.get(scene_id(4)).assets
    for name, href in HOSTILE_HREFS.items():
        assert assets[name] == href.format(id=scene_id(4)), name
    # The item's honest hrefs are still the archive's.
    assert assets["visual"] == f"s3://sentinel-cogs/{FOLDER.replace(SCENE, scene_id(4))}TCI.tif"


@pytest.mark.parametrize(
    "link",
    [
        "https://other-bucket.s3.us-west-2.amazonaws.com/{folder}{id}.json",
        "https://evil.example/{folder}{id}.json",
        "s3://sputnik-archive-123456789012-us-east-1/{folder}{id}.json",  # the stack's own: not the feed's
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/{folder}../../../../../../33/T/WN/2021/6/"
        "S2A_33TWN_20210629_0_L2A/S2A_33TWN_20210629_0_L2A.json",
        # Another scene's folder: its records would be replaced by this item's.
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs/33/T/WN/2021/6/"
        "S2A_33TWN_20210629_0_L2A/S2A_33TWN_20210629_0_L2A.json",
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/{folder}other.json",
        None,  # no link that says where it lies
    ],
)
def test_an_item_that_does_not_lie_in_the_public_archive_is_refused(
    stack: Any, link: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    item = variant(3)
    folder = FOLDER.replace(SCENE, scene_id(3))
    item["links"] = [entry for entry in item["links"] if entry["rel"] not in ("self", "canonical")]
    if link is not None:
        href = link.format(folder=folder, id=scene_id(3))
        item["links"] += [{"rel": "self", "href": href}, {"rel": "canonical", "href": href}]
    counts = ingest.handle(sns_event(json.dumps(item)))
    assert counts == {"ingested": 0, "skipped": 1, "stale": 0, "matched": 0, "unrecognised": 0}
    assert "bad STAC item" in caplog.text
    with pytest.raises(DoesNotExist):
        SceneModel.get(scene_id(3))


def test_a_v1_item_whose_canonical_link_is_s3_is_located_by_it(stack: Any, fixtures_dir: Path) -> None:
    # v1 items link `self` to the STAC API and `canonical` to s3://sentinel-cogs/...: the feed may
    # carry either schema.
    item = json.loads((fixtures_dir / "stac-items/v1/S2B_24MUV_20250731_0_L2A.json").read_text())
    item = json.loads(json.dumps(item).replace("S2B_24MUV_20250731_0_L2A", "S2B_24MUV_20250731_4_L2A"))
    assert ingest.handle(sns_event(json.dumps(item)))["ingested"] == 1
    record = SceneModel.get(item["id"])
    assert record.item_key == stac.parse_item(item).key
    assert record.sequencer == "u" + "2025-07-31T14:13:07.662000Z"
    assert record.assets["visual"] == f"s3://sentinel-cogs/{record.item_key.rsplit('/', 1)[0]}/TCI.tif"


TCI_KEY = f"{FOLDER}TCI.tif"


@pytest.mark.parametrize(
    "url",
    [
        f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/{TCI_KEY}",  # virtual-hosted, regional
        f"https://sentinel-cogs.s3-us-west-2.amazonaws.com/{TCI_KEY}",  # the legacy dash-region form
        f"https://sentinel-cogs.s3.amazonaws.com/{TCI_KEY}",  # global endpoint
        f"https://s3.us-west-2.amazonaws.com/sentinel-cogs/{TCI_KEY}",  # path-style
        f"https://s3.amazonaws.com/sentinel-cogs/{TCI_KEY}",
        f"https://SENTINEL-COGS.S3.US-WEST-2.AMAZONAWS.COM/{TCI_KEY}",  # host names ignore case
        f"s3://sentinel-cogs/{TCI_KEY}",
    ],
)
def test_the_documented_s3_url_forms_become_the_s3_url_of_the_archive(url: str) -> None:
    assert stac.archive_url(url, "sentinel-cogs") == f"s3://sentinel-cogs/{TCI_KEY}"


@pytest.mark.parametrize(
    "url",
    [
        *(href.format(id=SCENE) for href in HOSTILE_HREFS.values()),
        f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/{TCI_KEY}#x",
        f"https://sentinel-cogs.s3.us-west-2.amazonaws.com//{TCI_KEY}",
        f"https://sentinel-cogs.s3.us-west-2.amazonaws.com/{TCI_KEY.replace('/', '%2F')}",
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/sentinel-s2-l2a-cogs\\..\\x/TCI.tif",
        f"https://evil.example/sentinel-cogs.s3.us-west-2.amazonaws.com/{TCI_KEY}",
        f"https://s3.us-west-2.amazonaws.com/other-bucket/{TCI_KEY}",
        f"https://s3.us-west-2.amazonaws.com/sentinel-cogs/../other-bucket/{TCI_KEY}",
        f"s3://other-bucket/{TCI_KEY}",
        "https://sentinel-cogs.s3.us-west-2.amazonaws.com/",
        "https://[::1/x",
        "",
    ],
)
def test_hostile_or_foreign_urls_are_left_as_they_are(url: str) -> None:
    assert stac.archive_url(url, "sentinel-cogs") == url


def test_a_scene_keeps_its_hrefs_elsewhere_than_the_archive_unchanged() -> None:
    item = copy.deepcopy(variant(2))
    scene = stac.in_bucket(stac.parse_item(item), "sentinel-cogs")
    assert scene.assets["info"] == item["assets"]["info"]["href"]
    assert scene.assets["B04"] == "s3://sentinel-cogs/" + item["assets"]["B04"]["href"].removeprefix(
        PUBLIC_HOST
    )


def test_sns_invokes_the_function_with_the_documented_event_and_the_attributes_as_published(
    stack: Any, topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = delivered_events(stack, monkeypatch)
    item = variant(8)
    message = json.dumps(item)
    before = datetime.now(UTC)
    message_id = publish(topic, message)
    after = datetime.now(UTC)
    (event,) = events
    # Key for key as the real event (the sample), every level down.
    assert key_paths(event) == key_paths(json.loads(SAMPLE_EVENT.read_text()))
    (record,) = event["Records"]
    (subscription,) = topic.sns.list_subscriptions_by_topic(TopicArn=topic.arn)["Subscriptions"]
    assert (record["EventSource"], record["EventVersion"]) == ("aws:sns", "1.0")
    assert record["EventSubscriptionArn"] == subscription["SubscriptionArn"]
    sns = record["Sns"]
    assert (sns["Type"], sns["MessageId"], sns["TopicArn"], sns["Subject"]) == (
        "Notification",
        message_id,
        topic.arn,
        None,
    )
    assert sns["Message"] == message
    # The attributes as the publisher set them: types and values, nothing else.
    bbox = {
        f"bbox.{n}": {"Type": "Number", "Value": repr(v)}
        for n, v in zip(("xmin", "ymin", "xmax", "ymax"), item["bbox"], strict=True)
    }
    assert sns["MessageAttributes"] == {"collection": {"Type": "String", "Value": L2A}, **bbox}
    # Published when publish was called: ISO 8601 in UTC with milliseconds.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sns["Timestamp"])
    published = datetime.fromisoformat(sns["Timestamp"])
    assert before - timedelta(milliseconds=1) <= published <= after
    region = TOPIC_ARN.split(":")[3]
    assert sns["UnsubscribeUrl"] == (
        f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={subscription['SubscriptionArn']}"
    )
    assert re.fullmatch(
        rf"https://sns\.{region}\.amazonaws\.com/SimpleNotificationService-[0-9a-f]{{32}}\.pem",
        sns["SigningCertUrl"],
    )
    assert sns["SignatureVersion"] in ("1", "2") and sns["Signature"]


def test_the_delivered_sns_timestamp_orders_items_that_carry_no_time(
    stack: Any, topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = delivered_events(stack, monkeypatch)
    item = variant(9)
    for name in ("updated", "created"):
        item["properties"].pop(name)
    for product in (ESA["FIRST"], ESA["SECOND"]):
        item["properties"]["sentinel:product_id"] = product
        publish(topic, json.dumps(item))
        stamp = events[-1]["Records"][0]["Sns"]["Timestamp"]
        record = SceneModel.get(scene_id(9))
        # The time SNS published it, as ingest orders times (UTC, microseconds).
        assert (record.filename, record.sequencer) == (product, ingest.ITEM_TIME + stamp[:-1] + "000Z")
    first, second = (e["Records"][0]["Sns"]["Timestamp"] for e in events)
    assert first < second
    # SNS delivers the first message again (at least once): older than what is stored, so it is stale.
    assert ingest.handle(events[0])["stale"] == 1
    assert SceneModel.get(scene_id(9)).filename == ESA["SECOND"]


@pytest.mark.parametrize(
    ("kind", "value", "delivered"),
    [
        ("String", L2A, True),
        ("String.Array", json.dumps(["sentinel-s2-l1c", L2A]), True),  # an array matches by an element
        ("String", json.dumps([L2A]), False),  # a String is compared whole, never decoded
        ("String", json.dumps(L2A + "-extra"), False),
        ("String", L2A.upper(), False),
        ("String", L2A + " ", False),
        ("String.Array", json.dumps([L2A + "-extra"]), False),
        ("Number", "1", False),
    ],
)
def test_the_filter_policy_matches_the_collection_attribute_as_sns_does(
    stack: Any, topic: Topic, monkeypatch: pytest.MonkeyPatch, kind: str, value: str, delivered: bool
) -> None:
    events = delivered_events(stack, monkeypatch)
    message = "not an item: counted as unrecognised if delivered"
    topic.sns.publish(
        TopicArn=topic.arn,
        Message=message,
        MessageAttributes={"collection": {"DataType": kind, "StringValue": value}},
    )
    assert len(events) == int(delivered)
