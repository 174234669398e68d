"""Scene ingestion: S3 events through the local stack, both item schemas, duplicates, faults, order."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
from pynamodb.exceptions import DoesNotExist, TransactWriteError

from sputnik import catalogue, ingest, stac
from sputnik.models import MetaModel, SceneModel
from sputnik.settings import get_settings
from sputnik_tools.archive import generate_archive, upload_fixture_scene
from tests.conftest import new_user
from tests.support import faults
from tests.support.ingest import fresh_scene, put_item, s3_event
from tests.support.ingest import scene_item as _item
from tests.support.projects import SCENE_BBOX, TWN_BBOX, box, new_project

REAL_SCENE = "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"


def test_generated_scenes_arrive_through_s3_notifications(stack: Any, api: httpx.Client) -> None:
    project = new_project(api, box(15.9, 45.3, 16.3, 45.6), "2022-05-01", "2022-05-31")
    s3 = stack.client("s3")
    keys = generate_archive(
        s3, get_settings().archive_bucket, ["33TWL", "33TXL"], ["2022-05-03", "2022-05-18"], 64
    )
    assert len(keys) == 4
    dates = api.get("/meta/dates", params={"project_id": project}).json()
    assert dates == {"dates": ["2022-05-03", "2022-05-18"]}
    metas = api.get("/meta/list", params={"project_id": project, "date": "2022-05-03"}).json()["metas"]
    border = shapely.from_geojson(box(15.9, 45.3, 16.3, 45.6))
    expected = set()
    for key in keys:
        item = json.loads(s3.get_object(Bucket=get_settings().archive_bucket, Key=key)["Body"].read())
        if "20220503" in key and shapely.geometry.shape(item["geometry"]).intersects(border):
            expected.add(item["id"])
    assert expected and {m["scene_id"] for m in metas} == expected
    for meta in metas:
        item = json.loads(
            s3.get_object(Bucket=get_settings().archive_bucket, Key=_key_of(keys, meta))["Body"].read()
        )
        footprint = shapely.geometry.shape(item["geometry"])
        assert shapely.from_wkb(bytes.fromhex(meta["border"])).equals_exact(footprint, 1e-9)
        assert shapely.geometry.shape(json.loads(meta["border_gj"])).equals_exact(footprint, 1e-9)
        assert (meta["xg0"], meta["yg0"], meta["xg1"], meta["yg1"]) == pytest.approx(footprint.bounds)
        assert meta["filename"] == item["properties"]["sentinel:product_id"]
        assert meta["project_id"] == project and meta["date"] == "2022-05-03"


def _key_of(keys: list[str], meta: dict[str, Any]) -> str:
    """The item key of a meta record's scene."""
    return next(k for k in keys if k.endswith(f"/{meta['scene_id']}.json"))


def test_scene_before_project_is_brought_in_by_project_creation(stack: Any, api: httpx.Client) -> None:
    s3 = stack.client("s3")
    generate_archive(s3, get_settings().archive_bucket, ["33TWL"], ["2022-08-02"], 32)
    project = new_project(api, box(15.2, 45.3, 15.6, 45.6), "2022-08-01", "2022-08-03")
    assert api.get("/meta/dates", params={"project_id": project}).json() == {"dates": ["2022-08-02"]}
    # Outside the project's dates: not matched, in either order.
    generate_archive(s3, get_settings().archive_bucket, ["33TWL"], ["2022-08-04"], 32)
    assert api.get("/meta/dates", params={"project_id": project}).json() == {"dates": ["2022-08-02"]}


def test_real_scene_with_cogs_ingests(stack: Any, api: httpx.Client, fixtures_dir: Path) -> None:
    project = new_project(api, box(*SCENE_BBOX), "2020-02-01", "2020-02-29")
    upload_fixture_scene(stack.client("s3"), get_settings().archive_bucket, fixtures_dir / REAL_SCENE)
    metas = api.get("/meta/list", params={"project_id": project, "date": "2020-02-19"}).json()["metas"]
    assert [m["scene_id"] for m in metas] == ["S2A_29RKH_20200219_0_L2A"]
    # The ESA product name of the item's s2:product_uri, without .SAFE.
    assert metas[0]["filename"] == "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"


