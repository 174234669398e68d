"""The archive generator and the real-scene uploader, against moto's in-process S3."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio.features
import shapely
from pyproj import Transformer
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box, shape
from shapely.ops import unary_union

from sputnik.errors import InvalidInput
from sputnik.mgrs import tile_utm_bounds
from sputnik.stac import is_item_key, parse_item
from sputnik_tools.archive import generate_archive, render_scene, upload_fixture_scene, write_scene

BUCKET = "archive-generator-tests"
TILES = ["33TWN", "33TXN"]
DATES = ["2021-04-20", "2021-07-27"]
SIZE = 128
BANDS = ("TCI", "B02", "B03", "B04", "B08", "B11", "B12", "SCL")
HALF = ("B11", "B12", "SCL")  # 20 m in the archive: half the 10 m grid's pixels
SCENE_REL = "sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
ESA_NAME = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{6}_N\d{4}_R\d{3}_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}$")


class Recorder:
    """An S3 client that records the order of uploads and passes them on."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.keys: list[str] = []

    def put_object(self, **kwargs: Any) -> Any:
        self.keys.append(kwargs["Key"])
        return self.client.put_object(**kwargs)


@pytest.fixture(scope="module")
def s3(stack: Any) -> Iterator[Any]:
    # The local stack's S3, in a bucket of its own without notifications, so nothing is ingested.
    # (moto's mock_aws would reset the state the whole process shares with the stack.)
    client = stack.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client


@pytest.fixture(scope="module")
def archive(s3: Any) -> list[str]:
    return generate_archive(s3, BUCKET, TILES, DATES, size=SIZE, seed=7)


