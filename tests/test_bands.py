"""Bands as reflectance on a grid: the item's scaling, the baseline offset, SCL masking, on the real scene."""

import json
import re
from pathlib import Path

import boto3
import numpy
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import from_bounds
from shapely.geometry import box

from sputnik import stac
from sputnik.bands import (
    CLOUDY_SCL,
    BandError,
    Grid,
    band_name,
    border_grid,
    read_numbers,
    read_reflectance,
    scaling,
    scene_grid,
)
from sputnik.indices import INDICES
from sputnik.tasks.index_product import build_index_product
from tests.support.real_scene import SCENE, SCENE_DIR, SCENE_PREFIX
from tests.support.tiles import (  # noqa: F401 (tiles_fixture registers the `tiles` fixture here)
    ARCHIVE,
    Tiles,
    tiles_fixture,
)

ITEMS = Path(__file__).parent / "fixtures" / "stac-items"
# Inside the real scene (lon/lat), about 30 x 30 km: where its cirrus and clouds meet clear land.
BORDER = box(-11.3, 24.95, -11.0, 25.25)


def real_item(path: Path) -> stac.Scene:
    return stac.parse_item(path.read_bytes())


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        # Baseline 05.11 (2025): raster:bands say -0.1, but the item says earthsearch:boa_offset_applied,
        # which Earth Search's maintainers call the truth (the numbers already had it added back).
        ("v1/S2B_24MUV_20250731_0_L2A.json", (0.0001, 0.0)),
        # Baseline 03.01, three days before the change: scale only, the flag false.
        ("v1/S2A_33TWN_20220122_0_L2A.json", (0.0001, 0.0)),
        # Baseline 03.00 (2021): scale only.
        ("v1/S2A_33TWN_20210629_0_L2A.json", (0.0001, 0.0)),
        # v0 items have no raster:bands: baseline 02.12 from the ESA product name, so no offset.
        ("v0/S2A_31NBJ_20190524_0_L2A.json", (0.0001, 0.0)),
    ],
)
def test_scaling_comes_from_the_real_items_metadata(item: str, expected: tuple[float, float]) -> None:
    scene = real_item(ITEMS / item)
    for band in ("B04", "red", "nir", "B08"):
        assert scaling(scene, band) == pytest.approx(expected)


def test_baseline_without_raster_bands_decides_the_offset() -> None:
    data = json.loads((ITEMS / "v1/S2B_24MUV_20250731_0_L2A.json").read_text())
    for asset in data["assets"].values():
        asset.pop("raster:bands", None)
    data["properties"].pop("earthsearch:boa_offset_applied")
    newer = stac.parse_item(data)
    assert newer.processing_baseline == "05.11"
    assert scaling(newer, "B04") == pytest.approx((0.0001, -0.1))
    data["properties"].pop("s2:processing_baseline")
    data["properties"]["s2:product_uri"] = data["properties"]["s2:product_uri"].replace("_N0511_", "_N0399_")
    assert scaling(stac.parse_item(data), "B04") == pytest.approx((0.0001, 0.0))


