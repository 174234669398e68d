"""A composite's block worker in a process of its own, for the memory test: reduce the first block of
a plan and print the peak of traced allocations (numpy's arrays among them) as JSON.

`python -m tests.support.composite_worker JOB.json`, the job holding the border, the scenes and the
memory bound.
"""

import json
import sys
import tracemalloc

from rasterio.windows import Window
from shapely.geometry import shape

from sputnik import composite, stac
from sputnik.tiles.gdal import configure_gdal


def main(path: str) -> None:
    """Plan, warm up, then reduce the first block under tracemalloc."""
    configure_gdal()
    with open(path) as f:
        job = json.load(f)
    border = shape(job["border"])
    scenes = [
        stac.Scene(**{**s, "footprint": shape(s["footprint"]), "bbox": tuple(s["bbox"])})
        for s in job["scenes"]
    ]
    plan = composite.plan(
        border, [(s.scene_id, s.footprint) for s in scenes], "ndvi", "median", job["memory"]
    )
    block = plan.blocks[0]
    grid = plan.grid.window(block.window)
    by_id = {s.scene_id: s for s in scenes}
    chosen = [by_id[sid] for sid in block.scene_ids]
    # A worker's imports and GDAL's set-up happen at its init, not per block: done before measuring.
    composite.composite_block(chosen[:1], "ndvi", "median", grid.window(Window(0, 0, 16, 16)), border)
    tracemalloc.start()
    made = composite.composite_block(chosen, "ndvi", "median", grid, border)
    _, peak = tracemalloc.get_traced_memory()
    observed = int((made.count > 0).sum())
    print(json.dumps({"peak": peak, "side": plan.side, "scenes": len(chosen), "observed": observed}))


if __name__ == "__main__":
    main(sys.argv[1])
