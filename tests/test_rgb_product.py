"""RGB products: the TCI window over a border, masked outside it, as a valid JPEG COG, locally and on S3."""

import uuid
from pathlib import Path
from typing import Any

import numpy
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_validate
from rio_tiler.io import Reader
from shapely.geometry import Polygon, box

from sputnik.settings import get_settings
from sputnik.tasks.rgb_product import MAX_PIXELS, ProductError, RgbProduct, build_rgb_product
from tests.support.real_scene import SCENE, SCENE_DIR

UTM = 32629
# The real TCI: 1098 x 1098 at 100 m from (199980, 2800020) in UTM 29N.
ORIGIN_X, ORIGIN_Y, RES = 199980.0, 2800020.0, 100.0
# JPEG q90: bounds on the error against the source over the pixels inside the border (measured
# 1.9 and 9 on the real scene, 1.7 and 6 on the generated ones). One pixel off, the real scene
# gives 2.8 and 15: alignment is checked on its own too (`assert_aligned`).
MEAN_ERROR, P99_ERROR = 2.5, 12


@pytest.fixture
def tci(fixtures_dir: Path) -> Path:
    return fixtures_dir / SCENE_DIR / "TCI.tif"


def to_lonlat(geom: Any, epsg: int = UTM) -> Any:
    """A UTM geometry in lon/lat, edges densified (as a project border drawn over it would be)."""
    project = Transformer.from_crs(epsg, 4326, always_xy=True).transform
    return shapely.transform(shapely.segmentize(geom, 500), lambda x, y: project(x, y), interleaved=False)


def to_utm(geom: Any, epsg: int = UTM) -> Any:
    project = Transformer.from_crs(4326, epsg, always_xy=True).transform
    return shapely.transform(shapely.segmentize(geom, 0.001), lambda x, y: project(x, y), interleaved=False)


