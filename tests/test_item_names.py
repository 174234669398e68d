"""Archive items must carry an Earth Search scene id and an ESA product name: anything else is a bad item."""

import json
from pathlib import Path
from typing import Any

import pytest
from pynamodb.exceptions import DoesNotExist

from sputnik import ingest, stac
from sputnik.errors import InvalidItem
from sputnik.models import SceneModel
from sputnik.settings import get_settings
from tests.support.ingest import s3_event

V0 = "stac-items/v0/S2A_31NBJ_20190524_0_L2A.json"
V1 = "stac-items/v1/S2A_33TWN_20210629_0_L2A.json"
PRODUCT_FIELD = {V0: "sentinel:product_id", V1: "s2:product_uri"}
HOSTILE = [
    '<img src=x onerror="alert(1)">',
    "S2A_MSIL2A_20210629T100031_N0300_R122_T33TWN_20210629T122056<script>",
    "../../S2A_MSIL2A_20210629T100031_N0300_R122_T33TWN_20210629T122056",
    "S2A_MSIL1C_20210629T100031_N0300_R122_T33TWN_20210629T122056",  # level 1C is not this archive's
]


def real_items(fixtures_dir: Path) -> list[Path]:
    """Every real Earth Search item kept in the fixtures, of both schemas."""
    return sorted((fixtures_dir / "stac-items").rglob("*.json")) + sorted(
        (fixtures_dir / "sentinel-cogs").rglob("*.json")
    )


def test_every_real_item_of_both_schemas_has_names_of_the_patterns(fixtures_dir: Path) -> None:
    items = real_items(fixtures_dir)
    assert {p.parent.name for p in items} >= {"v0", "v1"}
    for path in items:
        scene = stac.parse_item(path.read_bytes())
        assert stac.EARTH_SEARCH_ID_RE.fullmatch(scene.scene_id)
        assert stac.ESA_PRODUCT_RE.fullmatch(scene.filename), path


@pytest.mark.parametrize("schema", [V0, V1])
@pytest.mark.parametrize("name", HOSTILE)
def test_an_item_whose_product_name_is_not_esas_is_refused(
    fixtures_dir: Path, schema: str, name: str
) -> None:
    item: dict[str, Any] = json.loads((fixtures_dir / schema).read_text())
    item["properties"][PRODUCT_FIELD[schema]] = name + (".SAFE" if schema == V1 else "")
    with pytest.raises(InvalidItem, match="not an ESA Sentinel-2 L2A product name"):
        stac.parse_item(item)


@pytest.mark.parametrize("scene_id", ["S2A_33TWN_20210629_0_L2A.html", "evil", "S2A_33TWN_20210629_0_L1C"])
def test_an_item_whose_id_is_not_an_earth_search_scene_id_is_refused(
    fixtures_dir: Path, scene_id: str
) -> None:
    item = json.loads((fixtures_dir / V1).read_text())
    item["id"] = scene_id
    with pytest.raises(InvalidItem, match="not an Earth Search Sentinel-2 L2A scene id"):
        stac.parse_item(item)


def test_ingest_skips_an_item_with_a_hostile_product_name_and_writes_nothing(
    stack: Any, fixtures_dir: Path
) -> None:
    item = json.loads((fixtures_dir / V1).read_text())
    item["id"] = "S2A_33TWN_20210629_8_L2A"
    key = stac.item_key("33TWN", "2021-06-29", item["id"])
    item["properties"]["s2:product_uri"] = HOSTILE[0]
    stack.client("s3").put_object(
        Bucket=get_settings().archive_bucket, Key=key, Body=json.dumps(item).encode()
    )
    assert ingest.handle(s3_event(key))["skipped"] == 1
    with pytest.raises(DoesNotExist):
        SceneModel.get(item["id"])
