"""s2_composite end to end through the HTTP front and the local stack: the product, its record, failures."""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from sputnik.models import ProductModel
from sputnik.settings import get_settings
from sputnik_tools.local.stack import LocalStack
from tests.conftest import new_user
from tests.support import faults
from tests.support.tasks import DATES, finished, run, tile_project, unannounced_scenes

TILE = "34TDQ"  # the border at its middle lies inside every generated scene of these dates
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)
PERIOD = {"start_date": DATES[0], "end_date": DATES[-1]}


@pytest.fixture(scope="module")
def loaded(stack: LocalStack, front: Any) -> tuple[str, str, int, dict[str, Any]]:
    """A project over a tile's middle, its scenes found by s2_load_meta: (login, password, id, scenes)."""
    login, password = new_user("composite")
    with httpx.Client(base_url=front.url, auth=(login, password), timeout=60) as api:
        project_id = tile_project(api, TILE)
        scenes = unannounced_scenes(stack, TILE, DATES)
        assert finished(api, project_id, run(api, "s2_load_meta", project_id))["result"] == "SUCCESS"
    return login, password, project_id, scenes


@pytest.fixture
def owner(front: Any, loaded: tuple[str, str, int, dict[str, Any]]) -> Iterator[httpx.Client]:
    """The API as the project's owner."""
    with httpx.Client(base_url=front.url, auth=loaded[:2], timeout=60) as client:
        yield client


def download(stack: LocalStack, key: str, folder: Path) -> Path:
    """A product's COG, downloaded."""
    path = folder / key.rsplit("/", 1)[-1]
    stack.client("s3").download_file(get_settings().products_bucket, key, str(path))
    return path


def temporary_blocks(stack: LocalStack, event_id: int) -> list[str]:
    """Block files a run left behind."""
    listed = stack.client("s3").list_objects_v2(
        Bucket=get_settings().products_bucket, Prefix=f"tmp/composite/{event_id}/"
    )
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_median_composite_is_one_cog_with_a_count_band_recorded_with_its_coverage(
    stack: LocalStack, owner: httpx.Client, loaded: tuple[str, str, int, dict[str, Any]], tmp_path: Path
) -> None:
    api, (_, _, project_id, scenes) = owner, loaded
    params = {**PERIOD, "product": "rgb", "method": "median", "max_scene_cloud": 100}
    event_id = run(api, "s2_composite", project_id, params)
    proc = finished(api, project_id, event_id)
    assert (proc["status"], proc["result"], proc["message"]) == ("DONE", "SUCCESS", None), proc
    assert [(s["name"], s["result"]) for s in proc["scripts"]] == [
        ("plan_blocks", "SUCCESS"),
        ("composite_block", "SUCCESS"),
        ("assemble_composite", "SUCCESS"),
    ]
    assert proc["summary"]["scenes"] == len(scenes) and proc["summary"]["failed"] == 0
    product_id = f"composite:rgb:median:{DATES[0]}:{DATES[-1]}"
    record = ProductModel.get(project_id, product_id)
    key = f"projects/{project_id}/composite/rgb/median/{DATES[0]}_{DATES[-1]}.tif"
    assert (record.kind, record.key) == ("composite", key)
    details = record.details
    assert details["scenes"] == len(scenes) and details["failed_blocks"] == []
    assert details["bands"] == ["B04", "B03", "B02", "count"]

    path = download(stack, key, tmp_path)
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors
    with rasterio.open(path) as cog:
        assert cog.count == 4 and cog.dtypes[0] == "float32" and cog.res == (10.0, 10.0)
        assert cog.crs.to_epsg() == 32634  # the border's centroid lies in zone 34
        assert cog.descriptions == ("B04", "B03", "B02", "count")
        count = cog.read(4)
        rgb = cog.read([1, 2, 3])
    inside = ~np.isnan(count)
    # Masked outside the border: the lon/lat square's box in UTM reaches beyond it.
    assert 0 < inside.sum() < inside.size
    coverage = details["coverage"]
    assert coverage["pixels"] == int(inside.sum())
    assert coverage["max_count"] == int(count[inside].max()) <= len(scenes)
    assert coverage["min_count"] == int(count[inside].min())
    assert coverage["mean_count"] == pytest.approx(float(count[inside].mean()), abs=1e-4)
    assert coverage["observed_fraction"] == pytest.approx(float((count[inside] > 0).mean()), abs=1e-6)
    # A pixel has bands exactly where a clear observation lies behind it.
    assert np.array_equal(~np.isnan(rgb[0]), inside & (count > 0))
    assert temporary_blocks(stack, event_id) == []

    # Again: the same key and record are overwritten.
    again = finished(api, project_id, run(api, "s2_composite", project_id, params))
    assert again["result"] == "SUCCESS"
    composites = [p.product_id for p in ProductModel.query(project_id) if p.kind == "composite"]
    assert composites == [product_id]


