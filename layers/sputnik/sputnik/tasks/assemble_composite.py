"""s2_composite, stage 3: the blocks mosaicked into one COG, the product recorded, the proc ended.

The COG holds the product's bands and then the count of clear observations, all float32 with NaN
as nodata: reflectance keeps the archive's 1e-4 steps and the median's half steps exactly (a
median of two observations lies between them), the harmonised offset may take dark pixels below
zero, and an index product is a fraction anyway; one type for every band lets the count ride in
the same file. DEFLATE with the floating-point predictor, average overviews.
"""

import tempfile
from pathlib import Path
from typing import Any

import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.windows import Window

from sputnik import aws, composite
from sputnik.models import ProductModel
from sputnik.settings import get_settings
from sputnik.tasks import procs
from sputnik.tasks.failures import failure_message
from sputnik.tasks.manifests import read_results
from sputnik.tiles.gdal import configure_gdal, gdal_env

TASK, MAP_SCRIPT, SCRIPT = "s2_composite", "composite_block", "assemble_composite"
KIND = "composite"
MAX_FAILURES_SHOWN = 20
COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",  # the floating-point predictor for float32
    "BLOCKSIZE": "512",
    "OVERVIEW_RESAMPLING": "AVERAGE",
    "NUM_THREADS": "ALL_CPUS",
    "BIGTIFF": "IF_SAFER",
}


def product_id(params: dict[str, Any]) -> str:
    """One product per (product, method, period): a rerun overwrites it."""
    return f"composite:{params['product']}:{params['method']}:{params['start_date']}:{params['end_date']}"


def product_key(project_id: int, params: dict[str, Any]) -> str:
    """Where the composite's COG lies."""
    return (
        f"projects/{project_id}/composite/{params['product']}/{params['method']}/"
        f"{params['start_date']}_{params['end_date']}.tif"
    )


def extent(grid: Any, window: list[int]) -> dict[str, Any]:
    """A block's extent, in the product's CRS and in lon/lat."""
    w = Window(*window)
    return {
        "bounds": [round(v, 2) for v in composite.window_bounds(grid, w)],
        "crs": grid.crs.to_string(),
        "lonlat": list(composite.lonlat_bounds(grid, w)),
    }


def block_name(block: Any, where: dict[str, Any]) -> str:
    """How a failed block is named to the user: its number and where it lies."""
    west, south, east, north = where["lonlat"]
    return f"block {block} (lon {west}..{east}, lat {south}..{north})"


def assemble(outputs: list[dict[str, Any]], grid: Any, side: int, names: tuple[str, ...], path: Path) -> None:
    """Write the blocks into a tiled GeoTIFF of the whole grid, then a COG of it at `path`."""
    s3, bucket = aws.client("s3"), get_settings().products_bucket
    tile = composite.ALIGN if side >= composite.ALIGN else side
    profile = {
        **composite.file_profile(grid, len(names) + 1),
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "BIGTIFF": "IF_SAFER",
    }
    mosaic = path.with_name("mosaic.tif")
    with rasterio.Env(**gdal_env()):
        with rasterio.open(mosaic, "w", **profile) as dst:
            for band, name in enumerate((*names, "count"), start=1):
                dst.set_band_description(band, name)
            # Block by block: memory holds one block whatever the grid's size.
            for output in outputs:
                body = s3.get_object(Bucket=bucket, Key=output["key"])["Body"].read()
                with MemoryFile(body) as memfile, memfile.open() as block:
                    dst.write(block.read(), window=Window(*output["window"]))
        rasterio.shutil.copy(str(mosaic), str(path), driver="COG", **COG_OPTIONS)
    mosaic.unlink()


def summed(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Coverage over the border from the blocks' shares."""
    pixels = sum(int(o["pixels"]) for o in outputs)
    inside = [o for o in outputs if int(o["pixels"])]
    return {
        "pixels": pixels,
        "observed_fraction": round(sum(int(o["observed"]) for o in outputs) / pixels, 6) if pixels else 0.0,
        "mean_count": round(sum(int(o["count_sum"]) for o in outputs) / pixels, 4) if pixels else 0.0,
        "min_count": min((int(o["count_min"]) for o in inside), default=0),
        "max_count": max((int(o["count_max"]) for o in inside), default=0),
    }


def delete_blocks(keys: list[str]) -> None:
    """Remove the temporary blocks (1,000 keys a request)."""
    s3, bucket = aws.client("s3"), get_settings().products_bucket
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})


def run(event: dict[str, Any]) -> dict[str, Any]:
    """Assemble the blocks, record the product, end the proc SUCCESS or ERRORS naming failed blocks."""
    ref = procs.ProcRef.of(event)
    params, plan = dict(event["params"]), dict(event["plan"])
    grid = composite.grid_from_json(plan["grid"])
    names = composite.output_bands(str(params["product"]))
    results = read_results(event["results"]["ResultWriterDetails"])
    outputs = sorted(results.outputs, key=lambda o: int(o["block"]))
    failed = []
    for failure in results.failures:
        item = failure.item.get("item") if isinstance(failure.item.get("item"), dict) else failure.item
        where = extent(grid, list(item["window"]))
        message = failure_message(block_name(item.get("block"), where), failure.error)
        failed.append({"block": item.get("block"), **where, "message": message})
    failed.sort(key=lambda f: int(f["block"]))
    key = product_key(ref.project_id, params)
    configure_gdal()
    with tempfile.TemporaryDirectory(prefix="composite-") as folder:
        path = Path(folder) / "composite.tif"
        assemble(outputs, grid, int(plan["block_size"]), names, path)
        size = path.stat().st_size
        aws.client("s3").upload_file(
            str(path), get_settings().products_bucket, key, ExtraArgs={"ContentType": "image/tiff"}
        )
    details = {
        "start_date": params["start_date"],
        "end_date": params["end_date"],
        "product": params["product"],
        "method": params["method"],
        "max_scene_cloud": params.get("max_scene_cloud", 100),
        "scenes": int(plan["scenes"]),
        "blocks": len(outputs) + len(failed),
        "block_size": int(plan["block_size"]),
        "bands": [*names, "count"],
        "crs": grid.crs.to_string(),
        "result": procs.ERRORS if failed else procs.SUCCESS,
        "failed_blocks": failed,
        "coverage": summed(outputs),
    }
    ProductModel(
        ref.project_id,
        product_id(params),
        kind=KIND,
        key=key,
        index=None if params["product"] == composite.RGB else str(params["product"]),
        details=details,
    ).save()
    delete_blocks([str(o["key"]) for o in outputs])
    summary: dict[str, Any] = {
        "items": details["blocks"],
        "succeeded": len(outputs),
        "failed": len(failed),
        "scenes": details["scenes"],
        "pixels": grid.width * grid.height,
        "bytes_written": size,
    }
    if failed:
        summary["failures"] = [f["message"] for f in failed[:MAX_FAILURES_SHOWN]]
    outcome = procs.proc_done(
        ref,
        TASK,
        {MAP_SCRIPT: procs.ERRORS if failed else procs.SUCCESS, SCRIPT: procs.SUCCESS},
        summary,
    )
    return {"result": outcome, "product_id": product_id(params), **summary}
