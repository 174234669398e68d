"""/cog and /rgb refuse what they cannot serve at once: tiles outside the matrix, bad parameters, huge reads.

Each case here answered 500, hung or read gigabytes before: out-of-matrix tiles, low zooms that
warped the whole world, parameters handed to rio-tiler and GDAL unchecked, broken and oversized
files, and 422 bodies that echoed the whole input or did not match the OpenAPI schema.
"""

import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import morecantile
import numpy
import pytest
import rasterio
import rio_tiler.errors
import rio_tiler.reader
from fastapi.testclient import TestClient
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rio_tiler.io import Reader

from sputnik.tiles.reader import MAX_PIXELS_READ, STOCK_WARP_LIMIT
from tests.support.tiles import (
    ALICE_PROJECT,
    ARCHIVE,
    TCI,
    TCI_KEY,
    TCI_PRODUCT,
    TCI_QUERY,
    Tiles,
    assert_names,
    assert_same_pixels,
    decode_png,
    expected_tile,
    rgb_client_fixture,  # noqa: F401 (registers the `rgb_client` fixture here)
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

LON, LAT = -11.4, 24.8  # inside the TCI
TRUNCATED_KEY = "hostile/truncated/TCI.tif"
SPARSE_KEY = "hostile/sparse-200k/TCI.tif"  # 200,000 x 200,000 px, no overviews, nearly no bytes
HUGE_BLOCKS_KEY = "hostile/huge-blocks/TCI.tif"  # 20,000 x 20,000 px in blocks of 151 Mpx
FLAT_KEY = "hostile/no-overviews/TCI.tif"  # 5,000 x 5,000 px (25 Mpx), no overviews


def url_of(key: str) -> str:
    """The quoted `url` query value of an archive object."""
    return quote(f"s3://{ARCHIVE}/{key}", safe="")


def write_tiff(path: Path, size: int, **options: Any) -> None:
    """Write a one-band uint8 GeoTIFF in UTM 29N of size x size px; sparse ones hold nothing at all."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32629",
        "transform": from_origin(199980, 2800020, 10, 10),
        "compress": "deflate",
        **options,
    }
    with rasterio.open(path, "w", **profile) as dst:
        if not options.get("sparse_ok"):
            dst.write(numpy.full((1, size, size), 7, dtype="uint8"))


@pytest.fixture(scope="module")
def client(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the cog function's app, logged in as alice, with the hostile files in the archive."""
    s3 = boto3.client("s3")
    tci = tiles.fixtures_dir / "sentinel-cogs" / "sentinel-s2-l2a-cogs" / TCI_KEY.split("/", 1)[1]
    data = tci.read_bytes()
    s3.put_object(Bucket=ARCHIVE, Key=TRUNCATED_KEY, Body=data[: len(data) // 5])
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            SPARSE_KEY: (200_000, {"tiled": True, "blockxsize": 512, "blockysize": 512, "sparse_ok": True}),
            HUGE_BLOCKS_KEY: (
                20_000,
                {"tiled": True, "blockxsize": 12_288, "blockysize": 12_288, "sparse_ok": True},
            ),
            FLAT_KEY: (5_000, {"tiled": True, "blockxsize": 512, "blockysize": 512}),
        }
        for key, (size, options) in files.items():
            path = Path(tmp) / "file.tif"
            write_tiff(path, size, **options)
            s3.upload_file(str(path), ARCHIVE, key)
    with tiles.client("cog") as test_client:
        yield test_client


# -- defect 1: tile coordinates are checked against the tile matrix set -------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/cog/tiles/WebMercatorQuad/1/5/0", "x"),  # hung for ever and grew past 10 GB
        ("/cog/tiles/WebMercatorQuad/1/0/2.png", "y"),
        ("/cog/tiles/WGS1984Quad/3/999999999/0", "x"),  # answered 200
        ("/cog/tiles/1/5/0@2x.png", "x"),
        ("/cog/tiles/9/239/512", "y"),
        ("/cog/tiles/25/0/0.png", "z"),
        ("/cog/tiles/CDB1GlobalGrid/22/0/0.png", "z"),  # beyond the TMS: a 500
    ],
)
def test_tiles_outside_the_matrix_are_422_naming_the_coordinate(
    client: TestClient, path: str, name: str
) -> None:
    assert_names(client.get(f"{path}?{TCI_QUERY}"), 422, "path", name)


