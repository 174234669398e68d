"""`make run`'s demo data: the demo user, scenes ingested through S3 events, projects, products."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy
import pytest
import rasterio

from sputnik_tools.local.run import DEMO_LOGIN, DEMO_PASSWORD, load_demo
from tests.conftest import REPO
from tests.support.projects import new_project
from tests.support.tasks import finished


@pytest.fixture(scope="module")
def loaded(stack: Any) -> list[str]:
    """The demo data, loaded once into this process's stack (whichever test comes first)."""
    return load_demo(stack)


@pytest.fixture
def demo(front: Any, loaded: list[str]) -> Iterator[httpx.Client]:
    """A client signed in as the demo user."""
    with httpx.Client(base_url=front.url, auth=(DEMO_LOGIN, DEMO_PASSWORD), timeout=60) as client:
        yield client


def test_demo_data_is_served_as_the_readme_shows(loaded: list[str], demo: httpx.Client) -> None:
    assert any("S2A_29RKH_20200219" in line for line in loaded), loaded
    projects = demo.get("/project/list").json()["projects"]
    assert [p["name"] for p in projects][:2] == ["Pannonian fields", "Saharan coast (real scene)"]
    first, real = projects[0]["project_id"], projects[1]["project_id"]
    assert demo.get("/meta/dates", params={"project_id": first}).json()["dates"] == [
        "2021-06-05",
        "2021-06-20",
        "2021-07-10",
    ]
    metas = demo.get("/meta/list", params={"project_id": real, "date": "2020-02-19"}).json()["metas"]
    assert [m["scene_id"] for m in metas] == ["S2A_29RKH_20200219_0_L2A"]
    # The first project's NDVI series, every scene of its three dates, as the README charts it.
    series = demo.get("/stats/series", params={"project_id": first, "index": "ndvi"}).json()["points"]
    scenes = [
        m["scene_id"]
        for d in ("2021-06-05", "2021-06-20", "2021-07-10")
        for m in demo.get("/meta/list", params={"project_id": first, "date": d}).json()["metas"]
    ]
    assert sorted(p["scene_id"] for p in series) == sorted(scenes) and len(scenes) >= 3
    assert demo.get("/rgb/list", params={"project_id": real}).json() == {
        "product_ids": ["S2A_29RKH_20200219_0_L2A-rgb"]
    }


def test_demo_runs_both_tasks_as_the_readme_shows(demo: httpx.Client) -> None:
    # The README's tasks session, on a project of its own over the first demo project's border and
    # dates: the demo projects stay as loaded for the test above, whichever runs first.
    listed = demo.get("/project/list").json()["projects"][0]["project_id"]
    shown = demo.get("/project/info", params={"project_id": listed}).json()
    first = new_project(demo, shown["border_gj"], shown["start_date"], shown["end_date"], name="session")
    hidden = "S2B_33TWL_20210725_0_L2A"
    assert "2021-07-25" not in demo.get("/meta/dates", params={"project_id": first}).json()["dates"]
    body = {"task": "s2_load_meta", "title": "archive pull", "project_id": first}
    meta = finished(demo, first, demo.post("/task/run", json=body).json()["event_id"])
    assert (meta["result"], meta["summary"]["new"]) == ("SUCCESS", 1)
    metas = demo.get("/meta/list", params={"project_id": first, "date": "2021-07-25"}).json()["metas"]
    assert [m["scene_id"] for m in metas] == [hidden]
    body = {
        "task": "s2_load_data",
        "title": "July RGB",
        "project_id": first,
        "params": {"date": "2021-07-25"},
    }
    data = finished(demo, first, demo.post("/task/run", json=body).json()["event_id"])
    assert data["result"] == "SUCCESS"
    assert f"{hidden}-rgb" in demo.get("/rgb/list", params={"project_id": first}).json()["product_ids"]


def shown(picture: bytes) -> float:
    """The share of a tile's pixels that are not transparent."""
    with rasterio.MemoryFile(picture) as memory, memory.open() as image:
        return float(numpy.mean(image.read(image.count) > 0))


def test_the_readmes_mosaic_and_composite_tiles_show_the_demo_data(demo: httpx.Client) -> None:
    """Each tile the README fetches from the demo is mostly imagery, and its cloud mask hides some."""
    readme = (REPO / "README.md").read_text()
    urls = re.findall(r"'http://127\.0\.0\.1:8000(/(?:mosaic|product)/tile/\d+/[^']+)'", readme)
    assert len(urls) >= 4, urls
    # The README's project ids are the demo's first three, in order.
    projects = [p["project_id"] for p in demo.get("/project/list").json()["projects"][:3]]
    shares = {}
    for url in urls:
        kind, project, rest = re.fullmatch(r"/(\w+)/tile/(\d+)/(.+)", url).groups()  # type: ignore[union-attr]
        got = demo.get(f"/{kind}/tile/{projects[int(project) - 1]}/{rest}")
        assert got.status_code == 200, (url, got.text)
        shares[url] = shown(got.content)
        assert shares[url] >= 0.25, f"{url}: {shares[url]:.0%} of the tile shows anything"
    for url, share in shares.items():
        if url.endswith("?mask=clouds"):
            assert share < shares[url.removesuffix("?mask=clouds")], url
