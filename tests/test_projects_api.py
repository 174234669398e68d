"""/project/new, /project/list and /project/info through the local stack's HTTP front."""

import json
import math
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import shapely

from sputnik import geo, mgrs, models, projects
from sputnik.errors import InvalidInput
from sputnik.models import CounterModel, ProjectModel, ProjectTileModel
from tests.conftest import new_user, owner_of

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[15.0, 46.0], [15.4, 46.0], [15.4, 46.3], [15.0, 46.3], [15.0, 46.0]]],
}


def project_body(**overrides: Any) -> dict[str, Any]:
    """A valid /project/new body, with some fields replaced."""
    body = {"name": "Ljubljana fields", "start_date": "2021-04-01", "end_date": "2021-09-30"}
    body["border"] = json.dumps(SQUARE)
    body.update(overrides)
    return body


def test_create_then_list_and_info(api: httpx.Client) -> None:
    r = api.post("/project/new", json=project_body())
    assert r.status_code == 200, r.text
    project_id = r.json()["project_id"]
    assert isinstance(project_id, int)

    listed = api.get("/project/list").json()["projects"]
    assert [p["project_id"] for p in listed] == [project_id]
    assert listed[0]["name"] == "Ljubljana fields"

    info = api.get("/project/info", params={"project_id": project_id}).json()
    assert set(info) == {"project_id", "login", "name", "start_date", "end_date", "border", "border_gj"}
    assert info["name"] == "Ljubljana fields"
    assert (info["start_date"], info["end_date"]) == ("2021-04-01", "2021-09-30")
    border = shapely.from_wkt(info["border"])
    assert border.equals(shapely.geometry.shape(SQUARE))
    assert shapely.geometry.shape(json.loads(info["border_gj"])).equals(border)


def test_project_records_its_mgrs_tiles(api: httpx.Client) -> None:
    project_id = api.post("/project/new", json=project_body()).json()["project_id"]
    stored = ProjectModel.get(project_id)
    # 15.0-15.4 E, 46.0-46.3 N lies in UTM zone 33, band T.
    assert "33TWM" in stored.tiles or "33TWL" in stored.tiles
    rows = {t: ProjectTileModel.get(t, project_id) for t in stored.tiles}
    border = shapely.from_wkt(stored.border)
    for tile, row in rows.items():
        # Each row keeps what a scene of its tile can meet: the border within the tile's reach.
        reach = shapely.box(*mgrs.tile_lonlat_bounds(tile))
        assert shapely.from_wkt(row.border).equals(border.intersection(reach))
    assert any(shapely.from_wkt(row.border).equals(border) for row in rows.values())
    assert any(not shapely.from_wkt(row.border).equals(border) for row in rows.values())


@pytest.mark.parametrize(
    "border",
    [
        {"type": "Feature", "properties": {}, "geometry": SQUARE},
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {}, "geometry": SQUARE}],
        },
        {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]},
    ],
)
@pytest.mark.parametrize("as_text", [True, False])
def test_border_accepts_geometry_feature_collection_text_or_object(
    api: httpx.Client, border: dict[str, Any], as_text: bool
) -> None:
    body = project_body(border=json.dumps(border) if as_text else border)
    r = api.post("/project/new", json=body)
    assert r.status_code == 200, r.text
    info = api.get("/project/info", params={"project_id": r.json()["project_id"]}).json()
    assert shapely.from_wkt(info["border"]).equals(shapely.geometry.shape(SQUARE))


def test_dates_are_optional(api: httpx.Client) -> None:
    r = api.post("/project/new", json={"name": "no dates", "border": json.dumps(SQUARE)})
    assert r.status_code == 200
    info = api.get("/project/info", params={"project_id": r.json()["project_id"]}).json()
    assert info["start_date"] is None and info["end_date"] is None