@pytest.mark.parametrize(
    "path,border,dates,filename",
    [
        (
            "v0/S2A_31NBJ_20190524_0_L2A.json",
            box(1.5, 0.3, 1.7, 0.5),
            ("2019-05-01", "2019-05-31"),
            "S2A_MSIL2A_20190524T101031_N0212_R022_T31NBJ_20190524T130304",
        ),
        ("v1/S2A_33TWN_20210629_0_L2A.json", box(15.2, 47.3, 15.4, 47.5), ("2021-06-01", "2021-06-30"), None),
        (
            "v1/S2B_24MUV_20250731_0_L2A.json",
            box(-40.9, -4.0, -40.7, -3.8),
            ("2025-07-31", "2025-07-31"),
            None,
        ),
    ],
)
def test_real_items_of_both_schemas_ingest(
    stack: Any,
    api: httpx.Client,
    fixtures_dir: Path,
    path: str,
    border: str,
    dates: tuple[str, str],
    filename: Any,
) -> None:
    item = json.loads((fixtures_dir / "stac-items" / path).read_text())
    if path.startswith("v0/"):
        # The real id is the public archive feed's (test_archive_feed delivers that item as it is).
        item["id"] = item["id"].replace("_0_L2A", "_8_L2A")
    footprint = shapely.geometry.shape(item["geometry"])
    if not shapely.from_geojson(border).intersects(footprint):
        border = shapely.to_geojson(footprint.centroid.buffer(0.05))
    project = new_project(api, border, *dates)
    put_item(stack, item)
    day = item["properties"]["datetime"][:10]
    metas = api.get("/meta/list", params={"project_id": project, "date": day}).json()["metas"]
    # Other tests' scenes of the same place and date may meet this project too: this one, once.
    assert [m["scene_id"] for m in metas].count(item["id"]) == 1
    expected = filename or item["properties"]["s2:product_uri"].removesuffix(".SAFE")
    assert next(m for m in metas if m["scene_id"] == item["id"])["filename"] == expected


def test_duplicate_and_concurrent_deliveries_leave_one_record(stack: Any, api: httpx.Client) -> None:
    project = new_project(api, box(15.2, 45.3, 15.6, 45.6), "2022-09-01", "2022-09-30")
    keys = generate_archive(stack.client("s3"), get_settings().archive_bucket, ["33TWL"], ["2022-09-09"], 32)
    event = s3_event(keys[0])
    first = ingest.handle(event)
    assert first["ingested"] == 1 and first["matched"] >= 1  # other tests' projects may meet it too
    together = threading.Barrier(4)

    def deliver() -> dict[str, int]:
        together.wait(timeout=60)
        return ingest.handle(event)

    # A thread's exception is re-raised here by result(): a failed delivery fails the test.
    with ThreadPoolExecutor(4) as pool:
        results = [future.result() for future in [pool.submit(deliver) for _ in range(4)]]
    # The same event again is not older: each delivery rewrites the same records, none fails.
    assert results == [first] * 4
    assert len(list(MetaModel.query(project))) == 1
    assert api.get("/meta/dates", params={"project_id": project}).json() == {"dates": ["2022-09-09"]}


def transaction_conflict(items: int) -> tuple[int, dict[str, str], bytes]:
    """What DynamoDB answers a transaction of `items` writes that met another one on its last item."""
    reasons = [{"Code": "None"}] * (items - 1) + [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    ]
    codes = ", ".join(r["Code"] for r in reasons)
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
        "CancellationReasons": reasons,
    }
    return 400, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(body).encode()


@pytest.mark.parametrize("conflicts", [1, catalogue.CONFLICT_ATTEMPTS - 1, catalogue.CONFLICT_ATTEMPTS])
def test_a_transaction_that_meets_a_concurrent_one_is_tried_again(
    stack: Any, api: httpx.Client, fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch, conflicts: int
) -> None:
    key, scene_id, project = fresh_scene(stack, fixtures_dir, api, f"S2A_33TWN_20210703_{conflicts}_L2A")
    # The scene record and the project's meta record: one transaction of two writes.
    conflict = faults.Fault(faults.dynamodb("TransactWriteItems"), transaction_conflict(2), times=conflicts)
    event = s3_event(key, sequencer="E" * 31)
    with monkeypatch.context() as patched:
        faults.inject(patched, conflict)
        if conflicts < catalogue.CONFLICT_ATTEMPTS:
            assert ingest.handle(event)["ingested"] == 1
        else:
            with pytest.raises(TransactWriteError) as failure:
                ingest.handle(event)
            # PynamoDB reads a reason of code "None" as no reason.
            assert [r.code if r else None for r in failure.value.cancellation_reasons] == [
                None,
                "TransactionConflict",
            ]
    # Tried again after each conflict (the SDK does not retry these), up to CONFLICT_ATTEMPTS times.
    assert conflict.failed == conflicts
    assert conflict.seen == min(conflicts + 1, catalogue.CONFLICT_ATTEMPTS)
    if conflicts < catalogue.CONFLICT_ATTEMPTS:
        assert SceneModel.get(scene_id).item_key == key
        assert [m.scene_id for m in MetaModel.query(project)] == [scene_id]
    else:
        with pytest.raises(DoesNotExist):
            SceneModel.get(scene_id)
        assert list(MetaModel.query(project)) == []


