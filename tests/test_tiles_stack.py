"""Tiles end to end: the real scene in the local stack's archive, served through the HTTP front."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import morecantile
import pytest
from rasterio.warp import transform_bounds
from rio_tiler.io import Reader

from sputnik.settings import get_settings
from sputnik.tiles.gdal import configure_gdal
from sputnik_tools.archive import upload_fixture_scene
from sputnik_tools.local.demo import load_rgb_product
from tests.conftest import new_user, owner_of
from tests.support.projects import SCENE_BORDER
from tests.support.tiles import assert_same_pixels, decode_png, expected_tile

SCENE = "sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A"
SCENE_ID = "S2A_29RKH_20200219_0_L2A"
TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def real_scene(stack: Any, fixtures_dir: Path) -> dict[str, Any]:
    """The real scene uploaded to the archive (ingested by its notification) and a project over it."""
    configure_gdal()  # as the Cog and Rgb functions do at import; the test reads S3 through GDAL too
    item_key = upload_fixture_scene(stack.client("s3"), get_settings().archive_bucket, fixtures_dir / SCENE)
    tci = f"s3://{get_settings().archive_bucket}/{item_key.rsplit('/', 1)[0]}/TCI.tif"
    login, password = new_user("tiles")
    from sputnik import projects

    border = json.dumps(SCENE_BORDER)
    project = projects.create_project(
        owner_of(login), login, projects.validate("real", "2020-02-01", "2020-02-29", border)
    )
    product = load_rgb_product(stack, int(project.project_id), SCENE_ID)
    with Reader(tci) as cog:
        bounds = transform_bounds(cog.crs, "EPSG:4326", *cog.bounds)
    lon, lat = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    return {
        "tci": tci,
        "auth": (login, password),
        "project": int(project.project_id),
        "product": product,
        "tile": TMS.tile(lon, lat, 10),
    }


def test_cog_tile_through_the_front_equals_rio_tiler(front: Any, real_scene: dict[str, Any]) -> None:
    t = real_scene["tile"]
    with httpx.Client(base_url=front.url, auth=real_scene["auth"], timeout=60) as api:
        r = api.get(f"/cog/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}.png", params={"url": real_scene["tci"]})
        legacy = api.get(f"/cog/tiles/{t.z}/{t.x}/{t.y}@1x.png", params={"url": real_scene["tci"]})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert_same_pixels(r.content, expected_tile(real_scene["tci"], t.z, t.x, t.y))
    assert legacy.content == r.content


def test_rgb_list_and_tile_through_the_front(front: Any, real_scene: dict[str, Any]) -> None:
    t, project, product = real_scene["tile"], real_scene["project"], real_scene["product"]
    with httpx.Client(base_url=front.url, auth=real_scene["auth"], timeout=60) as api:
        assert api.get("/rgb/list", params={"project_id": project}).json() == {"product_ids": [product]}
        r = api.get(f"/rgb/tile/{project}/{product}/{t.z}/{t.x}/{t.y}")
        again = api.get(
            f"/rgb/tile/{project}/{product}/{t.z}/{t.x}/{t.y}", headers={"if-none-match": r.headers["etag"]}
        )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert decode_png(r.content).shape == (4, 256, 256)
    key = f"s3://{get_settings().products_bucket}/projects/{project}/rgb/{product}.tif"
    assert_same_pixels(r.content, expected_tile(key, t.z, t.x, t.y))
    assert again.status_code == 304


def test_tilejson_and_wmts_links_work_when_followed(front: Any, real_scene: dict[str, Any]) -> None:
    with httpx.Client(base_url=front.url, auth=real_scene["auth"], timeout=60) as api:
        tilejson = api.get("/cog/tilejson.json", params={"url": real_scene["tci"]}).json()
        template = tilejson["tiles"][0]
        assert template.startswith(front.url + "/cog/")
        t = real_scene["tile"]
        followed = api.get(
            template.replace("{z}", str(t.z)).replace("{x}", str(t.x)).replace("{y}", str(t.y))
        )
        assert followed.status_code == 200 and followed.headers["content-type"].startswith("image/")

        wmts = api.get("/cog/WMTSCapabilities.xml", params={"url": real_scene["tci"]})
        assert wmts.status_code == 200 and "xml" in wmts.headers["content-type"]
        root = ET.fromstring(wmts.content)
        urls = [e.get("template") for e in root.iter() if e.tag.endswith("ResourceURL")]
        assert urls and urls[0].startswith(front.url)
        filled = (
            urls[0]
            .replace("{TileMatrix}", str(t.z))
            .replace("{TileCol}", str(t.x))
            .replace("{TileRow}", str(t.y))
            .replace("{TileMatrixSet}", "WebMercatorQuad")
        )
        assert api.get(filled).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/vsicurl/http://169.254.169.254/latest/meta-data/",
        "https://example.com/a.tif",
        "s3://another-bucket/a.tif",
        "s3://{archive}/../{products}/projects/1/x.tif",
    ],
)
def test_hostile_urls_are_refused_through_the_front(front: Any, real_scene: dict[str, Any], url: str) -> None:
    url = url.format(archive=get_settings().archive_bucket, products=get_settings().products_bucket)
    with httpx.Client(base_url=front.url, auth=real_scene["auth"], timeout=60) as api:
        r = api.get("/cog/info", params={"url": url})
    assert 400 <= r.status_code < 500
    assert quote(url) not in r.text and url not in r.text


def test_another_users_products_are_404(front: Any, real_scene: dict[str, Any]) -> None:
    project, product, t = real_scene["project"], real_scene["product"], real_scene["tile"]
    key = f"s3://{get_settings().products_bucket}/projects/{project}/rgb/{product}.tif"
    with httpx.Client(base_url=front.url, auth=new_user("intruder"), timeout=60) as other:
        assert other.get("/rgb/list", params={"project_id": project}).status_code == 404
        assert other.get(f"/rgb/tile/{project}/{product}/{t.z}/{t.x}/{t.y}").status_code == 404
        assert other.get("/cog/info", params={"url": key}).status_code == 404
    assert httpx.get(f"{front.url}/cog/info", params={"url": real_scene["tci"]}).status_code == 401
