"""A Sentinel-2 archive for tests and demos: generated scenes, or real ones copied, in Earth Search layout.

Generated scenes are v0-schema STAC items with real Cloud Optimized GeoTIFFs on each tile's true UTM
grid (coarse pixels): the TCI, the 10 m bands B02, B03, B04, B08, the 20 m bands B11, B12 and the
scene classification SCL at half the resolution, as the archive has them. Their land surface is a
function of lon/lat and the seed only, so overlapping neighbouring tiles agree; season, clouds (with
their shadows, and thin cirrus) and the swath edge change with the date, and the TCI shows the clouds
white and their shadows dark where SCL classes them. From processing baseline 04.00 (2022-01-25) the
digital numbers carry +1000 and the items say so in `raster:bands` (offset -0.1), as real ones do.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from shapely.geometry import Polygon, box, mapping
from shapely.geometry.polygon import orient

from sputnik.errors import InvalidInput
from sputnik.mgrs import normalize_tile, tile_utm_bounds
from sputnik.settings import ARCHIVE_PREFIX
from sputnik.stac import item_key, parse_day, parse_item, scene_prefix
from sputnik.tiles.gdal import reuse_gdal_session

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EARTH_SEARCH_V0 = "https://earth-search.aws.element84.com/v0"
MIN_SIZE, MAX_SIZE = 16, 10980  # below 16 px a footprint is a few pixels; 10980 is the real 10 m grid
DENSIFY_M = 2000.0  # vertex spacing of footprint edges, so the lon/lat polygon follows the UTM one

# ESA processing baselines by first date in use, so product names look like the real ones of that day.
_BASELINES = (
    (date(2019, 12, 6), "N0213"),
    (date(2020, 1, 28), "N0214"),
    (date(2021, 3, 30), "N0300"),
    (date(2021, 6, 30), "N0301"),
    (date(2022, 1, 25), "N0400"),
    (date(2022, 12, 6), "N0509"),
    (date(2024, 2, 6), "N0510"),
    (date(2024, 7, 23), "N0511"),
)

# Surface reflectance (0-1) of the cover types, per band (blue, green, red, nir, swir16, swir22):
# typical L2A values.
_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
_FINE_BANDS = ("B02", "B03", "B04", "B08")  # 10 m; B11 and B12 are 20 m, on SCL's grid
_SOIL = (0.07, 0.095, 0.12, 0.23, 0.30, 0.24)
_CROP = (0.03, 0.07, 0.035, 0.40, 0.20, 0.09)
_FOREST = (0.025, 0.05, 0.03, 0.28, 0.14, 0.06)
_WATER = (0.06, 0.05, 0.03, 0.015, 0.01, 0.005)
_CLOUD = (0.55, 0.56, 0.57, 0.58, 0.45, 0.35)
_CIRRUS = 0.06  # what thin cirrus adds to every band
_SHADOW = 0.35  # what is left of the surface's reflectance in a cloud's shadow
_SHADOW_SHIFT_KM = (4.0, 3.0)  # where a cloud's shadow falls from it (the sun in the south-east)

# Scene classification (SCL) codes of ESA's L2A processor that the generator uses.
SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_BARE, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10
# Baseline 04.00 (from 2022-01-25) adds BOA_ADD_OFFSET = -1000: numbers are reflectance x 10000 + 1000.
OFFSET_FROM = date(2022, 1, 25)
BOA_OFFSET = 1000

_EO_BANDS = {
    "B02": {"name": "B02", "common_name": "blue", "center_wavelength": 0.4966, "full_width_half_max": 0.098},
    "B03": {"name": "B03", "common_name": "green", "center_wavelength": 0.56, "full_width_half_max": 0.045},
    "B04": {"name": "B04", "common_name": "red", "center_wavelength": 0.6645, "full_width_half_max": 0.038},
    "B08": {"name": "B08", "common_name": "nir", "center_wavelength": 0.8351, "full_width_half_max": 0.145},
    "B11": {"name": "B11", "common_name": "swir16", "center_wavelength": 1.6137, "full_width_half_max": 0.14},
    "B12": {"name": "B12", "common_name": "swir22", "center_wavelength": 2.2024, "full_width_half_max": 0.24},
}
_TITLES = {
    "B02": "Band 2 (blue)",
    "B03": "Band 3 (green)",
    "B04": "Band 4 (red)",
    "B08": "Band 8 (nir)",
    "B11": "Band 11 (swir16)",
    "B12": "Band 12 (swir22)",
    "SCL": "Scene Classification Map (SCL)",
    "visual": "True color image",
}


class S3Writer(Protocol):
    """The part of a boto3 S3 client the archive needs."""

    def put_object(self, **kwargs: Any) -> Any:
        """Store one object."""


@dataclass(frozen=True)
class RenderedScene:
    """One generated scene: its files (COGs first, item last) and its STAC item."""

    scene_id: str
    item_key: str
    item: dict[str, Any]
    files: dict[str, bytes]


@dataclass(frozen=True)
class _Grid:
    """A north-up pixel grid in UTM."""

    minx: float
    maxy: float
    res: float
    size: int

    @property
    def transform(self) -> Affine:
        """Affine transform of the grid."""
        return Affine(self.res, 0.0, self.minx, 0.0, -self.res, self.maxy)

    def centres(self) -> tuple[FloatArray, FloatArray]:
        """UTM x and y of every pixel centre, as (size, size) arrays."""
        offsets = (np.arange(self.size, dtype=np.float64) + 0.5) * self.res
        return np.meshgrid(self.minx + offsets, self.maxy - offsets)


def _stable_int(*parts: object) -> int:
    """A 64-bit integer from the parts; unlike hash(), the same in every process."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _hash01(ix: npt.NDArray[np.int64], iy: npt.NDArray[np.int64], salt: int) -> FloatArray:
    """A uniform [0, 1) value per integer lattice point (splitmix-style mixing, vectorised)."""
    h = ix.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= iy.view(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= np.uint64(salt)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _value_noise(u: FloatArray, v: FloatArray, cell_km: float, salt: int) -> FloatArray:
    """Smooth noise in [0, 1): lattice values every `cell_km`, blended with a smoothstep."""
    x, y = u / cell_km, v / cell_km
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    ix, iy = x0.astype(np.int64), y0.astype(np.int64)
    top = _hash01(ix, iy, salt) * (1 - sx) + _hash01(ix + 1, iy, salt) * sx
    bottom = _hash01(ix, iy + 1, salt) * (1 - sx) + _hash01(ix + 1, iy + 1, salt) * sx
    return top * (1 - sy) + bottom * sy


def _fractal(u: FloatArray, v: FloatArray, cell_km: float, octaves: int, salt: int) -> FloatArray:
    """Sum of value-noise octaves (each half the size and weight), rescaled to about [0, 1]."""
    total = np.zeros_like(u)
    weight = 0.0
    for octave in range(octaves):
        amplitude = 0.5**octave
        total += amplitude * _value_noise(u, v, cell_km / 2**octave, salt + octave)
        weight += amplitude
    # Sums of octaves bunch around 0.5; stretch so thresholds below see a useful spread.
    return np.clip((total / weight - 0.5) * 1.8 + 0.5, 0.0, 1.0)


def _smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    """0 below edge0, 1 above edge1, smooth between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _shifted(field: FloatArray, east: int, south: int) -> FloatArray:
    """The field moved `east` columns right and `south` rows down, its edge repeated into the gap."""
    padded = np.pad(field, ((south, 0), (east, 0)), mode="edge")
    return padded[: field.shape[0], : field.shape[1]]


@dataclass(frozen=True)
class _Surface:
    """What the sensor sees on one grid: reflectance per band, cloud opacity, classes."""

    reflectance: dict[str, FloatArray]
    cloud: FloatArray
    scl: npt.NDArray[np.uint8]


def _surface(grid: _Grid, epsg: int, day: date, seed: int, valid: BoolArray) -> _Surface:
    """Simulate the land surface and clouds at the grid's pixel centres."""
    x, y = grid.centres()
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
    # Sinusoidal km: continuous across UTM zones, so neighbouring tiles see the same landscape.
    v = lat * 110.57
    u = lon * 111.32 * np.cos(np.radians(lat))
    relief = _fractal(u, v, 60.0, 5, _stable_int(seed, "relief"))
    moisture = _fractal(u, v, 25.0, 4, _stable_int(seed, "moisture"))
    # Parcels: constant per 2.5 km cell, each with its own sowing offset and vigour.
    parcel_u, parcel_v = np.floor(u / 2.5).astype(np.int64), np.floor(v / 2.5).astype(np.int64)
    phase = (_hash01(parcel_u, parcel_v, _stable_int(seed, "phase")) - 0.5) * 90.0
    vigour = 0.6 + 0.4 * _hash01(parcel_u, parcel_v, _stable_int(seed, "vigour"))
    grassland = _hash01(parcel_u, parcel_v, _stable_int(seed, "grass")) < 0.3
    # Green-up peaks around mid June in the north, mid December in the south.
    peak = np.where(lat >= 0, 166.0, 349.0) + phase
    doy = day.timetuple().tm_yday
    season = 0.5 + 0.5 * np.cos(2 * np.pi * (doy - peak) / 365.25)
    # Grass stays somewhat green all year; crops go from bare soil to full cover.
    green = np.where(grassland, 0.35 + 0.45 * season, season**1.2) * vigour * (0.6 + 0.4 * moisture)

    water = relief < 0.28
    forest = ~water & (relief > 0.66)
    crop = ~water & ~forest
    # Clouds belong to the date (one weather field for all tiles); cover varies from clear to overcast.
    cloudiness = np.random.default_rng(_stable_int(seed, "cloudiness", day)).uniform(0.0, 1.0) ** 2
    cloud_salt = _stable_int(seed, "cloud", day)
    threshold = 0.78 - 0.45 * cloudiness
    cloud = _smoothstep(threshold, threshold + 0.12, _fractal(u, v, 30.0, 4, cloud_salt))
    # The same clouds a few km away on the ground: their shadows, where no cloud hides them (moved
    # by whole pixels, the edge repeated: a fractal of its own would double the generator's time).
    shadow = _shifted(cloud, *(round(km * 1000 / grid.res) for km in _SHADOW_SHIFT_KM)) * (1 - cloud)
    haze = _fractal(u, v, 40.0, 2, _stable_int(seed, "cirrus", day))
    cirrus = _smoothstep(0.8 - 0.2 * cloudiness, 0.9, haze)

    rng = np.random.default_rng(_stable_int(seed, "texture", grid.minx, grid.maxy, grid.size, day))
    texture = rng.normal(1.0, 0.04, size=x.shape)
    reflectance: dict[str, FloatArray] = {}
    for i, band in enumerate(_BANDS):
        land = _SOIL[i] * (1 - green) + _CROP[i] * green
        surface = np.where(water, _WATER[i], np.where(forest, _FOREST[i], land)) * texture
        surface = surface * (1 - (1 - _SHADOW) * shadow) + _CIRRUS * cirrus
        seen = surface * (1 - cloud) + _CLOUD[i] * cloud
        reflectance[band] = np.where(valid, seen, 0.0)

    scl = np.full(x.shape, SCL_BARE, dtype=np.uint8)
    scl[(crop & (green > 0.35)) | forest] = SCL_VEGETATION
    scl[water] = SCL_WATER
    scl[shadow > 0.5] = SCL_SHADOW
    scl[cirrus > 0.5] = SCL_CIRRUS
    scl[cloud > 0.3] = SCL_CLOUD_MEDIUM
    scl[cloud > 0.7] = SCL_CLOUD_HIGH
    scl[~valid] = SCL_NODATA
    return _Surface(reflectance=reflectance, cloud=cloud, scl=scl)


def _swath_edge(
    bounds: tuple[float, float, float, float], rng: np.random.Generator
) -> tuple[tuple[float, float], float]:
    """A straight swath edge: unit normal (pointing into the data) and offset, so valid = n.p >= c."""
    minx, miny, maxx, maxy = bounds
    # Swath edges run some 8-25 degrees off grid north; the data lies east or west of the edge.
    angle = math.radians(rng.uniform(8.0, 25.0)) * rng.choice([-1.0, 1.0])
    side = rng.choice([-1.0, 1.0])
    normal = (side * math.cos(angle), -side * math.sin(angle))
    fraction = rng.uniform(0.35, 0.92)  # large fractions cut only a corner
    tile = box(minx, miny, maxx, maxy)
    corners = [normal[0] * px + normal[1] * py for px, py in tile.exterior.coords[:4]]
    low, high = min(corners), max(corners)
    for _ in range(50):  # bisection: the covered area shrinks as the offset grows
        mid = (low + high) / 2
        if _half_plane(tile, normal, mid).area / tile.area > fraction:
            low = mid
        else:
            high = mid
    return normal, (low + high) / 2


def _half_plane(tile: Polygon, normal: tuple[float, float], offset: float) -> Polygon:
    """The part of the tile where normal . p >= offset."""
    nx, ny = normal
    far = 10 * math.sqrt(tile.area)
    # The point of the edge nearest the tile's centre, so the quad below surely spans the tile.
    cx, cy = tile.centroid.x, tile.centroid.y
    shift = offset - (nx * cx + ny * cy)
    ox, oy = cx + nx * shift, cy + ny * shift
    dx, dy = -ny * far, nx * far  # along the edge
    plane = Polygon(
        [
            (ox - dx, oy - dy),
            (ox + dx, oy + dy),
            (ox + dx + nx * far, oy + dy + ny * far),
            (ox - dx + nx * far, oy - dy + ny * far),
        ]
    )
    result = tile.intersection(plane)
    return result if isinstance(result, Polygon) else Polygon()


def _lonlat_footprint(footprint: Polygon, epsg: int) -> Polygon:
    """The UTM footprint in lon/lat, edges densified so the curved image of each edge is kept."""
    dense = shapely.segmentize(footprint, DENSIFY_M)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    lon, lat = to_lonlat.transform(*np.asarray(dense.exterior.coords).T)
    # GeoJSON (RFC 7946) wants exterior rings counter-clockwise.
    return orient(Polygon(zip(lon.tolist(), lat.tolist(), strict=True)), 1.0)


def _cog(data: npt.NDArray[Any], grid: _Grid, epsg: int, resampling: Literal["average", "nearest"]) -> bytes:
    """Cloud Optimized GeoTIFF bytes of (bands, rows, cols) data, nodata 0, deflate, with overviews."""
    count, height, width = data.shape
    blocksize = 512 if grid.size > 1024 else 256
    # At least one overview even for tiny images, down to about 128 px, as readers of real COGs expect.
    levels = max(1, math.ceil(math.log2(max(width, height) / 128)))
    profile = cog_profiles.get("deflate")
    profile.update(blockxsize=blocksize, blockysize=blocksize)
    source = {
        "driver": "GTiff",
        "dtype": data.dtype.name,
        "count": count,
        "width": width,
        "height": height,
        "crs": CRS.from_epsg(epsg),
        "transform": grid.transform,
        "nodata": 0,
    }
    # With AWS keys in the environment every rasterio.Env (rio-cogeo enters several a COG) builds a
    # boto3 session, ~18 ms each: 4.3 of the demo archive's 7.2 s. GDAL writes to memory only here.
    reuse_gdal_session()
    with MemoryFile() as src_file:
        with src_file.open(**source) as dst:
            dst.write(data)
        with src_file.open() as src, MemoryFile() as out:
            cog_translate(
                src,
                out.name,
                profile,
                in_memory=True,
                quiet=True,
                overview_level=levels,
                overview_resampling=resampling,
            )
            return bytes(out.read())


def _baseline(day: date) -> str:
    """The ESA processing baseline in use on a date."""
    current = "N0212"
    for start, name in _BASELINES:
        if day >= start:
            current = name
    return current


def _asset(band: str, href: str, grid: _Grid, role: str) -> dict[str, Any]:
    """A v0-style asset entry for a written COG."""
    asset: dict[str, Any] = {"title": _TITLES[band], "type": COG_TYPE, "href": href, "roles": [role]}
    if band == "visual":
        asset["eo:bands"] = [_EO_BANDS["B04"], _EO_BANDS["B03"], _EO_BANDS["B02"]]
    elif band in _EO_BANDS:
        asset["eo:bands"] = [_EO_BANDS[band]]
    t = grid.transform
    asset["proj:shape"] = [grid.size, grid.size]
    asset["proj:transform"] = [t.a, t.b, t.c, t.d, t.e, t.f, 0, 0, 1]
    return asset


def render_scene(bucket: str, tile: str, day: str | date, size: int = 256, seed: int = 0) -> RenderedScene:
    """Generate one scene's COGs and v0 STAC item in memory (deterministic for tile, date, size, seed)."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidInput(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels")
    tile = normalize_tile(tile)
    when = parse_day(day)
    epsg, bounds = tile_utm_bounds(tile)
    zone, band, square = int(tile[:2]), tile[2], tile[3:]
    minx, miny, maxx, maxy = bounds

    rng = np.random.default_rng(_stable_int(seed, "scene", tile, when))
    # Sentinel-2A and -2B fly 180 degrees apart: each date's pass is by one of them, alternating.
    satellite = "S2A" if (when.toordinal() // 5) % 2 == 0 else "S2B"
    scene_id = f"{satellite}_{zone}{band}{square}_{when:%Y%m%d}_0_L2A"
    prefix = scene_prefix(tile, when, scene_id)
    key = item_key(tile, when, scene_id)

    normal, offset = _swath_edge(bounds, rng)
    footprint_utm = _half_plane(box(*bounds), normal, offset)

    full = _Grid(minx=minx, maxy=maxy, res=(maxx - minx) / size, size=size)
    half = _Grid(minx=minx, maxy=maxy, res=(maxx - minx) / (size // 2), size=size // 2)
    masks: dict[_Grid, BoolArray] = {}
    for grid in (full, half):
        gx, gy = grid.centres()
        masks[grid] = normal[0] * gx + normal[1] * gy >= offset
    surface = _surface(full, epsg, when, seed, masks[full])
    coarse = _surface(half, epsg, when, seed, masks[half])
    grids = {b: full if b in _FINE_BANDS else half for b in _BANDS}

    valid = masks[full]
    # Reflectance x 10000 as in L2A (+1000 from baseline 04.00); valid pixels never 0, which is nodata.
    offset = BOA_OFFSET if when >= OFFSET_FROM else 0
    numbers = {
        b: np.clip(np.rint((surface if grids[b] is full else coarse).reflectance[b] * 10000), 1, 10000)
        for b in _BANDS
    }
    dn = {b: np.where(masks[grids[b]], numbers[b] + offset, 0).astype(np.uint16) for b in _BANDS}
    # TCI maps reflectance 0-0.2 to 1-255, as ESA's true-colour image does (whatever the baseline).
    tci = np.stack([np.clip(np.rint(numbers[b] / 2000 * 255), 1, 255) for b in ("B04", "B03", "B02")])
    tci = np.where(valid, tci, 0).astype(np.uint8)

    files: dict[str, bytes] = {f"{prefix}TCI.tif": _cog(tci, full, epsg, "average")}
    for b in _BANDS:
        files[f"{prefix}{b}.tif"] = _cog(dn[b][np.newaxis], grids[b], epsg, "average")
    files[f"{prefix}SCL.tif"] = _cog(coarse.scl[np.newaxis], half, epsg, "nearest")

    lon_centre, _ = Transformer.from_crs(epsg, 4326, always_xy=True).transform(
        (minx + maxx) / 2, (miny + maxy) / 2
    )
    # Sentinel-2 passes at about 10:30 local solar time; wrapped into the requested UTC day so the scene
    # keeps its date. The datatake starts a few minutes before the tile is sensed.
    seconds = int(((10.5 - lon_centre / 15.0) % 24) * 3600) + int(rng.integers(-300, 300))
    sensed = datetime.combine(when, datetime.min.time(), tzinfo=UTC) + timedelta(seconds=seconds % 86400)
    datatake = sensed - timedelta(seconds=int(rng.integers(200, 500)))
    processed = sensed + timedelta(seconds=int(rng.integers(3600, 4 * 3600)))
    orbit = _stable_int("orbit", tile) % 143 + 1
    product_id = (
        f"{satellite}_MSIL2A_{datatake:%Y%m%dT%H%M%S}_{_baseline(when)}_R{orbit:03d}"
        f"_T{tile}_{processed:%Y%m%dT%H%M%S}"
    )
    cloudy = (surface.cloud > 0.3) & valid
    cloud_cover = round(100.0 * float(cloudy.sum()) / max(int(valid.sum()), 1), 4)

    footprint = _lonlat_footprint(footprint_utm, epsg)
    href = f"s3://{bucket}/{prefix}"
    self_href = f"s3://{bucket}/{key}"
    stamp = (processed + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assets = {"visual": _asset("visual", f"{href}TCI.tif", full, "overview")}
    assets |= {b: _asset(b, f"{href}{b}.tif", grids[b], "data") for b in _BANDS}
    assets["SCL"] = _asset("SCL", f"{href}SCL.tif", half, "data")
    if offset:
        # As Earth Search's items of baseline 04.00 on: the scale and offset that give reflectance.
        for b in _BANDS:
            assets[b]["raster:bands"] = [
                {"data_type": "uint16", "nodata": 0, "scale": 0.0001, "offset": -offset / 10000}
            ]
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0-beta.2",
        "stac_extensions": ["eo", "view", "proj"],
        "id": scene_id,
        "bbox": list(footprint.bounds),
        "geometry": mapping(footprint),
        "properties": {
            "datetime": sensed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": f"sentinel-{satellite[-2:].lower()}",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": 10,
            "view:off_nadir": 0,
            "proj:epsg": epsg,
            "sentinel:latitude_band": band,
            "sentinel:grid_square": square,
            "sentinel:sequence": "0",
            "sentinel:product_id": product_id,
            "sentinel:data_coverage": round(100.0 * float(valid.mean()), 2),
            "created": stamp,
            "updated": stamp,
            "sentinel:valid_cloud_cover": True,
            "eo:cloud_cover": cloud_cover,
            "sentinel:utm_zone": zone,
        },
        "collection": ARCHIVE_PREFIX,
        "assets": assets,
        "links": [
            {"rel": "self", "href": self_href, "type": "application/json"},
            {"rel": "canonical", "href": self_href, "type": "application/json"},
            {"rel": "parent", "href": f"{EARTH_SEARCH_V0}/collections/sentinel-s2-l2a"},
            {"rel": "collection", "href": f"{EARTH_SEARCH_V0}/collections/sentinel-s2-l2a"},
            {"rel": "root", "href": f"{EARTH_SEARCH_V0}/"},
        ],
    }
    # Round-trip through JSON so tuples become lists, as a reader of the stored item will see them.
    item = json.loads(json.dumps(item))
    files[key] = _item_bytes(item)
    return RenderedScene(scene_id=scene_id, item_key=key, item=item, files=files)


def _item_bytes(item: dict[str, Any]) -> bytes:
    """A STAC item as stored in the archive (compact JSON, as Earth Search writes it)."""
    return json.dumps(item, separators=(",", ":")).encode()


def _put(s3_client: S3Writer, bucket: str, key: str, body: bytes) -> None:
    """Upload one archive object with the content type readers expect."""
    if key.endswith(".json"):
        content_type = "application/json"
    elif key.endswith(".tif"):
        content_type = COG_TYPE
    else:
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def write_scene(
    s3_client: S3Writer, bucket: str, tile: str, day: str | date, size: int = 256, seed: int = 0
) -> str:
    """Generate one scene into the bucket, the item last so an ingest it triggers finds the COGs; its key."""
    scene = render_scene(bucket, tile, day, size=size, seed=seed)
    for key, body in scene.files.items():
        if key != scene.item_key:
            _put(s3_client, bucket, key, body)
    _put(s3_client, bucket, scene.item_key, scene.files[scene.item_key])
    return scene.item_key


def generate_archive(
    s3_client: S3Writer,
    bucket: str,
    tiles: Iterable[str],
    dates: Iterable[str],
    size: int = 256,
    seed: int = 0,
) -> list[str]:
    """Generate a scene per tile and date into the bucket; the item keys written, in that order."""
    # Validate everything first, so a typo does not leave half an archive behind.
    tile_list = [normalize_tile(t) for t in tiles]
    date_list = [parse_day(d) for d in dates]
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidInput(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels")
    return [write_scene(s3_client, bucket, t, d, size=size, seed=seed) for t in tile_list for d in date_list]


def upload_fixture_scene(s3_client: S3Writer, bucket: str, scene_dir: Path) -> str:
    """Copy a real scene folder into the bucket at its archive key, pointing its item at the copies.

    COGs and other files are copied byte for byte, before the item. In the item (kept in its own
    schema), asset hrefs that point into the scene's folder at a copied file and the self/canonical
    links are rewritten to `s3://{bucket}/...`; hrefs to files not in the folder are left as they are.
    """
    scene_dir = Path(scene_dir)
    item_path = scene_dir / f"{scene_dir.name}.json"
    if not item_path.is_file():
        raise InvalidInput(f"scene folder {scene_dir.name!r} has no STAC item {item_path.name!r}")
    raw = item_path.read_bytes()
    scene = parse_item(raw)
    if scene.scene_id != scene_dir.name:
        raise InvalidInput(f"item id {scene.scene_id!r} does not match its folder {scene_dir.name!r}")
    key = item_key(scene.tile, scene.date, scene.scene_id)
    prefix = key.rsplit("/", 1)[0] + "/"

    copied: list[str] = []
    for path in sorted(scene_dir.iterdir()):
        if path.is_file() and path != item_path:
            _put(s3_client, bucket, f"{prefix}{path.name}", path.read_bytes())
            copied.append(path.name)

    item = json.loads(raw)
    for asset in item.get("assets", {}).values():
        href = asset.get("href") if isinstance(asset, dict) else None
        if not isinstance(href, str):
            continue
        folder, _, name = href.rpartition("/")
        if name in copied and folder.endswith(f"/{scene.scene_id}"):
            asset["href"] = f"s3://{bucket}/{prefix}{name}"
    for link in item.get("links", []):
        if isinstance(link, dict) and link.get("rel") in ("self", "canonical"):
            link["href"] = f"s3://{bucket}/{key}"
    _put(s3_client, bucket, key, _item_bytes(item))
    return key
