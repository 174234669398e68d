"""/rgb: listing a project's RGB products with one Query, and their tiles equal to rio-tiler's."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy
import pytest
from fastapi.testclient import TestClient
from morecantile import tms as tms_registry
from rio_tiler.errors import TileOutsideBounds

from sputnik.tiles.pool import POOL
from sputnik.tiles.rgb import render_tile
from tests.conftest import DynamoCalls
from tests.support.tiles import (
    ALICE_EMPTY_PROJECT,
    ALICE_PROJECT,
    BOB,
    BOB_PROJECT,
    NDVI_PRODUCT,
    PRODUCTS,
    SYNTH_PRODUCT,
    TCI_PRODUCT,
    UNKNOWN_PROJECT,
    Tiles,
    api_event,
    assert_same_pixels,
    decode_png,
    expected_tile,
    invoke,
    product_key,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

Z, X, Y = 9, 239, 219
ALICE_TCI = f"s3://{PRODUCTS}/{product_key(ALICE_PROJECT, TCI_PRODUCT)}"
ALICE_SYNTH = f"s3://{PRODUCTS}/{product_key(ALICE_PROJECT, SYNTH_PRODUCT)}"


@pytest.fixture(scope="module")
def handler(tiles: Tiles) -> Any:
    """The Lambda handler of functions/rgb/app.py."""
    return tiles.function("rgb").handler


@pytest.fixture(scope="module")
def client(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the rgb function's app, logged in as alice."""
    with tiles.client("rgb") as test_client:
        yield test_client


def test_list_gives_the_projects_rgb_products_with_one_query(
    client: TestClient, dynamo_calls: DynamoCalls
) -> None:
    response = client.get(f"/rgb/list?project_id={ALICE_PROJECT}")
    assert response.status_code == 200
    assert response.json() == {"product_ids": sorted([TCI_PRODUCT, SYNTH_PRODUCT])}  # not the ndvi one
    assert dynamo_calls.count("Query") == 1 and dynamo_calls.count("Scan") == 0


def test_list_is_empty_before_processing(client: TestClient) -> None:
    response = client.get(f"/rgb/list?project_id={ALICE_EMPTY_PROJECT}")
    assert response.status_code == 200 and response.json() == {"product_ids": []}


def test_list_of_another_users_or_an_unknown_project_is_the_same_404(client: TestClient) -> None:
    foreign = client.get(f"/rgb/list?project_id={BOB_PROJECT}")
    unknown = client.get(f"/rgb/list?project_id={UNKNOWN_PROJECT}")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["detail"].replace(str(BOB_PROJECT), "N") == unknown.json()["detail"].replace(
        str(UNKNOWN_PROJECT), "N"
    )
    assert client.get(f"/rgb/list?project_id={BOB_PROJECT}", auth=BOB).json() == {
        "product_ids": [TCI_PRODUCT]
    }


@pytest.mark.parametrize("query", ["project_id=abc", "project_id=1.5", "", "project_id="])
def test_list_needs_an_integer_project_id(client: TestClient, query: str) -> None:
    assert client.get(f"/rgb/list?{query}").status_code == 422


def test_list_and_tile_need_credentials(client: TestClient, handler: Any) -> None:
    response = client.get(f"/rgb/list?project_id={ALICE_PROJECT}", auth=None, headers={"Authorization": ""})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
    event = api_event("GET", f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}", credentials=None)
    status, headers, _ = invoke(handler, event)
    assert status == 401 and headers["www-authenticate"].startswith("Basic")


def test_tile_equals_rio_tiler(client: TestClient) -> None:
    response = client.get(f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert_same_pixels(response.content, expected_tile(ALICE_TCI, Z, X, Y))


def test_synthetic_tiles_equal_rio_tiler_and_are_transparent_outside_the_data(client: TestClient) -> None:
    tms = tms_registry.get("WebMercatorQuad")
    bounds = (14.99, 44.9, 15.08, 45.16)  # around the synthetic COG (5 km at 15 E, 45 N)
    partial = 0
    for tile in tms.tiles(*bounds, zooms=[13]):
        response = client.get(f"/rgb/tile/{ALICE_PROJECT}/{SYNTH_PRODUCT}/13/{tile.x}/{tile.y}")
        assert response.status_code == 200
        pixels = decode_png(response.content)
        assert pixels.shape == (4, 256, 256)
        try:
            expected = expected_tile(ALICE_SYNTH, 13, tile.x, tile.y)
        except TileOutsideBounds:
            assert (pixels[3] == 0).all()
            continue
        assert_same_pixels(response.content, expected)
        partial += int(bool((pixels[3] == 0).any() and (pixels[3] == 255).any()))
    assert partial > 0


def test_tile_outside_the_product_is_a_transparent_png(client: TestClient) -> None:
    response = client.get(f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/9/0/0")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = decode_png(response.content)
    assert pixels.shape == (4, 256, 256) and not numpy.any(pixels[3])
    assert response.headers["cache-control"] == "private, max-age=3600"


@pytest.mark.parametrize(
    "path",
    [
        f"{BOB_PROJECT}/{TCI_PRODUCT}",  # another user's project, existing product
        f"{UNKNOWN_PROJECT}/{TCI_PRODUCT}",
        f"{ALICE_PROJECT}/no-such-product",
        f"{ALICE_PROJECT}/{NDVI_PRODUCT}",  # a product, but not an RGB one
    ],
)
def test_tile_of_a_product_not_yours_or_missing_is_404(client: TestClient, path: str) -> None:
    response = client.get(f"/rgb/tile/{path}/{Z}/{X}/{Y}")
    assert response.status_code == 404
    assert PRODUCTS not in response.text and "projects/" not in response.text


@pytest.mark.parametrize("zxy", ["9/512/0", "9/0/512", "25/0/0", "-1/0/0", "9/a/0"])
def test_tile_outside_the_tile_matrix_is_422(client: TestClient, zxy: str) -> None:
    assert client.get(f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{zxy}").status_code == 422


def test_tile_etag_and_304(client: TestClient) -> None:
    path = f"/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}"
    first = client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"].startswith("private")
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


def test_tile_through_mangum_behind_a_stage(handler: Any) -> None:
    event = api_event("GET", f"/prod/rgb/tile/{ALICE_PROJECT}/{TCI_PRODUCT}/{Z}/{X}/{Y}", stage="prod")
    result = handler(event, None)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    status, headers, raw = invoke(handler, event)
    assert headers["content-type"] == "image/png"
    assert_same_pixels(raw, expected_tile(ALICE_TCI, Z, X, Y))
    status, _, raw = invoke(handler, api_event("GET", f"/rgb/list?project_id={ALICE_PROJECT}"))
    assert status == 200 and TCI_PRODUCT.encode() in raw


def test_concurrent_tiles_never_share_a_dataset(tiles: Tiles) -> None:
    wanted = [(Z, x, y) for x in (238, 239, 240) for y in (218, 219)] * 4
    expected = {zxy: expected_tile(ALICE_TCI, *zxy) for zxy in set(wanted)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        rendered = list(pool.map(lambda zxy: render_tile(ALICE_TCI, *zxy), wanted))
    for zxy, content in zip(wanted, rendered, strict=True):
        assert_same_pixels(content, expected[zxy])
    assert len(POOL._idle) <= POOL.size  # the extra datasets opened for parallel readers were closed
