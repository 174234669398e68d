"""Earth Search STAC items (v0 and v1 schemas) as one `Scene`, and the archive's object keys."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import shapely
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from sputnik import geo
from sputnik.band_names import REFLECTANCE_BANDS, REFLECTANCE_SCALE, V0_TO_V1, V1_TO_V0
from sputnik.errors import InvalidInput, InvalidItem
from sputnik.mgrs import normalize_tile
from sputnik.settings import ARCHIVE_PREFIX

# Real footprints have 5-30 vertices; a cap keeps a scene's records far below DynamoDB's item limit.
MAX_FOOTPRINT_VERTICES = 2_000

# Names people use for the true-colour image: the asset is `visual`, its file `TCI.tif`.
VISUAL_ALIASES = ("visual", "TCI", "tci")

# `{zone}/{band}/{square}/{year}/{month}/{scene_id}/{scene_id}.json`, zone and month not zero-padded.
_ITEM_KEY_RE = re.compile(
    rf"^{ARCHIVE_PREFIX}/([1-9]|[1-5][0-9]|60)/([C-HJ-NP-X])/([A-HJ-NP-Z][A-HJ-NP-V])"
    r"/(\d{4})/([1-9]|1[0-2])/([A-Za-z0-9_.-]+)/\6\.json$"
)
_SCENE_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # one path segment, never "." or ".."
# The https forms S3 documents for an object: virtual-hosted (`{bucket}.s3.{region}.amazonaws.com`,
# the legacy `{bucket}.s3-{region}` and global `{bucket}.s3`) and path-style (`s3.{region}...` and
# the rest, with the bucket as the first path segment). Anything else (another host, a port,
# credentials, a query) is not an S3 object URL.
_S3_HOST_RE = re.compile(
    r"(?:(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.)?s3(?:[.-][a-z]{2}(?:-[a-z]+)+-[0-9])?\.amazonaws\.com"
)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A key segment as the archive writes them: no percent-encoding, no "..", nothing a URL reinterprets.
_KEY_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
# An archive item's names as Earth Search and ESA write them (Sentinel-2A to 2D, level 2A): the
# product name is shown to every user viewing that date, so an item naming anything else is bad.
EARTH_SEARCH_ID_RE = re.compile(r"S2[A-D]_\d{1,2}[C-X][A-Z]{2}_\d{8}_\d+_L2A", re.ASCII)
ESA_PRODUCT_RE = re.compile(
    r"S2[A-D]_MSIL2A_\d{8}T\d{6}_N\d{4}_R\d{3}_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}", re.ASCII
)


@dataclass(frozen=True)
class Scene:
    """One Sentinel-2 L2A scene as sputnik uses it, whatever schema its STAC item had."""

    scene_id: str
    tile: str
    date: str
    datetime: str
    footprint: BaseGeometry = field(hash=False)
    bbox: tuple[float, float, float, float]
    filename: str
    cloud_cover: float | None
    epsg: int | None
    assets: Mapping[str, str] = field(hash=False)
    # Band name (v0: `B04`, `SCL`) -> (scale, offset) turning its digital numbers into reflectance.
    scaling: Mapping[str, tuple[float, float]] = field(default=MappingProxyType({}), hash=False)
    processing_baseline: str | None = None

    def asset_href(self, key: str) -> str:
        """Href of an asset by v0 or v1 name (`visual`/`TCI`, `B04`/`red`, `B08`/`nir`, ...)."""
        for name in _asset_candidates(key):
            if name in self.assets:
                return self.assets[name]
        raise InvalidItem(f"scene {self.scene_id} has no asset {key!r}")

    @property
    def key(self) -> str:
        """Archive key of this scene's STAC item."""
        return item_key(self.tile, self.date, self.scene_id)


def _asset_candidates(key: str) -> list[str]:
    """Asset names that may hold what `key` names, most direct first."""
    if key in VISUAL_ALIASES:
        return ["visual"]
    names = [key]
    upper = key.upper()
    if upper in V0_TO_V1:
        names += [upper, V0_TO_V1[upper]]
    if key.lower() in V1_TO_V0:
        names += [key.lower(), V1_TO_V0[key.lower()]]
    return names


