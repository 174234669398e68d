"""Hostile input, generated: borders, dates, ids and STAC items never get a 5xx or leave half a record.

Every request runs with the API's own bound (API Gateway's 29 s integration timeout) as its client
timeout, so one that runs past it fails the test.
"""

import json
import re
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pynamodb.exceptions import DoesNotExist

from sputnik import ingest, stac
from sputnik.models import MetaModel, ProjectModel, ProjectTileModel, SceneModel
from sputnik.settings import get_settings
from tests.conftest import new_user

API_BOUND_S = 29.0
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-181, max_value=181),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, 180, -180, 90, -90, 179.9999999999, -179.9999999999, 1e-300]),
)
lonlat = st.tuples(st.floats(-180, 180), st.floats(-85, 85))


@st.composite
def rings(draw: Any) -> list[Any]:
    """Rings: closed, open, degenerate, with junk positions, or crossing the antimeridian."""
    kind = draw(st.sampled_from(["box", "random", "junk", "antimeridian", "degenerate"]))
    if kind == "box":
        lon, lat = draw(lonlat)
        w, h = draw(st.floats(1e-9, 5)), draw(st.floats(1e-9, 5))
        return [[lon, lat], [lon + w, lat], [lon + w, lat + h], [lon, lat + h], [lon, lat]]
    if kind == "random":
        points = draw(st.lists(lonlat.map(list), min_size=0, max_size=40))
        return points + points[:1] if draw(st.booleans()) else points
    if kind == "junk":
        return draw(st.lists(st.lists(numbers, min_size=0, max_size=4), max_size=8))
    if kind == "antimeridian":
        lat, h = draw(st.floats(-80, 80)), draw(st.floats(0.01, 2))
        west, east = draw(st.floats(170, 180)), draw(st.floats(-180, -170))
        return [[west, lat], [east, lat], [east, lat + h], [west, lat + h], [west, lat]]
    point = draw(lonlat.map(list))
    return [point] * draw(st.integers(0, 6))


def expand_nesting(text: str) -> str:
    """Replace each `"nested:N"` placeholder of JSON text by a list nested N deep.

    Examples carry the placeholder, so that hypothesis can print them.
    """
    return re.sub(r'\\?"nested:(\d+)\\?"', lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)


geometries = st.one_of(
    rings().map(lambda r: {"type": "Polygon", "coordinates": [r]}),
    st.lists(rings(), max_size=3).map(lambda rs: {"type": "Polygon", "coordinates": rs}),
    st.lists(rings().map(lambda r: [r]), max_size=3).map(
        lambda ps: {"type": "MultiPolygon", "coordinates": ps}
    ),
    st.integers(1, 6000).map(lambda d: {"type": "Polygon", "coordinates": f"nested:{d}"}),
    st.sampled_from(["Point", "LineString", "GeometryCollection", "Polygon", "Banana", None]).map(
        lambda t: {"type": t, "coordinates": [[1, 2], [3, 4]]}
    ),
)
borders = st.one_of(
    geometries,
    geometries.map(lambda g: {"type": "Feature", "properties": {}, "geometry": g}),
    st.lists(geometries, max_size=4).map(
        lambda gs: {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": g} for g in gs]}
    ),
    st.recursive(
        st.none() | st.booleans() | numbers | st.text(max_size=5),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c),
        max_leaves=20,
    ),
)
dates = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.dates().map(str),
    st.sampled_from(
        [
            "2021-02-29",
            "2020-02-29",
            "9999-12-31",
            "0000-01-01",
            "2021-01-01\n",
            "\uff12\uff10\uff12\uff11-\uff10\uff11-\uff10\uff11",
        ]
    ),
)


@pytest.fixture(scope="module")
def client(front: Any) -> Any:
    """A logged-in client for generated requests, bounded by the API's own timeout."""
    with httpx.Client(base_url=front.url, auth=new_user("hostile"), timeout=API_BOUND_S) as c:
        yield c


def _no_half_project(client: httpx.Client) -> None:
    """Every listed project has its tile rows; nothing else was written."""
    for p in client.get("/project/list").json()["projects"]:
        project = ProjectModel.get(p["project_id"])
        for tile in project.tiles:
            ProjectTileModel.get(tile, p["project_id"])


