"""STAC items of both Earth Search schemas -> Scene; archive keys."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from shapely.geometry import box

from sputnik.errors import InvalidInput, InvalidItem
from sputnik.stac import (
    Scene,
    is_item_key,
    item_key,
    month_prefix,
    parse_item,
    scene_key,
    scene_prefix,
)

SCENE_REL = "sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"

# What each real item must give: tile, date, ESA product name, EPSG.
EXPECTED = {
    "S2A_31NBJ_20190524_0_L2A": (
        "31NBJ",
        "2019-05-24",
        "S2A_MSIL2A_20190524T101031_N0212_R022_T31NBJ_20190524T130304",
        32631,
    ),
    "S2B_33TWN_20181005_0_L2A": (
        "33TWN",
        "2018-10-05",
        "S2B_MSIL2A_20181005T095029_N0208_R079_T33TWN_20181005T140807",
        32633,
    ),
    "S2A_33TWN_20210629_0_L2A": (
        "33TWN",
        "2021-06-29",
        "S2A_MSIL2A_20210629T100031_N0300_R122_T33TWN_20210629T122056",
        32633,
    ),
    "S2A_33TWN_20220122_0_L2A": (
        "33TWN",
        "2022-01-22",
        "S2A_MSIL2A_20220122T095321_N0301_R079_T33TWN_20220122T125701",
        32633,
    ),
    "S2B_24MUV_20250731_0_L2A": (
        "24MUV",
        "2025-07-31",
        "S2B_MSIL2A_20250731T130249_N0511_R095_T24MUV_20250731T132745",
        32724,
    ),
    "S2B_24MVV_20250731_0_L2A": (
        "24MVV",
        "2025-07-31",
        "S2B_MSIL2A_20250731T130249_N0511_R095_T24MVV_20250731T132745",
        32724,
    ),
    "S2A_29RKH_20200219_0_L2A": (
        "29RKH",
        "2020-02-19",
        "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947",
        32629,
    ),
}


def _item_paths(fixtures_dir: Path) -> list[Path]:
    paths = sorted((fixtures_dir / "stac-items").glob("v*/*.json"))
    paths += sorted((fixtures_dir / "sentinel-cogs").rglob("*.json"))
    return paths


@pytest.fixture(scope="module")
def v0_item(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "stac-items/v0/S2A_31NBJ_20190524_0_L2A.json").read_bytes())


@pytest.fixture(scope="module")
def v1_item(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_bytes())


def test_every_real_item_is_covered(fixtures_dir: Path) -> None:
    # A new fixture item must get its expected values here, or it would go untested.
    assert {p.stem for p in _item_paths(fixtures_dir)} == set(EXPECTED)


@pytest.mark.parametrize("scene_id", sorted(EXPECTED))
def test_real_items_parse(fixtures_dir: Path, scene_id: str) -> None:
    path = next(p for p in _item_paths(fixtures_dir) if p.stem == scene_id)
    raw = path.read_bytes()
    data = json.loads(raw)
    scene = parse_item(raw)
    tile, day, filename, epsg = EXPECTED[scene_id]
    assert scene.scene_id == scene_id
    assert scene.tile == tile
    assert scene.date == day
    assert scene.datetime == data["properties"]["datetime"]
    assert scene.filename == filename
    assert scene.epsg == epsg
    assert scene.cloud_cover == pytest.approx(data["properties"]["eo:cloud_cover"])
    # The footprint is the item geometry; its bounds are the item's own bbox (some bboxes are rounded).
    assert scene.footprint.is_valid and scene.footprint.area > 0
    assert scene.bbox == pytest.approx(tuple(data["bbox"]), abs=1e-5)
    assert scene.footprint.within(box(*scene.bbox).buffer(1e-9))
    # str, bytes and dict give the same Scene.
    assert parse_item(raw.decode()) == scene
    assert parse_item(data) == scene


@pytest.mark.parametrize("scene_id", sorted(EXPECTED))
def test_real_items_assets_by_either_name(fixtures_dir: Path, scene_id: str) -> None:
    path = next(p for p in _item_paths(fixtures_dir) if p.stem == scene_id)
    scene = parse_item(path.read_bytes())
    assert scene.asset_href("visual") == scene.asset_href("TCI")
    assert scene.asset_href("visual").endswith("/TCI.tif")
    assert scene.asset_href("B04") == scene.asset_href("red")
    assert scene.asset_href("B08") == scene.asset_href("nir")
    assert scene.asset_href("SCL") == scene.asset_href("scl")
    assert not any(name.endswith("-jp2") for name in scene.assets)
    # Real hrefs sit in the folder our key layout computes: proof that the layout matches the archive.
    folder = scene_prefix(scene.tile, scene.date, scene.scene_id)
    for band in ("B04", "B08"):
        assert scene.asset_href(band).endswith(f"/{folder}{band}.tif")
    assert scene.asset_href("visual").endswith(f"/{folder}TCI.tif")


def test_unknown_asset_raises(v0_item: dict) -> None:
    scene = parse_item(v0_item)
    with pytest.raises(InvalidItem, match="no asset 'B99'"):
        scene.asset_href("B99")


def test_real_scene_key_is_its_path(fixtures_dir: Path) -> None:
    path = fixtures_dir / "sentinel-cogs" / SCENE_REL / "S2A_29RKH_20200219_0_L2A.json"
    scene = parse_item(path.read_bytes())
    expected = f"{SCENE_REL}/S2A_29RKH_20200219_0_L2A.json"
    assert scene_key(scene) == expected
    assert scene.key == expected
    assert is_item_key(expected)


def test_scene_is_frozen(v0_item: dict) -> None:
    scene = parse_item(v0_item)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.tile = "33TWN"
    with pytest.raises(TypeError):
        scene.assets["B04"] = "elsewhere"
    assert isinstance(scene, Scene)
    hash(scene)


def test_v1_tile_from_grid_code_alone(v1_item: dict) -> None:
    item = copy.deepcopy(v1_item)
    for name in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"):
        del item["properties"][name]
    assert parse_item(item).tile == "33TWN"


def test_single_digit_zone_is_normalised(v0_item: dict) -> None:
    item = copy.deepcopy(v0_item)
    item["id"] = "S2B_6RXT_20210727_0_L2A"
    item["properties"].update(
        {"sentinel:utm_zone": 6, "sentinel:latitude_band": "R", "sentinel:grid_square": "XT"}
    )
    scene = parse_item(item)
    assert scene.tile == "06RXT"
    assert scene.key == (
        "sentinel-s2-l2a-cogs/6/R/XT/2019/5/S2B_6RXT_20210727_0_L2A/S2B_6RXT_20210727_0_L2A.json"
    )


def test_date_is_the_utc_day(v0_item: dict) -> None:
    item = copy.deepcopy(v0_item)
    item["properties"]["datetime"] = "2021-06-29T23:30:00-02:00"
    scene = parse_item(item)
    assert scene.date == "2021-06-30"
    assert scene.datetime == "2021-06-29T23:30:00-02:00"


def test_bow_tie_footprint_is_repaired(v0_item: dict) -> None:
    item = copy.deepcopy(v0_item)
    item["geometry"] = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    scene = parse_item(item)
    assert scene.footprint.is_valid
    assert scene.footprint.geom_type in ("Polygon", "MultiPolygon")
    assert scene.footprint.area == pytest.approx(0.5)
    assert scene.bbox == (0.0, 0.0, 1.0, 1.0)


def test_missing_filename_falls_back_to_id(v0_item: dict) -> None:
    item = copy.deepcopy(v0_item)
    del item["properties"]["sentinel:product_id"]
    assert parse_item(item).filename == item["id"]


def test_odd_optional_fields_become_none(v0_item: dict) -> None:
    item = copy.deepcopy(v0_item)
    item["properties"]["eo:cloud_cover"] = "cloudy"
    del item["properties"]["proj:epsg"]
    scene = parse_item(item)
    assert scene.cloud_cover is None
    assert scene.epsg is None
    item["properties"]["proj:code"] = "EPSG:32631"
    assert parse_item(item).epsg == 32631


def _without(item: dict, *path: str) -> dict:
    item = copy.deepcopy(item)
    target = item
    for name in path[:-1]:
        target = target[name]
    del target[path[-1]]
    return item


def _with(item: dict, value: object, *path: str) -> dict:
    item = copy.deepcopy(item)
    target = item
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return item


def _bad_items(v0: dict, v1: dict) -> dict[str, tuple[object, str]]:
    no_v0_tile = copy.deepcopy(v0)
    for name in ("sentinel:utm_zone", "sentinel:latitude_band", "sentinel:grid_square"):
        del no_v0_tile["properties"][name]
    no_v1_tile = copy.deepcopy(v1)
    for name in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square", "grid:code"):
        del no_v1_tile["properties"][name]
    cases = [
        ("not json", b"{not json", "not valid JSON"),
        ("not utf-8", b"\xff\xfe\xfd", "not valid JSON"),
        ("json list", "[]", "JSON object"),
        ("collection", {"type": "FeatureCollection", "features": [v0]}, "GeoJSON Feature"),
        ("plain feature", _without(v0, "stac_version"), "stac_version"),
        ("no properties", _without(v0, "properties"), "properties"),
        ("no assets", _without(v0, "assets"), "assets"),
        ("no id", _without(v0, "id"), "id"),
        ("id with slash", _with(v0, "../S2A_31NBJ", "id"), "id"),
        ("no geometry", _without(v0, "geometry"), "no geometry"),
        ("null geometry", _with(v0, None, "geometry"), "no geometry"),
        ("empty geometry", _with(v0, {"type": "Polygon", "coordinates": []}, "geometry"), "empty"),
        ("point", _with(v0, {"type": "Point", "coordinates": [1.0, 7.5]}, "geometry"), "Polygon"),
        ("broken geojson", _with(v0, {"type": "Polygon", "coordinates": [[1, 2]]}, "geometry"), "GeoJSON"),
        ("unknown type", _with(v0, {"type": "Blob", "coordinates": []}, "geometry"), "GeoJSON"),
        (
            "utm coordinates",
            _with(
                v0,
                {
                    "type": "Polygon",
                    "coordinates": [[[199980, 800000], [309780, 800000], [309780, 900000], [199980, 800000]]],
                },
                "geometry",
            ),
            "lon/lat",
        ),
        (
            "no area",
            _with(v0, {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "geometry"),
            "area",
        ),
        ("no datetime", _without(v0, "properties", "datetime"), "no datetime"),
        ("null datetime", _with(v0, None, "properties", "datetime"), "no datetime"),
        ("words for datetime", _with(v0, "yesterday", "properties", "datetime"), "ISO 8601"),
        ("impossible date", _with(v0, "2021-13-45T00:00:00Z", "properties", "datetime"), "ISO 8601"),
        ("no v0 tile", no_v0_tile, "no MGRS tile"),
        ("no v1 tile", no_v1_tile, "no MGRS tile"),
        ("bad tile", _with(v0, "II", "properties", "sentinel:grid_square"), "tile"),
        ("conflicting tiles", _with(v1, "MGRS-33TXN", "properties", "grid:code"), "conflicting"),
    ]
    return {name: (data, message) for name, data, message in cases}


BAD_ITEMS = [
    "not json",
    "not utf-8",
    "json list",
    "collection",
    "plain feature",
    "no properties",
    "no assets",
    "no id",
    "id with slash",
    "no geometry",
    "null geometry",
    "empty geometry",
    "point",
    "broken geojson",
    "unknown type",
    "utm coordinates",
    "no area",
    "no datetime",
    "null datetime",
    "words for datetime",
    "impossible date",
    "no v0 tile",
    "no v1 tile",
    "bad tile",
    "conflicting tiles",
]


def test_bad_item_cases_are_all_run(v0_item: dict, v1_item: dict) -> None:
    assert sorted(_bad_items(v0_item, v1_item)) == sorted(BAD_ITEMS)


@pytest.mark.parametrize("case", BAD_ITEMS)
def test_bad_items_raise_invalid_item(v0_item: dict, v1_item: dict, case: str) -> None:
    data, message = _bad_items(v0_item, v1_item)[case]
    with pytest.raises(InvalidItem, match=message):
        parse_item(data)


def test_item_key_layout() -> None:
    key = item_key("33UVP", "2021-07-27", "S2B_33UVP_20210727_0_L2A")
    assert key == "sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json"
    # Zone and month are not zero-padded, whatever form the tile was given in.
    assert item_key("06rxt", "2021-12-01", "S2B_6RXT_20211201_0_L2A").startswith(
        "sentinel-s2-l2a-cogs/6/R/XT/2021/12/S2B_6RXT_20211201_0_L2A/"
    )
    assert scene_key(("33UVP", "2021-07-27", "S2B_33UVP_20210727_0_L2A")) == key
    assert month_prefix("33TWN", 2022, 1) == "sentinel-s2-l2a-cogs/33/T/WN/2022/1/"


def test_item_key_rejects_bad_parts() -> None:
    with pytest.raises(InvalidInput):
        item_key("33TWI", "2021-07-27", "S2B_33TWN_20210727_0_L2A")
    with pytest.raises(InvalidInput):
        item_key("33TWN", "2021-7-27x", "S2B_33TWN_20210727_0_L2A")
    with pytest.raises(InvalidInput):
        item_key("33TWN", "2021-07-27", "../../etc")
    with pytest.raises(InvalidInput):
        month_prefix("33TWN", 2021, 13)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json", True),
        ("sentinel-s2-l2a-cogs/6/R/XT/2021/12/S2B_6RXT_20211201_0_L2A/S2B_6RXT_20211201_0_L2A.json", True),
        (
            "sentinel-s2-l2a-cogs/33/U/VP/2021/07/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json",
            False,
        ),
        ("sentinel-s2-l2a-cogs/06/R/XT/2021/12/S2B_6RXT_20211201_0_L2A/S2B_6RXT_20211201_0_L2A.json", False),
        ("sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_1_L2A.json", False),
        ("sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/B04.tif", False),
        ("sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/tileInfo.json", False),
        ("sentinel-s2-l2a-cogs/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A.json", False),
        ("other/33/U/VP/2021/7/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json", False),
        (
            "sentinel-s2-l2a-cogs/33/U/VP/2021/7/x/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json",
            False,
        ),
        (
            "sentinel-s2-l2a-cogs/33/U/VP/2021/13/S2B_33UVP_20210727_0_L2A/S2B_33UVP_20210727_0_L2A.json",
            False,
        ),
        ("sentinel-s2-l2a-cogs/61/U/VP/2021/7/S2B_61UVP_20210727_0_L2A/S2B_61UVP_20210727_0_L2A.json", False),
    ],
)
def test_is_item_key(key: str, expected: bool) -> None:
    assert is_item_key(key) is expected
