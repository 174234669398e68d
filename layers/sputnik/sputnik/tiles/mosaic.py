"""Date mosaics: every scene of a project's date merged into one web-mercator tile, clipped to its border.

The scenes of a date are one Query of the meta table (`{date}#{scene_id}` rows), kept by a warm
function for `mosaic_scenes_ttl` seconds. Only the scenes whose footprint meets the border on the
tile are read, each through the tiler's reader and the archive's URL policy, and merged by
rio-tiler's `mosaic_reader` with its first-valid method: the least cloudy scene first (the
record's cloud cover, then the scene id), each pixel from the first scene that has it. Scenes are
read one after the other and reading stops once every pixel inside the border has a value, so a
tile the first scene fills costs one scene's reads. With the `clouds` mask a scene's pixels whose
SCL class is cloudy (`sputnik.bands.CLOUDY_SCL`) count as missing, so the next scene fills them.
Pixels outside the project's border are transparent.
"""

import functools
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy
import rasterio
import shapely
from morecantile import Tile
from pynamodb.exceptions import DoesNotExist
from rasterio.features import geometry_mask
from rasterio.transform import from_bounds
from rio_tiler.constants import WEB_MERCATOR_CRS, WEB_MERCATOR_TMS
from rio_tiler.errors import EmptyMosaicError, TileOutsideBounds
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.mosaic.methods.defaults import FirstMethod
from rio_tiler.types import BBox
from rio_tiler.utils import render
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from sputnik import geo
from sputnik.bands import CLOUDY_SCL, to_crs
from sputnik.errors import Forbidden, InvalidInput, NotFound
from sputnik.models import MetaModel, ProjectModel
from sputnik.projects import parse_date
from sputnik.settings import InvalidSetting, get_settings
from sputnik.tiles.errors import PATH, QUERY, InvalidParameter
from sputnik.tiles.gdal import gdal_env
from sputnik.tiles.params import check_tile
from sputnik.tiles.reader import TileReader
from sputnik.tiles.urls import URL_REFUSED, ProjectLookup, archive_url

TILE_SIZE = 256
# A tile merges at most this many scenes: a tile meeting more (a low zoom over a project of many
# MGRS tiles) is refused, so that one request reads a bounded number of datasets. Zoom in instead.
MAX_SCENES_PER_TILE = 8
# The zooms a tilejson offers: Sentinel-2's 10 m pixels are z14's (9.6 m at the equator).
MINZOOM, MAXZOOM = 0, 14
CLOUDS = "clouds"
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# Web mercator's latitude limit: a border beyond it has no place on the map.
MERCATOR_LAT = 85.0511
EARTH_RADIUS = 6378137.0  # web mercator's sphere (EPSG:3857), metres
NO_SCENES = "no scenes on this date"
# A warm function keeps the scene lists of this many project dates (a map session asks for a few).
SCENE_LISTS_KEPT = 256
# The longest a scene list may be kept: a scene ingested later shows on the map within this.
MAX_SCENES_TTL = 3600
TCI_NAME, SCL_NAME = "TCI.tif", "SCL.tif"


@dataclass(frozen=True)
class DateScene:
    """What a mosaic needs of one scene of the date: its footprint (lon/lat), TCI and cloud cover."""

    scene_id: str
    footprint: BaseGeometry
    tci_url: str
    cloud_cover: float | None


def scenes_ttl() -> int:
    """Seconds a warm function keeps a date's scene list (setting `mosaic_scenes_ttl`; 0 keeps none)."""
    text = get_settings().value("mosaic_scenes_ttl")
    if not re.fullmatch(r"[0-9]{1,4}", text) or int(text) > MAX_SCENES_TTL:
        raise InvalidSetting("mosaic_scenes_ttl", f"whole seconds from 0 to {MAX_SCENES_TTL}")
    return int(text)