def parse_item(data: bytes | str | Mapping[str, Any]) -> Scene:
    """Parse an Earth Search STAC item (v0 `sentinel:*` or v1 `mgrs:*` schema) into a Scene.

    Raises InvalidItem when the input is not JSON, not a STAC item (a GeoJSON Feature with `id`,
    `properties` and `assets`), or lacks a usable footprint, datetime or MGRS tile. The footprint must
    be a non-empty Polygon or MultiPolygon in lon/lat; an invalid one (self-touching ring, bow-tie) is
    repaired with `make_valid`, keeping its polygonal parts, and rejected if no area is left, because
    a footprint is only ever used for its area (intersection with project borders). `filename` falls
    back to the scene id when an item carries no ESA product name.
    """
    item = _load(data)
    scene_id = item.get("id")
    if not isinstance(scene_id, str) or not _SCENE_ID_RE.match(scene_id):
        raise InvalidItem(f"STAC item has no usable id: {scene_id!r}")
    if not EARTH_SEARCH_ID_RE.fullmatch(scene_id):
        raise InvalidItem(f"STAC item id {scene_id[:100]!r} is not an Earth Search Sentinel-2 L2A scene id")
    props = item["properties"]
    footprint = _footprint(item.get("geometry"), scene_id)
    minx, miny, maxx, maxy = (float(v) for v in footprint.bounds)
    when, day = _datetime(props, scene_id)
    return Scene(
        scene_id=scene_id,
        tile=_tile(props, scene_id),
        date=day,
        datetime=when,
        footprint=footprint,
        bbox=(minx, miny, maxx, maxy),
        filename=_filename(props) or scene_id,
        cloud_cover=_number(props.get("eo:cloud_cover")),
        epsg=_epsg(props),
        assets=MappingProxyType(_assets(item["assets"])),
        scaling=MappingProxyType(_scaling(item["assets"], props)),
        processing_baseline=_baseline(props),
    )