BOW_TIE = {"type": "Polygon", "coordinates": [[[15, 46], [15.2, 46.2], [15.2, 46], [15, 46.2], [15, 46]]]}
HUGE = {"type": "Polygon", "coordinates": [[[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]]}
_LONS = list(range(-179, 180, 10))
STRIP = {
    "type": "Polygon",
    "coordinates": [[*([lon, 10] for lon in _LONS), *([lon, 10.05] for lon in reversed(_LONS)), [-179, 10]]],
}


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "   "}, "name must not be empty"),
        ({"name": "x" * 201}, "at most 200"),
        ({"start_date": "2021/04/01"}, "start_date must be a date"),
        ({"end_date": "01-09-2021"}, "end_date must be a date"),
        ({"start_date": "2021-02-30"}, "not a real date"),
        ({"start_date": "2021-10-01", "end_date": "2021-09-30"}, "start_date is after end_date"),
        ({"border": "not json"}, "not valid JSON"),
        ({"border": "[1, 2]"}, "GeoJSON object"),
        ({"border": json.dumps({"type": "Banana"})}, "not GeoJSON"),
        ({"border": json.dumps({"type": "Point", "coordinates": [15, 46]})}, "not Point"),
        (
            {"border": json.dumps({"type": "LineString", "coordinates": [[15, 46], [16, 47]]})},
            "not LineString",
        ),
        ({"border": json.dumps({"type": "Polygon", "coordinates": []})}, "empty"),
        ({"border": json.dumps({"type": "Polygon", "coordinates": [[[15, 46], [16, 46]]]})}, "malformed"),
        ({"border": json.dumps({"type": "Polygon", "coordinates": "x"})}, "malformed"),
        ({"border": json.dumps({"type": "FeatureCollection", "features": []})}, "empty"),
        ({"border": json.dumps({"type": "Feature", "geometry": None})}, "no geometry"),
        (
            {
                "border": json.dumps(
                    {"type": "Polygon", "coordinates": [[[200, 46], [201, 46], [201, 47], [200, 46]]]}
                )
            },
            "lon/lat",
        ),
        (
            {
                "border": json.dumps(
                    {"type": "Polygon", "coordinates": [[[15, 95], [16, 95], [16, 96], [15, 95]]]}
                )
            },
            "lon/lat",
        ),
        ({"border": json.dumps(BOW_TIE)}, "Self-intersection"),
        ({"border": json.dumps(HUGE)}, "more than the limit"),
        ({"border": json.dumps(STRIP)}, "Sentinel-2 tiles; the limit is"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_leaves_nothing(
    api: httpx.Client, overrides: dict[str, Any], message: str
) -> None:
    r = api.post("/project/new", json=project_body(**overrides))
    assert r.status_code == 422, r.text
    assert message in json.dumps(r.json()["detail"])
    assert api.get("/project/list").json() == {"projects": []}


@pytest.mark.parametrize("body", [{}, {"name": "x"}, {"border": "{}"}, "not an object"])
def test_missing_fields_are_422(api: httpx.Client, body: Any) -> None:
    assert api.post("/project/new", json=body).status_code == 422


@pytest.mark.parametrize("project_id", ["abc", "1.5", "", "99999999999999999999999"])
def test_info_rejects_non_integer_ids(api: httpx.Client, project_id: str) -> None:
    r = api.get("/project/info", params={"project_id": project_id})
    assert r.status_code in (404, 422)


def test_info_needs_project_id(api: httpx.Client) -> None:
    assert api.get("/project/info").status_code == 422


def test_another_users_project_is_404_like_an_unknown_one(api: httpx.Client, front: Any) -> None:
    project_id = api.post("/project/new", json=project_body()).json()["project_id"]
    with httpx.Client(base_url=front.url, auth=new_user("other")) as other:
        foreign = other.get("/project/info", params={"project_id": project_id})
        unknown = other.get("/project/info", params={"project_id": 10**9})
        assert other.get("/project/list").json() == {"projects": []}
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"].replace(str(project_id), "N") == unknown.json()["detail"].replace(
        str(10**9), "N"
    )