@pytest.mark.parametrize(
    "route",
    [
        "WebMercatorQuad/tilejson.json",
        "WGS1984Quad/WMTSCapabilities.xml",
        "tilejson.json",
        "WMTSCapabilities.xml",
    ],
)
@pytest.mark.parametrize(
    ("query", "name"),
    [("minzoom=25", "minzoom"), ("maxzoom=30", "maxzoom"), ("minzoom=9&maxzoom=8", "minzoom")],
)
def test_tilejson_and_wmts_templates_stay_inside_the_matrix(
    client: TestClient, route: str, query: str, name: str
) -> None:
    assert_names(client.get(f"/cog/{route}?{TCI_QUERY}&{query}"), 422, "query", name)


def test_the_tms_less_forms_check_zooms_against_the_tile_matrix_set_they_are_given(
    client: TestClient,
) -> None:
    """`?TileMatrixSetId=` names the set of `/tilejson.json`: zoom 20 is in WebMercatorQuad, not in LINZ's."""
    linz = "TileMatrixSetId=LINZAntarticaMapTilegrid"
    assert_names(client.get(f"/cog/tilejson.json?{TCI_QUERY}&{linz}&maxzoom=20"), 422, "query", "maxzoom")
    assert client.get(f"/cog/tilejson.json?{TCI_QUERY}&maxzoom=20").status_code == 200