def test_an_older_event_never_overwrites_newer_data(stack: Any, fixtures_dir: Path) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2B_33TWN_20181005_0_L2A.json").read_text())
    item["id"] = "S2B_33TWN_20181005_7_L2A"
    key = stac.parse_item(item).key
    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket

    def deliver(product: str, sequencer: str) -> dict[str, int]:
        item["properties"]["s2:product_uri"] = product + ".SAFE"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(item).encode())
        return ingest.handle(s3_event(key, sequencer=sequencer))

    # Far above the sequencers of the bucket's own notifications, which also fire on each put.
    base = "F" * 20
    # Three processings of one product, told apart by their processing times.
    older, newer, newest = (f"S2B_MSIL2A_20181005T095029_N0208_R079_T33TWN_20181005T1{h}0000" for h in "456")
    deliver(newer, base + "00FF")
    # Shorter sequencers are left-padded before comparing: ...00FF is after ...0F.
    assert deliver(older, base + "0F") == {
        "ingested": 0,
        "skipped": 0,
        "stale": 1,
        "matched": 0,
        "unrecognised": 0,
    }
    assert SceneModel.get(item["id"]).filename == newer
    deliver(newest, base + "0100")
    assert SceneModel.get(item["id"]).filename == newest


def test_keys_arrive_url_encoded() -> None:
    event = s3_event("sentinel-s2-l2a-cogs/a b+c/x.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "sentinel-s2-l2a-cogs/a+b%2Bc/x.json"
    assert [e.key for e in ingest.deliveries(event)] == ["sentinel-s2-l2a-cogs/a b+c/x.json"]
    encoded = s3_event("x")
    encoded["Records"][0]["s3"]["object"]["key"] = "a%20b%2Fc.json"
    assert [e.key for e in ingest.deliveries(encoded)] == ["a b/c.json"]


def test_sns_wrapped_s3_events_ingest(stack: Any, api: httpx.Client, fixtures_dir: Path) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20220122_0_L2A.json").read_text())
    key = stac.parse_item(item).key
    stack.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key + ".tmp", Body=b"{}")
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=key, Body=json.dumps(item).encode()
    )
    sequencer = "F" * 24
    envelope = {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(s3_event(key, sequencer=sequencer))}}
        ]
    }
    assert ingest.handle(envelope)["ingested"] == 1
    assert SceneModel.get(item["id"]).sequencer.endswith(sequencer)


