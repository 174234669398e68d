"""s2_index end to end through the HTTP front: a product and statistics per scene, a broken band, a rerun."""

from pathlib import Path

import httpx
import numpy as np
import rasterio
from rio_cogeo.cogeo import cog_validate

from sputnik import stac
from sputnik.models import MetaModel, ProductModel
from sputnik.settings import get_settings
from sputnik_tools.local.stack import LocalStack
from tests.support.tasks import DATES, finished, run, tile_project, unannounced_scenes

TILE = "35TLF"  # a tile of its own: GDAL may cache what it read of an archive object


def series(project_id: int, index: str) -> list[ProductModel]:
    """The index's products of a project, as the routes read them: one Query on the id's prefix."""
    return list(ProductModel.query(project_id, ProductModel.product_id.startswith(f"index:{index}:")))


def test_s2_index_records_a_cog_and_statistics_per_scene_fails_a_broken_band_and_reruns_in_place(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    project_id = tile_project(api, TILE)
    scenes = unannounced_scenes(stack, TILE, DATES)
    assert finished(api, project_id, run(api, "s2_load_meta", project_id))["result"] == "SUCCESS"
    # The scenes whose footprint covers the border (a swath edge may leave one out), oldest first.
    met = sorted((str(m.date), str(m.scene_id)) for m in MetaModel.query(project_id))
    by_date = [scenes[scene_id] for _, scene_id in met]
    assert len(by_date) >= 2, met
    broken = by_date[-1]
    key = stac.scene_prefix(TILE, broken.date, broken.scene_id) + "B08.tif"
    archive = get_settings().archive_bucket
    stack.client("s3").put_object(Bucket=archive, Key=key, Body=b"II*\x00 this is not a TIFF any more")

    proc = finished(api, project_id, run(api, "s2_index", project_id, {"index": "NDVI"}))
    assert (proc["status"], proc["result"], proc["message"]) == ("DONE", "ERRORS", None)
    assert [(s["name"], s["result"]) for s in proc["scripts"]] == [
        ("resolve_scenes", "SUCCESS"),
        ("build_index", "ERRORS"),
        ("summarise", "SUCCESS"),
    ]
    assert (proc["summary"]["succeeded"], proc["summary"]["failed"]) == (len(by_date) - 1, 1)
    [failure] = proc["summary"]["failures"]
    assert failure.startswith(f"{broken.scene_id}: scene {broken.scene_id}: cannot read a band")
    assert "/" not in failure

    made = series(project_id, "ndvi")
    good = [s for s in by_date if s is not broken]
    # Oldest first, as the id sorts; each row names its index, scene, date, key and statistics.
    assert [(p.scene_id, p.date) for p in made] == [(s.scene_id, s.date) for s in good]
    products = get_settings().products_bucket
    for product, scene in zip(made, good, strict=True):
        assert product.product_id == f"index:ndvi:{scene.date}:{scene.scene_id}"
        assert (product.kind, product.index) == ("index", "ndvi")
        assert product.key == f"projects/{project_id}/index/ndvi/{scene.scene_id}.tif"
        path = tmp_path / f"{scene.scene_id}.tif"
        stack.client("s3").download_file(products, product.key, str(path))
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        with rasterio.open(path) as cog:
            values = cog.read(1)
        clear = values[~np.isnan(values)]
        stats = product.stats
        assert stats["valid_pixels"] == clear.size > 0
        assert stats["median"] == np.float64(np.median(clear)) and stats["max"] == clear.max()
        assert 0 < stats["clear_fraction"] <= 1
        assert product.details["mask"] == [0, 1, 3, 8, 9, 10]

    # Again for one date: its key and row are overwritten, nothing is added.
    first = made[0]
    again = finished(api, project_id, run(api, "s2_index", project_id, {"index": "ndvi", "date": first.date}))
    assert (again["result"], again["summary"]["succeeded"]) == ("SUCCESS", 1)
    after = series(project_id, "ndvi")
    assert [p.product_id for p in after] == [p.product_id for p in made]
    assert after[0].key == first.key and after[0].stats == first.stats

    # A mask given at /task/run reaches the build: vegetation and bare land masked instead of clouds.
    params = {"index": "ndvi", "date": first.date, "mask": [4, 5]}
    remasked = finished(api, project_id, run(api, "s2_index", project_id, params))
    assert remasked["result"] == "SUCCESS"
    [remade] = [p for p in series(project_id, "ndvi") if p.product_id == first.product_id]
    assert remade.details["mask"] == [4, 5]
    assert remade.stats["valid_pixels"] < first.stats["valid_pixels"]
    assert remade.stats["clear_fraction"] < first.stats["clear_fraction"]