@SETTINGS
@given(border=borders, as_text=st.booleans())
def test_generated_borders_never_get_a_5xx(client: httpx.Client, border: Any, as_text: bool) -> None:
    before = len(client.get("/project/list").json()["projects"])
    body = {"name": "hostile", "border": json.dumps(border) if as_text else border}
    content = expand_nesting(json.dumps(body))
    r = client.post("/project/new", content=content, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert "detail" in r.json() if r.status_code >= 400 else "project_id" in r.json()
    after = len(client.get("/project/list").json()["projects"])
    assert after == before + (1 if r.status_code == 200 else 0)
    if r.status_code == 200:
        _no_half_project(client)


@SETTINGS
@given(name=st.text(max_size=300), start=dates, end=dates)
def test_generated_names_and_dates_never_get_a_5xx(
    client: httpx.Client, name: str, start: Any, end: Any
) -> None:
    square = {"type": "Polygon", "coordinates": [[[15, 46], [15.1, 46], [15.1, 46.1], [15, 46]]]}
    body = {"name": name, "start_date": start, "end_date": end, "border": square}
    r = client.post("/project/new", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text


ids = st.one_of(
    st.integers(), st.integers(-(10**60), 10**60).map(str), st.text(max_size=30), st.floats().map(str)
)


@pytest.fixture(scope="module")
def stranger(front: Any) -> Any:
    """A logged-in client with no projects: every id is someone else's or nobody's."""
    with httpx.Client(base_url=front.url, auth=new_user("stranger"), timeout=API_BOUND_S) as c:
        yield c


@SETTINGS
@given(project_id=ids, day=dates)
def test_generated_ids_never_get_a_5xx(stranger: httpx.Client, project_id: Any, day: Any) -> None:
    for path in ("/project/info", "/meta/dates", "/meta/list"):
        r = stranger.get(path, params={"project_id": project_id, "date": day or ""})
        assert r.status_code in (404, 422), r.text
        assert "detail" in r.json()


@pytest.fixture(scope="module")
def base_item(fixtures_dir: Path) -> dict[str, Any]:
    """A real v1 item to mutate."""
    return dict(json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_text()))


_real_ids = st.from_regex(r"S2[AB]_33TWN_2021062[0-9]_[0-9]_L2A", fullmatch=True)
scene_ids = st.one_of(
    _real_ids,
    _real_ids,
    _real_ids,
    st.text(max_size=20),
    st.sampled_from(["..", ".", "a/b", "", "x" * 300]),
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "datetime": dates
        | st.sampled_from(["2021-06-25T10:00:00Z", "2021-06-25T10:00:00+14:00", "2021-06-25T10"]),
        "mgrs:utm_zone": st.one_of(st.integers(-5, 70), st.text(max_size=3), st.none()),
        "mgrs:grid_square": st.sampled_from(["WN", "ZZ", "", None]),
        "eo:cloud_cover": numbers,
        "proj:epsg": numbers,
        "s2:product_uri": st.text(max_size=30),
    },
)


@pytest.fixture(scope="module")
def tile_project(client: httpx.Client) -> int:
    """A project over most of tile 33TWN in June 2021, which generated items may match."""
    border = {
        "type": "Polygon",
        "coordinates": [[[15.0, 46.9], [16.4, 46.9], [16.4, 47.8], [15.0, 47.8], [15.0, 46.9]]],
    }
    body = {"name": "target", "start_date": "2021-06-01", "end_date": "2021-06-30", "border": border}
    r = client.post("/project/new", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["project_id"])


@pytest.fixture(scope="module")
def external_bucket(stack: Any) -> str:
    """The external archive bucket: it sends no notifications, so only the test's own event ingests."""
    bucket = get_settings().external_archive_bucket
    s3 = stack.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    return bucket


in_tile = st.tuples(st.floats(15.0, 16.3), st.floats(46.9, 47.7), st.floats(1e-6, 0.5)).map(
    lambda t: {
        "type": "Polygon",
        "coordinates": [
            [[t[0], t[1]], [t[0] + t[2], t[1]], [t[0] + t[2], t[1] + t[2]], [t[0], t[1] + t[2]], [t[0], t[1]]]
        ],
    }
)


@SETTINGS
@given(
    scene_id=scene_ids,
    geometry=st.one_of(borders, in_tile, in_tile),
    props=properties,
    drop=st.sampled_from([None, None, "assets", "properties", "geometry", "type"]),
)
def test_generated_items_never_fail_ingest_or_leave_half_a_record(
    stack: Any,
    base_item: dict[str, Any],
    tile_project: int,
    external_bucket: str,
    scene_id: str,
    geometry: Any,
    props: dict[str, Any],
    drop: Any,
) -> None:
    item = json.loads(json.dumps(base_item))
    item["id"] = scene_id
    item["geometry"] = geometry
    item["properties"].update(props)
    if drop:
        item.pop(drop)
    ok_id = stac._SCENE_ID_RE.match(scene_id or "-") and len(scene_id) < 200
    folder = scene_id if ok_id else "S2A_33TWN_20210625_9_L2A"
    key = f"sentinel-s2-l2a-cogs/33/T/WN/2021/6/{folder}/{folder}.json"
    body = expand_nesting(json.dumps(item, allow_nan=True)).encode()
    stack.client("s3").put_object(Bucket=external_bucket, Key=key, Body=body)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": external_bucket}, "object": {"key": key, "sequencer": "F" * 40}},
            }
        ]
    }
    counts = ingest.handle(event)  # never raises for a bad item
    assert counts["ingested"] + counts["skipped"] + counts["stale"] == 1
    hypothesis.event("ingested" if counts["ingested"] else "skipped or stale")
    hypothesis.event(f"matched the project: {bool(counts['matched'])}")
    try:
        record = SceneModel.get(folder)
    except DoesNotExist:
        record = None
    if counts["ingested"]:
        assert record is not None and record.item_key == key
    # Never half a record: every meta record of the project has its scene, of the same date.
    for meta in MetaModel.query(tile_project):
        assert SceneModel.get(meta.scene_id).date == meta.date
