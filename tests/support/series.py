"""Products for tests: the real scene's cloud-masked NDVI as a COG, its statistics by numpy, composites."""

from pathlib import Path
from typing import Any

import numpy
import rasterio
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from tests.support.real_scene import SCENE_DIR

MASKED_SCL = (0, 1, 3, 8, 9, 10)  # no data, defective, cloud shadow, cloud medium/high, cirrus


def real_ndvi(fixtures_dir: Path, path: Path) -> numpy.ndarray:
    """Write the real scene's cloud-masked NDVI as a float32 COG (NaN = no data); the array."""
    folder = fixtures_dir / SCENE_DIR
    with rasterio.open(folder / "B04.tif") as red_src, rasterio.open(folder / "B08.tif") as nir_src:
        red, nir = (src.read(1).astype("float32") for src in (red_src, nir_src))
        profile = red_src.profile
        with rasterio.open(folder / "SCL.tif") as scl_src:
            scl = scl_src.read(1, out_shape=red.shape, resampling=Resampling.nearest)
    with numpy.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    ndvi[(red == 0) | (nir == 0) | numpy.isin(scl, MASKED_SCL) | ~numpy.isfinite(ndvi)] = numpy.nan
    profile.update(dtype="float32", nodata=numpy.nan, count=1, driver="GTiff")
    write_cog(path, profile, ndvi[numpy.newaxis])
    return ndvi


def write_cog(path: Path, profile: dict[str, Any], bands: numpy.ndarray) -> None:
    """Write (bands, rows, cols) with a GeoTIFF profile as a DEFLATE COG."""
    with MemoryFile() as memfile:
        with memfile.open(**{**profile, "count": len(bands)}) as dst:
            dst.write(bands)
        with memfile.open() as src:
            cog_translate(src, str(path), cog_profiles.get("deflate"), in_memory=True, quiet=True)


def real_composite(fixtures_dir: Path, path: Path, product: str) -> numpy.ndarray:
    """A one-scene composite of the real scene as s2_composite lays it out; its bands, count last.

    `rgb`: B04, B03, B02 as float32 reflectance; `ndvi`: the cloud-masked NDVI. NaN where the scene
    is cloudy or has no data, and there the count is 0; elsewhere it is 1.
    """
    folder = fixtures_dir / SCENE_DIR
    with rasterio.open(folder / "B04.tif") as red_src:
        profile = red_src.profile
    if product == "rgb":
        layers = []
        for band in ("B04", "B03", "B02"):
            with rasterio.open(folder / f"{band}.tif") as src:
                layers.append(src.read(1).astype("float32"))
        values = numpy.stack(layers)
        with rasterio.open(folder / "SCL.tif") as scl_src:
            scl = scl_src.read(1, out_shape=values.shape[1:], resampling=Resampling.nearest)
        values[:, (values == 0).any(axis=0) | numpy.isin(scl, MASKED_SCL)] = numpy.nan
        values *= 1e-4
    else:
        values = real_ndvi(fixtures_dir, path)[numpy.newaxis]
    count = numpy.where(numpy.isnan(values[0]), 0, 1).astype("float32")
    bands = numpy.concatenate([values, count[numpy.newaxis]])
    profile.update(dtype="float32", nodata=numpy.nan, driver="GTiff")
    write_cog(path, profile, bands)
    return bands


def statistics(values: numpy.ndarray, border_pixels: int) -> dict[str, Any]:
    """The statistics an index record carries, by numpy."""
    clear = values[numpy.isfinite(values)]
    if not clear.size:
        return {"valid_pixels": 0, "clear_fraction": 0.0} | dict.fromkeys(
            ("mean", "std", "min", "p10", "median", "p90", "max")
        )
    p10, median, p90 = numpy.percentile(clear, [10, 50, 90])
    return {
        "valid_pixels": int(clear.size),
        "clear_fraction": clear.size / border_pixels,
        "mean": float(clear.mean()),
        "std": float(clear.std()),
        "min": float(clear.min()),
        "p10": float(p10),
        "median": float(median),
        "p90": float(p90),
        "max": float(clear.max()),
    }
