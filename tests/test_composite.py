"""Composites against their oracles, on generated scenes with known clouds read from the local archive.

Blocks are reduced by the stage's library code exactly as the Map runs them, then stitched; the
oracle reads the values the test wrote (no GDAL) and reduces them with numpy.
"""

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import box

from sputnik import composite
from sputnik.bands import Grid
from sputnik.stac import Scene
from sputnik.tiles.gdal import configure_gdal
from sputnik_tools.local.stack import LocalStack
from tests.conftest import REPO
from tests.support.composites import Generated, box_border, lonlat, on_grid, random_scene, write_scene

EPSG = 32633
ORIGIN = (600000.0, 5100000.0)
SIZE = 64  # px of 10 m: 640 m scenes
# The border: inside the scenes, off their edges, so that blocks are cut from several scenes.
BORDER = box_border(EPSG, 600070.0, 5099440.0, 600590.0, 5099950.0)
SMALL_BLOCKS = 32 * 32 * 300  # bytes: blocks of 32 px for these few scenes, 2 x 2 over the border


def stitched(
    scenes: list[Scene], product: str, method: str, memory: int = SMALL_BLOCKS
) -> tuple[Grid, np.ndarray, np.ndarray, int]:
    """The composite made block by block as the task makes it: (grid, bands, count, blocks)."""
    plan = composite.plan(BORDER, [(s.scene_id, s.footprint) for s in scenes], product, method, memory)
    by_id = {s.scene_id: s for s in scenes}
    bands = np.full((len(composite.output_bands(product)), *plan.grid.shape), np.nan, dtype=np.float32)
    count = np.full(plan.grid.shape, -1, dtype=np.int32)
    for block in plan.blocks:
        made = composite.composite_block(
            [by_id[sid] for sid in block.scene_ids], product, method, plan.grid.window(block.window), BORDER
        )
        rows, cols = block.window.toslices()
        bands[:, rows, cols] = made.bands
        count[rows, cols] = np.where(made.inside, made.count.astype(np.int32), -1)
    return plan.grid, bands, count, len(plan.blocks)


@pytest.fixture(scope="module")
def generated(stack: LocalStack) -> list[Generated]:
    """Five scenes of random values and clouds on one 10 m grid, two shifted by whole pixels."""
    configure_gdal()
    s3, rng = stack.client("s3"), np.random.default_rng(19)
    scenes = []
    for i in range(5):
        shift = (i % 2) * 100.0  # some scenes start 10 pixels further east and south
        scenes.append(random_scene(s3, rng, i, EPSG, (ORIGIN[0] + shift, ORIGIN[1] - shift), SIZE))
    return scenes


def stacked(generated: list[Generated], grid: Grid, bands: tuple[str, ...]) -> np.ndarray:
    """The oracle's stack: each scene's masked reflectance on the output grid, (scenes, bands, rows, cols)."""
    return np.stack(
        [
            np.stack([on_grid(g, g.reflectance(b), grid.transform, grid.shape) for b in bands])
            for g in generated
        ]
    )


def test_the_median_composite_equals_numpy_nanmedian_over_the_stacked_masked_windows(
    generated: list[Generated],
) -> None:
    grid, bands, count, blocks = stitched([g.scene for g in generated], "rgb", "median")
    assert blocks == 4  # the comparison crosses block edges
    stack = stacked(generated, grid, composite.RGB_BANDS)
    inside = count >= 0
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(stack, axis=0)
    expected[:, ~inside] = np.nan
    assert np.array_equal(bands, expected, equal_nan=True)
    # The count band is the number of clear observations behind each pixel.
    clear = ~np.isnan(stack[:, 0])
    assert np.array_equal(count[inside], clear.sum(axis=0)[inside])
    assert count[inside].min() == 0 and count[inside].max() == 5  # both ends occur here
    assert inside.any() and not inside.all()


def ndvi(reds: np.ndarray, nirs: np.ndarray) -> np.ndarray:
    """NDVI of reflectance stacks."""
    with np.errstate(all="ignore"):
        return (nirs - reds) / (nirs + reds)