def pixel_centres(transform: Affine, width: int, height: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    cols, rows = numpy.meshgrid(numpy.arange(width) + 0.5, numpy.arange(height) + 0.5)
    xs, ys = transform @ (cols, rows)
    return numpy.asarray(xs), numpy.asarray(ys)


def make_tci(
    path: Path,
    width: int,
    height: int,
    *,
    origin: tuple[float, float] = (300000.0, 2800000.0),
    res: float = 10.0,
    count: int = 3,
    dtype: str = "uint8",
    nodata_triangle: bool = False,
) -> Path:
    """A generated TCI COG (smooth colours plus texture), nodata 0 like the archive's."""
    rows, cols = numpy.mgrid[0:height, 0:width].astype("float32")
    rng = numpy.random.default_rng(width * height)
    bands = []
    for b in range(count):
        wave = 100 + 60 * numpy.sin(cols / (23 + 7 * b)) * numpy.cos(rows / (31 + 5 * b))
        bands.append(numpy.clip(wave + rng.normal(0, 2, wave.shape), 1, 250))
    data = numpy.stack(bands).astype(dtype)
    if nodata_triangle:
        data[:, rows + cols < min(width, height) / 2] = 0  # the swath edge: top-left corner has no data
    profile = {
        "driver": "COG",
        "dtype": dtype,
        "count": count,
        "width": width,
        "height": height,
        "crs": f"EPSG:{UTM}",
        "transform": Affine(res, 0, origin[0], 0, -res, origin[1]),
        "nodata": 0,
        "compress": "DEFLATE",
        "blocksize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def errors_inside(product: Path, source: Path, shift: tuple[int, int] = (0, 0)) -> numpy.ndarray:
    """|product - source| over the product's valid pixels, the source moved by `shift` pixels."""
    with rasterio.open(product) as out, rasterio.open(source) as src:
        window = rasterio.windows.from_bounds(*out.bounds, transform=src.transform).round_offsets()
        moved = Window(window.col_off + shift[0], window.row_off + shift[1], out.width, out.height)
        expected = src.read(window=moved, boundless=True).astype(int)
        valid = out.dataset_mask() > 0
        return numpy.abs(out.read().astype(int) - expected)[:, valid]


def assert_aligned(product: Path, source: Path) -> None:
    """The product matches the source best where it claims to be, not one pixel beside."""
    at = errors_inside(product, source).mean()
    for shift in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        assert errors_inside(product, source, shift).mean() > 1.1 * at, shift


def assert_valid_cog(path: Path | str) -> None:
    valid, errors, _ = cog_validate(str(path), quiet=True)
    assert valid, errors
    with rasterio.open(path) as out:
        assert out.overviews(1), "no internal overviews"
        assert out.compression is not None and out.compression.name == "jpeg"
        assert list(out.mask_flag_enums) == [[rasterio.enums.MaskFlags.per_dataset]] * 3


# ---------------------------------------------------------------------------------------------
# The real scene
# ---------------------------------------------------------------------------------------------


def test_real_scene_window_mask_and_pixels(tci: Path, tmp_path: Path) -> None:
    # A pentagon well inside the scene, not aligned with anything.
    utm_border = Polygon(
        [
            (231_234, 2_771_111),
            (262_345, 2_761_999),
            (270_007, 2_730_456),
            (240_555, 2_715_321),
            (225_432, 2_740_000),
        ]
    )
    border = to_lonlat(utm_border)
    out = tmp_path / "product.tif"

    result = build_rgb_product(str(tci), border.wkt, str(out))

    # Window: the border's bounding box in UTM, outward to whole 100 m pixels of the TCI grid.
    minx, miny, maxx, maxy = to_utm(border).bounds
    col0, row0 = int((minx - ORIGIN_X) // RES), int((ORIGIN_Y - maxy) // RES)
    col1, row1 = -int(-(maxx - ORIGIN_X) // RES), -int(-(ORIGIN_Y - miny) // RES)
    assert result == RgbProduct(width=col1 - col0, height=row1 - row0, bytes_written=out.stat().st_size)
    with rasterio.open(out) as product, rasterio.open(tci) as src:
        assert product.crs == src.crs
        assert product.transform == Affine(RES, 0, ORIGIN_X + col0 * RES, 0, -RES, ORIGIN_Y - row0 * RES)
        assert (product.width, product.height, product.count, product.dtypes) == (
            col1 - col0,
            row1 - row0,
            3,
            ("uint8",) * 3,
        )
        mask = product.dataset_mask()
        xs, ys = pixel_centres(product.transform, product.width, product.height)
    # Inside the border valid, outside masked; pixels whose centre lies within a metre of the
    # border's edge may go either way (its edges are curves in UTM).
    utm = to_utm(border)
    inside = shapely.contains_xy(utm, xs, ys)
    near_edge = shapely.distance(utm.boundary, shapely.points(xs, ys)) < 1.0
    assert (mask[inside & ~near_edge] == 255).all()
    assert (mask[~inside & ~near_edge] == 0).all()
    assert 0.3 < (mask == 0).mean() < 0.7  # the pentagon leaves a good part of its box outside

    error = errors_inside(out, tci)
    assert error.mean() <= MEAN_ERROR
    assert numpy.percentile(error, 99) <= P99_ERROR
    assert_aligned(out, tci)
    assert_valid_cog(out)


def test_real_scene_product_is_tiled_by_rio_tiler(tci: Path, tmp_path: Path) -> None:
    utm_border = box(230_000, 2_720_000, 280_000, 2_770_000)
    out = tmp_path / "product.tif"
    build_rgb_product(str(tci), to_lonlat(utm_border).wkt, str(out))

    with Reader(str(out)) as product, Reader(str(tci)) as src:
        centre = to_lonlat(utm_border.centroid)
        tile = product.tms.tile(centre.x, centre.y, 11)  # 17.5 km wide: inside the 50 km border
        got = product.tile(tile.x, tile.y, tile.z)
        expected = src.tile(tile.x, tile.y, tile.z)
        assert got.mask.all()  # the tile lies inside the border
        assert numpy.abs(got.data.astype(int) - expected.data.astype(int)).mean() <= MEAN_ERROR
        # A tile of the scene outside the border: nothing of it in the product.
        outside = product.tms.tile(-11.9, 25.25, 11)
        with pytest.raises(Exception, match="outside"):
            product.tile(outside.x, outside.y, outside.z)


def test_border_over_only_a_corner_gives_the_corner(tci: Path, tmp_path: Path) -> None:
    # Overlaps the scene's south-east corner by 10.03 x 20.03 km; the rest is outside the scene.
    utm_border = box(309_780 - 10_030, 2_690_220 - 30_000, 309_780 + 40_000, 2_690_220 + 20_030)
    out = tmp_path / "corner.tif"
    result = build_rgb_product(str(tci), to_lonlat(utm_border).wkt, str(out))
    # 10.03 km is 100.3 pixels: outward to 101 columns; 20.03 km to 201 rows.
    assert (result.width, result.height) == (101, 201)
    with rasterio.open(out) as product:
        assert product.bounds == pytest.approx((309_780 - 10_100, 2_690_220, 309_780, 2_690_220 + 20_100))
        mask = product.dataset_mask()
    # The first column and row are cut by the border's edges, their centres outside it.
    assert (mask[1:, 1:] == 255).all()
    assert (mask[0, :] == 0).all() and (mask[:, 0] == 0).all()
    assert errors_inside(out, tci).mean() <= MEAN_ERROR
    assert_valid_cog(out)


def test_same_inputs_twice_overwrite_one_file_and_leave_nothing_else(tci: Path, tmp_path: Path) -> None:
    border = to_lonlat(box(240_000, 2_730_000, 260_000, 2_750_000)).wkt
    out = tmp_path / "rgb" / "product.tif"
    first = build_rgb_product(str(tci), border, str(out))
    first_bytes = out.read_bytes()
    second = build_rgb_product(str(tci), border, str(out))
    assert first == second
    assert out.read_bytes() == first_bytes
    assert sorted(p.name for p in out.parent.iterdir()) == ["product.tif"]


# ---------------------------------------------------------------------------------------------
# Generated COGs
# ---------------------------------------------------------------------------------------------


def test_generated_scene_window_snaps_to_the_grid_and_masks_source_nodata(tmp_path: Path) -> None:
    source = make_tci(tmp_path / "TCI.tif", 700, 600, nodata_triangle=True)
    # 10 m grid from (300000, 2800000): the box's edges fall inside pixels (x 300102 is column 10.2).
    utm_border = box(300_102, 2_800_000 - 5_497, 306_997, 2_800_000 - 102)
    out = tmp_path / "product.tif"

    result = build_rgb_product(str(source), to_lonlat(utm_border).wkt, str(out))

    assert (result.width, result.height) == (700 - 10, 550 - 10)
    with rasterio.open(out) as product:
        assert product.transform == Affine(10, 0, 300_100, 0, -10, 2_799_900)
        mask = product.dataset_mask()
        data = product.read()
        xs, ys = pixel_centres(product.transform, product.width, product.height)
    cols, rows = (xs - 300_000) / 10 - 0.5, (2_800_000 - ys) / 10 - 0.5  # the source's pixel indices
    source_nodata = rows + cols < 300
    in_border = shapely.contains_xy(to_utm(to_lonlat(utm_border)), xs, ys)
    assert (mask[source_nodata] == 0).all()
    assert (mask[in_border & ~source_nodata] == 255).all()
    assert (mask[~in_border] == 0).all()
    assert data[:, mask > 0].min() > 0
    error = errors_inside(out, source)
    assert error.mean() <= MEAN_ERROR and numpy.percentile(error, 99) <= P99_ERROR
    assert_aligned(out, source)
    assert_valid_cog(out)


def test_multipolygon_border_masks_between_its_parts(tmp_path: Path) -> None:
    source = make_tci(tmp_path / "TCI.tif", 512, 512)
    parts = shapely.MultiPolygon(
        [box(300_500, 2_797_000, 301_500, 2_799_500), box(303_500, 2_797_000, 304_500, 2_799_500)]
    )
    out = tmp_path / "product.tif"
    result = build_rgb_product(str(source), to_lonlat(parts).wkt, str(out))
    assert (result.width, result.height) == (400, 250)
    with rasterio.open(out) as product:
        mask = product.dataset_mask()
    assert (mask[:, 10:90] == 255).all() and (mask[:, 310:390] == 255).all()
    assert (mask[:, 110:290] == 0).all()


# ---------------------------------------------------------------------------------------------
# Through the local stack's S3
# ---------------------------------------------------------------------------------------------


def test_s3_source_and_destination_and_rerun_overwrites(stack: Any, tci: Path, tmp_path: Path) -> None:
    settings = get_settings()
    s3 = stack.client("s3")
    run = uuid.uuid4().hex[:8]
    source_key = f"rgb-product-test/{run}/{SCENE}/TCI.tif"
    s3.put_object(Bucket=settings.archive_bucket, Key=source_key, Body=tci.read_bytes())
    prefix = f"projects/{run}/rgb/"
    destination = f"s3://{settings.products_bucket}/{prefix}{SCENE}-rgb.tif"
    border = to_lonlat(box(240_000, 2_730_000, 262_000, 2_750_000)).wkt

    first = build_rgb_product(f"s3://{settings.archive_bucket}/{source_key}", border, destination)
    second = build_rgb_product(f"s3://{settings.archive_bucket}/{source_key}", border, destination)

    # x 240000 is column 400.2 of the 100 m grid, 262000 column 620.2: columns 400-620 (221), rows 500-700.
    assert first == second == RgbProduct(width=221, height=201, bytes_written=first.bytes_written)
    listed = s3.list_objects_v2(Bucket=settings.products_bucket, Prefix=prefix)["Contents"]
    assert [obj["Key"] for obj in listed] == [f"{prefix}{SCENE}-rgb.tif"]
    assert listed[0]["Size"] == first.bytes_written
    assert not s3.list_multipart_uploads(Bucket=settings.products_bucket).get("Uploads")
    local = tmp_path / "downloaded.tif"
    local.write_bytes(
        s3.get_object(Bucket=settings.products_bucket, Key=f"{prefix}{SCENE}-rgb.tif")["Body"].read()
    )
    assert_valid_cog(local)
    assert errors_inside(local, tci).mean() <= MEAN_ERROR
    with Reader(destination) as product:  # what /rgb/tile reads
        assert product.info().width == 221


def test_s3_missing_source_is_a_product_error(stack: Any, tmp_path: Path) -> None:
    settings = get_settings()
    border = to_lonlat(box(240_000, 2_730_000, 260_000, 2_750_000)).wkt
    missing = f"s3://{settings.archive_bucket}/rgb-product-test/{uuid.uuid4().hex}/TCI.tif"
    with pytest.raises(ProductError, match="cannot read"):
        build_rgb_product(missing, border, str(tmp_path / "out.tif"))
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

INSIDE_29RKH = box(240_000, 2_730_000, 260_000, 2_750_000)


def assert_refused(source: Path | str, border: str, out: Path, match: str) -> None:
    """ProductError, and the destination folder as it was (nothing written, nothing left)."""
    before = sorted(out.parent.iterdir())
    with pytest.raises(ProductError, match=match):
        build_rgb_product(str(source), border, str(out))
    assert sorted(out.parent.iterdir()) == before


def test_truncated_tiff_is_refused(tci: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(tci.read_bytes()[: tci.stat().st_size // 2])  # the header is intact
    with rasterio.open(truncated) as src:
        assert src.width == 1098  # it opens: only reading the pixels fails
    assert_refused(truncated, to_lonlat(INSIDE_29RKH).wkt, tmp_path / "out.tif", "cannot read")


def test_non_tiff_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "TCI.tif"
    text.write_text("<VRTDataset><VRTRasterBand/></VRTDataset>")
    assert_refused(text, to_lonlat(INSIDE_29RKH).wkt, tmp_path / "out.tif", "cannot read")


def test_one_band_source_is_refused(tmp_path: Path) -> None:
    source = make_tci(tmp_path / "TCI.tif", 256, 256, count=1)
    border = to_lonlat(box(300_500, 2_798_000, 301_500, 2_799_500)).wkt
    assert_refused(source, border, tmp_path / "out.tif", "not an 8-bit RGB")


def test_16_bit_source_is_refused(tmp_path: Path) -> None:
    source = make_tci(tmp_path / "TCI.tif", 256, 256, dtype="uint16")
    border = to_lonlat(box(300_500, 2_798_000, 301_500, 2_799_500)).wkt
    assert_refused(source, border, tmp_path / "out.tif", "not an 8-bit RGB")


def test_border_not_over_the_scene_is_refused(tci: Path, tmp_path: Path) -> None:
    elsewhere = box(15.2, 47.3, 15.5, 47.5)  # Austria
    assert_refused(tci, elsewhere.wkt, tmp_path / "out.tif", "not over the scene")
    # Beside the scene, inside its UTM zone: the bounding boxes do not meet either.
    beside = to_lonlat(box(309_780 + 1_000, 2_700_000, 309_780 + 5_000, 2_710_000))
    assert_refused(tci, beside.wkt, tmp_path / "out.tif", "not over the scene")


def test_bad_border_wkt_is_refused(tci: Path, tmp_path: Path) -> None:
    assert_refused(tci, "POLYGON ((1 2, 3", tmp_path / "out.tif", "not valid WKT")
    assert_refused(tci, "POINT (-11.5 24.8)", tmp_path / "out.tif", "Polygon")


def empty_tiff(path: Path, size: int, res: float, origin: tuple[float, float], block: int) -> Path:
    """A sparse 3-band 8-bit tiled GeoTIFF: a header declaring pixels, none of them written."""
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 3,
        "width": size,
        "height": size,
        "crs": f"EPSG:{UTM}",
        "transform": Affine(res, 0, origin[0], 0, -res, origin[1]),
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "sparse_ok": True,
    }
    with rasterio.open(path, "w", **profile):
        pass
    return path


def test_huge_declared_size_is_refused_before_reading(tmp_path: Path) -> None:
    # 200,000 x 200,000 pixels of 1 m (120 GB declared) in a file of a few MB.
    huge = empty_tiff(tmp_path / "huge.tif", 200_000, 1.0, (200_000, 2_800_000), 512)
    assert huge.stat().st_size < 10 * 1024 * 1024
    # 20 km x 20 km at 1 m: 400 million pixels, over the budget of one 10 m Sentinel-2 tile.
    border = to_lonlat(box(210_000, 2_700_000, 230_000, 2_720_000)).wkt
    assert MAX_PIXELS < 20_000 * 20_000
    assert_refused(huge, border, tmp_path / "out.tif", "over the limit")


def test_source_with_huge_blocks_is_refused(tmp_path: Path) -> None:
    # One 8192 x 8192 tile: any read would decode 200 MB.
    giant_tiles = empty_tiff(tmp_path / "giant-tiles.tif", 8192, 10.0, (300_000, 2_800_000), 8192)
    border = to_lonlat(box(300_500, 2_798_000, 301_500, 2_799_500)).wkt
    assert_refused(giant_tiles, border, tmp_path / "out.tif", "blocks are too large")


def test_failed_run_keeps_the_previous_product(tci: Path, tmp_path: Path) -> None:
    out = tmp_path / "product.tif"
    build_rgb_product(str(tci), to_lonlat(INSIDE_29RKH).wkt, str(out))
    before = out.read_bytes()
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(tci.read_bytes()[: tci.stat().st_size // 2])
    with pytest.raises(ProductError):
        build_rgb_product(str(truncated), to_lonlat(INSIDE_29RKH).wkt, str(out))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["product.tif", "truncated.tif"]
