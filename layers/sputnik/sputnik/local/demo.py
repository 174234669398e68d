"""Demo data for `make run`: generated scenes and the real one, ingested through S3 notifications."""

import json
from pathlib import Path

from sputnik.local.stack import LocalStack
from sputnik.settings import get_settings

DEMO_TILES = ["33TWL", "33TXL"]
DEMO_DATES = ["2021-06-05", "2021-06-20", "2021-07-10"]
# A real Sentinel-2 L2A scene (contains modified Copernicus Sentinel data 2020), kept in the repository.
REAL_SCENE = Path("tests/fixtures/sentinel-cogs/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A")


def _square(lon0: float, lat0: float, lon1: float, lat1: float) -> str:
    """A GeoJSON Polygon of a lon/lat box, as text."""
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


DEMO_PROJECTS = [
    ("Pannonian fields", "2021-06-01", "2021-07-31", _square(15.9, 45.3, 16.3, 45.6)),
    ("Saharan coast (real scene)", "2020-02-01", "2020-02-29", _square(-11.6, 24.6, -11.2, 25.0)),
]


def has_real_scene(stack: LocalStack) -> bool:
    """Whether the real scene is in the checkout (it is not in an installed package)."""
    return (stack.template.root / REAL_SCENE).is_dir()


def load_scenes(stack: LocalStack, size: int = 256) -> str:
    """Upload generated scenes and the real one to the archive; S3 notifications ingest them."""
    from sputnik.archive import generate_archive, upload_fixture_scene

    s3 = stack.client("s3")
    bucket = get_settings().archive_bucket
    keys = generate_archive(s3, bucket, DEMO_TILES, DEMO_DATES, size=size)
    if has_real_scene(stack):
        keys.append(upload_fixture_scene(s3, bucket, stack.template.root / REAL_SCENE))
        note = ", the real S2A_29RKH_20200219 among them (Copernicus Sentinel data 2020)"
    else:
        note = f" (real scene not found at {REAL_SCENE})"
    return f"{len(keys)} scenes in s3://{bucket}{note}"


def load_projects(login: str) -> list[int]:
    """Create the demo projects for a login; they pick up the catalogued scenes at once."""
    from sputnik import projects

    return [
        int(projects.create_project(login, projects.validate(name, start, end, border)).project_id)
        for name, start, end, border in DEMO_PROJECTS
    ]


def load_rgb_product(stack: LocalStack, project_id: int, scene_id: str) -> str:
    """Copy a catalogued scene's TCI.tif into the project as its RGB product `{scene_id}-rgb`."""
    from sputnik.ingest import scene_from_record
    from sputnik.models import ProductModel, SceneModel

    settings = get_settings()
    scene = SceneModel.get(scene_id)
    key = f"projects/{project_id}/rgb/{scene_id}-rgb.tif"
    tci = scene_from_record(scene).asset_href("visual").removeprefix(f"s3://{settings.archive_bucket}/")
    stack.client("s3").copy_object(
        Bucket=settings.products_bucket, Key=key, CopySource={"Bucket": settings.archive_bucket, "Key": tci}
    )
    ProductModel(
        project_id, f"{scene_id}-rgb", kind="rgb", scene_id=scene_id, date=scene.date, key=key
    ).save()
    return f"{scene_id}-rgb"
