"""/product and /stats/series: an index's series in one Query (JSON and CSV), product listings without
S3 keys, index tiles through a colormap equal to rio-tiler's rendering, composites' tiles without
their count band, and the legend's stops.

The index product is a real NDVI: the real scene's B04 and B08 (tests/fixtures), clouds and
shadows of its SCL masked, written as a float32 COG with NaN as nodata, as the index task does.
The composites are that scene alone laid out as s2_composite writes them: float32 bands, the count
of clear observations last.
"""

import csv
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy
import pytest
import rasterio
from fastapi.testclient import TestClient
from rio_tiler.colormap import cmap
from rio_tiler.constants import WGS84_CRS
from rio_tiler.io import Reader

from sputnik import auth
from sputnik.models import ProductModel, ProjectModel
from tests.conftest import DynamoCalls
from tests.support.series import real_composite, real_ndvi, statistics
from tests.support.tiles import (
    ALICE,
    BOB,
    BOB_PROJECT,
    PRODUCTS,
    SCENE,
    TCI_PRODUCT,
    UNKNOWN_PROJECT,
    Tiles,
    api_event,
    decode_png,
    invoke,
    product_key,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

PROJECT = 1004  # alice's, this module's own: other modules' products stay out of its listings
Z, X, Y = 9, 239, 219  # over the real scene
HEADER = "date,scene_id,valid_pixels,clear_fraction,mean,std,min,p10,median,p90,max"
# Scenes of the series: two on one date, one with no clear pixel, one under a cloud.
SCENES = [
    ("2020-02-19", SCENE),
    ("2020-03-05", "S2B_29RKH_20200305_0_L2A"),
    ("2020-03-05", "S2B_29RKJ_20200305_0_L2A"),
    ("2020-03-10", "S2A_29RKH_20200310_0_L2A"),
    ("2020-03-20", "S2A_29RKH_20200320_0_L2A"),
]


def index_id(name: str, date: str, scene_id: str) -> str:
    """A product id as the index task writes it."""
    return f"index:{name}:{date}:{scene_id}"


@pytest.fixture(scope="module")
def series(tiles: Tiles) -> dict[str, dict[str, Any]]:
    """Alice's project with NDVI records of five scenes (one real COG), an NDWI one and an RGB one."""
    ProjectModel(
        PROJECT,
        owner=auth.get_user(ALICE[0]).user_id,
        login=ALICE[0],
        name="series",
        border="POLYGON((-12 24, -10 24, -10 26, -12 26, -12 24))",
        created="2026-01-01T00:00:00+00:00",
    ).save()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ndvi.tif"
        ndvi = real_ndvi(tiles.fixtures_dir, path)
        key = f"projects/{PROJECT}/index/ndvi/{SCENE}.tif"
        boto3.client("s3").upload_file(str(path), PRODUCTS, key)
    real = statistics(ndvi, ndvi.size)
    # The other scenes: the real one's values shifted by a season, thinned by clouds.
    cloudy = {"valid_pixels": 0, "clear_fraction": 0.0} | {
        k: None for k in real if k not in ("valid_pixels", "clear_fraction")
    }
    shifted = [
        real | {"mean": real["mean"] + d, "median": real["median"] + d, "clear_fraction": f}
        for d, f in ((0.05, 0.9), (0.07, 0.8), (0.1, 0.3))
    ]
    records: dict[str, dict[str, Any]] = {}
    for (date, scene_id), stats in zip(
        SCENES, [real, shifted[0], shifted[1], cloudy, shifted[2]], strict=True
    ):
        product_id = index_id("ndvi", date, scene_id)
        ProductModel(
            PROJECT,
            product_id,
            kind="index",
            index="ndvi",
            scene_id=scene_id,
            date=date,
            key=f"projects/{PROJECT}/index/ndvi/{scene_id}.tif",
            stats=stats,
        ).save()
        records[product_id] = {"date": date, "scene_id": scene_id, "product_id": product_id, **stats}
    ndwi = index_id("ndwi", "2020-02-19", SCENE)
    ProductModel(
        PROJECT, ndwi, kind="index", index="ndwi", scene_id=SCENE, date="2020-02-19", key="x.tif", stats=real
    ).save()
    rgb_key = f"projects/{PROJECT}/rgb/{TCI_PRODUCT}.tif"
    boto3.client("s3").copy_object(
        Bucket=PRODUCTS, Key=rgb_key, CopySource={"Bucket": PRODUCTS, "Key": product_key(1001, TCI_PRODUCT)}
    )
    ProductModel(PROJECT, TCI_PRODUCT, kind="rgb", scene_id=SCENE, date="2020-02-19", key=rgb_key).save()
    return records


RGB_COMPOSITE = "composite:rgb:median:2020-02-01:2020-02-29"
NDVI_COMPOSITE = "composite:ndvi:max_ndvi:2020-02-01:2020-02-29"


@pytest.fixture(scope="module")
def composites(tiles: Tiles, series: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An RGB and an NDVI composite of the real scene, recorded with details as s2_composite records them."""
    made = {}
    for product_id in (RGB_COMPOSITE, NDVI_COMPOSITE):
        _, product, method, start, end = product_id.split(":")
        key = f"projects/{PROJECT}/composite/{product}/{method}/{start}_{end}.tif"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "composite.tif"
            bands = real_composite(tiles.fixtures_dir, path, product)
            boto3.client("s3").upload_file(str(path), PRODUCTS, key)
        count = bands[-1]
        details = {
            "start_date": start,
            "end_date": end,
            "product": product,
            "method": method,
            "max_scene_cloud": 100,
            "scenes": 1,
            "bands": ["B04", "B03", "B02", "count"] if product == "rgb" else [product, "count"],
            "result": "SUCCESS",
            "failed_blocks": [],
            "coverage": {
                "pixels": int(count.size),
                "observed_fraction": round(float((count > 0).mean()), 6),
                "mean_count": round(float(count.mean()), 4),
                "min_count": int(count.min()),
                "max_count": int(count.max()),
            },
        }
        index = None if product == "rgb" else product
        ProductModel(PROJECT, product_id, kind="composite", key=key, index=index, details=details).save()
        made[product_id] = {"url": f"s3://{PRODUCTS}/{key}", "index": index, "details": details}
    return made


@pytest.fixture(scope="module")
def client(tiles: Tiles, series: dict[str, dict[str, Any]]) -> Iterator[TestClient]:
    """A client of the rgb function's app (which serves /product and /stats), logged in as alice."""
    with tiles.client("rgb") as test_client:
        yield test_client


REAL_NDVI = index_id("ndvi", "2020-02-19", SCENE)
NDVI_URL = f"s3://{PRODUCTS}/projects/{PROJECT}/index/ndvi/{SCENE}.tif"


# ---------------------------------------------------------------- /stats/series


def test_series_is_every_scene_oldest_first_in_one_query(
    client: TestClient, series: dict[str, dict[str, Any]], dynamo_calls: DynamoCalls
) -> None:
    response = client.get(f"/stats/series?project_id={PROJECT}&index=ndvi")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["index"] == "ndvi" and body["project_id"] == PROJECT and body["min_clear"] == 0
    # Every scene, the two of 2020-03-05 as two points, oldest first; no NDWI, no RGB.
    assert body["points"] == list(series.values())
    assert [p["date"] for p in body["points"]] == sorted(date for date, _ in SCENES)
    products_table = ProductModel.Meta.table_name
    assert dynamo_calls.count("Query", products_table) == 1
    assert dynamo_calls.count("Scan") == 0 and dynamo_calls.count("GetItem", products_table) == 0


def test_min_clear_leaves_out_the_scenes_less_clear(
    client: TestClient, series: dict[str, dict[str, Any]]
) -> None:
    body = client.get(f"/stats/series?project_id={PROJECT}&index=ndvi&min_clear=0.5").json()
    expected = [r for r in series.values() if r["clear_fraction"] >= 0.5]
    assert body["points"] == expected and 0 < len(expected) < len(series)


def test_csv_parsed_back_equals_the_records(client: TestClient, series: dict[str, dict[str, Any]]) -> None:
    response = client.get(f"/stats/series?project_id={PROJECT}&index=ndvi&format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="sputnik-project-{PROJECT}-ndvi.csv"'
    )
    assert response.text.splitlines()[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == len(series)
    for row, record in zip(rows, series.values(), strict=True):
        for column in HEADER.split(","):
            value, expected = row[column], record[column]
            if expected is None:
                assert value == ""
            elif isinstance(expected, str):
                assert value == expected
            else:
                assert float(value) == expected  # written at full precision


def test_an_expression_index_is_accepted_by_its_name(client: TestClient) -> None:
    response = client.get(f"/stats/series?project_id={PROJECT}&index=expr-0123456789")
    assert response.status_code == 200 and response.json()["points"] == []


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("index=ndxi", "index"),
        ("index=NDVI", "index"),
        ("index=expr-../../x", "index"),
        ("index=", "index"),
        ("index=ndvi&min_clear=-0.1", "min_clear"),
        ("index=ndvi&min_clear=1.5", "min_clear"),
        ("index=ndvi&min_clear=nan", "min_clear"),
        ("index=ndvi&format=xlsx", "format"),
        ("index=" + "n" * 200, "index"),
    ],
)
def test_bad_series_parameters_are_422_naming_them(client: TestClient, query: str, where: str) -> None:
    response = client.get(f"/stats/series?project_id={PROJECT}&{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == where


def test_an_unknown_index_names_the_known_ones(client: TestClient) -> None:
    detail = client.get(f"/stats/series?project_id={PROJECT}&index=ndxi").json()["detail"][0]["msg"]
    assert all(name in detail for name in ("ndvi", "ndwi", "ndmi", "nbr", "evi", "savi", "expr-"))


@pytest.mark.parametrize(
    "path",
    [
        f"/stats/series?project_id={BOB_PROJECT}&index=ndvi",
        f"/stats/series?project_id={UNKNOWN_PROJECT}&index=ndvi",
        f"/product/list?project_id={BOB_PROJECT}",
        f"/product/tile/{BOB_PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}",
        f"/product/tile/{PROJECT}/no-such-product/{Z}/{X}/{Y}",
        f"/product/tile/{PROJECT}/{REAL_NDVI.replace('ndvi', 'ndwi')}x/{Z}/{X}/{Y}",
        f"/product/tile/{PROJECT}/..%2F..%2Fx/{Z}/{X}/{Y}",
        f"/product/tile/{PROJECT}/%E2%80%AE%00/{Z}/{X}/{Y}",
        f"/product/tilejson.json?project_id={BOB_PROJECT}&product_id={TCI_PRODUCT}",
    ],
)
def test_another_users_project_or_an_unknown_product_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert PRODUCTS not in response.text and "projects/" not in response.text


def test_a_wrong_password_is_401_everywhere(client: TestClient) -> None:
    for path in (
        f"/stats/series?project_id={PROJECT}&index=ndvi",
        f"/product/list?project_id={PROJECT}",
        f"/product/tile/{PROJECT}/{REAL_NDVI}/{Z}/{X}/{Y}",
        "/product/legend?index=ndvi",
    ):
        response = client.get(path, auth=(ALICE[0], "wrong-password"))
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
    # Bob's own credentials work on his project and see none of alice's series.
    assert client.get(f"/stats/series?project_id={BOB_PROJECT}&index=ndvi", auth=BOB).json()["points"] == []


# ---------------------------------------------------------------- /product/list


def test_product_list_gives_kinds_scenes_dates_statistics_and_details_without_keys(
    client: TestClient,
    series: dict[str, dict[str, Any]],
    composites: dict[str, dict[str, Any]],
    dynamo_calls: DynamoCalls,
) -> None:
    response = client.get(f"/product/list?project_id={PROJECT}")
    assert response.status_code == 200
    listed = {p["product_id"]: p for p in response.json()["products"]}
    assert dynamo_calls.count("Query", ProductModel.Meta.table_name) == 1
    assert set(listed) == {*series, index_id("ndwi", "2020-02-19", SCENE), TCI_PRODUCT, *composites}
    for product_id, record in series.items():
        stats = {k: v for k, v in record.items() if k not in ("date", "scene_id", "product_id")}
        assert listed[product_id] == {
            "product_id": product_id,
            "kind": "index",
            "index": "ndvi",
            "scene_id": record["scene_id"],
            "date": record["date"],
            "stats": stats,
            "details": None,
        }
    assert listed[TCI_PRODUCT]["kind"] == "rgb" and listed[TCI_PRODUCT]["stats"] is None
    for product_id, made in composites.items():
        assert listed[product_id] == {
            "product_id": product_id,
            "kind": "composite",
            "index": made["index"],
            "scene_id": None,
            "date": None,
            "stats": None,
            "details": made["details"],
        }
    only_composites = client.get(f"/product/list?project_id={PROJECT}&kind=composite").json()["products"]
    assert [p["product_id"] for p in only_composites] == sorted(composites)
    assert "projects/" not in response.text and PRODUCTS not in response.text and ".tif" not in response.text
    only_rgb = client.get(f"/product/list?project_id={PROJECT}&kind=rgb").json()["products"]
    assert [p["product_id"] for p in only_rgb] == [TCI_PRODUCT]
    only_index = client.get(f"/product/list?project_id={PROJECT}&kind=index").json()["products"]
    assert [p["product_id"] for p in only_index] == sorted({*series, index_id("ndwi", "2020-02-19", SCENE)})
    assert all(p["kind"] == "index" and p["stats"] is not None for p in only_index)
    assert client.get(f"/product/list?project_id={PROJECT}&kind=s3").status_code == 422


# ---------------------------------------------------------------- tiles, tilejson, legend


def rendered(
    url: str, colormap_name: str, rescale: tuple[float, float], indexes: tuple[int, ...] | None = None
) -> numpy.ndarray:
    """rio-tiler's own rendering of a single-band tile (or band `indexes`) with a colormap: the reference."""
    with rasterio.Env(), Reader(url) as src:
        image = src.tile(X, Y, Z, tilesize=256, indexes=indexes, unscale=True)
    return decode_png(image.rescale(in_range=(rescale,)).render(colormap=cmap.get(colormap_name)))


@pytest.mark.parametrize(
    ("query", "colormap_name", "rescale"),
    [("", "rdylgn", (-1.0, 1.0)), ("?colormap_name=viridis&rescale=0,0.5", "viridis", (0.0, 0.5))],
)
def test_index_tile_equals_rio_tilers_rendering(
    client: TestClient, series: dict[str, Any], query: str, colormap_name: str, rescale: tuple[float, float]
) -> None:
    response = client.get(f"/product/tile/{PROJECT}/{REAL_NDVI}/{Z}/{X}/{Y}{query}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = decode_png(response.content)
    numpy.testing.assert_array_equal(pixels, rendered(NDVI_URL, colormap_name, rescale))
    # Clouds are transparent, clear land coloured: both are in this tile.
    assert (pixels[3] == 0).any() and (pixels[3] == 255).any()


def test_an_rgb_product_is_served_as_rgb_tile_serves_it(client: TestClient, series: dict[str, Any]) -> None:
    mine = client.get(f"/product/tile/{PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}")
    theirs = client.get(f"/rgb/tile/{PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}")
    assert mine.status_code == theirs.status_code == 200 and mine.content == theirs.content
    styled = client.get(f"/product/tile/{PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}?colormap_name=viridis")
    assert styled.status_code == 422 and styled.json()["detail"][0]["loc"] == ["query", "colormap_name"]


def composite_rendered(url: str, rescale: tuple[float, float]) -> numpy.ndarray:
    """rio-tiler's own rendering of an RGB composite's three bands, each rescaled alike: the reference."""
    with rasterio.Env(), Reader(url) as src:
        image = src.tile(X, Y, Z, tilesize=256, indexes=(1, 2, 3))
    return decode_png(image.rescale(in_range=(rescale,)).render())


@pytest.mark.parametrize(("query", "rescale"), [("", (0.0, 0.3)), ("?rescale=0,0.5", (0.0, 0.5))])
def test_an_rgb_composite_is_its_three_bands_rescaled_without_the_count_band(
    client: TestClient, composites: dict[str, Any], query: str, rescale: tuple[float, float]
) -> None:
    response = client.get(f"/product/tile/{PROJECT}/{RGB_COMPOSITE}/{Z}/{X}/{Y}{query}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = decode_png(response.content)
    numpy.testing.assert_array_equal(pixels, composite_rendered(composites[RGB_COMPOSITE]["url"], rescale))
    # RGB and an alpha of the bands' data: clouds (count 0, a value of the count band) transparent.
    assert pixels.shape == (4, 256, 256)
    assert (pixels[3] == 0).any() and (pixels[3] == 255).any()
    clear = pixels[3] == 255
    assert pixels[:3, clear].std() > 10  # imagery stretched over the bytes, not all black or white
    styled = client.get(f"/product/tile/{PROJECT}/{RGB_COMPOSITE}/{Z}/{X}/{Y}?colormap_name=viridis")
    assert styled.status_code == 422 and styled.json()["detail"][0]["loc"] == ["query", "colormap_name"]
    tilejson = client.get(
        f"/product/tilejson.json?project_id={PROJECT}&product_id={RGB_COMPOSITE}&rescale=0,0.5"
    ).json()
    assert tilejson["tiles"][0].endswith("?rescale=0%2C0.5") and tilejson["legend"] is None


@pytest.mark.parametrize(
    ("query", "colormap_name", "rescale"),
    [("", "rdylgn", (-1.0, 1.0)), ("?colormap_name=viridis&rescale=0,0.5", "viridis", (0.0, 0.5))],
)
def test_an_index_composite_is_drawn_as_its_index_band(
    client: TestClient,
    composites: dict[str, Any],
    query: str,
    colormap_name: str,
    rescale: tuple[float, float],
) -> None:
    response = client.get(f"/product/tile/{PROJECT}/{NDVI_COMPOSITE}/{Z}/{X}/{Y}{query}")
    assert response.status_code == 200
    pixels = decode_png(response.content)
    url = composites[NDVI_COMPOSITE]["url"]
    numpy.testing.assert_array_equal(pixels, rendered(url, colormap_name, rescale, indexes=(1,)))
    # The count band is no band of the tile: clouds (count 0) are transparent, clear land coloured.
    assert (pixels[3] == 0).any() and (pixels[3] == 255).any()


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("colormap_name=evil", "colormap_name"),
        ("colormap_name=Viridis", "colormap_name"),
        ("colormap_name=" + "a" * 40, "colormap_name"),
        ("rescale=1,0", "rescale"),
        ("rescale=0,0", "rescale"),
        ("rescale=nan,1", "rescale"),
        ("rescale=-inf,1", "rescale"),
        ("rescale=1e300,1e301", "rescale"),
        ("rescale=1", "rescale"),
        ("rescale=0,1,2", "rescale"),
        ("rescale=a,b", "rescale"),
    ],
)
def test_a_bad_colormap_or_rescale_is_422_before_any_read(
    client: TestClient, tiles: Tiles, series: dict[str, Any], query: str, where: str
) -> None:
    before = len(tiles.server.requests)
    for path in (
        f"/product/tile/{PROJECT}/{REAL_NDVI}/{Z}/{X}/{Y}?{query}",
        f"/product/legend?index=ndvi&{query}",
    ):
        response = client.get(path)
        assert response.status_code == 422, path
        assert response.json()["detail"][0]["loc"][-1] == where
    assert not [r for r in tiles.server.requests[before:] if r[0] == "GET" and PRODUCTS in r[1]]


def test_a_tile_outside_the_product_or_the_matrix(client: TestClient, series: dict[str, Any]) -> None:
    outside = client.get(f"/product/tile/{PROJECT}/{REAL_NDVI}/9/0/0")
    assert outside.status_code == 200 and not decode_png(outside.content)[3].any()
    assert client.get(f"/product/tile/{PROJECT}/{REAL_NDVI}/9/512/0").status_code == 422
    long_id = client.get(f"/product/tile/{PROJECT}/{'x' * 300}/{Z}/{X}/{Y}")
    assert long_id.status_code == 422


def test_tile_etag_and_304(client: TestClient, series: dict[str, Any]) -> None:
    path = f"/product/tile/{PROJECT}/{REAL_NDVI}/{Z}/{X}/{Y}"
    etag = client.get(path).headers["etag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("query", "colormap_name", "rescale"),
    [
        ("index=ndvi", "rdylgn", (-1.0, 1.0)),
        ("index=ndwi", "rdbu", (-1.0, 1.0)),
        ("index=expr-0123456789&colormap_name=blues&rescale=-0.2,0.8", "blues", (-0.2, 0.8)),
    ],
)
def test_legend_stops_are_rio_tilers_colormap_over_the_range(
    client: TestClient, query: str, colormap_name: str, rescale: tuple[float, float]
) -> None:
    response = client.get(f"/product/legend?{query}")
    assert response.status_code == 200
    body = response.json()
    assert body["colormap_name"] == colormap_name and tuple(body["rescale"]) == rescale
    colors: Any = cmap.get(colormap_name)
    assert len(body["stops"]) == 256
    for i, stop in enumerate(body["stops"]):
        assert math.isclose(stop["value"], rescale[0] + (rescale[1] - rescale[0]) * i / 255, abs_tol=1e-12)
        assert stop["color"] == "#" + bytes(int(c) for c in colors[i]).hex()
    assert client.get("/product/legend?index=ndxi").status_code == 422


def test_tilejson_leads_to_the_same_tiles_behind_a_stage(tiles: Tiles, series: dict[str, Any]) -> None:
    handler = tiles.function("rgb").handler
    query = f"project_id={PROJECT}&product_id={REAL_NDVI}&colormap_name=viridis&rescale=0,0.5"
    status, _, raw = invoke(handler, api_event("GET", f"/prod/product/tilejson.json?{query}", stage="prod"))
    assert status == 200, raw
    document = json.loads(raw)
    with rasterio.Env(), Reader(NDVI_URL) as src:
        assert document["bounds"] == pytest.approx(list(src.get_geographic_bounds(WGS84_CRS)))
    (template,) = document["tiles"]
    host = "https://abc123.execute-api.us-east-1.amazonaws.com"
    assert template.startswith(f"{host}/prod/product/tile/{PROJECT}/")
    tile_url = (
        template.replace("{z}", str(Z)).replace("{x}", str(X)).replace("{y}", str(Y)).removeprefix(host)
    )
    status, headers, png = invoke(handler, api_event("GET", tile_url, stage="prod"))
    assert status == 200 and headers["content-type"] == "image/png"
    numpy.testing.assert_array_equal(decode_png(png), rendered(NDVI_URL, "viridis", (0.0, 0.5)))
    legend_url = document["legend"].removeprefix(host)
    status, _, legend = invoke(handler, api_event("GET", legend_url, stage="prod"))
    assert status == 200 and json.loads(legend)["colormap_name"] == "viridis"
    status, _, raw = invoke(
        handler, api_event("GET", f"/prod/stats/series?project_id={PROJECT}&index=ndvi", stage="prod")
    )
    assert status == 200 and len(json.loads(raw)["points"]) == len(series)
