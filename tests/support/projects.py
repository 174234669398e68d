"""Projects as a user makes them through the API, and the real scene's place they are made over."""

import json
from typing import Any

import httpx

# The real scene of tests/fixtures (contains modified Copernicus Sentinel data 2020): a border
# inside it, and that border's bounding box.
SCENE_BBOX = (-11.6, 24.6, -11.2, 25.0)
SCENE_BORDER: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[-11.6, 24.6], [-11.2, 24.6], [-11.2, 25.0], [-11.6, 25.0], [-11.6, 24.6]]],
}
# A box in tile 33TWN inside the footprint of the v1 sample item (tests/fixtures/stac-items/v1),
# which the ingest tests make into scenes of other dates.
TWN_BBOX = (15.2, 47.3, 15.8, 47.6)


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> str:
    """A lon/lat box as GeoJSON text."""
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def new_project(
    api: httpx.Client,
    border: str | dict[str, Any],
    start: str | None = None,
    end: str | None = None,
    name: str = "p",
) -> int:
    """Create a project through the API (border as GeoJSON text or object); its id."""
    body: dict[str, Any] = {"name": name, "border": border if isinstance(border, str) else json.dumps(border)}
    if start:
        body["start_date"] = start
    if end:
        body["end_date"] = end
    r = api.post("/project/new", json=body)
    assert r.status_code == 200, r.text
    return int(r.json()["project_id"])