def _get(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _keys(s3: Any, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _read(data: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    with MemoryFile(data) as mem, mem.open() as src:
        return src.read(), {
            "profile": src.profile,
            "bounds": tuple(src.bounds),
            "overviews": src.overviews(1),
        }


def _item(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(_get(s3, key))


def test_keys_follow_the_archive_layout(s3: Any, archive: list[str]) -> None:
    assert len(archive) == 4
    assert all(is_item_key(key) for key in archive)
    for key in archive:
        assert re.match(
            r"^sentinel-s2-l2a-cogs/33/T/(WN|XN)/2021/(4|7)/S2[AB]_33T(WN|XN)_2021(0420|0727)_0_L2A/", key
        )
        folder = key.rsplit("/", 1)[0]
        names = {k.rsplit("/", 1)[1] for k in _keys(s3, folder + "/")}
        assert names == {f"{b}.tif" for b in BANDS} | {key.rsplit("/", 1)[1]}
    assert {key.split("/")[3] for key in archive} == {"WN", "XN"}


def test_items_parse_as_v0(s3: Any, archive: list[str]) -> None:
    for key in archive:
        item = _item(s3, key)
        scene = parse_item(json.dumps(item))
        props = item["properties"]
        assert scene.key == key
        assert scene.tile in TILES and scene.date in DATES
        assert ESA_NAME.match(scene.filename) and f"_T{scene.tile}_" in scene.filename
        assert scene.filename == props["sentinel:product_id"]
        assert scene.epsg == 32633 == props["proj:epsg"]
        assert scene.scene_id.startswith(scene.filename[:3])
        assert 0 <= scene.cloud_cover <= 100
        assert item["collection"] == "sentinel-s2-l2a-cogs"
        assert item["stac_version"] == "1.0.0-beta.2"
        assert props["sentinel:utm_zone"] == 33 and props["sentinel:latitude_band"] == "T"
        assert props["sentinel:grid_square"] == scene.tile[3:] and props["sentinel:sequence"] == "0"
        assert props["platform"] == f"sentinel-2{scene.scene_id[2].lower()}"
        assert props["datetime"].startswith(scene.date)
        assert item["bbox"] == list(scene.bbox)
        assert {link["rel"] for link in item["links"]} >= {"self", "canonical"}
        folder = key.rsplit("/", 1)[0]
        assert scene.asset_href("visual") == f"s3://{BUCKET}/{folder}/TCI.tif"
        for band in ("B02", "B03", "B04", "B08", "B11", "B12", "SCL"):
            assert scene.asset_href(band) == f"s3://{BUCKET}/{folder}/{band}.tif"
        assert scene.asset_href("red") == scene.asset_href("B04")


def test_cogs_are_valid_on_the_tile_grid(s3: Any, archive: list[str]) -> None:
    for key in archive:
        item = _item(s3, key)
        epsg = item["properties"]["proj:epsg"]
        tile = parse_item(item).tile
        tile_epsg, bounds = tile_utm_bounds(tile)
        for name, asset in item["assets"].items():
            data = _get(s3, asset["href"].removeprefix(f"s3://{BUCKET}/"))
            with MemoryFile(data) as mem:
                valid, errors, warnings = cog_validate(mem.name, quiet=True)
            assert valid and not errors and not warnings, (key, name, errors, warnings)
            pixels, info = _read(data)
            profile = info["profile"]
            assert profile["crs"].to_epsg() == epsg == tile_epsg
            assert info["bounds"] == pytest.approx(bounds, abs=1e-6)
            assert profile["nodata"] == 0
            assert profile["tiled"] and profile["blockxsize"] in (256, 512)
            assert info["overviews"]
            size = SIZE // 2 if name in HALF else SIZE
            assert (profile["width"], profile["height"]) == (size, size)
            assert asset["proj:shape"] == [size, size]
            assert asset["proj:transform"][:6] == pytest.approx(list(profile["transform"])[:6])
            expected = {"visual": ("uint8", 3), "SCL": ("uint8", 1)}.get(name, ("uint16", 1))
            assert (str(pixels.dtype), pixels.shape[0]) == expected


def test_nodata_and_data_agree_across_bands(s3: Any, archive: list[str]) -> None:
    for key in archive:
        folder = key.rsplit("/", 1)[0]
        tci, _ = _read(_get(s3, f"{folder}/TCI.tif"))
        red = _read(_get(s3, f"{folder}/B04.tif"))[0][0]
        nir = _read(_get(s3, f"{folder}/B08.tif"))[0][0]
        valid = red > 0
        # Real swath edges: some nodata, mostly data, and every band masks the same pixels.
        assert 0.05 < (~valid).mean() < 0.7
        assert np.array_equal(valid, nir > 0)
        assert all(np.array_equal(valid, band > 0) for band in tci)
        assert red.max() <= 10000 and nir.max() <= 10000


def test_data_looks_like_land(s3: Any, archive: list[str]) -> None:
    for key in archive:
        folder = key.rsplit("/", 1)[0]
        red = _read(_get(s3, f"{folder}/B04.tif"))[0][0].astype(float)
        nir = _read(_get(s3, f"{folder}/B08.tif"))[0][0].astype(float)
        valid = red > 0
        ndvi = (nir - red) / np.maximum(nir + red, 1)
        # Vegetation (NIR well above red) is common; water (NIR below red) exists; not noise: smooth.
        assert (ndvi[valid] > 0.4).mean() > 0.1
        assert (nir[valid] > red[valid]).mean() > 0.5
        assert np.unique(red[valid]).size > 100


def _to_lonlat(geom: Any, epsg: int) -> Any:
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(geom, to_lonlat.transform, interleaved=False)


def _mask_polygon_lonlat(mask: np.ndarray, transform: Any, epsg: int) -> Any:
    shapes = rasterio.features.shapes(mask.astype(np.uint8), mask=mask, transform=transform)
    return _to_lonlat(unary_union([shape(geom) for geom, _ in shapes]), epsg)


def _scene_band(scene: Any, band: str) -> np.ndarray:
    """One band of a rendered scene."""
    return _read(scene.files[f"{scene.item_key.rsplit('/', 1)[0]}/{band}.tif"])[0]


def test_numbers_carry_the_baseline_offset_from_2022_01_25_and_the_items_say_so() -> None:
    before = render_scene(BUCKET, "33TWN", "2022-01-20", size=64)
    after = render_scene(BUCKET, "33TWN", "2022-01-30", size=64)
    assert "_N0301_" in before.item["properties"]["sentinel:product_id"]
    assert "_N0400_" in after.item["properties"]["sentinel:product_id"]
    old, new = parse_item(before.item), parse_item(after.item)
    assert old.scaling == {} and old.processing_baseline == "03.01"
    assert new.scaling["B04"] == pytest.approx((0.0001, -0.1)) and new.scaling["B11"] == pytest.approx(
        (0.0001, -0.1)
    )
    for band in ("B02", "B04", "B08", "B11", "B12"):
        numbers_before, numbers_after = _scene_band(before, band)[0], _scene_band(after, band)[0]
        # Valid reflectance is 0.0001-1: numbers 1-10000 before, 1001-11000 after.
        assert numbers_before[numbers_before > 0].min() >= 1 and numbers_before.max() <= 10000
        assert numbers_after[numbers_after > 0].min() >= 1001 and numbers_after.max() <= 11000


def test_clouds_shadows_and_cirrus_are_classified_and_seen_in_the_tci() -> None:
    scene = render_scene(BUCKET, "33TWL", "2021-06-05", size=256)
    scl = _scene_band(scene, "SCL")[0]
    # The TCI pixel at the centre of each SCL pixel's 2 x 2 block.
    brightness = _scene_band(scene, "TCI").astype(float).mean(axis=0)[1::2, 1::2]
    classes = {c: scl == c for c in (3, 4, 5, 6, 8, 9, 10)}
    assert all(mask.sum() > 50 for c, mask in classes.items() if c != 5), {
        c: int(m.sum()) for c, m in classes.items()
    }
    land = classes[4] | classes[5]
    # Clouds are white, shadows darker than the land around them, cirrus a brighter haze over it.
    assert brightness[classes[9]].mean() > 240
    assert brightness[classes[3]].mean() < 0.7 * brightness[land].mean()
    assert brightness[classes[10]].mean() > brightness[land].mean()


def test_item_geometry_is_the_valid_data_footprint(s3: Any, archive: list[str]) -> None:
    footprints: dict[str, list[Any]] = {}
    for key in archive:
        item = _item(s3, key)
        folder = key.rsplit("/", 1)[0]
        data = _get(s3, f"{folder}/B04.tif")
        pixels, info = _read(data)
        mask = pixels[0] > 0
        from_mask = _mask_polygon_lonlat(mask, info["profile"]["transform"], item["properties"]["proj:epsg"])
        geometry = shape(item["geometry"])
        assert geometry.is_valid and geometry.geom_type == "Polygon"
        iou = geometry.intersection(from_mask).area / geometry.union(from_mask).area
        assert iou > 0.97, (key, iou)
        assert item["bbox"] == pytest.approx(list(geometry.bounds))
        # Not the whole tile: the tile's own outline in lon/lat is clearly bigger.
        epsg, bounds = tile_utm_bounds(parse_item(item).tile)
        tile_ll = _to_lonlat(box(*bounds), epsg)
        assert geometry.area < 0.95 * tile_ll.area
        # Exterior ring counter-clockwise (RFC 7946) and densified beyond the polygon's corners.
        assert geometry.exterior.is_ccw
        assert len(item["geometry"]["coordinates"][0]) > 20
        footprints.setdefault(parse_item(item).tile, []).append(geometry)
    # The swath edge moves from date to date.
    for geometries in footprints.values():
        assert not geometries[0].equals_exact(geometries[1], 1e-6)


def test_neighbours_agree_where_they_overlap() -> None:
    # The land is a function of lon/lat, so the ~10 km overlap of 33TWN and 33TXN shows the same ground.
    west = render_scene(BUCKET, "33TWN", "2021-07-07", size=SIZE, seed=7)
    east = render_scene(BUCKET, "33TXN", "2021-07-07", size=SIZE, seed=7)

    def band(scene: Any) -> tuple[np.ndarray, Any]:
        pixels, info = _read(scene.files[f"{scene.item_key.rsplit('/', 1)[0]}/B08.tif"])
        return pixels[0].astype(float), info["profile"]["transform"]

    (a, ta), (b, tb) = band(west), band(east)
    diffs = []
    for row in range(0, SIZE, 4):
        for col in range(SIZE - 10, SIZE):
            x, y = ta @ (col + 0.5, row + 0.5)
            bcol, brow = ~tb @ (x, y)
            if 0 <= int(bcol) < SIZE and a[row, col] > 0 and b[int(brow), int(bcol)] > 0:
                diffs.append(abs(a[row, col] - b[int(brow), int(bcol)]) / a[row, col])
    assert len(diffs) > 20  # this seed and date have data on both sides of the overlap
    assert np.median(diffs) < 0.1


def test_generation_is_deterministic(s3: Any, archive: list[str]) -> None:
    # What the bucket holds is exactly what rendering again with the same seed gives.
    for key in archive:
        scene = parse_item(_get(s3, key))
        again = render_scene(BUCKET, scene.tile, scene.date, size=SIZE, seed=7)
        assert again.item_key == key
        for name, body in again.files.items():
            assert _get(s3, name) == body, name
    other = render_scene(BUCKET, "33TWN", DATES[0], size=SIZE, seed=8)
    first = render_scene(BUCKET, "33TWN", DATES[0], size=SIZE, seed=7)
    tci = next(k for k in first.files if k.endswith("TCI.tif"))
    assert other.files[tci] != first.files[tci]


def test_item_is_written_last(s3: Any) -> None:
    recorder = Recorder(s3)
    key = write_scene(recorder, BUCKET, "33TWN", "2021-08-06", size=32, seed=1)
    assert recorder.keys[-1] == key
    assert all(k.endswith(".tif") for k in recorder.keys[:-1])
    assert len(recorder.keys) == len(BANDS) + 1


@pytest.mark.parametrize(
    ("tiles", "dates", "size"),
    [
        (["33TWN", "33TWI"], ["2021-07-27"], 32),
        (["33TWN"], ["2021-07-27", "27.07.2021"], 32),
        (["33TWN"], ["2021-07-27"], 4),
    ],
)
def test_bad_arguments_write_nothing(s3: Any, tiles: list[str], dates: list[str], size: int) -> None:
    recorder = Recorder(s3)
    with pytest.raises(InvalidInput):
        generate_archive(recorder, BUCKET, tiles, dates, size=size)
    assert recorder.keys == []


def test_upload_fixture_scene(s3: Any, fixtures_dir: Path) -> None:
    scene_dir = fixtures_dir / "sentinel-cogs" / SCENE_REL
    recorder = Recorder(s3)
    key = upload_fixture_scene(recorder, BUCKET, scene_dir)
    assert key == f"{SCENE_REL}/S2A_29RKH_20200219_0_L2A.json"
    assert recorder.keys[-1] == key
    # Every file is copied byte for byte.
    for path in scene_dir.iterdir():
        if path.suffix == ".tif":
            assert _get(s3, f"{SCENE_REL}/{path.name}") == path.read_bytes()
    original = json.loads((scene_dir / f"{scene_dir.name}.json").read_bytes())
    item = _item(s3, key)
    # Still a v1 item; only hrefs to copied files and the self links changed.
    assert item["properties"] == original["properties"]
    assert item["geometry"] == original["geometry"]
    assert set(item["assets"]) == set(original["assets"])
    scene = parse_item(json.dumps(item))
    assert (scene.tile, scene.date, scene.epsg) == ("29RKH", "2020-02-19", 32629)
    for name in ("visual", "B02", "B03", "B04", "B08", "B11", "SCL"):
        href = scene.asset_href(name)
        assert href.startswith(f"s3://{BUCKET}/{SCENE_REL}/")
        assert _get(s3, href.removeprefix(f"s3://{BUCKET}/"))
    for name, asset in item["assets"].items():
        if name.endswith("-jp2") or name in ("thumbnail", "aot", "wvp", "coastal", "granule_metadata"):
            assert asset["href"] == original["assets"][name]["href"]
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["self"] == links["canonical"] == f"s3://{BUCKET}/{key}"
    data = _get(s3, f"{SCENE_REL}/TCI.tif")
    with MemoryFile(data) as mem:
        assert cog_validate(mem.name, quiet=True)[0]


def test_upload_fixture_scene_needs_an_item(s3: Any, tmp_path: Path) -> None:
    folder = tmp_path / "S2A_29RKH_20200219_0_L2A"
    folder.mkdir()
    with pytest.raises(InvalidInput, match="no STAC item"):
        upload_fixture_scene(s3, BUCKET, folder)
