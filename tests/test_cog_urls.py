"""The /cog URL policy: only the archive and the caller's own products, refused before GDAL opens anything."""

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from sputnik.errors import Forbidden, NotFound
from sputnik.tiles.gdal import configure_gdal
from sputnik.tiles.urls import DATASET_NOT_FOUND, URL_REFUSED, dataset_url, parse_s3_url
from tests.support.tiles import (
    ALICE,
    ALICE_PROJECT,
    ARCHIVE,
    BOB,
    BOB_PROJECT,
    EVIL_KEY,
    OTHER_BUCKET,
    PRODUCTS,
    TCI,
    TCI_KEY,
    TCI_PRODUCT,
    UNKNOWN_PROJECT,
    Tiles,
    product_key,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

ALICE_PRODUCT = f"s3://{PRODUCTS}/{product_key(ALICE_PROJECT, TCI_PRODUCT)}"
BOB_PRODUCT = f"s3://{PRODUCTS}/{product_key(BOB_PROJECT, TCI_PRODUCT)}"
HERE = "http://127.0.0.1:{port}"  # the moto server itself: a hostile URL that would really answer

# Each is refused by syntax or bucket (403), whatever exists behind it.
REFUSED = [
    "file:///etc/passwd",
    "/etc/passwd",
    "{fixtures}/sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A/TCI.tif",
    f"/vsicurl/{HERE}/{ARCHIVE}/{TCI_KEY}",
    f"/vsis3/{ARCHIVE}/{TCI_KEY}",
    f"/vsizip//vsis3/{ARCHIVE}/{TCI_KEY}",
    "/vsimem/scene.tif",
    f"{HERE}/{ARCHIVE}/{TCI_KEY}",
    "https://example.com/scene.tif",
    f"s3://{ARCHIVE}/{HERE}/{ARCHIVE}/{TCI_KEY}",
    f"s3://{ARCHIVE}/http:/example.com/scene.tif",
    f"s3://{OTHER_BUCKET}/{TCI_KEY}",
    f"s3://{ARCHIVE}/../{PRODUCTS}/{product_key(BOB_PROJECT, TCI_PRODUCT)}",
    f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs/./TCI.tif",
    f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs//TCI.tif",
    f"s3://{ARCHIVE}/%2e%2e/{TCI_KEY}",
    f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs%2FTCI.tif",
    f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs\\TCI.tif",
    f"s3://{ARCHIVE}/{TCI_KEY}\x00.png",
    f"s3://{ARCHIVE}/{TCI_KEY}\n",
    f"s3://{ARCHIVE}/{TCI_KEY}?versionId=1",
    f"s3://{ARCHIVE}/{TCI_KEY}#part",
    f"s3://{ARCHIVE}/scene.vrt",
    f"s3://{ARCHIVE}/scene.jp2",
    f"s3://{ARCHIVE}/" + "a/" * 600 + "scene.tif",
    f"S3://{ARCHIVE}/{TCI_KEY}",
    f"s3://{ARCHIVE}",
    f"s3://{ARCHIVE}/",
    f" s3://{ARCHIVE}/{TCI_KEY}",
    f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs/\u0422CI.tif",  # a Cyrillic T
    f"s3://user:secret@{ARCHIVE}/{TCI_KEY}",
    f"gs://{ARCHIVE}/{TCI_KEY}",
    "",
    f"s3://{PRODUCTS}/projects/{ALICE_PROJECT:07d}/{TCI_PRODUCT}.tif",
    f"s3://{PRODUCTS}/projects/alice/{TCI_PRODUCT}.tif",
    f"s3://{PRODUCTS}/projects/{ALICE_PROJECT}.tif",
    f"s3://{PRODUCTS}/elsewhere/{TCI_PRODUCT}.tif",
]

# Each names a project that is not the caller's (404), existing object or not.
NOT_YOURS = [
    BOB_PRODUCT,
    f"s3://{PRODUCTS}/projects/{BOB_PROJECT}/missing.tif",
    f"s3://{PRODUCTS}/projects/{UNKNOWN_PROJECT}/{TCI_PRODUCT}.tif",
]


def fill(url: str, tiles: Tiles) -> str:
    """Put this run's moto port and fixture folder into a URL template."""
    port = tiles.endpoint.rsplit(":", 1)[1]
    return url.replace("{port}", port).replace("{fixtures}", str(tiles.fixtures_dir))


def alice_owns(login: str, project_id: int) -> None:
    """A project check where only alice's project exists."""
    if (login, project_id) != ("alice", ALICE_PROJECT):
        raise NotFound(f"project {project_id} not found")


@pytest.fixture(scope="module")
def client(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the cog function's app, logged in as alice."""
    with TestClient(tiles.function("cog").app, raise_server_exceptions=False) as test_client:
        test_client.auth = ALICE
        yield test_client


@pytest.mark.parametrize("url", REFUSED)
def test_policy_refuses_without_asking_for_the_project(url: str, tiles: Tiles) -> None:
    asked: list[int] = []
    with pytest.raises(Forbidden) as refused:
        dataset_url(fill(url, tiles), "alice", lambda login, project_id: asked.append(project_id))
    assert str(refused.value) == URL_REFUSED
    assert asked == []


@pytest.mark.parametrize("url", NOT_YOURS)
def test_policy_answers_not_found_for_projects_not_yours(url: str, tiles: Tiles) -> None:
    with pytest.raises(NotFound) as missing:
        dataset_url(url, "alice", alice_owns)
    assert str(missing.value) == DATASET_NOT_FOUND


def test_policy_allows_the_archive_and_own_products(tiles: Tiles) -> None:
    assert dataset_url(TCI, "alice", alice_owns) == TCI
    assert dataset_url(ALICE_PRODUCT, "alice", alice_owns) == ALICE_PRODUCT
    assert parse_s3_url(f"s3://{ARCHIVE}/a/b.TIFF").key == "a/b.TIFF"


@pytest.mark.parametrize("url", REFUSED + NOT_YOURS)
def test_hostile_urls_are_4xx_before_gdal_opens_anything(url: str, client: TestClient, tiles: Tiles) -> None:
    url = fill(url, tiles)
    seen = len(tiles.server.requests)
    for path in ("/cog/info", "/cog/tiles/9/239/219.png", "/cog/WebMercatorQuad/tilejson.json"):
        response = client.get(f"{path}?url={quote(url, safe='')}")
        # One of two fixed bodies: nothing of the URL is reflected, nothing tells what exists.
        assert (response.status_code, response.json()) in [
            (403, {"detail": URL_REFUSED}),
            (404, {"detail": DATASET_NOT_FOUND}),
        ], response.text
    s3_requests = [r for r in tiles.server.requests[seen:] if r[1] != "/"]  # "/" is DynamoDB's path
    assert s3_requests == []


def test_foreign_existing_and_missing_objects_answer_the_same(client: TestClient) -> None:
    answers = set()
    for url in [
        *NOT_YOURS,
        f"s3://{PRODUCTS}/projects/{ALICE_PROJECT}/missing.tif",  # own project, no such object
        f"s3://{ARCHIVE}/sentinel-s2-l2a-cogs/missing/TCI.tif",
    ]:
        response = client.get(f"/cog/info?url={quote(url, safe='')}")
        answers.add((response.status_code, response.content))
    assert answers == {(404, b'{"detail":"dataset not found"}')}


def test_own_products_and_the_archive_are_served_other_users_are_not(client: TestClient) -> None:
    assert client.get(f"/cog/info?url={quote(ALICE_PRODUCT, safe='')}").status_code == 200
    assert client.get(f"/cog/info?url={quote(TCI, safe='')}").status_code == 200
    assert client.get(f"/cog/info?url={quote(BOB_PRODUCT, safe='')}").status_code == 404
    assert client.get(f"/cog/info?url={quote(BOB_PRODUCT, safe='')}", auth=BOB).status_code == 200


def test_a_vrt_named_tif_is_never_opened(client: TestClient, tiles: Tiles) -> None:
    bob_key = product_key(BOB_PROJECT, TCI_PRODUCT)
    before = len(tiles.server.gets(PRODUCTS, bob_key))
    response = client.get(f"/cog/info?url={quote(f's3://{ARCHIVE}/{EVIL_KEY}', safe='')}")
    assert response.status_code == 404 and response.json() == {"detail": DATASET_NOT_FOUND}
    assert len(tiles.server.gets(PRODUCTS, bob_key)) == before  # the VRT's source was never read


def test_configure_gdal_derives_the_s3_endpoint_and_keeps_overrides() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "GDAL_CACHEMAX": "512"}
    applied = configure_gdal(env)
    assert env["AWS_S3_ENDPOINT"] == "127.0.0.1:4566"
    assert (env["AWS_HTTPS"], env["AWS_VIRTUAL_HOSTING"]) == ("NO", "FALSE")
    assert env["GDAL_CACHEMAX"] == "512"  # the deployment's value wins over the default
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert env["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] == ".tif,.TIF,.tiff,.TIFF"
    assert "GDAL_SKIP" not in env  # it would break every reprojected tile (see sputnik.tiles.gdal)
    assert applied["AWS_S3_ENDPOINT"] == "127.0.0.1:4566"
    secure = configure_gdal({"AWS_ENDPOINT_URL_S3": "https://s3.example.test"})
    assert (secure["AWS_S3_ENDPOINT"], secure["AWS_HTTPS"]) == ("s3.example.test", "YES")
    assert "AWS_S3_ENDPOINT" not in configure_gdal({})