@pytest.mark.parametrize("zxy", ["1/5/0", "9/0/512", "25/0/0"])
def test_rgb_tiles_outside_the_matrix_are_422_naming_the_coordinate(rgb_client: TestClient, zxy: str) -> None:
    name = {"1/5/0": "x", "9/0/512": "y", "25/0/0": "z"}[zxy]
    assert_names(rgb_client.get(f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{zxy}"), 422, "path", name)


# -- defect 2: low zooms warp only what the dataset covers, within a pixel budget ---------------


@pytest.fixture
def warped_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (width, height) of every virtual raster rio-tiler warps onto while the test runs."""
    sizes: list[tuple[int, int]] = []
    original = rio_tiler.reader.WarpedVRT

    def recording(src: Any, **options: Any) -> Any:
        sizes.append((options.get("width", 0), options.get("height", 0)))
        return original(src, **options)

    monkeypatch.setattr(rio_tiler.reader, "WarpedVRT", recording)
    return sizes


def footprint_window(z: int, x: int, y: int) -> tuple[int, int, int, int]:
    """The columns and rows of a 256 px WebMercatorQuad tile that the TCI covers (col0, row0, col1, row1)."""
    with rasterio.open(TCI) as src:
        left, bottom, right, top = transform_bounds(src.crs, "EPSG:3857", *src.bounds, densify_pts=21)
    tile = morecantile.tms.get("WebMercatorQuad").xy_bounds(morecantile.Tile(x, y, z))
    size = (tile.right - tile.left) / 256
    return (
        math.floor((left - tile.left) / size),
        math.floor((tile.top - top) / size),
        math.ceil((right - tile.left) / size),
        math.ceil((tile.top - bottom) / size),
    )


@pytest.mark.parametrize("z", [0, 1, 2])
def test_low_zoom_tiles_warp_only_the_scene_and_show_it_in_place(
    client: TestClient, warped_sizes: list[tuple[int, int]], z: int
) -> None:
    tile = morecantile.tms.get("WebMercatorQuad").tile(LON, LAT, z)
    response = client.get(f"/cog/tiles/{z}/{tile.x}/{tile.y}.png?{TCI_QUERY}")
    assert response.status_code == 200, response.text
    # rio-tiler warped a raster of the whole tile at the scene's resolution: 400,000 px across at z0.
    assert warped_sizes and max(max(size) for size in warped_sizes) <= STOCK_WARP_LIMIT
    alpha = decode_png(response.content)[-1]
    rows, cols = numpy.nonzero(alpha)
    col0, row0, col1, row1 = footprint_window(z, tile.x, tile.y)
    assert (cols.min(), rows.min()) >= (col0, row0) and (cols.max(), rows.max()) < (col1, row1)
    assert alpha.sum() > 0


def test_a_partly_covered_tile_equals_rio_tilers_where_its_warp_is_affordable(client: TestClient) -> None:
    # z3 is the lowest zoom at which rio-tiler's own warp still finishes in about a second.
    tile = morecantile.tms.get("WebMercatorQuad").tile(LON, LAT, 3)
    response = client.get(f"/cog/tiles/3/{tile.x}/{tile.y}.png?{TCI_QUERY}")
    expected = expected_tile(TCI, 3, tile.x, tile.y)
    pixels = decode_png(response.content)
    numpy.testing.assert_array_equal(pixels[-1], expected.mask)
    numpy.testing.assert_array_equal(pixels[:-1], expected.data)


@pytest.mark.parametrize(
    "path",
    [
        "/cog/tiles/0/0/0.png",  # the whole 25 Mpx at full resolution for 256 px
        "/cog/preview.png",
        "/cog/statistics",
        "/cog/bbox/-12,24,-10,26.png",
    ],
)
def test_reads_over_the_pixel_budget_are_refused_before_reading(client: TestClient, path: str) -> None:
    response = client.get(f"{path}?url={url_of(FLAT_KEY)}")
    assert_names(response, 422, "query", "url")
    assert f"{MAX_PIXELS_READ:,}" in response.json()["detail"][0]["msg"]


def test_a_file_without_overviews_still_serves_tiles_that_read_little(
    client: TestClient, tiles: Tiles
) -> None:
    with rasterio.open(f"/vsis3/{ARCHIVE}/{FLAT_KEY}") as src:
        lon, lat = transform_bounds(src.crs, "EPSG:4326", *src.bounds)[:2]
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon + 0.01, lat + 0.01, 12)
    size = boto3.client("s3").head_object(Bucket=ARCHIVE, Key=FLAT_KEY)["ContentLength"]
    before = len(tiles.server.gets(ARCHIVE, FLAT_KEY))
    response = client.get(f"/cog/tiles/12/{tile.x}/{tile.y}.png?url={url_of(FLAT_KEY)}")
    assert response.status_code == 200, response.text
    assert_same_pixels(response.content, expected_tile(f"s3://{ARCHIVE}/{FLAT_KEY}", 12, tile.x, tile.y))
    assert (decode_png(response.content)[0] == 7).any()  # the file's one value, where it has data
    # Only the blocks under the tile were fetched: a few ranges, not the file.
    fetched = [rng for rng in tiles.server.gets(ARCHIVE, FLAT_KEY)[before:] if rng]
    read = sum(int(b) - int(a) + 1 for a, b in (r.removeprefix("bytes=").split("-") for r in fetched))
    assert 0 < len(fetched) <= 4 and read < size / 2, (fetched, size)


# -- defect 3: bad parameters are 4xx naming the parameter, never 500 --------------------------

Z, X, Y = 9, 239, 219
NORTH = quote('{"azimuth": "north"}')
BAD_PARAMETERS = [
    (f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&bidx=4", "query", "bidx"),
    (f"/cog/preview.png?{TCI_QUERY}&bidx=0", "query", "bidx"),
    (f"/cog/point/{LON},{LAT}?{TCI_QUERY}&bidx=9", "query", "bidx"),
    (f"/cog/statistics?{TCI_QUERY}&bidx=4", "query", "bidx"),
    (f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&expression=b1*b5", "query", "expression"),
    (f"/cog/statistics?{TCI_QUERY}&histogram_bins=0", "query", "histogram_bins"),
    (f"/cog/statistics?{TCI_QUERY}&histogram_bins=3,2,1", "query", "histogram_bins"),
    (f"/cog/statistics?{TCI_QUERY}&histogram_bins=5,5", "query", "histogram_bins"),
    (f"/cog/statistics?{TCI_QUERY}&histogram_range=10,0", "query", "histogram_range"),
    (f"/cog/statistics?{TCI_QUERY}&p=144115188075855873", "query", "p"),
    (f"/cog/statistics?{TCI_QUERY}&p=50&p=-1", "query", "p"),
    (f"/cog/statistics?{TCI_QUERY}&" + "&".join(["p=5"] * 101), "query", "p"),
    (f"/cog/point/{LON},95?{TCI_QUERY}", "path", "lat"),
    (f"/cog/point/200,{LAT}?{TCI_QUERY}", "path", "lon"),
    (f"/cog/point/nan,{LAT}?{TCI_QUERY}", "path", "lon"),
    (f"/cog/bbox/-11.4,24.6,-11.4,25.0.png?{TCI_QUERY}", "path", "maxx"),
    (f"/cog/bbox/-11.6,25.0,-11.2,25.0.png?{TCI_QUERY}", "path", "maxy"),
    (f"/cog/bbox/-1e300,24.6,1e300,25.0.png?{TCI_QUERY}", "path", "minx"),
    (f"/cog/crop/-11.6,24.6,-11.2,1e300/64x64.png?{TCI_QUERY}", "path", "maxy"),
    (
        f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&algorithm=hillshade&algorithm_params=[1]",
        "query",
        "algorithm_params",
    ),
    (
        f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&algorithm=hillshade&algorithm_params="
        + quote('{"azimuth":"north"}'),
        "query",
        "algorithm_params",
    ),
    (
        f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&algorithm=hillshade&algorithm_params=%7B",
        "query",
        "algorithm_params",
    ),
    (f"/cog/tiles/CDB1GlobalGrid/22/0/0.png?{TCI_QUERY}", "path", "z"),
    (f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&nodata=nan", "query", "nodata"),  # on uint8 data
    (f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&nodata=300", "query", "nodata"),
    (f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&bidx=1&colormap=" + quote('{"a": 1}'), "query", "colormap"),
]


@pytest.mark.parametrize(("path", "location", "name"), BAD_PARAMETERS)
def test_bad_parameters_are_422_naming_the_parameter(
    client: TestClient, path: str, location: str, name: str
) -> None:
    assert_names(client.get(path), 422, location, name)


def test_good_forms_of_the_same_parameters_still_work(client: TestClient) -> None:
    statistics = client.get(f"/cog/statistics?{TCI_QUERY}&histogram_bins=0,100,200&histogram_range=0,255")
    assert statistics.status_code == 200, statistics.text
    counts, edges = statistics.json()["b1"]["histogram"]
    assert edges == [0, 100, 200] and len(counts) == 2 and sum(counts) > 0
    # Percentiles at both ends of 0..100 are numpy's min and max of the same pixels.
    ends = client.get(f"/cog/statistics?{TCI_QUERY}&p=0&p=100").json()["b1"]
    assert (ends["percentile_0"], ends["percentile_100"]) == (ends["min"], ends["max"])
    point = client.get(f"/cog/point/{LON},{LAT}?{TCI_QUERY}&bidx=3")
    assert point.status_code == 200, point.text
    with rasterio.Env(), Reader(TCI) as src:
        expected = src.point(LON, LAT, indexes=3)
    assert point.json()["values"] == expected.data.tolist()
    hillshade = (
        f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&bidx=1&algorithm=hillshade&algorithm_params="
        + quote('{"azimuth": 90}')
    )
    shaded = client.get(hillshade)
    assert shaded.status_code == 200, shaded.text
    bands = decode_png(shaded.content)
    assert bands.shape[0] == 2 and len(numpy.unique(bands[0])) > 1  # one shaded band, and alpha


WORLD = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-180, -85], [180, -85], [180, 85], [-180, 85], [-180, -85]]],
    },
}


def test_statistics_of_a_feature_bound_the_coverage_they_rasterize(client: TestClient) -> None:
    # The coverage is rasterized at cover_scale times the image: 1.6 billion cells took 15 s and GBs.
    assert_names(
        client.post(f"/cog/statistics?{TCI_QUERY}&cover_scale=1000", json=WORLD), 422, "query", "cover_scale"
    )
    assert client.post(f"/cog/statistics?{TCI_QUERY}&max_size=512", json=WORLD).status_code == 200


# -- defect 6: broken and oversized files are refused with a short reason ----------------------


@pytest.mark.parametrize("path", [f"/cog/tiles/{Z}/{X}/{Y}.png", "/cog/preview.png", "/cog/statistics"])
def test_a_truncated_tiff_is_422_with_a_short_reason(client: TestClient, path: str) -> None:
    response = client.get(f"{path}?url={url_of(TRUNCATED_KEY)}")
    assert_names(response, 422, "query", "url")
    assert "damaged or truncated" in response.text and TRUNCATED_KEY not in response.text


@pytest.mark.parametrize(
    "path", ["/cog/tiles/0/0/0.png", "/cog/preview.png", "/cog/statistics", "/cog/tiles/3/3/3"]
)
def test_a_huge_sparse_tiff_without_overviews_is_refused_by_its_size(client: TestClient, path: str) -> None:
    assert_names(client.get(f"{path}?url={url_of(SPARSE_KEY)}"), 422, "query", "url")


def test_a_tiff_of_giant_blocks_is_refused_before_any_block_is_read(client: TestClient) -> None:
    response = client.get(f"/cog/info?url={url_of(HUGE_BLOCKS_KEY)}")
    assert_names(response, 422, "query", "url")
    assert "too large" in response.json()["detail"][0]["msg"]


# -- defect 8: a 422 has the schema's shape and echoes little -----------------------------------


def test_validation_errors_echo_at_most_a_short_part_of_the_input(client: TestClient) -> None:
    huge = "x" * 50_000
    response = client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&tilesize={huge}")
    assert response.status_code == 422 and len(response.content) < 2_000
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "tilesize"] and len(error["input"]) <= 101
    body = {"type": "Feature", "properties": {"junk": huge}, "geometry": {"type": "Nowhere"}}
    response = client.post(f"/cog/crop.png?{TCI_QUERY}", json=body)
    assert response.status_code == 422 and len(response.content) < 20_000
    assert huge[:200] not in response.text


def test_every_422_detail_is_the_schemas_list(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["HTTPValidationError"]
    assert schema["properties"]["detail"]["type"] == "array"
    for path in (
        f"/cog/statistics?{TCI_QUERY}&histogram_bins=100000",
        f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&expression=b9",
    ):
        detail = client.get(path).json()["detail"]
        assert isinstance(detail, list) and all(isinstance(e["msg"], str) for e in detail)


def test_zoom_overrides_beyond_the_tile_matrix_set_are_422_on_the_tile_set_route(client: TestClient) -> None:
    # Found by the contract fuzzing: the tile set's limits were computed for zoom 48709 and overflowed.
    assert_names(client.get(f"/cog/tiles/WGS1984Quad?{TCI_QUERY}&maxzoom=48709"), 422, "query", "maxzoom")
    assert client.get(f"/cog/tiles/WGS1984Quad?{TCI_QUERY}&maxzoom=10").status_code == 200


def test_a_feature_off_the_earth_is_422_naming_its_geometry(client: TestClient) -> None:
    # Found by the contract fuzzing: a vertex at latitude 1e16 overflowed the warp's size.
    ring = [[-11.5, 24.7], [-11.4, 24.7], [-11.5, 1e16], [-11.5, 24.7]]
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    assert_names(client.post(f"/cog/statistics?{TCI_QUERY}", json=feature), 422, "body", "geometry")