def test_a_block_that_keeps_failing_leaves_the_product_errors_naming_its_extent(
    stack: LocalStack,
    owner: httpx.Client,
    loaded: tuple[str, str, int, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, project_id = owner, loaded[2]
    bound = os.environ["SPUTNIK_COMPOSITE_BLOCK_BYTES"]
    # Blocks of 512 px (the worker's memory bound set low): the border's box is two of them, north
    # and south. Set by hand, not by monkeypatch: the settings are read again once it is restored.
    os.environ["SPUTNIK_COMPOSITE_BLOCK_BYTES"] = str(512 * 512 * 160)
    get_settings.cache_clear()
    # S3 refuses the second block's file every time (botocore does not retry a refusal).
    denied = (403, {"Content-Type": "application/xml"}, ACCESS_DENIED)
    broken = faults.Fault(lambda r: r.method == "PUT" and "/block-00001.tif" in r.url, denied)
    faults.inject(monkeypatch, broken)
    try:
        params = {**PERIOD, "product": "ndvi", "method": "max_ndvi"}
        event_id = run(api, "s2_composite", project_id, params)
        proc = finished(api, project_id, event_id)
    finally:
        broken.stop()
        os.environ["SPUTNIK_COMPOSITE_BLOCK_BYTES"] = bound
        get_settings.cache_clear()
    assert (proc["status"], proc["result"]) == ("DONE", "ERRORS"), proc
    assert [s["result"] for s in proc["scripts"]] == ["SUCCESS", "ERRORS", "SUCCESS"]
    summary = proc["summary"]
    assert summary["failed"] == 1 and summary["succeeded"] == summary["items"] - 1 >= 1
    # Tried three times: the Map's Task retries a failed block twice.
    assert broken.failed == 3
    (message,) = summary["failures"]
    assert message.startswith("block 1 (lon ") and "failed" in message
    record = ProductModel.get(project_id, f"composite:ndvi:max_ndvi:{DATES[0]}:{DATES[-1]}")
    assert record.details["result"] == "ERRORS"
    (failed,) = record.details["failed_blocks"]
    assert failed["block"] == 1 and failed["crs"] == "EPSG:32634"
    left, bottom, right, top = failed["bounds"]
    assert 0 < right - left <= 5120 and 0 < top - bottom <= 5120  # at most 512 px of 10 m
    assert temporary_blocks(stack, event_id) == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({**PERIOD, "end_date": "2021-06-01"}, "end_date is before start_date"),
        ({"start_date": "2020-01-01", "end_date": "2021-06-01"}, "longer than 366 days"),
        ({**PERIOD, "start_date": "2021-02-30"}, "start_date"),
        ({"end_date": DATES[-1]}, "start_date"),
        ({**PERIOD, "method": "mean"}, "method"),
        ({**PERIOD, "product": "../etc"}, "product"),
        ({**PERIOD, "max_scene_cloud": 101}, "max_scene_cloud"),
        ({**PERIOD, "max_scene_cloud": -1}, "max_scene_cloud"),
        ({**PERIOD, "max_scene_cloud": "NaN"}, "max_scene_cloud"),
        ({**PERIOD, "block_size": 64}, "block_size"),
        ([DATES[0], DATES[-1]], "JSON object"),
    ],
)
def test_bad_composite_params_are_422_naming_the_problem_and_start_nothing(
    owner: httpx.Client, loaded: tuple[str, str, int, dict[str, Any]], params: Any, says: str
) -> None:
    project_id = loaded[2]
    before = owner.get("/proc/list", params={"project_id": project_id}).json()
    body = {"task": "s2_composite", "title": "bad", "project_id": project_id, "params": params}
    answer = owner.post("/task/run", json=body)
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["detail"][0]["msg"]
    assert owner.get("/proc/list", params={"project_id": project_id}).json() == before
