"""The real Sentinel-2 scene of tests/fixtures (contains modified Copernicus Sentinel data 2020)."""

from pathlib import Path

SCENE = "S2A_29RKH_20200219_0_L2A"
SCENE_PREFIX = f"sentinel-s2-l2a-cogs/29/R/KH/2020/2/{SCENE}"  # its key prefix in the archive
SCENE_DIR = Path("sentinel-cogs") / SCENE_PREFIX  # its folder under tests/fixtures
