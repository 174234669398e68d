"""Index products on the real scene: values, masks and statistics against plain numpy over rasterio reads."""

import json
from pathlib import Path
from typing import Any

import boto3
import numpy
import pytest
import rasterio
from rasterio.windows import from_bounds
from rio_cogeo.cogeo import cog_validate
from shapely import wkt
from shapely.geometry import box

from sputnik import stac
from sputnik.band_names import V1_TO_V0
from sputnik.bands import CLOUDY_SCL, BandError, Grid, scene_grid
from sputnik.indices import INDICES, expression_index
from sputnik.tasks import index_product
from sputnik.tasks.index_product import build_index_product
from tests.support.real_scene import SCENE, SCENE_DIR, SCENE_PREFIX
from tests.support.tiles import (  # noqa: F401 (tiles_fixture registers the `tiles` fixture here)
    ARCHIVE,
    Tiles,
    tiles_fixture,
)

# Inside the real scene, about 30 x 30 km, where its cirrus and clouds meet clear land; and half of
# it, a triangle, so that part of the window is outside the border.
BORDER = box(-11.3, 24.95, -11.0, 25.25)
TRIANGLE = "POLYGON((-11.3 24.95, -11.0 24.95, -11.3 25.25, -11.3 24.95))"
BANDS = ("B04", "B08", "SCL")


def _item(folder: Path, prefix: str = SCENE_PREFIX) -> dict[str, Any]:
    """The real item with its band hrefs at `prefix` in the test archive."""
    item = json.loads((folder / f"{SCENE}.json").read_text())
    for asset in item["assets"].values():
        asset["href"] = f"s3://{ARCHIVE}/{prefix}/{asset['href'].rsplit('/', 1)[-1]}"
    return dict(item)


@pytest.fixture(scope="module")
def real_scene(tiles: Tiles) -> stac.Scene:
    """The real scene (a v1 item) with B04, B08 and SCL in the test archive."""
    s3 = boto3.client("s3")
    folder = tiles.fixtures_dir / SCENE_DIR
    for band in BANDS:
        s3.upload_file(str(folder / f"{band}.tif"), ARCHIVE, f"{SCENE_PREFIX}/{band}.tif")
    return stac.parse_item(_item(folder))


def _classes(scl_path: Path, grid: Grid) -> numpy.ndarray:
    """The SCL class under each grid pixel's centre (SCL is at half the bands' resolution)."""
    with rasterio.open(scl_path) as src:
        scl = src.read(1)
        cols, rows = numpy.meshgrid(numpy.arange(grid.width) + 0.5, numpy.arange(grid.height) + 0.5)
        xs, ys = grid.transform @ (cols, rows)
        r, c = rasterio.transform.rowcol(src.transform, numpy.ravel(xs), numpy.ravel(ys))
        return numpy.asarray(scl[numpy.asarray(r), numpy.asarray(c)]).reshape(grid.shape)


def _numbers(path: Path, grid: Grid) -> numpy.ndarray:
    """A band's digital numbers under the grid, read by rasterio from the fixture file."""
    with rasterio.open(path) as src:
        window = from_bounds(*grid.bounds, transform=src.transform).round_offsets().round_lengths()
        return numpy.asarray(src.read(1, window=window))