def test_max_ndvi_takes_every_band_from_the_observation_with_the_highest_ndvi(
    generated: list[Generated],
) -> None:
    grid, bands, count, _ = stitched([g.scene for g in generated], "rgb", "max_ndvi")
    stack = stacked(generated, grid, ("B04", "B03", "B02", "B08"))
    index = ndvi(stack[:, 0], stack[:, 3])
    inside, seen = count >= 0, count > 0
    assert np.array_equal(seen, inside & ~np.isnan(index).all(axis=0))
    best = np.nanargmax(np.where(np.isnan(index), -np.inf, index), axis=0)
    expected = np.take_along_axis(stack[:, :3], best[np.newaxis, np.newaxis], axis=0)[0]
    assert np.array_equal(bands[:, seen], expected[:, seen])
    assert np.isnan(bands[:, ~seen]).all()
    # And as an NDVI product, the value is that highest NDVI.
    _, values, _, _ = stitched([g.scene for g in generated], "ndvi", "max_ndvi", composite.DEFAULT_MEMORY)
    assert np.allclose(values[0][seen], np.nanmax(index, axis=0)[seen], rtol=0, atol=1e-6)


def test_least_cloud_takes_the_clear_observation_of_the_least_cloudy_scene(
    generated: list[Generated],
) -> None:
    by_cloud = sorted(generated, key=lambda g: (g.scene.cloud_cover, g.scene.date, g.scene.scene_id))
    assert [g.scene.cloud_cover for g in by_cloud] != [g.scene.cloud_cover for g in generated]
    grid, bands, count, _ = stitched([g.scene for g in by_cloud], "rgb", "least_cloud")
    stack = stacked(by_cloud, grid, composite.RGB_BANDS)
    seen = count > 0
    first = np.argmax(~np.isnan(stack[:, 0]), axis=0)
    expected = np.take_along_axis(stack, first[np.newaxis, np.newaxis], axis=0)[0]
    assert np.array_equal(bands[:, seen], expected[:, seen])


