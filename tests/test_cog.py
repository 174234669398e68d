"""/cog: every contract path, pixels equal to rio-tiler's, tilejson/WMTS links that work, caching, auth."""

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import boto3.session
import pytest
from fastapi.testclient import TestClient
from morecantile import tms as tms_registry

from sputnik.tiles.pool import POOL
from sputnik_tools.local.recording import RecordedRequest
from tests.support.projects import SCENE_BBOX, SCENE_BORDER
from tests.support.tiles import (
    ARCHIVE,
    SYNTH_KEY,
    TCI,
    TCI_KEY,
    TCI_QUERY,
    Tiles,
    api_event,
    assert_same_pixels,
    basic,
    decode_png,
    expected_tile,
    gdal_option_fixture,  # noqa: F401 (registers the `gdal_option` fixture here)
    invoke,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

SYNTH = f"s3://{ARCHIVE}/{SYNTH_KEY}"
Z, X, Y = 9, 239, 219  # a TCI tile fully inside the data
BBOX = ",".join(map(str, SCENE_BBOX))
FEATURE = {"type": "Feature", "properties": {}, "geometry": SCENE_BORDER}

# The contract's /cog paths and methods, as sputnik-api.md lists them.
CONTRACT = [
    ("get", "/cog/bounds"),
    ("get", "/cog/info"),
    ("get", "/cog/info.geojson"),
    ("get", "/cog/statistics"),
    ("post", "/cog/statistics"),
    ("get", "/cog/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x.{format}"),
    ("get", "/cog/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x"),
    ("get", "/cog/tiles/{TileMatrixSetId}/{z}/{x}/{y}.{format}"),
    ("get", "/cog/tiles/{TileMatrixSetId}/{z}/{x}/{y}"),
    ("get", "/cog/tiles/{z}/{x}/{y}@{scale}x.{format}"),
    ("get", "/cog/tiles/{z}/{x}/{y}@{scale}x"),
    ("get", "/cog/tiles/{z}/{x}/{y}.{format}"),
    ("get", "/cog/tiles/{z}/{x}/{y}"),
    ("get", "/cog/{TileMatrixSetId}/tilejson.json"),
    ("get", "/cog/tilejson.json"),
    ("get", "/cog/{TileMatrixSetId}/WMTSCapabilities.xml"),
    ("get", "/cog/WMTSCapabilities.xml"),
    ("get", "/cog/point/{lon},{lat}"),
    ("get", "/cog/preview.{format}"),
    ("get", "/cog/preview"),
    ("get", "/cog/crop/{minx},{miny},{maxx},{maxy}/{width}x{height}.{format}"),
    ("get", "/cog/crop/{minx},{miny},{maxx},{maxy}.{format}"),
    ("post", "/cog/crop/{width}x{height}.{format}"),
    ("post", "/cog/crop.{format}"),
    ("post", "/cog/crop"),
]


@pytest.fixture(scope="module")
def handler(tiles: Tiles) -> Any:
    """The Lambda handler of functions/cog/app.py."""
    return tiles.function("cog").handler


@pytest.fixture(scope="module")
def client(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the cog function's app, logged in as alice."""
    with tiles.client("cog") as test_client:
        yield test_client


def test_openapi_lists_every_contract_path(tiles: Tiles) -> None:
    paths = tiles.function("cog").app.openapi()["paths"]
    missing = [(method, path) for method, path in CONTRACT if method not in paths.get(path, {})]
    assert missing == []
    tile = paths["/cog/tiles/{TileMatrixSetId}/{z}/{x}/{y}.{format}"]["get"]
    names = {p["name"] for p in tile["parameters"]}
    assert {
        "url",
        "scale",
        "buffer",
        "bidx",
        "expression",
        "rescale",
        "colormap_name",
        "return_mask",
    } <= names


@pytest.mark.parametrize(
    ("method", "path", "media"),
    [
        ("GET", "/cog/bounds", "application/json"),
        ("GET", "/cog/info", "application/json"),
        ("GET", "/cog/info.geojson", "application/geo+json"),
        ("GET", "/cog/statistics", "application/json"),
        ("POST", "/cog/statistics", "application/geo+json"),
        ("GET", f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}@2x.png", "image/png"),
        ("GET", f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}@1x", "image/jpeg"),
        ("GET", f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}.webp", "image/webp"),
        ("GET", f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}", "image/jpeg"),
        ("GET", f"/cog/tiles/{Z}/{X}/{Y}@1x.png", "image/png"),
        ("GET", f"/cog/tiles/{Z}/{X}/{Y}@2x", "image/jpeg"),
        ("GET", f"/cog/tiles/{Z}/{X}/{Y}.tif", "image/tiff; application=geotiff"),
        ("GET", f"/cog/tiles/{Z}/{X}/{Y}", "image/jpeg"),
        ("GET", "/cog/WebMercatorQuad/tilejson.json", "application/json"),
        ("GET", "/cog/tilejson.json", "application/json"),
        ("GET", "/cog/WebMercatorQuad/WMTSCapabilities.xml", "application/xml"),
        ("GET", "/cog/WMTSCapabilities.xml", "application/xml"),
        ("GET", "/cog/point/-11.4,24.8", "application/json"),
        ("GET", "/cog/preview.png", "image/png"),
        ("GET", "/cog/preview", "image/jpeg"),  # no masked pixel: auto picks JPEG
        ("GET", f"/cog/crop/{BBOX}/128x128.png", "image/png"),
        ("GET", f"/cog/crop/{BBOX}.jpg", "image/jpg"),
        ("POST", "/cog/crop/100x100.png", "image/png"),
        ("POST", "/cog/crop.png", "image/png"),
        ("POST", "/cog/crop", "image/"),
        # titiler 2.4's own forms stay served too
        ("GET", "/cog/tiles", "application/json"),
        ("GET", "/cog/tiles/WebMercatorQuad", "application/json"),
        ("GET", f"/cog/bbox/{BBOX}.png", "image/png"),
        ("POST", "/cog/feature.png", "image/png"),
        ("GET", "/cog/preview/64x64.png", "image/png"),
    ],
)
def test_contract_path_answers_its_content_type(
    client: TestClient, method: str, path: str, media: str
) -> None:
    body = FEATURE if method == "POST" else None
    response = client.request(method, f"{path}?{TCI_QUERY}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media)
    assert response.content


def test_bounds_and_info_describe_the_tci(client: TestClient) -> None:
    bounds = client.get(f"/cog/bounds?{TCI_QUERY}").json()["bounds"]
    assert bounds == pytest.approx([-11.979, 24.296, -10.875, 25.305], abs=1e-3)
    info = client.get(f"/cog/info?{TCI_QUERY}").json()
    assert (info["width"], info["height"], info["count"], info["dtype"]) == (1098, 1098, 3, "uint8")
    point = client.get(f"/cog/point/-11.4,24.8?{TCI_QUERY}").json()
    assert point["coordinates"] == [-11.4, 24.8] and len(point["values"]) == 3


@pytest.mark.parametrize(
    ("path", "url", "zxy", "size"),
    [
        (f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}.png", TCI, (Z, X, Y), 256),
        (f"/cog/tiles/{Z}/{X}/{Y}@1x.png", TCI, (Z, X, Y), 256),
        (f"/cog/tiles/{Z}/{X}/{Y}@2x.png", TCI, (Z, X, Y), 512),
        (f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}?format=png&scale=2", TCI, (Z, X, Y), 512),
        ("/cog/tiles/8/119/109.png", TCI, (8, 119, 109), 256),  # on the scene's edge: part masked
        ("/cog/tiles/7/59/54.png", TCI, (7, 59, 54), 256),
        ("/cog/tiles/10/478/438.png", TCI, (10, 478, 438), 256),
    ],
)
def test_tile_equals_rio_tiler(
    client: TestClient, path: str, url: str, zxy: tuple[int, int, int], size: int
) -> None:
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}url={quote(url, safe='')}")
    assert response.status_code == 200, response.text
    assert_same_pixels(response.content, expected_tile(url, *zxy, tilesize=size))


def test_synthetic_tiles_equal_rio_tiler_with_nodata_transparent(client: TestClient) -> None:
    tms = tms_registry.get("WebMercatorQuad")
    with_both = 0
    bounds = client.get(f"/cog/bounds?url={quote(SYNTH, safe='')}").json()["bounds"]
    for z in (12, 13):
        with_both_before = with_both
        west, south, east, north = bounds
        for tile in tms.tiles(west, south, east, north, zooms=[z]):
            response = client.get(f"/cog/tiles/{z}/{tile.x}/{tile.y}.png?url={quote(SYNTH, safe='')}")
            assert response.status_code == 200, response.text
            expected = expected_tile(SYNTH, z, tile.x, tile.y)
            assert_same_pixels(response.content, expected)
            alpha = decode_png(response.content)[-1]
            with_both += int(bool((alpha == 0).any() and (alpha == 255).any()))
        assert with_both > with_both_before  # every zoom has tiles that are part data, part transparent


def test_titiler_tileset_links_to_the_contract_tile_route(client: TestClient) -> None:
    links = client.get(f"/cog/tiles/WebMercatorQuad?{TCI_QUERY}").json()["links"]
    href = next(link["href"] for link in links if link["rel"] == "tile")
    template = href.replace("%7B", "{").replace("%7D", "}")  # titiler's link model escapes the braces
    assert template.startswith("http://testserver/cog/tiles/WebMercatorQuad/{z}/{x}/{y}?")
    response = client.get(template.format(z=Z, x=X, y=Y) + "&format=png")
    assert_same_pixels(response.content, expected_tile(TCI, Z, X, Y))


def test_tilejson_tiles_url_works_when_followed(client: TestClient) -> None:
    body = client.get(f"/cog/tilejson.json?{TCI_QUERY}&tile_format=png").json()
    assert (body["minzoom"], body["maxzoom"]) == (7, 10)
    template = body["tiles"][0]
    assert template.startswith("http://testserver/cog/tiles/WebMercatorQuad/{z}/{x}/{y}@1x.png?")
    response = client.get(template.format(z=Z, x=X, y=Y))
    assert response.status_code == 200
    assert_same_pixels(response.content, expected_tile(TCI, Z, X, Y))


def test_tilejson_keeps_rendering_parameters_and_scale(client: TestClient) -> None:
    body = client.get(f"/cog/WebMercatorQuad/tilejson.json?{TCI_QUERY}&tile_scale=2&bidx=1&minzoom=8").json()
    assert body["minzoom"] == 8
    template = body["tiles"][0]
    assert "@2x?" in template and "bidx=1" in template and "minzoom" not in template
    response = client.get(template.format(z=Z, x=X, y=Y) + "&format=png")
    pixels = decode_png(response.content)
    assert pixels.shape == (2, 512, 512)  # one band + alpha, 512 px


def test_behind_a_stage_prefix_tilejson_and_wmts_links_work_through_mangum(handler: Any) -> None:
    status, headers, raw = invoke(
        handler, api_event("GET", f"/prod/cog/tilejson.json?{TCI_QUERY}", stage="prod")
    )
    assert status == 200, raw
    template = json.loads(raw)["tiles"][0]
    assert template.startswith("https://abc123.execute-api.us-east-1.amazonaws.com/prod/cog/tiles/")
    status, headers, raw = invoke(handler, api_event("GET", template.format(z=Z, x=X, y=Y), stage="prod"))
    assert status == 200 and headers["content-type"] == "image/jpeg"

    status, _, raw = invoke(
        handler, api_event("GET", f"/prod/cog/WMTSCapabilities.xml?{TCI_QUERY}", stage="prod")
    )
    assert status == 200
    resource = ET.fromstring(raw).find(".//{http://www.opengis.net/wmts/1.0}ResourceURL")
    assert resource is not None
    url = resource.get("template", "").format(TileMatrix=Z, TileCol=X, TileRow=Y)
    assert urlsplit(url).path.startswith("/prod/cog/tiles/WebMercatorQuad/")
    status, headers, raw = invoke(handler, api_event("GET", url, stage="prod"))
    assert status == 200 and headers["content-type"] == "image/png"
    assert_same_pixels(raw, expected_tile(TCI, Z, X, Y))


def test_wmts_capabilities_parse_and_their_template_returns_a_tile(client: TestClient) -> None:
    response = client.get(f"/cog/WebMercatorQuad/WMTSCapabilities.xml?{TCI_QUERY}&tile_scale=2")
    assert response.status_code == 200
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    root = ET.fromstring(response.content)
    assert root.tag == "{http://www.opengis.net/wmts/1.0}Capabilities"
    layer = root.find("w:Contents/w:Layer", ns)
    assert layer is not None
    assert layer.findtext("w:TileMatrixSetLink/w:TileMatrixSet", namespaces=ns) == "WebMercatorQuad"
    matrices = root.findall("w:Contents/w:TileMatrixSet/w:TileMatrix", ns)
    assert [m.findtext("ows:Identifier", namespaces=ns) for m in matrices] == ["7", "8", "9", "10"]
    assert {m.findtext("w:TileWidth", namespaces=ns) for m in matrices} == {"512"}
    limits = {
        lim.findtext("w:TileMatrix", namespaces=ns): lim
        for lim in layer.findall("w:TileMatrixSetLink/w:TileMatrixSetLimits/w:TileMatrixLimits", ns)
    }
    nine = limits["9"]
    col, row = nine.findtext("w:MinTileCol", namespaces=ns), nine.findtext("w:MinTileRow", namespaces=ns)
    resource = layer.find("w:ResourceURL", ns)
    assert resource is not None and resource.get("format") == "image/png"
    url = resource.get("template", "").format(TileMatrix=9, TileCol=col, TileRow=row)
    tile = client.get(url)
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    assert_same_pixels(tile.content, expected_tile(TCI, 9, int(col or 0), int(row or 0), tilesize=512))


def test_tiles_carry_etag_and_private_cache_control_and_answer_304(client: TestClient) -> None:
    path = f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}"
    first = client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    assert first.headers["cache-control"] == "private, max-age=3600"
    assert "authorization" in first.headers["vary"].lower()
    assert client.get(path).headers["etag"] == etag  # same bytes, same tag
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    other_tile = client.get(f"/cog/tiles/{Z}/{X + 1}/{Y}.png?{TCI_QUERY}")
    assert other_tile.headers["etag"] != etag


def test_mangum_returns_base64_images_and_plain_json(handler: Any) -> None:
    status, headers, raw = invoke(handler, api_event("GET", f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}"))
    assert status == 200 and headers["content-type"] == "image/png"
    assert_same_pixels(raw, expected_tile(TCI, Z, X, Y))
    result = handler(api_event("GET", f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}"), None)
    assert result["isBase64Encoded"] is True
    result = handler(api_event("GET", f"/cog/info?{TCI_QUERY}"), None)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is False
    assert json.loads(result["body"])["count"] == 3
    feature = json.dumps(FEATURE)
    post = api_event(
        "POST", f"/cog/crop.png?{TCI_QUERY}", headers={"content-type": "application/json"}, body=feature
    )
    status, headers, raw = invoke(handler, post)
    assert status == 200 and headers["content-type"] == "image/png"


def test_without_credentials_401_with_basic_challenge(client: TestClient, handler: Any) -> None:
    response = client.get(f"/cog/info?{TCI_QUERY}", auth=None, headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    wrong = client.get(
        f"/cog/info?{TCI_QUERY}", auth=None, headers={"Authorization": basic(("alice", "wrong-pass"))}
    )
    assert wrong.status_code == 401
    status, headers, _ = invoke(
        handler, api_event("GET", f"/cog/tiles/{Z}/{X}/{Y}?{TCI_QUERY}", credentials=None)
    )
    assert status == 401 and headers["www-authenticate"].startswith("Basic")


def test_bad_tile_requests_are_4xx_without_paths(client: TestClient) -> None:
    outside = client.get(f"/cog/tiles/9/0/0.png?{TCI_QUERY}")
    assert outside.status_code == 404 and TCI_KEY not in outside.text
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}@9x.png?{TCI_QUERY}").status_code == 422
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&tilesize=100000").status_code == 422
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&buffer=100000").status_code == 422
    assert client.get(f"/cog/preview.png?{TCI_QUERY}&width=100000").status_code == 422
    assert client.get(f"/cog/crop/{BBOX}/100000x10.png?{TCI_QUERY}").status_code == 422
    assert client.get(f"/cog/tiles/Nowhere/{Z}/{X}/{Y}?{TCI_QUERY}").status_code == 422
    bad = client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&expression=__import__('os')")
    assert bad.status_code == 422 and TCI_KEY not in bad.text
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}").status_code == 422  # no url


@pytest.mark.parametrize("bins", ["1000000000", ",".join(str(i) for i in range(1002))])
def test_statistics_refuse_huge_histograms(client: TestClient, bins: str) -> None:
    r = client.get(f"/cog/statistics?{TCI_QUERY}&histogram_bins={bins}")
    assert r.status_code == 422
    [error] = r.json()["detail"]  # FastAPI's validation-error shape, as the OpenAPI schema says
    assert error["loc"] == ["query", "histogram_bins"] and "limit is 1000" in error["msg"]
    assert client.get(f"/cog/statistics?{TCI_QUERY}&histogram_bins=20").status_code == 200


def test_cold_open_is_one_get_and_warm_tiles_reuse_the_dataset(client: TestClient, tiles: Tiles) -> None:
    key = "measure/S2A_29RKH_20200219_0_L2A/TCI.tif"
    source = tiles.fixtures_dir / "sentinel-cogs" / "sentinel-s2-l2a-cogs" / TCI_KEY.split("/", 1)[1]
    boto3.client("s3").upload_file(str(source), ARCHIVE, key)
    url = quote(f"s3://{ARCHIVE}/{key}", safe="")
    POOL.clear()
    opened, seen = POOL.opened, len(tiles.server.requests)
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?url={url}").status_code == 200
    gets = tiles.server.gets(ARCHIVE, key)
    assert gets[0] == "bytes=0-32767"  # the whole header in one request
    assert len(gets) <= 5  # header + the few internal tiles this web tile covers
    listings = [r for r in tiles.server.requests[seen:] if r[1] == f"/{ARCHIVE}/" or r[1] == f"/{ARCHIVE}"]
    assert listings == []  # GDAL_DISABLE_READDIR_ON_OPEN: no LIST of the "directory"
    assert POOL.opened == opened + 1
    for x in (X - 1, X, X + 1):
        assert client.get(f"/cog/tiles/{Z}/{x}/{Y}.png?url={url}").status_code == 200
    assert client.get(f"/cog/info?url={url}").status_code == 200
    assert POOL.opened == opened + 1  # warm requests borrow the same open dataset
    assert tiles.server.gets(ARCHIVE, key).count("bytes=0-32767") == 1
    fetched = len(tiles.server.gets(ARCHIVE, key))
    for x in (X - 1, X, X + 1):
        assert client.get(f"/cog/tiles/{Z}/{x}/{Y}.png?url={url}").status_code == 200
    assert len(tiles.server.gets(ARCHIVE, key)) == fetched  # blocks already fetched are not fetched again


def test_warm_tiles_build_no_boto3_session(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}").status_code == 200
    built: list[int] = []
    original = boto3.session.Session.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "__init__", counting)
    assert client.get(f"/cog/tiles/{Z}/{X + 1}/{Y}.png?{TCI_QUERY}").status_code == 200
    assert client.get(f"/cog/tiles/{Z}/{X}/{Y}.png?{TCI_QUERY}&format=png&scale=2").status_code == 200
    assert built == []  # rasterio would build one (~15 ms) for every Env it enters


def test_s3_failing_is_503_at_open_and_mid_tile_and_the_next_request_is_served(
    tiles: Tiles, gdal_option: Callable[[str, str], None]
) -> None:
    """S3 answering SlowDown (after GDAL's own retries) is the storage's trouble, not a missing or
    broken dataset: 503 with Retry-After, and nothing kept that spoils the next request."""
    gdal_option("GDAL_HTTP_RETRY_DELAY", "0.05")  # GDAL's retries still happen, only sooner
    key = TCI_KEY.replace("2020/2/S2A_29RKH_20200219", "2020/3/S2A_29RKH_20200320")
    boto3.client("s3").copy_object(Bucket=ARCHIVE, Key=key, CopySource={"Bucket": ARCHIVE, "Key": TCI_KEY})
    query = f"url={quote(f's3://{ARCHIVE}/{key}', safe='')}"
    tile = f"/cog/tiles/WebMercatorQuad/{Z}/{X}/{Y}.png?{query}"
    busy = {"detail": "busy: try again shortly"}
    with tiles.client("cog") as client:
        with tiles.server.failing(lambda r: r[0] == "GET" and r[1].endswith(key)):
            at_open = client.get(f"/cog/info?{query}")
        assert at_open.status_code == 503 and at_open.json() == busy, at_open.text
        assert client.get(f"/cog/info?{query}").status_code == 200  # the header is read and kept now
        with tiles.server.failing(lambda r: r[0] == "GET" and r[1].endswith(key) and r[2] is not None):
            mid_tile = client.get(tile)
        assert mid_tile.status_code == 503 and mid_tile.json() == busy, mid_tile.text
        assert mid_tile.headers["retry-after"] == "1"
        again = client.get(tile)
    assert again.status_code == 200 and again.headers["content-type"] == "image/png"
    assert_same_pixels(again.content, expected_tile(f"s3://{ARCHIVE}/{key}", Z, X, Y))


def test_s3_hanging_under_a_tile_is_503_within_gdals_timeout(
    tiles: Tiles, gdal_option: Callable[[str, str], None]
) -> None:
    """A block read that gets no answer ends at GDAL_HTTP_TIMEOUT, and GDAL's retries of it say the
    storage failed: 503, not 422 'damaged' nor a run into the function's timeout."""
    gdal_option("GDAL_HTTP_TIMEOUT", "1")  # deployed: 5 s
    gdal_option("GDAL_HTTP_RETRY_DELAY", "0.05")
    key = TCI_KEY.replace("2020/2/S2A_29RKH_20200219", "2020/4/S2A_29RKH_20200420")
    boto3.client("s3").copy_object(Bucket=ARCHIVE, Key=key, CopySource={"Bucket": ARCHIVE, "Key": TCI_KEY})
    query = f"url={quote(f's3://{ARCHIVE}/{key}', safe='')}"
    tile = f"/cog/tiles/WebMercatorQuad/12/1912/1750.png?{query}"  # inside one block of the TCI

    def hang(request: RecordedRequest) -> bool:
        if request[0] == "GET" and request[1].endswith(key) and request[2] is not None:
            time.sleep(1.5)  # longer than GDAL waits
        return False

    with tiles.client("cog") as client:
        assert client.get(f"/cog/info?{query}").status_code == 200
        with tiles.server.failing(hang):
            hung = client.get(tile)
        assert hung.status_code == 503 and hung.json() == {"detail": "busy: try again shortly"}, hung.text
        assert client.get(tile).status_code == 200


def test_a_product_build_waits_out_reads_slower_than_a_tile_would(
    tiles: Tiles, gdal_option: Callable[[str, str], None], tmp_path: Any
) -> None:
    """Builds are batch work: a read past the tiles' GDAL_HTTP_TIMEOUT (ten builds at once on one
    store) is waited for, not failed after the tiles' retries."""
    from sputnik.tasks.rgb_product import build_rgb_product

    gdal_option("GDAL_HTTP_TIMEOUT", "1")  # what the tiles wait here (deployed: 5 s)
    gdal_option("GDAL_HTTP_RETRY_DELAY", "0.05")
    key = TCI_KEY.replace("2020/2/S2A_29RKH_20200219", "2020/5/S2A_29RKH_20200520")
    boto3.client("s3").copy_object(Bucket=ARCHIVE, Key=key, CopySource={"Bucket": ARCHIVE, "Key": TCI_KEY})
    slow = iter(range(3))

    def hang(request: RecordedRequest) -> bool:
        if request[0] == "GET" and request[1].endswith(key) and next(slow, None) is not None:
            time.sleep(1.5)  # longer than a tile waits
        return False

    border = "POLYGON ((-11.5 24.7, -11.3 24.7, -11.3 24.9, -11.5 24.9, -11.5 24.7))"
    with tiles.server.failing(hang):
        made = build_rgb_product(f"s3://{ARCHIVE}/{key}", border, str(tmp_path / "product.tif"))
    assert next(slow, None) is None  # the three slow reads happened
    assert made.width > 0 and made.height > 0 and made.bytes_written > 0


@pytest.mark.parametrize(
    ("message", "troubled"),
    [
        ("HTTP error code: 503 - https://b.s3.amazonaws.com/k.tif. Retrying again in 0.5 secs", True),
        ("HTTP error code: 429 - https://b.s3.amazonaws.com/k.tif. Retrying again in 0.5 secs", True),
        ("HTTP error code: 0 - https://b.s3.amazonaws.com/k.tif. Retrying again in 0.5 secs", True),
        ("HTTP error code: 404 - https://b.s3.amazonaws.com/k.tif. Retrying again in 0.5 secs", False),
        ("HTTP response code on https://b.s3.amazonaws.com/k.tif: 500", True),
        ("HTTP response code on https://b.s3.amazonaws.com/503/k.tif: 404", False),
        ("HTTP response code on https://10.0.0.1:5003/k.tif: 403", False),
        ("TIFFFillTile:Read error at row 0, col 0, tile 0; got 0 bytes, expected 30558", False),
    ],
)
def test_only_gdals_retryable_http_answers_count_as_storage_trouble(message: str, troubled: bool) -> None:
    from sputnik.tiles.gdal import STORAGE_TROUBLE

    assert bool(STORAGE_TROUBLE.search(message)) is troubled