def test_ndvi_equals_numpy_over_rasterio_reads_with_masks_and_statistics(
    real_scene: stac.Scene, tiles: Tiles, tmp_path: Path
) -> None:
    out = tmp_path / "ndvi.tif"
    made = build_index_product(real_scene, INDICES["ndvi"], TRIANGLE, str(out))
    folder = tiles.fixtures_dir / SCENE_DIR
    border = wkt.loads(TRIANGLE)
    grid = scene_grid(real_scene, ["B04", "B08"], border)
    red, nir = (_numbers(folder / f"{band}.tif", grid).astype(numpy.float64) for band in ("B04", "B08"))
    classes = _classes(folder / "SCL.tif", grid)
    inside = grid.border_mask(border)
    valid = (red != 0) & (nir != 0)
    clear = valid & ~numpy.isin(classes, CLOUDY_SCL) & inside
    # The real item's scale is 0.0001 with no offset (baseline 02.14).
    r, n = red * 1e-4, nir * 1e-4
    with numpy.errstate(divide="ignore", invalid="ignore"):
        expected = (n - r) / (n + r)
    has_value = clear & numpy.isfinite(expected)
    assert has_value.any() and (inside & ~clear).any() and (~inside).any()  # clouds and corners masked

    with rasterio.open(out) as cog:
        got = cog.read(1)
        assert (cog.width, cog.height, cog.dtypes[0]) == (grid.width, grid.height, "float32")
        assert cog.transform.almost_equals(grid.transform) and numpy.isnan(cog.nodata)
    numpy.testing.assert_allclose(got[has_value], expected[has_value], rtol=0, atol=1e-6)
    assert numpy.isnan(got[~has_value]).all()

    values = expected[has_value]
    stats = made.stats
    assert stats["valid_pixels"] == values.size
    assert stats["clear_fraction"] == pytest.approx(numpy.count_nonzero(clear) / numpy.count_nonzero(inside))
    numpy_stats = {
        "mean": values.mean(),
        "std": values.std(),
        "min": values.min(),
        "p10": numpy.percentile(values, 10),
        "median": numpy.median(values),
        "p90": numpy.percentile(values, 90),
        "max": values.max(),
    }
    for name, value in numpy_stats.items():
        assert stats[name] == pytest.approx(value, abs=1e-6), name
    assert list(stats) == ["valid_pixels", "clear_fraction", *numpy_stats]