def _load(data: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """Decode JSON if needed and check the shape of a STAC item."""
    if isinstance(data, bytes | str):
        try:
            item = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidItem(f"STAC item is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise InvalidItem("STAC item is nested too deeply") from exc
    else:
        item = data
    if not isinstance(item, Mapping):
        raise InvalidItem("STAC item must be a JSON object")
    if item.get("type") != "Feature":
        raise InvalidItem(f"STAC item must be a GeoJSON Feature, got type {item.get('type')!r}")
    if "stac_version" not in item:
        raise InvalidItem("not a STAC item: no stac_version")
    if not isinstance(item.get("properties"), Mapping):
        raise InvalidItem("STAC item has no properties object")
    if not isinstance(item.get("assets"), Mapping):
        raise InvalidItem("STAC item has no assets object")
    return item


def _footprint(geometry: object, scene_id: str) -> Polygon | MultiPolygon:
    """The item's geometry as a valid, non-empty lon/lat (Multi)Polygon."""
    if not isinstance(geometry, Mapping):
        raise InvalidItem(f"{scene_id}: STAC item has no geometry")
    if geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidItem(
            f"{scene_id}: geometry must be a GeoJSON Polygon or MultiPolygon, got {geometry.get('type')!r}"
        )
    try:
        geom = shape(geometry)
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        ShapelyError,
    ) as exc:
        raise InvalidItem(f"{scene_id}: geometry is not valid GeoJSON: {str(exc)[:200]}") from exc
    if geom.is_empty:
        raise InvalidItem(f"{scene_id}: geometry is empty")
    if not isinstance(geom, Polygon | MultiPolygon):
        raise InvalidItem(f"{scene_id}: geometry must be a Polygon or MultiPolygon, got {geom.geom_type}")
    vertices = shapely.get_num_coordinates(geom)
    if vertices > MAX_FOOTPRINT_VERTICES:
        raise InvalidItem(f"{scene_id}: geometry has {vertices} vertices, more than {MAX_FOOTPRINT_VERTICES}")
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise InvalidItem(f"{scene_id}: geometry has non-finite coordinates")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidItem(f"{scene_id}: geometry is not in lon/lat (bounds {geom.bounds})")
    try:
        # A ring that crosses the antimeridian would otherwise span the globe the other way round.
        geom = geo.split_antimeridian(geom)
    except (ValueError, ShapelyError) as exc:
        raise InvalidItem(
            f"{scene_id}: geometry crosses the antimeridian and cannot be split: {exc}"
        ) from exc
    if not geom.is_valid:
        # Keep only areas: make_valid may return a collection with stray lines or points.
        fixed = shapely.make_valid(geom)
        parts = [g for g in getattr(fixed, "geoms", [fixed]) if isinstance(g, Polygon | MultiPolygon)]
        geom = shapely.union_all(parts) if parts else Polygon()
        if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty or geom.area == 0:
            raise InvalidItem(f"{scene_id}: geometry is invalid and has no area once repaired")
    if geom.area == 0:
        raise InvalidItem(f"{scene_id}: geometry has no area")
    return geom


def _datetime(props: Mapping[str, Any], scene_id: str) -> tuple[str, str]:
    """The item's `datetime` string and its UTC date (YYYY-MM-DD)."""
    value = props.get("datetime")
    if not isinstance(value, str) or not value:
        raise InvalidItem(f"{scene_id}: STAC item has no datetime")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidItem(f"{scene_id}: datetime {value!r} is not an ISO 8601 date-time") from exc
    # STAC datetimes are UTC; a naive one is read as UTC rather than as this machine's local time.
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return value, when.date().isoformat()


def _tile(props: Mapping[str, Any], scene_id: str) -> str:
    """The normalised MGRS tile from v0 `sentinel:*`, v1 `mgrs:*` or v1 `grid:code` properties."""
    candidates: list[str] = []
    for prefix in ("sentinel", "mgrs"):
        zone = props.get(f"{prefix}:utm_zone")
        band = props.get(f"{prefix}:latitude_band")
        square = props.get(f"{prefix}:grid_square")
        if zone is not None and band is not None and square is not None:
            candidates.append(f"{zone}{band}{square}")
    code = props.get("grid:code")
    if isinstance(code, str) and code.upper().startswith("MGRS-"):
        candidates.append(code[5:])
    if not candidates:
        raise InvalidItem(f"{scene_id}: STAC item has no MGRS tile (sentinel:*, mgrs:* or grid:code)")
    try:
        tiles = {normalize_tile(c) for c in candidates}
    except InvalidInput as exc:
        raise InvalidItem(f"{scene_id}: {exc}") from exc
    if len(tiles) > 1:
        raise InvalidItem(f"{scene_id}: STAC item names conflicting tiles {sorted(tiles)}")
    return tiles.pop()


def _filename(props: Mapping[str, Any]) -> str | None:
    """The ESA product name: v0 `sentinel:product_id`, v1 `s2:product_uri` without `.SAFE`."""
    for name in ("sentinel:product_id", "s2:product_uri"):
        value = props.get(name)
        if isinstance(value, str) and value.strip():
            name = value.strip().removesuffix(".SAFE")
            if not ESA_PRODUCT_RE.fullmatch(name):
                raise InvalidItem(f"{name[:100]!r} is not an ESA Sentinel-2 L2A product name")
            return name
    return None


def _number(value: object) -> float | None:
    """A finite float, or None for anything else (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _epsg(props: Mapping[str, Any]) -> int | None:
    """The EPSG code from `proj:epsg` (projection v1) or `proj:code` (v2, "EPSG:32633")."""
    epsg = props.get("proj:epsg")
    if isinstance(epsg, int) and not isinstance(epsg, bool):
        return epsg
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:") and code[5:].isdigit():
        return int(code[5:])
    return None


def _assets(assets: Mapping[str, Any]) -> dict[str, str]:
    """Asset name -> href, without `*-jp2` duplicates, with v0 band names added for v1 names."""
    hrefs: dict[str, str] = {}
    for name, asset in assets.items():
        if name.endswith("-jp2") or not isinstance(asset, Mapping):
            continue
        href = asset.get("href")
        if isinstance(href, str) and href:
            hrefs[name] = href
    for v1, v0 in V1_TO_V0.items():
        if v1 in hrefs and v0 not in hrefs:
            hrefs[v0] = hrefs[v1]
    return hrefs


# Earth Search's word that an item's digital numbers already have baseline 04.00's BOA_ADD_OFFSET
# (-1000) applied, so they are reflectance x 10000 as before 04.00 (v1 `earthsearch:`, v0
# `sentinel:`). Its maintainers call the flag the truth where the item's raster:bands still give the
# -0.1 offset (Element84/earth-search#9; cirrus-earth-search#21 for v0).
OFFSET_APPLIED_FLAGS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")


def _scaling(assets: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Band name -> (scale, offset): each asset's `raster:bands` (STAC raster extension), where given.

    An item flagged as having its offset applied gets no offset for any reflectance band.
    """
    found: dict[str, tuple[float, float]] = {}
    for name, asset in assets.items():
        if name.endswith("-jp2") or not isinstance(asset, Mapping):
            continue
        bands = asset.get("raster:bands")
        if not isinstance(bands, list) or len(bands) != 1 or not isinstance(bands[0], Mapping):
            continue
        scale, offset = _number(bands[0].get("scale")), _number(bands[0].get("offset"))
        if scale is not None and scale > 0:
            found[V1_TO_V0.get(name, name)] = (scale, offset or 0.0)
    if any(props.get(flag) is True for flag in OFFSET_APPLIED_FLAGS):
        for band in REFLECTANCE_BANDS:
            found[band] = (found.get(band, (REFLECTANCE_SCALE, 0.0))[0], 0.0)
    return found


_BASELINE_RE = re.compile(r"_N(\d{2})(\d{2})_")


def _baseline(props: Mapping[str, Any]) -> str | None:
    """The processing baseline ("04.00"): v1 `s2:processing_baseline`, else the ESA product name's `N0400`."""
    value = props.get("s2:processing_baseline")
    if isinstance(value, str) and re.fullmatch(r"\d{2}\.\d{2}", value):
        return value
    name = _filename(props)
    match = _BASELINE_RE.search(name or "")
    return f"{match[1]}.{match[2]}" if match else None


def s3_object(url: str) -> tuple[str, str] | None:
    """The (bucket, key) an `s3://` or S3 `https://` URL names; None for any other URL or a tricky key."""
    if url.startswith("s3://"):
        bucket, _, key = url.removeprefix("s3://").partition("/")
    else:
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            return None
        # The whole netloc must be an S3 host: a port or `user@` in front makes it someone else's.
        host = _S3_HOST_RE.fullmatch(parts.netloc.lower())
        if parts.scheme != "https" or host is None or parts.query or parts.fragment:
            return None
        path = parts.path.removeprefix("/")
        if host.group("bucket"):
            bucket, key = host.group("bucket"), path
        else:
            bucket, _, key = path.partition("/")
    segments = key.split("/")
    if not _BUCKET_RE.fullmatch(bucket) or any(
        not _KEY_SEGMENT_RE.fullmatch(part) or part in {".", ".."} for part in segments
    ):
        return None
    return bucket, key


def archive_url(url: str, bucket: str) -> str:
    """`s3://{bucket}/{key}` for a URL of an object of `bucket`'s archive prefix; any other URL unchanged."""
    found = s3_object(url)
    if found is None or found[0] != bucket or not found[1].startswith(f"{ARCHIVE_PREFIX}/"):
        return url
    return f"s3://{found[0]}/{found[1]}"


def in_bucket(scene: Scene, bucket: str) -> Scene:
    """The scene with its asset hrefs into `bucket`'s archive in the `s3://` form the tiler reads."""
    return replace(
        scene, assets=MappingProxyType({k: archive_url(v, bucket) for k, v in scene.assets.items()})
    )


def item_location(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """The S3 object an item says it is: its `canonical` link, else its `self` link, if an S3 URL."""
    links = item.get("links")
    hrefs: dict[object, str] = {
        link.get("rel"): str(link["href"])
        for link in (links if isinstance(links, list) else [])
        if isinstance(link, Mapping) and isinstance(link.get("href"), str)
    }
    for rel in ("canonical", "self"):
        found = s3_object(hrefs[rel]) if rel in hrefs else None
        if found is not None:
            return found
    return None


def _split_tile(tile: str) -> tuple[int, str, str]:
    """(zone, latitude band, grid square) of a tile, raising InvalidInput if malformed."""
    canonical = normalize_tile(tile)
    return int(canonical[:2]), canonical[2], canonical[3:]


def parse_day(day: str | date) -> date:
    """A date from YYYY-MM-DD (or a date), raising InvalidInput if malformed."""
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid date {day!r}: expected YYYY-MM-DD") from exc


def month_prefix(tile: str, year: int, month: int) -> str:
    """Archive prefix of one tile's month, e.g. `sentinel-s2-l2a-cogs/33/T/WN/2021/7/`."""
    zone, band, square = _split_tile(tile)
    if not 1 <= month <= 12:
        raise InvalidInput(f"invalid month {month}")
    return f"{ARCHIVE_PREFIX}/{zone}/{band}/{square}/{year}/{month}/"


def scene_prefix(tile: str, day: str | date, scene_id: str) -> str:
    """Archive folder of one scene, ending with "/"."""
    if not _SCENE_ID_RE.match(scene_id):
        raise InvalidInput(f"invalid scene id {scene_id!r}")
    when = parse_day(day)
    return f"{month_prefix(tile, when.year, when.month)}{scene_id}/"


def item_key(tile: str, day: str | date, scene_id: str) -> str:
    """Archive key of a scene's STAC item: `.../{zone}/{band}/{square}/{year}/{month}/{id}/{id}.json`."""
    return f"{scene_prefix(tile, day, scene_id)}{scene_id}.json"


def scene_key(scene: Scene | tuple[str, str | date, str]) -> str:
    """Archive key of the STAC item of a Scene or of a (tile, date, scene_id) triple."""
    if isinstance(scene, Scene):
        return item_key(scene.tile, scene.date, scene.scene_id)
    tile, day, scene_id = scene
    return item_key(tile, day, scene_id)


def item_key_scene(key: str) -> tuple[str, str] | None:
    """The (tile, scene id) an archive item key names by its folders, or None if it is not one."""
    found = _ITEM_KEY_RE.match(key)
    if found is None:
        return None
    zone, band, square, _, _, scene_id = found.groups()
    return f"{int(zone):02d}{band}{square}", scene_id


def is_item_key(key: str) -> bool:
    """Whether an object key is a STAC item in the archive layout (file name = folder name + .json)."""
    return _ITEM_KEY_RE.match(key) is not None