def _bad(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of an item with some top-level fields changed (None deletes)."""
    out = json.loads(json.dumps(item))
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"type": "FeatureCollection", "features": []}',
        "no geometry",
        "no datetime",
    ],
)
def test_bad_items_are_logged_and_leave_nothing(
    stack: Any, fixtures_dir: Path, body: Any, caplog: pytest.LogCaptureFixture
) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_text())
    item["id"] = "S2A_33TWN_20210629_9_L2A"
    if body == "no geometry":
        body = json.dumps(_bad(item, geometry=None)).encode()
    elif body == "no datetime":
        item["properties"].pop("datetime")
        body = json.dumps(item).encode()
    key = stac.item_key("33TWN", "2021-06-29", item["id"])
    stack.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=body)
    counts = ingest.handle(s3_event(key))
    assert counts["skipped"] == 1 and counts["ingested"] == 0
    assert "bad STAC item" in caplog.text
    with pytest.raises(DoesNotExist):
        SceneModel.get(item["id"])


@pytest.mark.parametrize(
    "key,bucket",
    [
        ("notes/readme.json", None),
        ("sentinel-s2-l2a-cogs/33/T/WN/2021/6/S2A_33TWN_20210629_0_L2A/TCI.tif", None),
        ("sentinel-s2-l2a-cogs/33/T/WN/2021/6/S2A_33TWN_20210629_0_L2A/other.json", None),
        (
            "sentinel-s2-l2a-cogs/33/T/WN/2021/6/S2A_33TWN_20210629_0_L2A/S2A_33TWN_20210629_0_L2A.json",
            "elsewhere",
        ),
    ],
)
def test_objects_that_are_not_archive_items_are_skipped(stack: Any, key: str, bucket: str | None) -> None:
    assert ingest.handle(s3_event(key, bucket=bucket)) == {
        "ingested": 0,
        "skipped": 1,
        "stale": 0,
        "matched": 0,
        "unrecognised": 0,
    }


def test_a_deleted_object_is_skipped(stack: Any) -> None:
    key = stac.item_key("33TWN", "2021-06-29", "S2A_33TWN_20210629_5_L2A")
    assert ingest.handle(s3_event(key))["skipped"] == 1


def test_scene_outside_every_project_is_catalogued_without_meta(
    stack: Any, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2B_24MVV_20250731_0_L2A.json").read_text())
    key = put_item(stack, item)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert ingest.handle(s3_event(key))["matched"] == 0
    assert SceneModel.get(item["id"]).tile == "24MVV"
    assert "matches no project" in caplog.text


def test_dynamodb_calls_per_scene_are_a_constant(
    stack: Any, api: httpx.Client, front: Any, dynamo_calls: Any
) -> None:
    border = box(15.2, 45.3, 15.6, 45.6)
    for _ in range(3):
        new_project(api, border, "2022-10-01", "2022-10-31")
    keys = generate_archive(stack.client("s3"), get_settings().archive_bucket, ["33TWL"], ["2022-10-10"], 32)
    dynamo_calls.ops.clear()
    counts = ingest.handle(s3_event(keys[0]))
    assert counts["matched"] >= 3
    # Read the scene, Query the tile, write the scene and every meta record in one transaction.
    assert sorted(dynamo_calls.ops) == ["GetItem", "Query", "TransactWriteItems"]


def test_throttling_mid_ingest_fails_whole_and_redelivery_completes(
    stack: Any, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = [new_project(api, box(15.2, 45.3, 15.6, 45.6), "2022-11-01", "2022-11-30") for _ in range(2)]
    keys = generate_archive(stack.client("s3"), get_settings().archive_bucket, ["33TWL"], ["2022-11-11"], 32)
    scene_id = keys[0].rsplit("/", 1)[1].removesuffix(".json")
    # The notification already ingested it; start over as if it had never arrived.
    SceneModel.get(scene_id).delete()
    for p in projects:
        for m in MetaModel.query(p):
            m.delete()
    throttled = faults.Fault(faults.dynamodb("TransactWriteItems"), faults.DYNAMODB_THROTTLED)
    with monkeypatch.context() as patched:
        faults.inject(patched, throttled)
        with pytest.raises(TransactWriteError) as failure:
            ingest.handle(s3_event(keys[0]))
    assert failure.value.cause_response_code == "ProvisionedThroughputExceededException"
    assert throttled.failed > 1  # the SDK retried before giving up
    # Failed whole: neither the scene record nor any meta record.
    with pytest.raises(DoesNotExist):
        SceneModel.get(scene_id)
    assert [len(list(MetaModel.query(p))) for p in projects] == [0, 0]
    throttled.stop()
    ingest.handle(s3_event(keys[0]))  # the redelivery
    assert SceneModel.get(scene_id).scene_id == scene_id
    assert [len(list(MetaModel.query(p))) for p in projects] == [1, 1]


def test_ingest_function_runs_from_lambda_invoke(stack: Any, fixtures_dir: Path) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_text())
    key = put_item(stack, item)
    out = stack.client("lambda").invoke(
        FunctionName=stack.function_for("IngestFunction"), Payload=json.dumps(s3_event(key))
    )
    assert "FunctionError" not in out
    assert json.loads(out["Payload"].read())["ingested"] == 1


@pytest.mark.parametrize("date", ["2021/06/01", "20210601", "yesterday", "2021-13-01", ""])
def test_meta_list_rejects_bad_dates(api: httpx.Client, date: str) -> None:
    project = new_project(api, box(15.2, 45.3, 15.6, 45.6), "2021-01-01", "2021-12-31")
    assert api.get("/meta/list", params={"project_id": project, "date": date}).status_code == 422


@pytest.mark.parametrize("path", ["/meta/dates", "/meta/list"])
def test_meta_of_unknown_foreign_or_malformed_projects(api: httpx.Client, front: Any, path: str) -> None:
    project = new_project(api, box(15.2, 45.3, 15.6, 45.6), "2021-01-01", "2021-12-31")
    params = {"date": "2021-06-01"}
    with httpx.Client(base_url=front.url, auth=new_user("stranger")) as other:
        assert other.get(path, params={**params, "project_id": project}).status_code == 404
    assert api.get(path, params={**params, "project_id": 10**9}).status_code == 404
    assert api.get(path, params={**params, "project_id": "one"}).status_code == 422
    assert api.get(path, params=params).status_code == 422
    assert httpx.get(front.url + path, params={**params, "project_id": project}).status_code == 401


def test_a_newer_version_that_no_longer_meets_a_project_removes_its_meta(
    stack: Any, api: httpx.Client, fixtures_dir: Path
) -> None:
    item = json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_text())
    item["id"] = "S2A_33TWN_20210629_3_L2A"
    footprint = shapely.geometry.shape(item["geometry"])
    minx, miny, maxx, maxy = footprint.bounds
    mid = (minx + maxx) / 2
    west = new_project(api, box(minx + 0.05, miny + 0.1, mid - 0.1, maxy - 0.1), "2021-06-01", "2021-06-30")
    east = new_project(api, box(mid + 0.1, miny + 0.1, maxx - 0.05, maxy - 0.1), "2021-06-01", "2021-06-30")
    key = stac.parse_item(item).key
    s3 = stack.client("s3")
    base = "F" * 22

    def deliver(geometry: Any, day: str, sequencer: str) -> None:
        item["geometry"] = shapely.geometry.mapping(geometry)
        item["properties"]["datetime"] = f"{day}T10:00:00Z"
        s3.put_object(Bucket=get_settings().archive_bucket, Key=key, Body=json.dumps(item).encode())
        ingest.handle(s3_event(key, sequencer=base + sequencer))

    def scenes(project: int, day: str) -> list[str]:
        """This scene's appearances in a project's meta list of a date (other tests add other scenes)."""
        metas = api.get("/meta/list", params={"project_id": project, "date": day}).json()["metas"]
        return [m["scene_id"] for m in metas if m["scene_id"] == item["id"]]

    deliver(footprint, "2021-06-29", "01")
    assert scenes(west, "2021-06-29") == scenes(east, "2021-06-29") == [item["id"]]
    # The reprocessed scene covers only the east half now.
    deliver(footprint.intersection(shapely.geometry.box(mid, miny, maxx, maxy)), "2021-06-29", "02")
    assert scenes(west, "2021-06-29") == []
    assert scenes(east, "2021-06-29") == [item["id"]]
    # And a later version moves to another date: no record stays behind on the old one.
    deliver(footprint, "2021-06-30", "03")
    for project in (west, east):
        assert scenes(project, "2021-06-29") == []
        assert scenes(project, "2021-06-30") == [item["id"]]


def test_a_footprint_across_the_antimeridian_matches_the_projects_on_both_sides_only(
    stack: Any, api: httpx.Client, fixtures_dir: Path
) -> None:
    # GeoJSON writes it as a jump from +179.85 to -179.3; read as it stands it spans the globe.
    ring = [[179.85, -17.0], [-179.3, -17.0], [-179.3, -16.2], [179.85, -16.2], [179.85, -17.0]]
    item = _item(
        fixtures_dir,
        "S2A_60KZG_20230105_0_L2A",
        "60KZG",
        "2023-01-05",
        {"type": "Polygon", "coordinates": [ring]},
    )
    west = new_project(api, box(179.9, -16.6, 179.95, -16.4), "2023-01-01", "2023-01-31")
    east = new_project(api, box(-179.9, -16.6, -179.8, -16.4), "2023-01-01", "2023-01-31")
    beyond = new_project(api, box(-179.25, -16.6, -179.2, -16.4), "2023-01-01", "2023-01-31")
    put_item(stack, item)
    found = {
        p: [
            m["scene_id"]
            for m in api.get("/meta/list", params={"project_id": p, "date": "2023-01-05"}).json()["metas"]
        ]
        for p in (west, east, beyond)
    }
    assert found == {west: [item["id"]], east: [item["id"]], beyond: []}
    meta = api.get("/meta/list", params={"project_id": west, "date": "2023-01-05"}).json()["metas"][0]
    footprint = shapely.from_wkb(bytes.fromhex(meta["border"]))
    assert footprint.geom_type == "MultiPolygon" and len(footprint.geoms) == 2
    assert footprint.area == pytest.approx((180 - 179.85 + 180 - 179.3) * 0.8, rel=1e-3)


def test_an_item_whose_id_differs_from_its_folder_is_refused(
    stack: Any, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = _item(fixtures_dir, "S2A_33TWN_20210629_4_L2A", "33TWN", "2021-06-29")
    victim_key = put_item(stack, victim)
    assert SceneModel.get(victim["id"]).item_key == victim_key
    impostor = _item(fixtures_dir, "S2B_33TWN_20210629_4_L2A", "33TWN", "2021-06-29")
    impostor["properties"]["s2:product_uri"] = "IMPOSTOR.SAFE"
    # The impostor's item put into the victim's folder, and the victim's id in another tile's folder.
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=victim_key, Body=json.dumps(impostor).encode()
    )
    elsewhere = _item(fixtures_dir, victim["id"], "33TWN", "2021-06-29")
    other_tile_key = stac.item_key("33TXN", "2021-06-29", victim["id"])
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=other_tile_key, Body=json.dumps(elsewhere).encode()
    )
    big = "F" * 30
    assert ingest.handle(s3_event(victim_key, sequencer=big))["skipped"] == 1
    assert ingest.handle(s3_event(other_tile_key, sequencer=big))["skipped"] == 1
    assert "is not the scene its key names" in caplog.text
    record = SceneModel.get(victim["id"])
    assert (record.item_key, record.filename) == (
        victim_key,
        victim["properties"]["s2:product_uri"].removesuffix(".SAFE"),
    )
    with pytest.raises(DoesNotExist):
        SceneModel.get(impostor["id"])


def _ring_of(vertices: int, lon: float, lat: float, radius: float) -> list[list[float]]:
    """A closed ring of many vertices around a point."""
    import math

    ring = [
        [
            lon + radius * math.cos(2 * math.pi * i / (vertices - 1)),
            lat + radius * math.sin(2 * math.pi * i / (vertices - 1)),
        ]
        for i in range(vertices - 1)
    ]
    return [*ring, ring[0]]


def test_bad_footprints_are_skipped_and_the_rest_of_the_run_ingested(
    stack: Any, api: httpx.Client, fixtures_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = new_project(api, box(*TWN_BBOX), "2021-07-01", "2021-07-31")
    bucket = get_settings().archive_bucket
    s3 = stack.client("s3")
    bad = {
        "S2A_33TWN_20210701_1_L2A": ("nested", "{}"),
        "S2A_33TWN_20210701_2_L2A": (
            "vertices",
            {"type": "Polygon", "coordinates": [_ring_of(6_000, 15.5, 47.45, 0.1)]},
        ),
        "S2A_33TWN_20210701_3_L2A": (
            "vertices",
            {"type": "Polygon", "coordinates": [_ring_of(30_000, 15.5, 47.45, 0.1)]},
        ),
    }
    records = []
    for scene_id, (_, geometry) in bad.items():
        key = stac.item_key("33TWN", "2021-07-01", scene_id)
        body = json.dumps(_item(fixtures_dir, scene_id, "33TWN", "2021-07-01", geometry))
        if geometry == "{}":
            body = body.replace(
                '"geometry": "{}"',
                '"geometry": {"type": "Polygon", "coordinates": ' + "[" * 5000 + "]" * 5000 + "}",
            )
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        records += s3_event(key)["Records"]
    good = _item(fixtures_dir, "S2A_33TWN_20210701_4_L2A", "33TWN", "2021-07-01")
    records += s3_event(put_item(stack, good))["Records"]
    counts = ingest.handle({"Records": records})
    assert counts == {"ingested": 1, "skipped": 3, "stale": 0, "matched": 1, "unrecognised": 0}
    assert "nested too deeply" in caplog.text and "more than 2000" in caplog.text
    for scene_id in bad:
        with pytest.raises(DoesNotExist):
            SceneModel.get(scene_id)
    metas = api.get("/meta/list", params={"project_id": project, "date": "2021-07-01"}).json()["metas"]
    assert [m["scene_id"] for m in metas] == [good["id"]]


@pytest.mark.parametrize("bloat", ["footprint", "assets"])
def test_a_700_kb_item_leaves_both_records_or_neither(
    stack: Any, api: httpx.Client, fixtures_dir: Path, bloat: str
) -> None:
    project = new_project(api, box(*TWN_BBOX), "2021-07-02", "2021-07-02")
    scene_id = f"S2A_33TWN_20210702_{'5' if bloat == 'footprint' else '6'}_L2A"
    item = _item(fixtures_dir, scene_id, "33TWN", "2021-07-02")
    if bloat == "footprint":
        item["geometry"] = {"type": "Polygon", "coordinates": [_ring_of(18_000, 15.5, 47.45, 0.3)]}
    else:
        href = "s3://" + "x" * 120
        item["assets"].update({f"extra{i}": {"href": f"{href}/{i}.tif"} for i in range(5_000)})
    body = json.dumps(item).encode()
    assert 600_000 < len(body) < catalogue.MAX_ITEM_BYTES
    key = stac.item_key("33TWN", "2021-07-02", scene_id)
    stack.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=body)
    assert ingest.handle(s3_event(key))["skipped"] == 1
    with pytest.raises(DoesNotExist):
        SceneModel.get(scene_id)
    assert list(MetaModel.query(project)) == []


def sns_notification(bucket: str, key: str, size: int, sequencer: str) -> dict[str, Any]:
    """An S3 ObjectCreated notification of another account's bucket, delivered to Lambda through SNS."""
    from urllib.parse import quote_plus

    s3_message = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-west-2",
                "eventTime": "2026-11-24T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROAEXAMPLEPUBLISHER"},
                "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "new-items",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }
    topic = "arn:aws:sns:us-west-2:210987654321:public-archive-object-created"
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": topic,
                    "Subject": "Amazon S3 Notification",
                    "Message": json.dumps(s3_message),
                    "Timestamp": "2026-11-24T10:00:00.100Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLEpH+..",
                    "SigningCertUrl": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "UnsubscribeUrl": f"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def test_a_new_item_of_the_public_archive_announced_through_sns_is_ingested(
    stack: Any, api: httpx.Client, fixtures_dir: Path
) -> None:
    external = get_settings().external_archive_bucket
    assert external == "sentinel-cogs"  # the template's default, given to IngestFunction
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=external)
    s3.create_bucket(Bucket="someone-elses-bucket")
    item = _item(fixtures_dir, "S2B_33TWN_20210813_0_L2A", "33TWN", "2021-08-13")
    key = stac.parse_item(item).key
    body = json.dumps(item).encode()
    for bucket in (external, "someone-elses-bucket"):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    project = new_project(api, box(*TWN_BBOX), "2021-08-13", "2021-08-13")

    def deliver(bucket: str) -> dict[str, int]:
        out = stack.client("lambda").invoke(
            FunctionName=stack.function_for("IngestFunction"),
            Payload=json.dumps(sns_notification(bucket, key, len(body), "0062E1F3A1B2C3D4E5")),
        )
        assert "FunctionError" not in out
        return dict(json.loads(out["Payload"].read()))

    assert deliver("someone-elses-bucket") == {
        "ingested": 0,
        "skipped": 1,
        "stale": 0,
        "matched": 0,
        "unrecognised": 0,
    }
    with pytest.raises(DoesNotExist):
        SceneModel.get(item["id"])
    assert deliver(external) == {"ingested": 1, "skipped": 0, "stale": 0, "matched": 1, "unrecognised": 0}
    assert SceneModel.get(item["id"]).item_key == key
    metas = api.get("/meta/list", params={"project_id": project, "date": "2021-08-13"}).json()["metas"]
    assert [m["scene_id"] for m in metas] == [item["id"]]
    # Its TCI is read where the item lies, in the public archive (not the stack's own bucket).
    assert metas[0]["tci_url"] == f"s3://{external}/{key.rsplit('/', 1)[0]}/TCI.tif"
    assert SceneModel.get(item["id"]).archive_bucket == external
    # A project made afterwards gets the catalogued scene by backfill, with the same TCI url.
    later = new_project(api, box(*TWN_BBOX), "2021-08-13", "2021-08-13")
    stack.invoke(stack.function_for("IngestFunction"), {"backfill_project": later})
    metas = api.get("/meta/list", params={"project_id": later, "date": "2021-08-13"}).json()["metas"]
    assert [m["tci_url"] for m in metas] == [f"s3://{external}/{key.rsplit('/', 1)[0]}/TCI.tif"]