def test_the_product_is_a_valid_cog_with_overviews_of_clear_pixels(
    real_scene: stac.Scene, tmp_path: Path
) -> None:
    out = tmp_path / "ndvi.tif"
    build_index_product(real_scene, INDICES["ndvi"], BORDER.wkt, str(out))
    valid, errors, _ = cog_validate(str(out))
    assert valid, errors
    with rasterio.open(out) as cog:
        assert cog.overviews(1) and cog.compression is not None
        full = cog.read(1)
        small = cog.read(1, out_shape=(cog.height // 2, cog.width // 2))
    # An overview pixel averages the clear pixels under it, none of them nodata.
    assert numpy.isfinite(small).any() and numpy.nanmax(small) <= numpy.nanmax(full) + 1e-6


def test_a_window_in_strips_and_in_a_temporary_folder_gives_the_same_product(
    real_scene: stac.Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A field's window is one strip in memory; a large one is read in strips into a file. Both,
    # forced on the real scene, give the same product.
    whole = build_index_product(real_scene, INDICES["ndvi"], TRIANGLE, str(tmp_path / "memory.tif"))
    monkeypatch.setattr(index_product, "STRIP_ROWS", 64)
    monkeypatch.setattr(index_product, "IN_MEMORY_PIXELS", 0)
    strips = build_index_product(real_scene, INDICES["ndvi"], TRIANGLE, str(tmp_path / "strips.tif"))
    assert whole.height > 4 * 64 and strips.stats == whole.stats
    assert strips.bytes_written == (tmp_path / "strips.tif").stat().st_size
    with rasterio.open(tmp_path / "memory.tif") as one, rasterio.open(tmp_path / "strips.tif") as other:
        assert {**one.profile, "nodata": 0} == {**other.profile, "nodata": 0} and numpy.isnan(other.nodata)
        numpy.testing.assert_array_equal(one.read(1), other.read(1))
        numpy.testing.assert_array_equal(one.read(1, out_shape=(50, 50)), other.read(1, out_shape=(50, 50)))
    assert not list(tmp_path.glob(".*partial"))


def test_mask_param_decides_which_scene_classes_are_clear(real_scene: stac.Scene, tmp_path: Path) -> None:
    default = build_index_product(real_scene, INDICES["ndvi"], BORDER.wkt, str(tmp_path / "a.tif"))
    nothing = build_index_product(real_scene, INDICES["ndvi"], BORDER.wkt, str(tmp_path / "b.tif"), mask=[])
    clouds = build_index_product(
        real_scene, INDICES["ndvi"], BORDER.wkt, str(tmp_path / "c.tif"), mask=[8, 9]
    )
    assert nothing.stats["clear_fraction"] == 1.0
    assert default.stats["valid_pixels"] < clouds.stats["valid_pixels"] < nothing.stats["valid_pixels"]


def test_v0_asset_keys_give_the_same_product_as_v1(
    real_scene: stac.Scene, tiles: Tiles, tmp_path: Path
) -> None:
    item = _item(tiles.fixtures_dir / SCENE_DIR)
    item["assets"] = {V1_TO_V0.get(name, name): asset for name, asset in item["assets"].items()}
    v0 = stac.parse_item(item)
    assert "B04" in v0.assets and "red" not in v0.assets
    index = expression_index("(B08 - red) / (nir + B04)")
    a = build_index_product(real_scene, index, BORDER.wkt, str(tmp_path / "v1.tif"))
    b = build_index_product(v0, index, BORDER.wkt, str(tmp_path / "v0.tif"))
    assert a.stats == b.stats
    with rasterio.open(tmp_path / "v1.tif") as one, rasterio.open(tmp_path / "v0.tif") as other:
        numpy.testing.assert_array_equal(one.read(1), other.read(1))


def test_the_same_surface_before_and_after_the_baseline_change_gives_the_same_index(
    real_scene: stac.Scene, tiles: Tiles, tmp_path: Path
) -> None:
    # The real bands again as baseline 04.00 writes them: +1000 on every valid number, and an item
    # whose raster:bands say offset -0.1 (as Earth Search's items of 2022 on do).
    s3, folder = boto3.client("s3"), tiles.fixtures_dir / SCENE_DIR
    later = f"{SCENE_PREFIX}-baseline-0400"
    for band in ("B04", "B08"):
        with rasterio.open(folder / f"{band}.tif") as src:
            profile, numbers = src.profile, src.read(1)
        shifted = numpy.where(numbers > 0, numbers.astype(numpy.uint32) + 1000, 0).astype(numpy.uint16)
        path = tmp_path / f"{band}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(shifted, 1)
        s3.upload_file(str(path), ARCHIVE, f"{later}/{band}.tif")
    s3.upload_file(str(folder / "SCL.tif"), ARCHIVE, f"{later}/SCL.tif")
    item = _item(folder, later)
    item["properties"]["s2:processing_baseline"] = "04.00"
    for asset in item["assets"].values():
        for band in asset.get("raster:bands") or []:
            band["offset"] = -0.1
    newer = stac.parse_item(item)
    assert newer.scaling["B04"] == pytest.approx((0.0001, -0.1))
    for index in (INDICES["ndvi"], INDICES["savi"]):
        before = build_index_product(real_scene, index, BORDER.wkt, str(tmp_path / "before.tif"))
        after = build_index_product(newer, index, BORDER.wkt, str(tmp_path / "after.tif"))
        with rasterio.open(tmp_path / "before.tif") as one, rasterio.open(tmp_path / "after.tif") as other:
            numpy.testing.assert_allclose(one.read(1), other.read(1), rtol=0, atol=1e-6, equal_nan=True)
        assert after.stats["valid_pixels"] == before.stats["valid_pixels"]
        assert after.stats["median"] == pytest.approx(before.stats["median"], abs=1e-6)


def test_a_band_the_scene_lacks_is_a_band_error(real_scene: stac.Scene, tmp_path: Path) -> None:
    # B11 is in the item but not uploaded to the test archive; B09 is not an L2A 10/20 m band asset here.
    with pytest.raises(BandError, match="cannot read a band"):
        build_index_product(real_scene, INDICES["ndmi"], BORDER.wkt, str(tmp_path / "x.tif"))
    assets = {k: v for k, v in real_scene.assets.items() if k not in ("nir", "B08")}
    lacking = stac.Scene(**{**real_scene.__dict__, "assets": assets})
    with pytest.raises(BandError, match="has no B08"):
        build_index_product(lacking, INDICES["ndvi"], BORDER.wkt, str(tmp_path / "y.tif"))
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()