def test_a_border_across_a_utm_zone_boundary_gives_one_seamless_product(stack: LocalStack) -> None:
    # Two overlapping scenes, one in zone 33 and one in zone 34, whose surface is the same function
    # of lon/lat, every pixel clear: the composite (in the centroid's zone, 34) must have no hole
    # and no step where the zone-33 scene was warped in.
    s3 = stack.client("s3")
    configure_gdal()

    def surface(epsg: int, origin: tuple[float, float], size: int) -> np.ndarray:
        xs = origin[0] + 10.0 * (np.arange(size) + 0.5)
        ys = origin[1] - 10.0 * (np.arange(size) + 0.5)
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(*np.meshgrid(xs, ys))
        # About 1 digital number per 10 m eastward and northward.
        return np.rint(3000 + (lon - 17.9) * 7800 + (lat - 45.0) * 11000).astype(np.uint16)

    size = 160
    to_33 = Transformer.from_crs(4326, 32633, always_xy=True)
    to_34 = Transformer.from_crs(4326, 32634, always_xy=True)
    x33, y33 = to_33.transform(17.985, 45.02)  # a scene west of the boundary (18 E), reaching past it
    x34, y34 = to_34.transform(17.995, 45.02)  # and one east of it, starting before it
    made = []
    for i, (epsg, x, y) in enumerate(((32633, x33, y33), (32634, x34, y34))):
        origin = (round(x / 10) * 10.0, round(y / 10) * 10.0)
        numbers = {"B04": surface(epsg, origin, size), "B03": surface(epsg, origin, size)}
        numbers["B02"] = numbers["B03"]
        scl = np.full((size // 2, size // 2), 4, dtype=np.uint8)
        made.append(
            write_scene(
                s3, f"S2A_{epsg % 100}TZZ_20210610_{i}_L2A", "2021-06-10", epsg, origin, numbers, scl, 1.0
            )
        )
    footprints = [g.scene.footprint for g in made]
    border = box(17.992, 45.006, 18.008, 45.014)
    assert border.within(footprints[0].union(footprints[1])) and not border.within(footprints[0])
    assert not border.within(footprints[1])
    plan = composite.plan(border, [(g.scene.scene_id, g.scene.footprint) for g in made], "rgb", "median")
    assert plan.grid.crs.to_epsg() == 32634 and len(plan.blocks) == 1
    result = composite.composite_block([g.scene for g in made], "rgb", "median", plan.grid, border)
    inside = result.inside
    assert inside.sum() > 10000
    # No hole: every pixel of the border has an observation and a value.
    assert (result.count[inside] >= 1).all() and not np.isnan(result.bands[:, inside]).any()
    assert (result.count[inside] == 2).any()  # the scenes overlap within the border
    # No seam: the product follows the surface everywhere, as far as 10 m nearest pixels can.
    rows, cols = np.nonzero(inside)
    xs, ys = plan.grid.transform * (cols + 0.5, rows + 0.5)
    lon, lat = Transformer.from_crs(32634, 4326, always_xy=True).transform(xs, ys)
    truth = (3000 + (lon - 17.9) * 7800 + (lat - 45.0) * 11000) * 1e-4
    assert np.abs(result.bands[0][inside] - truth).max() < 2.5e-4  # within ~2 digital numbers
    west = lonlat(32634, box(*plan.grid.bounds)).bounds[0]
    assert west < 18.0  # the product reaches into zone 33


def test_block_sides_shrink_as_scenes_grow_and_stay_whole_tiles() -> None:
    sides = [composite.block_side("median", n, 3, 4) for n in (5, 20, 100, 500, 1000)]
    assert sides == sorted(sides, reverse=True) and sides[0] == composite.MAX_SIDE
    assert all(s % composite.ALIGN == 0 or s < composite.ALIGN for s in sides)
    for n, side in zip((5, 20, 100, 500, 1000), sides, strict=True):
        assert side * side * composite.pixel_bytes("median", n, 3, 4) <= composite.DEFAULT_MEMORY
    # Streaming methods keep a few arrays whatever the number of scenes.
    assert composite.block_side("max_ndvi", 1000, 3, 5) == composite.block_side("max_ndvi", 5, 3, 5)
    with pytest.raises(composite.CompositeError, match="do not fit"):
        composite.block_side("median", 1000, 3, 4, memory=16 * 16 * 4 * 1000 * 3)


def worker_peak(scenes: list[Generated], memory: int, folder: Path) -> dict[str, int]:
    """Reduce the first block of the plan in a fresh process; its peak of traced allocations."""
    job = folder / f"job-{len(scenes)}.json"
    job.write_text(
        json.dumps(
            {
                "memory": memory,
                "border": BORDER.__geo_interface__,
                "scenes": [
                    {
                        **{
                            f.name: getattr(g.scene, f.name)
                            for f in fields(g.scene)
                            if f.name not in ("footprint", "scaling")
                        },
                        "footprint": g.scene.footprint.__geo_interface__,
                    }
                    for g in scenes
                ],
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.composite_worker", str(job)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_block_worker_peaks_within_its_memory_bound_for_10_and_100_scenes(
    stack: LocalStack, tmp_path: Path
) -> None:
    s3, rng = stack.client("s3"), np.random.default_rng(7)
    configure_gdal()
    many = [random_scene(s3, rng, 100 + i, EPSG, ORIGIN, SIZE, bands=("B04", "B08")) for i in range(100)]
    bound = 1024 * 1024  # bytes: small, so that 100 scenes' windows of the whole border would not fit
    grid = composite.output_grid(BORDER)
    assert 100 * grid.width * grid.height * 4 > bound
    few, all_ = worker_peak(many[:10], bound, tmp_path), worker_peak(many, bound, tmp_path)
    assert few["scenes"] == 10 and all_["scenes"] == 100
    assert all_["side"] < few["side"]  # more scenes, smaller blocks
    for measured in (few, all_):
        assert measured["observed"] > 0
        assert measured["peak"] <= bound, measured
