"""Small generated scenes with known clouds for the composite tests: bands and SCL as GeoTIFFs in the archive.

Each scene is a square of `size` 10 m pixels in a UTM zone: its band digital numbers are chosen by
the test (so the oracle knows every value), its SCL (at 20 m, as in the archive) marks clouds
where the test says. The scene record points at the archive bucket, as the catalogue's would.
"""

from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from shapely.geometry import Polygon, box

from sputnik import stac
from sputnik.bands import CLOUDY_SCL
from sputnik.settings import ARCHIVE_PREFIX, get_settings

CLEAR_SCL, CLOUD_SCL = 4, 9  # vegetation; cloud high probability
BANDS = ("B02", "B03", "B04", "B08")


@dataclass
class Generated:
    """A generated scene: its record, its grid and the values written (digital numbers, SCL at 10 m)."""

    scene: stac.Scene
    epsg: int
    transform: Affine
    numbers: dict[str, np.ndarray]
    scl: np.ndarray  # at the bands' 10 m, each 20 m class repeated 2 x 2
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def clear(self) -> np.ndarray:
        """Where the scene has data and its class is not masked."""
        valid = np.logical_and.reduce([n != 0 for n in self.numbers.values()])
        return valid & ~np.isin(self.scl, CLOUDY_SCL)

    def reflectance(self, band: str) -> np.ndarray:
        """A band as reflectance, NaN where not clear (scale 1e-4, no offset: a baseline before 04.00)."""
        values = (self.numbers[band].astype(np.float32) * np.float32(1e-4) + np.float32(0.0)).astype(
            np.float32
        )
        values[~self.clear] = np.nan
        return values


def _tiff(data: np.ndarray, epsg: int, transform: Affine) -> bytes:
    """A tiled GeoTIFF of one band, nodata 0."""
    profile = {
        "driver": "GTiff",
        "dtype": data.dtype.name,
        "count": 1,
        "width": data.shape[1],
        "height": data.shape[0],
        "crs": CRS.from_epsg(epsg),
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data, 1)
        return bytes(memfile.read())


def lonlat(epsg: int, geometry: Polygon) -> Polygon:
    """A UTM polygon in lon/lat (edges densified)."""
    dense = shapely.segmentize(geometry, 50.0)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*np.asarray(dense.exterior.coords).T)
    return Polygon(zip(lon.tolist(), lat.tolist(), strict=True))


def write_scene(
    s3: object,
    scene_id: str,
    day: str,
    epsg: int,
    origin: tuple[float, float],
    numbers: dict[str, np.ndarray],
    scl20: np.ndarray,
    cloud_cover: float,
) -> Generated:
    """Write a scene's bands (10 m) and SCL (20 m) to the archive; its record and values."""
    size = next(iter(numbers.values())).shape[0]
    transform = Affine(10.0, 0.0, origin[0], 0.0, -10.0, origin[1])
    bucket = get_settings().archive_bucket
    prefix = f"{ARCHIVE_PREFIX}/composite-tests/{scene_id}/"
    assets = {}
    for band, data in numbers.items():
        s3.put_object(Bucket=bucket, Key=f"{prefix}{band}.tif", Body=_tiff(data, epsg, transform))  # type: ignore[attr-defined]
        assets[band] = f"s3://{bucket}/{prefix}{band}.tif"
    s3.put_object(  # type: ignore[attr-defined]
        Bucket=bucket, Key=f"{prefix}SCL.tif", Body=_tiff(scl20, epsg, transform @ Affine.scale(2.0))
    )
    assets["SCL"] = f"s3://{bucket}/{prefix}SCL.tif"
    footprint = lonlat(epsg, box(origin[0], origin[1] - 10.0 * size, origin[0] + 10.0 * size, origin[1]))
    scene = stac.Scene(
        scene_id=scene_id,
        tile=scene_id.split("_")[1],
        date=day,
        datetime=f"{day}T10:00:00Z",
        footprint=footprint,
        bbox=footprint.bounds,
        filename=scene_id,
        cloud_cover=cloud_cover,
        epsg=epsg,
        assets=assets,
        processing_baseline="02.14",
    )
    scl10 = np.repeat(np.repeat(scl20, 2, axis=0), 2, axis=1)
    return Generated(scene, epsg, transform, dict(numbers), scl10)


def random_scene(
    s3: object,
    rng: np.random.Generator,
    index: int,
    epsg: int,
    origin: tuple[float, float],
    size: int,
    cloudy: float = 0.3,
    bands: tuple[str, ...] = BANDS,
) -> Generated:
    """A scene of random reflectance with a random share of cloudy 20 m pixels and a strip of no data."""
    numbers = {band: rng.integers(1, 10000, size=(size, size), dtype=np.uint16) for band in bands}
    # A swath edge: the first columns of some scenes have no data.
    edge = int(rng.integers(0, size // 4)) if index % 3 == 0 else 0
    for data in numbers.values():
        data[:, :edge] = 0
    scl20 = np.where(rng.random((size // 2, size // 2)) < cloudy, CLOUD_SCL, CLEAR_SCL).astype(np.uint8)
    day = f"2021-06-{1 + index % 28:02d}"
    zone = epsg % 100
    scene_id = f"S2A_{zone}TXX_{day.replace('-', '')}_{index}_L2A"
    cover = round(float(rng.uniform(0, 100)), 3)
    return write_scene(s3, scene_id, day, epsg, origin, numbers, scl20, cover)


def on_grid(
    generated: Generated, values: np.ndarray, grid_transform: Affine, shape: tuple[int, int]
) -> np.ndarray:
    """A scene's array (on its own 10 m grid) cut or padded with NaN to an aligned output grid."""
    col = round((grid_transform.c - generated.transform.c) / 10.0)
    row = round((generated.transform.f - grid_transform.f) / 10.0)
    out = np.full(shape, np.nan, dtype=np.float32)
    height, width = values.shape
    r0, c0 = max(0, -row), max(0, -col)
    r1, c1 = min(shape[0], height - row), min(shape[1], width - col)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = values[r0 + row : r1 + row, c0 + col : c1 + col]
    return out


def box_border(epsg: int, left: float, bottom: float, right: float, top: float) -> Polygon:
    """A lon/lat border: a UTM box (its corners) seen in lon/lat."""
    return Polygon(lonlat(epsg, box(left, bottom, right, top)).exterior.coords)
