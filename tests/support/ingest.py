"""What ingest tests send: S3 events as AWS sends them, STAC items written into the archive."""

import json
from pathlib import Path
from typing import Any

import httpx

from sputnik import stac
from sputnik.models import MetaModel, SceneModel
from sputnik.settings import get_settings
from tests.support.projects import TWN_BBOX, box, new_project


def s3_event(key: str, bucket: str | None = None, sequencer: str | None = None) -> dict[str, Any]:
    """An S3 ObjectCreated event as AWS sends it (key URL-encoded)."""
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": 1}
    if sequencer:
        obj["sequencer"] = sequencer
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-24T10:00:00.000Z",
                "s3": {"bucket": {"name": bucket or get_settings().archive_bucket}, "object": obj},
            }
        ]
    }


def put_item(stack: Any, item: dict[str, Any], key: str | None = None) -> str:
    """Write a STAC item into the archive at its layout key (the notification ingests it)."""
    key = key or stac.parse_item(item).key
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=key, Body=json.dumps(item).encode()
    )
    return key


def scene_item(
    fixtures_dir: Path, scene_id: str, tile: str, day: str, geometry: Any = None
) -> dict[str, Any]:
    """A real v1 item made into another scene of another tile and date."""
    item = json.loads((fixtures_dir / "stac-items/v1/S2A_33TWN_20210629_0_L2A.json").read_text())
    item["id"] = scene_id
    zone, band, square = int(tile[:2]), tile[2], tile[3:]
    item["properties"].update(
        {
            "mgrs:utm_zone": zone,
            "mgrs:latitude_band": band,
            "mgrs:grid_square": square,
            "grid:code": f"MGRS-{tile}",
        }
    )
    item["properties"]["datetime"] = f"{day}T10:00:00Z"
    if geometry is not None:
        item["geometry"] = geometry
    return item


def fresh_scene(stack: Any, fixtures_dir: Path, api: httpx.Client, scene_id: str) -> tuple[str, str, int]:
    """An item of tile 33TWN in the archive, not catalogued, and a new project it matches: (key, id, project).

    The test delivers the item's event itself: whatever the bucket's notification did is undone.
    """
    day = f"{scene_id[10:14]}-{scene_id[14:16]}-{scene_id[16:18]}"
    project = new_project(api, box(*TWN_BBOX), day, day)
    item = scene_item(fixtures_dir, scene_id, "33TWN", day)
    key = stac.parse_item(item).key
    stack.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=json.dumps(item))
    SceneModel(scene_id).delete()
    for meta in MetaModel.query(project):
        meta.delete()
    return key, scene_id, project
