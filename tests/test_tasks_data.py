"""s2_load_data end to end through the HTTP front: products as valid COGs, served, one per scene, faults."""

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_validate
from rio_tiler.constants import WEB_MERCATOR_TMS

from sputnik import stac
from sputnik.settings import get_settings
from sputnik_tools.local.stack import LocalStack
from tests.support.tasks import (
    DATES,
    finished,
    run,
    tile_border_bounds,
    tile_project,
    unannounced_scenes,
)
from tests.support.tiles import decode_png

TILE = "34TDQ"  # the border at its middle lies inside every generated scene of these dates


def product(stack: LocalStack, project_id: int, product_id: str, folder: Path) -> Path:
    """Download a product's COG."""
    path = folder / f"{product_id}.tif"
    key = f"projects/{project_id}/rgb/{product_id}.tif"
    stack.client("s3").download_file(get_settings().products_bucket, key, str(path))
    return path


def loaded_project(
    stack: LocalStack, api: httpx.Client, tile: str = TILE
) -> tuple[int, dict[str, stac.Scene]]:
    """A project whose scenes were found by s2_load_meta."""
    project_id = tile_project(api, tile)
    scenes = unannounced_scenes(stack, tile, DATES)
    assert finished(api, project_id, run(api, "s2_load_meta", project_id))["result"] == "SUCCESS"
    return project_id, scenes


def test_s2_load_data_makes_a_valid_masked_cog_per_scene_served_as_tiles(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    project_id, scenes = loaded_project(stack, api)
    proc = finished(api, project_id, run(api, "s2_load_data", project_id))
    assert (proc["status"], proc["result"]) == ("DONE", "SUCCESS")
    assert [(s["name"], s["status"], s["result"]) for s in proc["scripts"]] == [
        ("resolve_scenes", "DONE", "SUCCESS"),
        ("build_product", "DONE", "SUCCESS"),
        ("summarise", "DONE", "SUCCESS"),
    ]
    assert (proc["summary"]["items"], proc["summary"]["succeeded"], proc["summary"]["failed"]) == (3, 3, 0)
    expected = sorted(f"{sid}-rgb" for sid in scenes)
    assert api.get("/rgb/list", params={"project_id": project_id}).json()["product_ids"] == expected

    west, south, east, north = tile_border_bounds(TILE)
    for product_id in expected:
        path = product(stack, project_id, product_id, tmp_path)
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        with rasterio.open(path) as cog:
            # Overviews once the product is larger than one block (these test scenes are small).
            assert cog.count == 3 and (cog.overviews(1) or max(cog.width, cog.height) <= 512)
            mask = cog.dataset_mask()
            # Masked outside the border: the box's corners in UTM reach beyond the lon/lat square.
            assert 0 < np.count_nonzero(mask) < mask.size
        t = WEB_MERCATOR_TMS.tile((west + east) / 2, (south + north) / 2, 13)
        tile = api.get(f"/rgb/tile/{project_id}/{product_id}/{t.z}/{t.x}/{t.y}")
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
        assert decode_png(tile.content)[3].any()

    # Again, for one date: the same key and record are overwritten, nothing is duplicated.
    day = DATES[0]
    again = finished(api, project_id, run(api, "s2_load_data", project_id, {"date": day}))
    assert again["result"] == "SUCCESS" and again["summary"]["succeeded"] == 1
    assert api.get("/rgb/list", params={"project_id": project_id}).json()["product_ids"] == expected
    keys = stack.client("s3").list_objects_v2(
        Bucket=get_settings().products_bucket, Prefix=f"projects/{project_id}/rgb/"
    )["Contents"]
    assert sorted(k["Key"].rsplit("/", 1)[-1] for k in keys) == [f"{p}.tif" for p in expected]


def test_one_corrupt_tci_fails_that_scene_only(stack: LocalStack, api: httpx.Client, tmp_path: Path) -> None:
    # Another tile than the other tests: GDAL may cache what it read of an archive object, which
    # never changes in the real archive.
    tile = "32TNS"
    project_id, scenes = loaded_project(stack, api, tile)
    broken = sorted(scenes)[1]
    tci = stac.scene_prefix(tile, scenes[broken].date, broken) + "TCI.tif"
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=tci, Body=b"II*\x00 this is not a TIFF any more"
    )
    unknown = "S2B_32TNS_20210606_0_L2A"
    proc = finished(
        api, project_id, run(api, "s2_load_data", project_id, {"scene_ids": [*sorted(scenes), unknown]})
    )
    assert (proc["status"], proc["result"], proc["message"]) == ("DONE", "ERRORS", None)
    assert [s["result"] for s in proc["scripts"]] == ["SUCCESS", "ERRORS", "SUCCESS"]
    assert (proc["summary"]["succeeded"], proc["summary"]["failed"]) == (2, 2)
    failures = proc["summary"]["failures"]
    assert failures[0].startswith(f"{broken}: ") and "/" not in failures[0].removeprefix(broken)
    assert failures[1] == f"{unknown}: scene {unknown} is not among the project's scenes"
    good = sorted(f"{sid}-rgb" for sid in scenes if sid != broken)
    assert api.get("/rgb/list", params={"project_id": project_id}).json()["product_ids"] == good
    for product_id in good:
        valid, errors, _ = cog_validate(str(product(stack, project_id, product_id, tmp_path)))
        assert valid, errors