def test_an_item_flagged_as_offset_applied_gets_no_offset_whatever_else_it_says() -> None:
    data = json.loads((ITEMS / "v1/S2B_24MUV_20250731_0_L2A.json").read_text())
    assert data["properties"]["earthsearch:boa_offset_applied"] is True
    assert data["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    flagged = stac.parse_item(data)
    for band in ("B02", "B04", "B08", "B8A", "B11", "B12", "red", "swir22"):
        assert scaling(flagged, band) == pytest.approx((0.0001, 0.0))
    # Not reflectance: the water vapour keeps its own scale and offset.
    assert flagged.scaling["WVP"] == pytest.approx((0.001, 0.0))
    # Without the flag (or with it false), the item's raster:bands decide.
    data["properties"]["earthsearch:boa_offset_applied"] = False
    assert scaling(stac.parse_item(data), "B04") == pytest.approx((0.0001, -0.1))
    # Flagged, without raster:bands: no offset either, though the baseline is 05.11.
    data["properties"]["earthsearch:boa_offset_applied"] = True
    for asset in data["assets"].values():
        asset.pop("raster:bands", None)
    assert scaling(stac.parse_item(data), "nir") == pytest.approx((0.0001, 0.0))


def test_a_v0_item_of_baseline_04_is_offset_unless_flagged_as_applied() -> None:
    data = json.loads((ITEMS / "v0/S2A_31NBJ_20190524_0_L2A.json").read_text())
    props = data["properties"]
    product = props["sentinel:product_id"]
    props["sentinel:product_id"] = re.sub(r"_N\d{4}_", "_N0400_", product)
    assert stac.parse_item(data).processing_baseline == "04.00"
    assert scaling(stac.parse_item(data), "B04") == pytest.approx((0.0001, -0.1))
    props["sentinel:boa_offset_applied"] = True
    assert scaling(stac.parse_item(data), "B04") == pytest.approx((0.0001, 0.0))


def test_without_raster_bands_or_a_baseline_the_date_decides_the_offset() -> None:
    data = json.loads((ITEMS / "v1/S2B_24MUV_20250731_0_L2A.json").read_text())
    for asset in data["assets"].values():
        asset.pop("raster:bands", None)
    props = data["properties"]
    for name in ("earthsearch:boa_offset_applied", "s2:processing_baseline", "s2:product_uri"):
        props.pop(name)
    for day, offset in (("2022-01-25", -0.1), ("2022-01-24", 0.0)):
        props["datetime"] = f"{day}T10:00:00Z"
        scene = stac.parse_item(data)
        assert scene.processing_baseline is None
        assert scaling(scene, "B08") == pytest.approx((0.0001, offset))


def test_band_names_of_both_schemas_and_unknown_names() -> None:
    assert [band_name(n) for n in ("red", "B04", "nir", "scl", "b8a", "swir16")] == [
        "B04",
        "B04",
        "B08",
        "SCL",
        "B8A",
        "B11",
    ]
    with pytest.raises(BandError, match="unknown band"):
        band_name("B99")


@pytest.fixture(scope="module")
def real_scene(tiles: Tiles) -> stac.Scene:
    """The real scene's item with its band hrefs in the test archive, and those bands uploaded there."""
    s3 = boto3.client("s3")
    folder = tiles.fixtures_dir / SCENE_DIR
    for band in ("B04", "B08", "SCL"):
        s3.upload_file(str(folder / f"{band}.tif"), ARCHIVE, f"{SCENE_PREFIX}/{band}.tif")
    item = json.loads((folder / f"{SCENE}.json").read_text())
    for name, asset in item["assets"].items():
        asset["href"] = f"s3://{ARCHIVE}/{SCENE_PREFIX}/{asset['href'].rsplit('/', 1)[-1]}"
    return stac.parse_item(item)


def test_reflectance_equals_rasterio_reads_of_the_same_window(real_scene: stac.Scene, tiles: Tiles) -> None:
    grid = scene_grid(real_scene, ["B04", "B08"], BORDER)
    got = read_reflectance(real_scene, ["red", "nir"], grid, mask=None)
    folder = tiles.fixtures_dir / SCENE_DIR
    for band in ("B04", "B08"):
        with rasterio.open(folder / f"{band}.tif") as src:
            window = from_bounds(*grid.bounds, transform=src.transform).round_offsets().round_lengths()
            numbers = src.read(1, window=window)
        assert numbers.shape == grid.shape
        expected = numbers.astype(numpy.float64) * 0.0001
        valid = numbers != 0
        assert numpy.array_equal(got.valid, valid)
        assert numpy.allclose(got.bands[band][valid], expected[valid], rtol=0, atol=1e-6)
        assert numpy.isnan(got.bands[band][~valid]).all()


def test_an_index_build_fetches_the_headers_and_the_blocks_its_window_touches_and_nothing_else(
    real_scene: stac.Scene, tiles: Tiles, tmp_path: Path
) -> None:
    # The bands under a prefix of their own: nothing of them is in GDAL's caches yet.
    s3 = boto3.client("s3")
    prefix = f"{SCENE_PREFIX}-cold"
    folder = tiles.fixtures_dir / SCENE_DIR
    for band in ("B04", "B08", "SCL"):
        s3.upload_file(str(folder / f"{band}.tif"), ARCHIVE, f"{prefix}/{band}.tif")
    assets = dict(real_scene.assets)
    for band, v1 in (("B04", "red"), ("B08", "nir"), ("SCL", "scl")):
        assets[band] = assets[v1] = f"s3://{ARCHIVE}/{prefix}/{band}.tif"
    scene = stac.Scene(**{**real_scene.__dict__, "assets": assets})
    seen = len(tiles.server.requests)
    made = build_index_product(scene, INDICES["ndvi"], BORDER.wkt, str(tmp_path / "ndvi.tif"))
    requests = [r for r in tiles.server.requests[seen:] if r[1].startswith(f"/{ARCHIVE}/")]
    grid = scene_grid(scene, ["B04", "B08"], BORDER)  # after the build: from GDAL's cache
    assert made.stats["valid_pixels"] > 0
    assert {path.rsplit("/", 1)[-1] for _, path, _ in requests} == {"B04.tif", "B08.tif", "SCL.tif"}
    # Ranged GETs only: no HEAD, no listing, no whole object.
    assert all(method == "GET" and ranged for method, _, ranged in requests), requests
    for band in ("B04", "B08", "SCL"):
        ranges = [str(ranged) for _, path, ranged in requests if path.endswith(f"/{band}.tif")]
        spans = [r.removeprefix("bytes=").split("-") for r in ranges]
        fetched = sum(int(end) - int(start) + 1 for start, end in spans)
        with rasterio.open(folder / f"{band}.tif") as src:
            window = from_bounds(*grid.bounds, transform=src.transform)
            height, width = src.block_shapes[0]
            rows = range(
                int(window.row_off // height), int((window.row_off + window.height - 1e-6) // height) + 1
            )
            cols = range(
                int(window.col_off // width), int((window.col_off + window.width - 1e-6) // width) + 1
            )
            touched = sum(src.block_size(1, r, c) for r in rows for c in cols)
        # One read of the header (32 KiB, the tiler's setting), then the blocks, at most a fifth more.
        assert ranges[0] == "bytes=0-32767", ranges
        assert fetched <= 32768 + 1.2 * touched, (band, fetched, touched)


def test_scl_classes_are_masked_at_the_bands_resolution(real_scene: stac.Scene, tiles: Tiles) -> None:
    grid = scene_grid(real_scene, ["B04"], BORDER)
    got = read_reflectance(real_scene, ["B04"], grid, mask=CLOUDY_SCL)
    with rasterio.open(tiles.fixtures_dir / SCENE_DIR / "SCL.tif") as src:
        # SCL is at twice the bands' pixel size here (as 20 m against 10 m in the archive): the class
        # of each band pixel is that of the SCL pixel under its centre.
        scl = src.read(1)
        cols, rows = numpy.meshgrid(numpy.arange(grid.width) + 0.5, numpy.arange(grid.height) + 0.5)
        xs, ys = grid.transform @ (cols, rows)
        r, c = rasterio.transform.rowcol(src.transform, numpy.ravel(xs), numpy.ravel(ys))
        classes = scl[numpy.asarray(r), numpy.asarray(c)].reshape(grid.shape)
    cloudy = numpy.isin(classes, CLOUDY_SCL)
    assert cloudy.any() and not cloudy.all()  # the border meets clouds and clear land
    assert numpy.array_equal(got.clear, got.valid & ~cloudy)
    assert numpy.isnan(got.bands["B04"][cloudy]).all()
    unmasked = read_reflectance(real_scene, ["B04"], grid, mask=[])
    assert numpy.array_equal(unmasked.clear, unmasked.valid)


@pytest.mark.parametrize("band", ["B04", "SCL"])
@pytest.mark.parametrize("start", ["border", "odd", "before", "past"])
def test_reads_on_the_bands_grid_pick_the_pixels_a_warp_picks(tiles: Tiles, band: str, start: str) -> None:
    # The bands' grid over the border, or as large starting one pixel later (half an SCL pixel off),
    # or across the scene's first or last pixels (no data outside it).
    folder = tiles.fixtures_dir / SCENE_DIR
    with rasterio.open(folder / "B04.tif") as b04:
        base = border_grid(b04, BORDER)
        col, row = ~b04.transform * (base.transform.c, base.transform.f)
        offset = {"border": (col, row), "odd": (col + 1, row + 1), "before": (-3, -5)}
        col, row = offset.get(start, (b04.width - 101, b04.height - 100))
        transform = b04.transform * b04.transform.translation(round(col), round(row))
    grid = Grid(base.crs, transform, base.width, base.height)
    with rasterio.open(folder / f"{band}.tif") as src:
        numbers, has_data = read_numbers(src, grid)
        nodata = src.nodata or 0
        with WarpedVRT(
            src,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=Resampling.nearest,
            src_nodata=nodata,
            nodata=nodata,
        ) as vrt:
            warped = vrt.read(1, masked=True)
    assert numbers.shape == grid.shape and numbers.dtype == warped.dtype
    assert numpy.array_equal(has_data, ~numpy.ma.getmaskarray(warped))
    assert numpy.array_equal(numbers[has_data], warped.data[has_data])
    assert has_data.any()
    if start in ("before", "past"):
        assert not has_data[:5].any() if start == "before" else not has_data[-5:].any()


def test_a_band_outside_the_archive_is_refused_before_reading(real_scene: stac.Scene) -> None:
    assets = dict(real_scene.assets, B04="https://example.com/B04.tif", red="https://example.com/B04.tif")
    hostile = stac.Scene(**{**real_scene.__dict__, "assets": assets})
    grid = scene_grid(real_scene, ["B08"], BORDER)
    with pytest.raises(BandError, match="not an object of an archive bucket"):
        read_reflectance(hostile, ["B04"], grid, mask=None)