def test_a_projects_owner_is_read_once_and_still_refuses_everyone_else(
    api: httpx.Client, front: Any, dynamo_calls: Any
) -> None:
    """Reads that only check ownership (dates, procs, tiles) read the owner once per warm function."""
    first = api.post("/project/new", json=project_body()).json()["project_id"]
    # The next id, asked for before it exists: a miss must not be remembered.
    assert api.get("/meta/dates", params={"project_id": first + 1}).status_code == 404
    second = api.post("/project/new", json=project_body(name="second")).json()["project_id"]
    assert second == first + 1
    # Found once it exists (its dates are whatever the worker's catalogue holds under its border).
    found = api.get("/meta/dates", params={"project_id": second})
    assert found.status_code == 200 and isinstance(found.json()["dates"], list), found.text

    table = ProjectModel.Meta.table_name
    before = dynamo_calls.count("GetItem", table)
    for _ in range(3):
        assert api.get("/meta/dates", params={"project_id": second}).status_code == 200
        assert api.get("/proc/list", params={"project_id": second}).status_code == 200
    assert dynamo_calls.count("GetItem", table) == before

    with httpx.Client(base_url=front.url, auth=new_user("other")) as other:
        for route in ("/meta/dates", "/proc/list"):
            assert other.get(route, params={"project_id": second}).status_code == 404


