"""/mosaic: a date's scenes merged into one tile, equal to rio-tiler's mosaic_reader, clipped to the border.

Two generated scenes overlap across a UTM zone boundary (33N and 34N, near 18 E), each with a TCI
and an SCL that has clouds where the other scene is clear; a project's border covers part of them.
"""

import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy
import pytest
import rasterio
import shapely
from fastapi.testclient import TestClient
from morecantile import Tile
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds, from_origin
from rasterio.warp import transform, transform_bounds, transform_geom
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.constants import WEB_MERCATOR_TMS
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.mosaic.methods.defaults import FirstMethod
from shapely.geometry import box, mapping
from shapely.geometry.base import BaseGeometry

from sputnik import auth, geo
from sputnik.api.rgb import create_rgb_app
from sputnik.bands import CLOUDY_SCL
from sputnik.models import MetaModel, ProjectModel
from sputnik.settings import InvalidSetting, get_settings
from sputnik.tiles import mosaic
from sputnik.tiles.mosaic import (
    MAX_SCENES_PER_TILE,
    SCENE_LISTS,
    DateScene,
    FirstValid,
    SceneLists,
    lonlat_bounds,
    scenes_ttl,
)
from sputnik.tiles.pool import POOL
from tests.conftest import DynamoCalls
from tests.support.tiles import (
    ALICE,
    ARCHIVE,
    BOB,
    SCENE,
    TCI,
    UNKNOWN_PROJECT,
    Tiles,
    api_event,
    decode_png,
    expected_tile,
    invoke,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

DAY = "2021-06-29"
PROJECT = 1101  # alice's, over both generated scenes
CROWDED = 1102  # alice's, with more scenes on one date than a tile merges
REAL = 1103  # alice's, over the real scene
BOBS = 2101  # bob's, over the same scenes
# The border: most of the two scenes' overlap, not all of it, so tiles at its edge are cut.
BORDER = box(17.96, 45.0, 18.09, 45.075)
# Scene A (33N, least cloudy: first) and scene B (34N); 512 px of 10 m, SCL 256 px of 20 m.
SCENES = {
    "S2A_33TYL_20210629_0_L2A": {"epsg": 32633, "centre": (17.99, 45.04), "cloud": 10.0, "salt": 0},
    "S2B_34TBR_20210629_0_L2A": {"epsg": 32634, "centre": (18.05, 45.04), "cloud": 30.0, "salt": 1},
}
ORDER = list(SCENES)  # least cloudy first
HOSTILE_TCI = f"s3://{ARCHIVE}/../sentinel-s2-l2a-cogs/x/TCI.tif"
Z = 12


def tci_key(scene_id: str) -> str:
    """Where a generated scene's TCI lies in the archive."""
    return f"sentinel-s2-l2a-cogs/mosaic-test/{scene_id}/TCI.tif"


def url(scene_id: str, name: str = "TCI.tif") -> str:
    """The s3:// URL of a generated scene's file."""
    return f"s3://{ARCHIVE}/" + tci_key(scene_id).replace("TCI.tif", name)


def write_cog(data: numpy.ndarray, epsg: int, origin: tuple[float, float], res: float, path: Path) -> None:
    """Write a deflate COG with nodata 0."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "uint8",
        "crs": f"EPSG:{epsg}",
        "transform": from_origin(*origin, res, res),
        "nodata": 0,
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
        with memfile.open() as src:
            cog_translate(src, str(path), cog_profiles.get("deflate"), in_memory=True, quiet=True, nodata=0)


def scene_files(scene_id: str, spec: dict[str, Any], folder: Path) -> tuple[Path, Path, BaseGeometry]:
    """A scene's TCI and SCL COGs (distinct colours per scene, a nodata corner, cloud bands) and footprint."""
    epsg, (lon, lat), salt = spec["epsg"], spec["centre"], spec["salt"]
    (x,), (y,) = transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
    origin = (round(x) - 2560, round(y) + 2560)
    rows, cols = numpy.mgrid[0:512, 0:512]
    tci = numpy.stack(
        [1 + (rows + 60 * salt) % 200, 1 + (cols + 90 * salt) % 200, numpy.full(rows.shape, 40 + 150 * salt)]
    ).astype("uint8")
    tci[:, (rows + cols < 200) if salt == 0 else (rows > 470)] = 0  # nodata the other scene fills
    scl_rows, scl_cols = numpy.mgrid[0:256, 0:256]
    scl = numpy.full((1, 256, 256), 4, dtype="uint8")  # vegetation
    # Cloud bands across the overlap, at different places in each scene; some overlap both.
    cloudy = ((scl_cols // 32) % 3 == salt) & (scl_rows > 40)
    scl[0][cloudy] = 9 if salt == 0 else 8
    scl[0][(scl_rows // 40) % 4 == 3] = 3  # cloud shadow
    tci_path, scl_path = folder / f"{scene_id}-TCI.tif", folder / f"{scene_id}-SCL.tif"
    write_cog(tci, epsg, origin, 10, tci_path)
    write_cog(scl, epsg, origin, 20, scl_path)
    bounds = transform_bounds(
        f"EPSG:{epsg}", "EPSG:4326", origin[0], origin[1] - 5120, origin[0] + 5120, origin[1]
    )
    return tci_path, scl_path, box(*bounds)


def meta_row(
    project_id: int, scene_id: str, footprint: Any, tci_url: str, cloud: float, day: str = DAY
) -> MetaModel:
    """A scene's meta record for a project, as the catalogue writes it."""
    minx, miny, maxx, maxy = footprint.bounds
    return MetaModel(
        project_id,
        f"{day}#{scene_id}",
        scene_id=scene_id,
        date=day,
        border=geo.to_wkb_hex(footprint),
        filename=scene_id,
        xg0=minx,
        xg1=maxx,
        yg0=miny,
        yg1=maxy,
        border_gj=geo.to_geojson(footprint),
        cloud_cover=cloud,
        tci_url=tci_url,
        sequencer="0",
    )


def project(project_id: int, login: str, border: Any) -> None:
    """Save a project of a user with a border."""
    ProjectModel(
        project_id,
        owner=auth.get_user(login).user_id,
        login=login,
        name=f"mosaic {project_id}",
        border=geo.to_wkt(border),
        created="2026-01-01T00:00:00+00:00",
    ).save()


@pytest.fixture(scope="module")
def footprints(tiles: Tiles) -> dict[str, Any]:
    """Upload the two scenes and record them for the test projects; return their footprints."""
    s3 = boto3.client("s3")
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scene_id, spec in SCENES.items():
            tci, scl, footprint = scene_files(scene_id, spec, Path(tmp))
            s3.upload_file(str(tci), ARCHIVE, tci_key(scene_id))
            s3.upload_file(str(scl), ARCHIVE, tci_key(scene_id).replace("TCI.tif", "SCL.tif"))
            found[scene_id] = footprint
    project(PROJECT, "alice", BORDER)
    project(BOBS, "bob", BORDER)
    project(CROWDED, "alice", BORDER)
    project(REAL, "alice", box(-13, 23, -9, 27))
    for scene_id, spec in SCENES.items():
        for project_id in (PROJECT, BOBS):
            meta_row(project_id, scene_id, found[scene_id], url(scene_id), spec["cloud"]).save()
    for i in range(MAX_SCENES_PER_TILE + 1):
        scene_id = f"S2A_33TYL_2021062{i}_0_L2A"
        meta_row(CROWDED, scene_id, found[ORDER[0]], url(ORDER[0]), float(i)).save()
    meta_row(REAL, SCENE, box(-12.1, 24.3, -10.9, 25.3), TCI, 0.0, "2020-02-19").save()
    return found


class Clock:
    """A clock for the kept scene lists that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """Each test starts with no scene list kept, on a clock of its own."""
    fake = Clock()
    SCENE_LISTS.clear()
    monkeypatch.setattr(SCENE_LISTS, "clock", fake)
    yield fake
    SCENE_LISTS.clear()


def with_ttl(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Run the rest of the test with the setting `mosaic_scenes_ttl` at `value`."""
    settings = dataclasses.replace(get_settings(), mosaic_scenes_ttl=value)
    monkeypatch.setattr(mosaic, "get_settings", lambda: settings)


@pytest.fixture(scope="module")
def client(tiles: Tiles, footprints: dict[str, Any]) -> Iterator[TestClient]:
    """A client of the rgb function's app (which serves /mosaic), logged in as alice."""
    with tiles.client("rgb") as test_client:
        yield test_client


def overlap_tiles() -> list[Tile]:
    """The z13 tiles over the border."""
    return list(WEB_MERCATOR_TMS.tiles(*BORDER.bounds, zooms=[Z]))


def tile_path(tile: Tile, project_id: int = PROJECT, date: str = DAY, suffix: str = "") -> str:
    """The mosaic tile path of a tile."""
    return f"/mosaic/tile/{project_id}/{date}/{tile.z}/{tile.x}/{tile.y}{suffix}"


def inside_border(tile: Tile) -> numpy.ndarray:
    """The tile's pixels whose centre lies in the border, computed here from the border itself."""
    mercator = transform_geom("EPSG:4326", "EPSG:3857", mapping(shapely.segmentize(BORDER, 0.001)))
    transform_ = from_bounds(*WEB_MERCATOR_TMS.xy_bounds(tile), 256, 256)
    return geometry_mask([mercator], out_shape=(256, 256), transform=transform_, invert=True)


def rio_tiler_tile(asset: str, x: int, y: int, z: int, **kwargs: Any) -> ImageData:
    """rio-tiler's own tile of one asset."""
    with rasterio.Env(), Reader(asset) as src:
        return src.tile(x, y, z, tilesize=256, **kwargs)


def served_pixels(content: bytes) -> tuple[numpy.ndarray, numpy.ndarray]:
    """A served PNG's RGB and alpha."""
    pixels = decode_png(content)
    assert pixels.shape == (4, 256, 256)
    return pixels[:3], pixels[3]


def assert_tile(content: bytes, data: numpy.ndarray, valid: numpy.ndarray) -> None:
    """Assert a PNG shows `data` where `valid`, transparent (and zero) elsewhere."""
    rgb, alpha = served_pixels(content)
    numpy.testing.assert_array_equal(alpha, numpy.where(valid, 255, 0))
    numpy.testing.assert_array_equal(rgb, numpy.where(valid, data, 0))


def test_mosaic_tile_equals_rio_tilers_mosaic_reader_clipped_to_the_border(client: TestClient) -> None:
    from_both = cut = 0
    for tile in overlap_tiles():
        response = client.get(tile_path(tile))
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        expected, used = mosaic_reader([url(s) for s in ORDER], rio_tiler_tile, tile.x, tile.y, tile.z)
        inside = inside_border(tile)
        assert_tile(response.content, expected.data, (expected.mask == 255) & inside)
        from_both += len(used) == 2
        cut += bool(inside.any() and not inside.all())
    assert from_both and cut  # tiles filled from both scenes, and tiles cut by the border, were seen


def test_mask_clouds_fills_cloudy_pixels_from_the_other_scene(client: TestClient) -> None:
    filled = 0
    for tile in overlap_tiles():
        response = client.get(tile_path(tile), params={"mask": "clouds"})
        assert response.status_code == 200
        # In numpy: each scene's pixel where it has data and its SCL is clear, the first scene first.
        data = numpy.zeros((3, 256, 256), dtype="uint8")
        valid = numpy.zeros((256, 256), dtype=bool)
        for scene_id in ORDER:
            try:
                tci = rio_tiler_tile(url(scene_id), tile.x, tile.y, tile.z)
                scl = rio_tiler_tile(
                    url(scene_id, "SCL.tif"),
                    tile.x,
                    tile.y,
                    tile.z,
                    resampling_method="nearest",
                    reproject_method="nearest",
                )
            except TileOutsideBounds:
                continue  # this scene is off the tile
            clear = (tci.mask == 255) & ~numpy.isin(scl.array.filled(0)[0], CLOUDY_SCL)
            take = clear & ~valid
            data[:, take] = tci.data[:, take]
            filled += int(take.sum()) if scene_id == ORDER[1] else 0
            valid |= take
        inside = inside_border(tile)
        assert_tile(response.content, data, valid & inside)
    assert filled > 0  # the second scene filled pixels the first left cloudy or empty


def test_tiles_off_the_border_or_the_scenes_are_transparent(client: TestClient) -> None:
    beside = WEB_MERCATOR_TMS.tile(17.92, 45.02, Z)  # over scene A, west of the border
    far = WEB_MERCATOR_TMS.tile(0.5, 0.5, Z)
    for tile in (beside, far):
        response = client.get(tile_path(tile))
        assert response.status_code == 200 and response.headers["cache-control"] == "private, max-age=3600"
        _, alpha = served_pixels(response.content)
        assert not alpha.any()


def test_real_scene_through_the_mosaic_equals_rio_tilers_tile(client: TestClient) -> None:
    response = client.get(f"/mosaic/tile/{REAL}/2020-02-19/9/239/219")
    assert response.status_code == 200
    expected = expected_tile(TCI, 9, 239, 219)
    assert_tile(response.content, expected.data, expected.mask == 255)


def test_a_dates_scenes_are_one_query_while_kept(
    client: TestClient, dynamo_calls: DynamoCalls, clock: Clock
) -> None:
    tiles = overlap_tiles()
    meta = MetaModel.Meta.table_name

    def queries(path: str) -> list[str]:
        before = len(dynamo_calls.ops)
        assert client.get(path).status_code == 200
        reads = list(zip(dynamo_calls.ops[before:], dynamo_calls.tables[before:], strict=True))
        # (BatchGetItem: the login; the project's owner and border are read once per warm function)
        assert [op for op, _ in reads if op not in ("BatchGetItem", "Query", "GetItem")] == []
        return [table for op, table in reads if op == "Query"]

    assert queries(tile_path(tiles[0])) == [meta]
    ttl = scenes_ttl()
    clock.advance(ttl - 1)
    assert queries(tile_path(tiles[1])) == []  # the same date, another tile: the list kept
    assert queries(tile_path(tiles[1], suffix=".webp")) == []
    clock.advance(1)
    assert queries(tile_path(tiles[0])) == [meta]  # kept `ttl` seconds from its Query, not longer
    assert queries(tile_path(tiles[0], project_id=REAL, date="2020-02-19")) == [meta]  # another date


def test_a_scene_ingested_while_the_list_is_kept_shows_once_the_ttl_has_passed(
    client: TestClient, clock: Clock
) -> None:
    path = tile_path(overlap_tiles()[0])
    before = client.get(path)
    assert before.status_code == 200
    # A newly ingested scene, least cloudy of the date (scene B's files): it would be read first.
    row = meta_row(PROJECT, "S2A_33TYL_20210629_7_L2A", box(17.9, 44.9, 18.2, 45.2), url(ORDER[1]), 0.0)
    row.save()
    try:
        clock.advance(scenes_ttl() - 1)
        assert client.get(path).content == before.content
        clock.advance(1)
        after = client.get(path)
        assert after.status_code == 200 and after.content != before.content
        expected, _ = mosaic_reader([url(ORDER[1]), *map(url, ORDER)], rio_tiler_tile, *overlap_tiles()[0])
        assert_tile(after.content, expected.data, (expected.mask == 255) & inside_border(overlap_tiles()[0]))
    finally:
        row.delete()


def test_a_kept_scene_list_answers_no_one_else(client: TestClient, tiles: Tiles) -> None:
    tile = overlap_tiles()[0]
    assert client.get(tile_path(tile)).status_code == 200  # alice's list of the date is kept
    theirs = client.get(tile_path(tile), auth=BOB)
    unknown = client.get(tile_path(tile, project_id=UNKNOWN_PROJECT), auth=BOB)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["detail"].replace(str(PROJECT), "N") == unknown.json()["detail"].replace(
        str(UNKNOWN_PROJECT), "N"
    )
    # bob's project over the same scenes, with a hostile record of his own: kept for him, not for her.
    row = meta_row(BOBS, "S2A_33TYL_20210629_9_L2A", box(17.9, 44.9, 18.2, 45.2), HOSTILE_TCI, 0.0)
    row.save()
    try:
        assert client.get(tile_path(tile, project_id=BOBS), auth=BOB).status_code == 403
        assert client.get(tile_path(tile, project_id=BOBS)).status_code == 404
        assert client.get(tile_path(tile)).status_code == 200
    finally:
        row.delete()


def test_with_a_ttl_of_0_every_tile_queries(
    client: TestClient, dynamo_calls: DynamoCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_ttl(monkeypatch, "0")
    tile = overlap_tiles()[0]
    for _ in range(2):
        before = dynamo_calls.count("Query", MetaModel.Meta.table_name)
        assert client.get(tile_path(tile)).status_code == 200
        assert dynamo_calls.count("Query", MetaModel.Meta.table_name) == before + 1


@pytest.mark.parametrize("value", ["0", "1", "60", "3600", "0060"])
def test_the_ttl_setting_takes_whole_seconds_up_to_an_hour(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with_ttl(monkeypatch, value)
    assert scenes_ttl() == int(value)


@pytest.mark.parametrize(
    "value",
    ["", "-1", "3601", "99999", "1.5", "1e3", "nan", "inf", " 60", "60 ", "sixty", "\uff16\uff10", "0x10"],
)
def test_an_unusable_ttl_setting_fails_the_functions_init_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with_ttl(monkeypatch, value)
    with pytest.raises(
        InvalidSetting, match="SPUTNIK_MOSAIC_SCENES_TTL must be whole seconds from 0 to 3600"
    ):
        create_rgb_app()


def test_scene_lists_keep_the_most_recently_used_and_forget_on_a_clock_gone_back() -> None:
    clock = Clock()
    lists = SceneLists(size=2, clock=clock)
    scene = DateScene("S2A_33TYL_20210629_0_L2A", box(0, 0, 1, 1), url(ORDER[0]), 1.0)
    for day in ("a", "b"):
        lists.put((PROJECT, day), [scene], clock())
    assert lists.get((PROJECT, "a"), 60) == [scene]  # "a" used last: "b" goes first
    lists.put((PROJECT, "c"), [scene], clock())
    assert lists.get((PROJECT, "b"), 60) is None
    assert lists.get((PROJECT, "a"), 60) == lists.get((PROJECT, "c"), 60) == [scene]
    kept = lists.get((PROJECT, "a"), 60)
    assert kept is not None
    kept.clear()  # a caller changing its list changes no one else's
    assert lists.get((PROJECT, "a"), 60) == [scene]
    clock.advance(-1)  # a clock that went back cannot tell an entry's age: read again
    assert lists.get((PROJECT, "a"), 60) is None


def test_formats_and_tilejson(client: TestClient, footprints: dict[str, Any]) -> None:
    tile = overlap_tiles()[1]
    for suffix, media in ((".jpg", "image/jpeg"), (".webp", "image/webp"), (".png", "image/png")):
        response = client.get(tile_path(tile, suffix=suffix))
        assert response.status_code == 200 and response.headers["content-type"] == media
    png = client.get(tile_path(tile, suffix=".png")).content
    assert png == client.get(tile_path(tile)).content
    doc = client.get("/mosaic/tilejson.json", params={"project_id": PROJECT, "date": DAY, "mask": "clouds"})
    assert doc.status_code == 200
    body = doc.json()
    assert body["tiles"] == [f"http://testserver/mosaic/tile/{PROJECT}/{DAY}/{{z}}/{{x}}/{{y}}?mask=clouds"]
    covered = shapely.union_all(list(footprints.values())).intersection(BORDER)
    assert body["bounds"] == pytest.approx(list(covered.bounds))
    assert covered.bounds != BORDER.bounds
    followed = body["tiles"][0].replace("{z}/{x}/{y}", f"{tile.z}/{tile.x}/{tile.y}")
    assert client.get(followed).content == client.get(tile_path(tile), params={"mask": "clouds"}).content
    with_format = client.get(
        "/mosaic/tilejson.json", params={"project_id": PROJECT, "date": DAY, "tile_format": "webp"}
    ).json()
    assert with_format["tiles"][0].endswith("/{z}/{x}/{y}.webp")


def test_etag_and_304(client: TestClient) -> None:
    path = tile_path(WEB_MERCATOR_TMS.tile(18.02, 45.04, Z))
    first = client.get(path)
    etag = first.headers["etag"]
    assert (
        first.headers["cache-control"] == "private, max-age=3600" and first.headers["vary"] == "Authorization"
    )
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    clouds = client.get(path, params={"mask": "clouds"})
    assert clouds.headers["etag"] != etag  # another image, another tag


def test_needs_the_right_password(client: TestClient) -> None:
    path = tile_path(overlap_tiles()[0])
    assert client.get(path, auth=None).status_code == 401
    response = client.get(path, auth=(ALICE[0], "wrong password"))
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
    assert (
        client.get(
            "/mosaic/tilejson.json", params={"project_id": PROJECT, "date": DAY}, auth=None
        ).status_code
        == 401
    )


def test_another_users_project_an_unknown_one_and_a_date_without_scenes_are_404(client: TestClient) -> None:
    tile = overlap_tiles()[0]
    theirs = client.get(tile_path(tile, project_id=BOBS))
    unknown = client.get(tile_path(tile, project_id=UNKNOWN_PROJECT))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["detail"].replace(str(BOBS), "N") == unknown.json()["detail"].replace(
        str(UNKNOWN_PROJECT), "N"
    )
    assert client.get(tile_path(tile, project_id=BOBS), auth=BOB).status_code == 200  # bob's own
    no_scenes = client.get(tile_path(tile, date="2021-06-30"))
    assert no_scenes.status_code == 404 and no_scenes.json() == {"detail": "no scenes on this date"}
    tilejson = client.get("/mosaic/tilejson.json", params={"project_id": BOBS, "date": DAY})
    assert tilejson.status_code == 404 and ARCHIVE not in tilejson.text


@pytest.mark.parametrize("date", ["2021-13-01", "20210629", "2021-06-3x", "2021-02-30"])
def test_malformed_date_is_422(client: TestClient, date: str) -> None:
    response = client.get(tile_path(overlap_tiles()[0], date=date))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "date"]
    tilejson = client.get("/mosaic/tilejson.json", params={"project_id": PROJECT, "date": date})
    assert tilejson.status_code == 422 and tilejson.json()["detail"][0]["loc"] == ["query", "date"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("25/0/0", {}),
        (f"{Z}/8192/0", {}),
        (f"{Z}/0/8192", {}),
        ("-1/0/0", {}),
        (f"{Z}/1/2.gif", {}),
        (f"{Z}/1/2", {"mask": "snow"}),
    ],
)
def test_tiles_outside_the_matrix_or_bad_options_are_422(
    client: TestClient, path: str, query: dict[str, str]
) -> None:
    assert client.get(f"/mosaic/tile/{PROJECT}/{DAY}/{path}", params=query).status_code == 422


def test_more_scenes_on_a_tile_than_the_cap_is_refused(client: TestClient, tiles: Tiles) -> None:
    tiles.server.requests.clear()
    response = client.get(tile_path(overlap_tiles()[0], project_id=CROWDED))
    assert response.status_code == 422
    assert f"over the {MAX_SCENES_PER_TILE}" in response.json()["detail"][0]["msg"]
    assert not [r for r in tiles.server.requests if r[1].startswith(f"/{ARCHIVE}/")]  # nothing was read


@pytest.mark.parametrize(
    "hostile",
    [
        HOSTILE_TCI,
        "https://example.com/TCI.tif",
        f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs/x/TCI.vrt",
        "/vsicurl/http://169.254.169.254/latest/meta-data/TCI.tif",
        f"s3://sputnik-test-products/projects/2002/{SCENE}-rgb.tif",
        f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs/x/B04.tif?mask=clouds",
    ],
)
def test_a_hostile_href_in_a_scene_record_is_refused_before_gdal_opens_anything(
    client: TestClient, tiles: Tiles, hostile: str
) -> None:
    scene_id = "S2A_33TYL_20210629_9_L2A"
    row = meta_row(PROJECT, scene_id, box(17.9, 44.9, 18.2, 45.2), hostile, 0.0)  # first of the date
    row.save()
    try:
        tiles.server.requests.clear()
        for query in ({}, {"mask": "clouds"}):
            response = client.get(tile_path(overlap_tiles()[0]), params=query)
            assert response.status_code == 403 and "url not allowed" in response.json()["detail"]
        assert not [r for r in tiles.server.requests if r[0] == "GET" and r[1].count("/") > 1]
    finally:
        row.delete()


def test_mosaic_through_mangum_behind_a_stage(tiles: Tiles, client: TestClient) -> None:
    tile = overlap_tiles()[0]
    handler = tiles.function("rgb").handler
    status, headers, raw = invoke(handler, api_event("GET", "/prod" + tile_path(tile), stage="prod"))
    assert status == 200 and headers["content-type"] == "image/png"
    assert raw == client.get(tile_path(tile)).content
    status, _, raw = invoke(
        handler, api_event("GET", f"/prod/mosaic/tilejson.json?project_id={PROJECT}&date={DAY}", stage="prod")
    )
    assert status == 200 and f"/prod/mosaic/tile/{PROJECT}/{DAY}/{{z}}".encode() in raw


def test_a_scene_record_without_a_tci_is_left_out(client: TestClient, clock: Clock) -> None:
    path = tile_path(WEB_MERCATOR_TMS.tile(18.02, 45.04, Z))
    before = client.get(path).content
    row = meta_row(PROJECT, "S2A_33TYL_20210629_8_L2A", box(17.9, 44.9, 18.2, 45.2), "", 0.0)
    row.tci_url = None  # as records written before the catalogue kept a TCI
    row.save()
    clock.advance(scenes_ttl())  # the date's scenes are read again
    try:
        response = client.get(path)
        assert response.status_code == 200 and response.content == before
    finally:
        row.delete()


def test_a_tile_the_first_scene_fills_opens_no_other(client: TestClient) -> None:
    filled = WEB_MERCATOR_TMS.tile(17.99, 45.04, 15)  # inside scene A's data and the border
    first = rio_tiler_tile(url(ORDER[0]), filled.x, filled.y, filled.z)
    assert (first.mask == 255).all() and inside_border(filled).all()
    edge = WEB_MERCATOR_TMS.tile(18.023, 45.04, 14)  # across scene A's east edge, inside scene B
    for tile, scenes in ((filled, 1), (edge, 2)):
        POOL.clear()
        opened = POOL.opened
        assert client.get(tile_path(tile)).status_code == 200
        assert POOL.opened - opened == scenes


@pytest.mark.parametrize("seed", range(6))
def test_first_valid_feeds_and_stops_as_rio_tilers_first_method(seed: int) -> None:
    rng = numpy.random.default_rng(seed)
    cutline = rng.random((64, 64)) < (0.3 if seed % 2 else 0.0)  # some with, some without a border
    ours, theirs = FirstValid(), FirstMethod()
    for method in (ours, theirs):
        method.cutline_mask = cutline if seed % 3 else None
    for step in range(4):
        data = rng.integers(0, 255, (3, 64, 64), dtype="uint8")
        # Whole pixels missing (as a scene's nodata), or single bands (as a bad value would be).
        pixels = rng.random((64, 64)) < 0.2 + 0.2 * step
        mask = pixels[numpy.newaxis] | (rng.random((3, 64, 64)) < 0.02 * (seed % 2))
        for method in (ours, theirs):
            method.feed(numpy.ma.MaskedArray(data, mask=mask))
        assert ours.data is not None and theirs.data is not None
        numpy.testing.assert_array_equal(numpy.ma.getmaskarray(ours.data), numpy.ma.getmaskarray(theirs.data))
        numpy.testing.assert_array_equal(ours.data.filled(0), theirs.data.filled(0))
        assert ours.is_done == theirs.is_done


def test_lonlat_bounds_are_the_tiles_bounds_in_degrees() -> None:
    corners = [
        Tile(0, 0, 0),
        Tile(0, 0, 1),
        Tile(1, 1, 1),
        Tile(4483, 2922, 13),
        Tile(2**22 - 1, 2**22 - 1, 22),
    ]
    for tile in corners + overlap_tiles():
        expected = WEB_MERCATOR_TMS.bounds(tile)
        assert lonlat_bounds(tuple(WEB_MERCATOR_TMS.xy_bounds(tile))) == pytest.approx(expected, abs=1e-9)
