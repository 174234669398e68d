"""`make run`'s demo data: the demo user, scenes ingested through S3 events, projects, products."""

from typing import Any

import httpx

from sputnik.local.run import DEMO_LOGIN, DEMO_PASSWORD, load_demo


def test_demo_data_is_served_as_the_readme_shows(stack: Any, front: Any) -> None:
    loaded = load_demo(stack)
    assert any("S2A_29RKH_20200219" in line for line in loaded), loaded
    with httpx.Client(base_url=front.url, auth=(DEMO_LOGIN, DEMO_PASSWORD), timeout=60) as demo:
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
        assert demo.get("/rgb/list", params={"project_id": real}).json() == {
            "product_ids": ["S2A_29RKH_20200219_0_L2A-rgb"]
        }