def test_fifty_parallel_creates_get_fifty_distinct_ids(api: httpx.Client, front: Any) -> None:
    def create(i: int) -> int:
        with httpx.Client(base_url=front.url, auth=api.auth, timeout=120) as client:
            r = client.post("/project/new", json=project_body(name=f"parallel {i}"))
            assert r.status_code == 200, r.text
            return int(r.json()["project_id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(create, range(50)))
    assert len(set(ids)) == 50
    listed = api.get("/project/list").json()["projects"]
    assert sorted(p["project_id"] for p in listed) == sorted(ids)
    assert {p["name"] for p in listed} == {f"parallel {i}" for i in range(50)}


def test_undeclared_routes_are_404_as_on_api_gateway(api: httpx.Client) -> None:
    for path in ("/project", "/project/delete", "/project/list/extra", "/docs/extra", "/assets"):
        assert api.get(path).status_code == 404
    assert api.delete("/project/info", params={"project_id": 1}).status_code == 404


def _nested(depth: int) -> str:
    """A Polygon whose coordinates are nested `depth` lists deep."""
    return '{"type": "Polygon", "coordinates": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [5, 900, 5_000, 100_000])
def test_deeply_nested_borders_are_422(api: httpx.Client, depth: int) -> None:
    as_text = api.post("/project/new", json=project_body(border=_nested(depth)))
    assert as_text.status_code == 422, as_text.text
    assert "border" in json.dumps(as_text.json()["detail"])
    body = json.dumps(project_body()).removesuffix("}") + ', "border": ' + _nested(depth) + "}"
    as_object = api.post("/project/new", content=body, headers={"content-type": "application/json"})
    assert 400 <= as_object.status_code < 500, as_object.text
    assert "detail" in as_object.json()
    assert api.get("/project/list").json() == {"projects": []}


def _detailed_ring(vertices: int, lon: float, lat: float, radius: float, seed: int = 1) -> list[list[float]]:
    """A closed ring of full-precision vertices around a point, jittered so nothing compresses well."""
    rng = random.Random(seed)
    ring = []
    for i in range(vertices - 1):
        angle = 2 * math.pi * i / (vertices - 1)
        r = radius * (1 + rng.random() * 0.002)
        ring.append([lon + r * math.cos(angle), lat + r * math.sin(angle)])
    return [*ring, ring[0]]


@pytest.mark.parametrize(
    "lon,lat",
    [
        (18.0, 46.0),  # where four tiles of two UTM zones meet: rows overlap
        (179.8, -16.5),  # beside the antimeridian, where a tile's reach spans the globe
    ],
)
def test_a_border_of_20000_full_precision_vertices_is_kept_exactly(
    api: httpx.Client, lon: float, lat: float
) -> None:
    ring = _detailed_ring(20_000, lon, lat, 0.15)
    polygon = {"type": "Polygon", "coordinates": [ring]}
    r = api.post("/project/new", json=project_body(border=json.dumps(polygon)), timeout=120)
    assert r.status_code == 200, r.text
    project_id = r.json()["project_id"]
    info = api.get("/project/info", params={"project_id": project_id}).json()
    stored = shapely.from_wkt(info["border"])
    assert stored.equals_exact(shapely.geometry.shape(polygon), 0)
    assert shapely.get_num_coordinates(stored) == 20_000
    project = ProjectModel.get(project_id)
    assert len(project.tiles) >= 2
    for tile in project.tiles:
        row = shapely.from_wkt(ProjectTileModel.get(tile, project_id).border)
        assert row.within(stored.buffer(1e-9))


def test_a_border_over_20000_vertices_is_422(api: httpx.Client) -> None:
    polygon = {"type": "Polygon", "coordinates": [_detailed_ring(20_001, 18.0, 46.0, 0.15)]}
    r = api.post("/project/new", json=project_body(border=json.dumps(polygon)))
    assert r.status_code == 422
    assert "more than 20000 vertices" in json.dumps(r.json()["detail"])
    assert api.get("/project/list").json() == {"projects": []}


def test_a_border_too_large_for_one_transaction_is_422_and_takes_no_id(
    stack: Any, user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    polygon = {"type": "Polygon", "coordinates": [_detailed_ring(20_000, 18.0, 46.0, 0.15)]}
    new = projects.validate("big", None, None, json.dumps(polygon))
    before = CounterModel.get("project_id").value
    # The stored rows hold about three copies of this border; allow two.
    monkeypatch.setattr(projects, "TRANSACTION_BYTES", 2 * models.item_bytes(_project_model(new)))
    with pytest.raises(InvalidInput, match="too detailed to store"):
        projects.create_project(owner_of(user[0]), user[0], new)
    assert CounterModel.get("project_id").value == before
    assert projects.list_projects(owner_of(user[0])) == []


def _project_model(new: projects.NewProject) -> ProjectModel:
    """The item a new project would be stored as."""
    return ProjectModel(0, login="x", name=new.name, border=geo.to_wkt(new.border), created="x")


def test_borders_that_would_overflow_the_list_are_422_and_the_list_still_answers(api: httpx.Client) -> None:
    """Lambda answers at most 6 MB: /project/list must hold every border, so creation stops short of that."""
    ring = _detailed_ring(20_000, 18.0, 46.0, 0.15)
    border = json.dumps({"type": "Polygon", "coordinates": [ring]})
    created, refused = 0, None
    for _ in range(8):  # 8 such borders are over 6 MB of WKT: the budget must stop them before
        r = api.post("/project/new", json=project_body(border=border), timeout=120)
        if r.status_code != 200:
            refused = r
            break
        created += 1
    assert refused is not None and refused.status_code == 422, refused and refused.text
    assert "/project/list" in json.dumps(refused.json()["detail"])
    listed = api.get("/project/list", timeout=60)
    assert listed.status_code == 200 and len(listed.content) < 6_000_000
    projects_listed = listed.json()["projects"]
    assert len(projects_listed) == created >= 4
    assert sum(len(p["border"]) for p in projects_listed) <= projects.LIST_BORDERS_BYTES
    # A small border still fits beside them.
    assert api.post("/project/new", json=project_body()).status_code == 200


def test_creating_projects_builds_no_new_aws_client_each_time(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its DynamoDB transaction and its backfill request reuse their clients: each new one costs ~50 ms."""
    import botocore.session

    made: list[str] = []
    create_client = botocore.session.Session.create_client

    def counting(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    assert api.post("/project/new", json=project_body(name="first")).status_code == 200
    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    for i in range(3):
        assert api.post("/project/new", json=project_body(name=f"again {i}")).status_code == 200
    assert made == []