def test_a_scene_of_another_project_is_not_made(stack: LocalStack, api: httpx.Client) -> None:
    _, scenes = loaded_project(stack, api)
    elsewhere = tile_project(api, TILE, start="2020-01-01", end="2020-01-31")
    proc: dict[str, Any] = finished(
        api, elsewhere, run(api, "s2_load_data", elsewhere, {"scene_ids": sorted(scenes)[:1]})
    )
    assert proc["result"] == "ERRORS" and proc["summary"]["failed"] == 1
    assert api.get("/rgb/list", params={"project_id": elsewhere}).json() == {"product_ids": []}
    nothing = finished(api, elsewhere, run(api, "s2_load_data", elsewhere))
    assert (nothing["result"], nothing["summary"]["items"]) == ("SUCCESS", 0)


def test_a_scene_whose_tci_href_leaves_the_archives_fails_that_scene_before_anything_opens_it(
    stack: LocalStack, api: httpx.Client
) -> None:
    from sputnik.models import MetaModel, SceneModel

    tile = "31UDQ"  # a tile of its own: scene records outlive a test within one process
    project_id, _ = loaded_project(stack, api, tile)
    met = sorted(str(meta.scene_id) for meta in MetaModel.query(project_id))
    assert len(met) >= 2, met
    hostile, good = met[0], [f"{sid}-rgb" for sid in met[1:]]
    record = SceneModel.get(hostile)
    assets = dict(record.assets.as_dict() if hasattr(record.assets, "as_dict") else record.assets)
    named = [name for name in assets if name in ("visual", "TCI")]
    assert named, assets
    for href in (
        "https://evil.example/sentinel-s2-l2a-cogs/TCI.tif",
        "s3://another-bucket/sentinel-s2-l2a-cogs/31/U/DQ/TCI.tif",
        "file:///etc/passwd",
    ):
        record.assets = {**assets, **dict.fromkeys(named, href)}
        record.save()
        proc = finished(api, project_id, run(api, "s2_load_data", project_id))
        summary = proc["summary"]
        assert (proc["result"], summary["succeeded"], summary["failed"]) == ("ERRORS", len(good), 1), href
        assert summary["failures"] == [
            f"{hostile}: scene {hostile}: its TCI is not an object of an archive bucket"
        ]
        assert api.get("/rgb/list", params={"project_id": project_id}).json()["product_ids"] == good