# A past date's scenes rarely change, and every tile of a map view asks for the same date: one
# Query per date and TTL instead of one per tile. Keyed by project, and looked up only after the
# project's owner check, so an entry never answers anyone else. The clock is injectable for tests.
class SceneLists:
    """A date's scenes per project as last read, each kept for `ttl` seconds; the least recently used go."""

    def __init__(self, size: int = SCENE_LISTS_KEPT, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._kept: OrderedDict[tuple[Any, ...], tuple[float, tuple[DateScene, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], ttl: float) -> list[DateScene] | None:
        """The scenes kept under `key` if read less than `ttl` seconds ago, else None."""
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            read_at, scenes = found
            if not 0 <= self.clock() - read_at < ttl:
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return list(scenes)

    def put(self, key: tuple[Any, ...], scenes: Sequence[DateScene], read_at: float) -> None:
        """Keep scenes read at `read_at` (the clock before the Query); the least recently used go."""
        with self._lock:
            self._kept[key] = (read_at, tuple(scenes))
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        """Forget every list (tests)."""
        with self._lock:
            self._kept.clear()


SCENE_LISTS = SceneLists()


def date_scenes(
    login: str, project_id: int, date: str, owns_project: ProjectLookup, where: str = PATH
) -> list[DateScene]:
    """The scenes of the caller's project on one date, least cloudy first (one Query, kept); NotFound if none.

    `where` is where the request carried the date (a tile's path, a tilejson's query), for its 422.
    """
    try:
        day = parse_date(date, "date")
    except InvalidInput as exc:
        raise InvalidParameter(where, "date", str(exc)) from exc
    if day is None:
        raise InvalidParameter(where, "date", "date must be a date as YYYY-MM-DD")
    # The owner check first, every time: a kept list is never an answer to someone else.
    owns_project(login, project_id)
    key = (MetaModel.Meta.table_name, MetaModel.Meta.host, project_id, day)
    ttl = scenes_ttl()
    kept = SCENE_LISTS.get(key, ttl) if ttl else None
    if kept is not None:
        return kept
    read_at = SCENE_LISTS.clock()
    rows = MetaModel.query(
        project_id,
        MetaModel.date_scene.startswith(f"{day}#"),
        attributes_to_get=["scene_id", "border", "tci_url", "cloud_cover"],
    )
    # A record without a TCI (written before the catalogue kept one) has nothing to show.
    scenes = [
        DateScene(row.scene_id, shapely.from_wkb(row.border), row.tci_url, row.cloud_cover)
        for row in rows
        if row.tci_url
    ]
    # A date without scenes is not kept: its first scene shows as soon as it is ingested.
    if not scenes:
        raise NotFound(NO_SCENES)
    scenes.sort(key=lambda s: (s.cloud_cover is None, s.cloud_cover or 0.0, s.scene_id))
    if ttl:
        SCENE_LISTS.put(key, scenes, read_at)
    return scenes


@dataclass(frozen=True)
class Border:
    """A project's border as the map sees it: lon/lat, and web mercator (EPSG:3857)."""

    lonlat: BaseGeometry
    mercator: BaseGeometry


@functools.lru_cache(maxsize=64)
def _border(table: str, host: str | None, project_id: int) -> Border:
    """A project's border (one GetItem; borders never change and project ids are never reused)."""
    try:
        wkt = ProjectModel.get(project_id, attributes_to_get=["border"]).border
    except DoesNotExist as exc:  # deleted since its owner was checked
        raise NotFound(f"project {project_id} not found") from exc
    lonlat = geo.from_wkt(wkt).intersection(box(-180, -MERCATOR_LAT, 180, MERCATOR_LAT))
    return Border(lonlat, to_crs(lonlat, WEB_MERCATOR_CRS))


def project_border(project_id: int) -> Border:
    """The project's border, read once per warm function (call after the owner check)."""
    return _border(ProjectModel.Meta.table_name, ProjectModel.Meta.host, project_id)


def scl_url(tci_url: str) -> str:
    """The scene's SCL, beside its TCI in the archive (its layout), through the archive policy."""
    folder, _, name = tci_url.rpartition("/")
    if name != TCI_NAME:
        raise Forbidden(URL_REFUSED)
    return archive_url(f"{folder}/{SCL_NAME}")


def image_format(fmt: str | None) -> str:
    """rio-tiler's format name for a tile extension (PNG when there is none)."""
    if fmt is None:
        return "PNG"
    if fmt not in FORMATS:
        raise InvalidParameter(PATH, "format", f"format must be one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


@functools.cache
def empty_tile(img_format: str = "PNG") -> bytes:
    """A 256x256 tile with nothing on it (transparent where the format has alpha)."""
    data = numpy.zeros((3, TILE_SIZE, TILE_SIZE), dtype="uint8")
    mask = numpy.zeros((TILE_SIZE, TILE_SIZE), dtype="uint8")
    return render(data, mask, img_format=img_format)


def lonlat_bounds(bounds: BBox) -> BBox:
    """Web-mercator bounds in degrees, by the sphere's inverse formula (what PROJ computes for EPSG:3857)."""
    # morecantile's bounds() is a PROJ transform: a few ms in a request's thread, for arithmetic.
    left, bottom, right, top = bounds

    def lat(y: float) -> float:
        return math.degrees(math.atan(math.sinh(y / EARTH_RADIUS)))

    return (math.degrees(left / EARTH_RADIUS), lat(bottom), math.degrees(right / EARTH_RADIUS), lat(top))


def border_inside(border: BaseGeometry, bounds: BBox) -> numpy.ndarray:
    """True at the pixels of the tile (web-mercator bounds) whose centre lies inside the border."""
    part = shapely.clip_by_rect(border, *bounds)
    if part.is_empty:
        return numpy.zeros((TILE_SIZE, TILE_SIZE), dtype=bool)
    transform = from_bounds(*bounds, TILE_SIZE, TILE_SIZE)
    return geometry_mask([part], out_shape=(TILE_SIZE, TILE_SIZE), transform=transform, invert=True)


@dataclass(frozen=True)
class Source:
    """One scene as the mosaic reads it: URLs already through the archive policy, the border's pixels."""

    tci: str
    scl: str | None
    inside: numpy.ndarray


def read_scene(source: Source, bounds: BBox) -> ImageData:
    """One scene's TCI tile, its pixels outside the border (and cloudy ones, with an SCL) masked."""
    # The part() that rio-tiler's tile() calls, with its arguments, without tile()'s check that the
    # tile meets the dataset (a PROJ transform per scene): the scene's footprint met the border on
    # the tile, and the reader raises TileOutsideBounds itself for a tile beside the dataset.
    crs = WEB_MERCATOR_TMS.rasterio_crs
    tile = {"dst_crs": crs, "bounds_crs": crs, "height": TILE_SIZE, "width": TILE_SIZE, "max_size": None}
    with rasterio.Env(**gdal_env()):
        with TileReader(source.tci) as src:
            image = src.part(bounds, **tile)
        hidden = ~source.inside
        if source.scl is not None:
            # SCL is 20 m: nearest keeps classes whole. Where it has no data it reads class 0 ("no data").
            with TileReader(source.scl) as src:
                classes = src.part(bounds, resampling_method="nearest", reproject_method="nearest", **tile)
            hidden = hidden | numpy.isin(classes.array.filled(0)[0], CLOUDY_SCL)
    # A new masked array, not `array.mask = ...`: numpy.ma copies an assigned mask element by element.
    array = image.array
    mask = numpy.ma.getmaskarray(array) | hidden[numpy.newaxis]
    image.array = numpy.ma.MaskedArray(array.data, mask=mask, fill_value=array.fill_value)
    # Outside the border counts as done: the mosaic stops once every pixel inside it has a scene's.
    image.cutline_mask = ~source.inside
    return image


# rio-tiler's FirstMethod assigns the mosaic's mask in `feed` (about 1 ms a tile) and sums a where()
# in `is_done`: a few ms of a tile that two scenes fill, for the same pixels and the same stop.
class FirstValid(FirstMethod):
    """rio-tiler's first-valid method, pixel for pixel, without numpy.ma's slow mask assignment."""

    def feed(self, array: numpy.ma.MaskedArray | None) -> None:
        """Take each pixel the mosaic lacks from `array`, where it has one."""
        if array is None:
            return
        if self.mosaic is None:
            self.mosaic = array
            return
        missing = numpy.ma.getmaskarray(self.mosaic)
        take = missing & ~numpy.ma.getmaskarray(array)
        data = numpy.where(take, array.data, self.mosaic.data)
        self.mosaic = numpy.ma.MaskedArray(data, mask=missing & ~take)

    @property
    def is_done(self) -> bool:
        """Whether every pixel (inside the cutline, if any) has a value."""
        if self.mosaic is None:
            return False
        missing = numpy.ma.getmaskarray(self.mosaic)
        if self.cutline_mask is not None:
            missing = missing & ~self.cutline_mask
        return not missing.any()


def sources(
    scenes: Sequence[DateScene], border: Border, lonlat: BBox, inside: numpy.ndarray, mask: str | None
) -> list[Source]:
    """The scenes meeting the border on the tile (lon/lat bounds), URLs checked first; too many refused."""
    area = shapely.clip_by_rect(border.lonlat, *lonlat)
    meeting = [scene for scene in scenes if scene.footprint.intersects(area)]
    if len(meeting) > MAX_SCENES_PER_TILE:
        raise InvalidParameter(
            PATH,
            "z",
            f"this tile meets {len(meeting)} scenes of the date, over the {MAX_SCENES_PER_TILE} "
            "one mosaic tile merges: zoom in",
        )
    # Every URL through the archive policy first: a hostile record refuses the tile before anything opens.
    return [
        Source(archive_url(scene.tci_url), scl_url(scene.tci_url) if mask == CLOUDS else None, inside)
        for scene in meeting
    ]


def render_mosaic(
    scenes: Sequence[DateScene],
    border: Border,
    z: int,
    x: int,
    y: int,
    mask: str | None = None,
    fmt: str | None = None,
) -> tuple[bytes, str]:
    """Render the date's mosaic tile; a tile with no scene or no border on it is empty, not an error."""
    check_tile(WEB_MERCATOR_TMS, z, x, y)
    if mask not in (None, CLOUDS):
        raise InvalidParameter(QUERY, "mask", f"mask must be {CLOUDS!r} or absent")
    img_format = image_format(fmt)
    media_type = MEDIA_TYPES[img_format]
    # The tile's bounds, once per request: the border's pixels, the scenes met and each read use them.
    left, bottom, right, top = WEB_MERCATOR_TMS.xy_bounds(Tile(x, y, z))
    bounds = (left, bottom, right, top)
    inside = border_inside(border.mercator, bounds)
    if not inside.any():
        return empty_tile(img_format), media_type
    reads = sources(scenes, border, lonlat_bounds(bounds), inside, mask)
    if not reads:
        return empty_tile(img_format), media_type
    try:
        image, _ = mosaic_reader(
            reads,
            read_scene,
            bounds,
            pixel_selection=FirstValid,
            threads=1,  # one scene after the other, so that a tile the first fills reads no other
            allowed_exceptions=(TileOutsideBounds,),
        )
    except EmptyMosaicError:
        return empty_tile(img_format), media_type
    except InvalidParameter as exc:
        # A scene's COG is what could not be read: name the path parameter that chose it.
        raise InvalidParameter(PATH, "date", str(exc)) from exc
    # Zeros under the mask, so equal tiles are equal bytes whichever scene left a pixel out.
    # Valid where every band is, as rio-tiler's ImageData.mask says.
    data = numpy.where(image.mask == 0, 0, image.array.data).astype("uint8")
    content = render(data, image.mask, img_format=img_format)
    return content, media_type


def tilejson(scenes: Sequence[DateScene], border: Border, tiles_url: str) -> dict[str, Any]:
    """A TileJSON of the date's mosaic: its bounds are where the scenes meet the border (lon/lat)."""
    covered = shapely.union_all([scene.footprint for scene in scenes])
    area = covered.intersection(border.lonlat)
    bounds = list((area if not area.is_empty else covered).bounds)
    return {
        "tilejson": "3.0.0",
        "bounds": bounds,
        "minzoom": MINZOOM,
        "maxzoom": MAXZOOM,
        "tiles": [tiles_url],
    }
