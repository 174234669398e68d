"""Sentinel-2 MGRS tiles: tile ids, their UTM bounds, and the tiles a project border touches."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from sputnik.errors import InvalidInput

# MGRS latitude bands, 8 degrees each from 80S; X (the last) is 12 degrees tall.
BANDS = "CDEFGHJKLMNPQRSTUVWX"
# 100 km column letters repeat every three zones (zone % 3 == 1, 2, 0), eight per zone.
COLUMN_SETS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")
# 100 km row letters: a 20-letter cycle of 2,000 km, shifted by 5 letters in even zones (MGRS "AA").
ROWS = "ABCDEFGHJKLMNPQRSTUV"
ROW_CYCLE_M = 2_000_000
SQUARE_M = 100_000
# A Sentinel-2 tile is 10,980 pixels of 10 m; its corner sits on a 60 m grid (the 60 m band's pixel).
TILE_M = 109_800
PIXEL_GRID_M = 60
FALSE_NORTHING_SOUTH = 10_000_000

# ASCII digits only: \d would accept other scripts' digits, which int() then happily parses.
_TILE_RE = re.compile(r"([0-9]{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])")
# Mean metres of northing per degree of latitude; only used to pick the 2,000 km row cycle, so the
# few km of error from the flattening are irrelevant.
_M_PER_DEGREE = 110_900


def _parse(tile: str) -> tuple[int, str, str, str]:
    """Split a tile id into (zone, band, column letter, row letter), raising InvalidInput if malformed."""
    if not isinstance(tile, str):
        raise InvalidInput(f"invalid Sentinel-2 tile id: {tile!r}")
    match = _TILE_RE.fullmatch(tile.strip().upper())
    if match is None:
        raise InvalidInput(f"invalid Sentinel-2 tile id: {tile!r}")
    zone = int(match.group(1))
    band, column, row = match.group(2), match.group(3), match.group(4)
    if not 1 <= zone <= 60:
        raise InvalidInput(f"invalid UTM zone in Sentinel-2 tile id: {tile!r}")
    # Each zone uses only its own eight column letters; a letter of another set names no square.
    if column not in COLUMN_SETS[zone % 3]:
        raise InvalidInput(f"column letter {column!r} does not exist in UTM zone {zone}: {tile!r}")
    # Svalbard: zones 32X, 34X and 36X were merged into their neighbours and do not exist.
    if band == "X" and zone in (32, 34, 36):
        raise InvalidInput(f"grid zone {zone}X does not exist (Svalbard exception): {tile!r}")
    return zone, band, column, row


def normalize_tile(tile: str) -> str:
    """Validate a Sentinel-2 tile id and return it as the canonical "33TWN" / "06RXT" form."""
    zone, band, column, row = _parse(tile)
    return f"{zone:02d}{band}{column}{row}"


def _square_origin(zone: int, band: str, column: str, row: str) -> tuple[int, int]:
    """West edge and north edge (northing from the equator, negative south) of a 100 km square."""
    west = (COLUMN_SETS[zone % 3].index(column) + 1) * SQUARE_M
    # Even zones start their row letters at F (5 squares up) so letters don't line up across zones.
    row_index = (ROWS.index(row) - (5 if zone % 2 == 0 else 0)) % len(ROWS)
    south_in_cycle = row_index * SQUARE_M
    # The row letter fixes the northing modulo 2,000 km; the band decides which cycle: take the
    # candidate nearest the band's middle (a band is ~900 km tall, so the choice is unambiguous).
    band_index = BANDS.index(band)
    band_south = -80 + 8 * band_index
    band_middle = band_south + (6 if band == "X" else 4)
    target = band_middle * _M_PER_DEGREE - SQUARE_M / 2
    cycles = round((target - south_in_cycle) / ROW_CYCLE_M)
    south = south_in_cycle + cycles * ROW_CYCLE_M
    return west, south + SQUARE_M


def tile_utm_bounds(tile: str) -> tuple[int, tuple[float, float, float, float]]:
    """EPSG code and UTM bounds (minx, miny, maxx, maxy) of a Sentinel-2 tile such as "33TWN"."""
    zone, band, column, row = _parse(tile)
    west, north = _square_origin(zone, band, column, row)
    # Sentinel-2 snaps the square's upper-left corner outwards onto the 60 m grid (west down, north
    # up, northing counted from the equator), e.g. 33TWN: 500000 -> 499980, 5300000 -> 5300040.
    minx = math.floor(west / PIXEL_GRID_M) * PIXEL_GRID_M
    maxy = math.ceil(north / PIXEL_GRID_M) * PIXEL_GRID_M
    south = band < "N"
    if south:
        maxy += FALSE_NORTHING_SOUTH
    epsg = (32700 if south else 32600) + zone
    return epsg, (float(minx), float(maxy - TILE_M), float(minx + TILE_M), float(maxy))


# A scene's footprint stays within its tile; this much more covers footprints drawn straight in lon/lat.
REACH_MARGIN_M = 5_000.0


@functools.cache
def _utm_to_lonlat(epsg: int) -> Transformer:
    """Cached UTM (north or south) -> lon/lat transformer."""
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def tile_lonlat_bounds(tile: str) -> tuple[float, float, float, float]:
    """Lon/lat bounds that hold every footprint of a tile's scenes (its square plus a margin).

    A tile that straddles the antimeridian gets bounds spanning the globe.
    """
    epsg, (minx, miny, maxx, maxy) = tile_utm_bounds(tile)
    m = REACH_MARGIN_M
    outline = box(minx - m, miny - m, maxx + m, maxy + m).segmentize(5_000)
    west, south, east, north = _project(outline, _utm_to_lonlat(epsg)).bounds
    return float(west), float(south), float(east), float(north)


# ---------------------------------------------------------------------------------------------
# Border -> tiles
# ---------------------------------------------------------------------------------------------

# The grid reaches beyond the nominal MGRS limits (80S..84N): its last rows of squares are centred
# near 83.3S and 84.2N, so zones are taken to end at 84 degrees (in the south this keeps one more row,
# centred at 84.2S, that the grid lacks: a harmless superset).
LAT_LIMIT = 84.0
# Grid-zone exceptions, as (zone, band) -> (west, east) longitudes: Norway and Svalbard.
_GZD_EXCEPTIONS: dict[tuple[int, str], tuple[float, float]] = {
    (31, "V"): (0.0, 3.0),
    (32, "V"): (3.0, 12.0),
    (31, "X"): (0.0, 9.0),
    (33, "X"): (9.0, 21.0),
    (35, "X"): (21.0, 33.0),
    (37, "X"): (33.0, 42.0),
}
_MISSING_GZD = frozenset({(32, "X"), (34, "X"), (36, "X")})
# A tile's footprint lies within ~160 km (square + 9.8 km overlap, diagonally) of its zone.
_ZONE_REACH_M = 200_000
_M_PER_DEGREE_LON_AT_EQUATOR = 111_320
# Borders are densified (in degrees) before projecting so their straight lon/lat edges stay put.
_DENSIFY_DEG = 0.1
# A square belongs to a zone when the zone meets its western half (the grid: a west-edge square
# overlapping the zone by 46.9 km is absent, by 50.3 km present; 1 km of slack is kept on the
# inclusive side). The east edge is generous: a square overlapping by 143 m (02UQE) exists, so does
# one merely touching it (31VE*, whose west edge is the 3E meridian that ends 31V).
_WEST_PART_M = 51_000
# Zone 1 is generous on its west side too (the antimeridian): 01KAA overlaps it by 19 km.
_WHOLE_SQUARE_ZONES = frozenset({1})
# Slack so that squares exactly touching their zone (31VE*) survive floating-point rounding.
_TOUCH_M = 10.0


def _band_lats(band: str) -> tuple[float, float]:
    """Latitude range of a band, with C and X stretched to the grid's real limits."""
    index = BANDS.index(band)
    south = -LAT_LIMIT if band == "C" else -80.0 + 8 * index
    north = LAT_LIMIT if band == "X" else -80.0 + 8 * (index + 1)
    return south, north


def _zone_lons(zone: int, band: str) -> tuple[float, float]:
    """Longitude range of grid zone designation zone+band (standard 6 degrees unless an exception)."""
    west = -180.0 + 6 * (zone - 1)
    return _GZD_EXCEPTIONS.get((zone, band), (west, west + 6.0))


def _zone_extent(zone: int) -> tuple[float, float]:
    """Widest longitude range any band of a zone covers (the exceptions widen 31, 32, 33, 35, 37)."""
    lons = [_zone_lons(zone, band) for band in BANDS if (zone, band) not in _MISSING_GZD]
    return min(w for w, _ in lons), max(e for _, e in lons)


_ZONE_EXTENTS = {zone: _zone_extent(zone) for zone in range(1, 61)}


@functools.cache
def _to_utm(zone: int) -> Transformer:
    """Cached lon/lat -> northern UTM transformer; south squares use negative northings (same grid)."""
    return Transformer.from_crs(4326, 32600 + zone, always_xy=True)


@functools.cache
def _to_lonlat(zone: int) -> Transformer:
    """Cached northern UTM -> lon/lat transformer."""
    return Transformer.from_crs(32600 + zone, 4326, always_xy=True)


def _project(geom: BaseGeometry, transformer: Transformer) -> BaseGeometry:
    """Apply a pyproj transformer to every coordinate of a shapely geometry."""

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack((x, y))

    return shapely.transform(geom, _xy)


@functools.cache
def _zone_region(zone: int) -> BaseGeometry:
    """Where zone's squares may lie, in its UTM: the union of its grid zone designations (prepared)."""
    boxes = []
    for band in BANDS:
        if (zone, band) in _MISSING_GZD:
            continue
        west, east = _zone_lons(zone, band)
        south, north = _band_lats(band)
        boxes.append(box(west, south, east, north))
    region = shapely.segmentize(shapely.union_all(boxes), _DENSIFY_DEG)
    projected = _project(region, _to_utm(zone))
    shapely.prepare(projected)
    return projected


def _band_for(zone: int, lat: float) -> str:
    """Band letter the grid gives a square: that of the latitude of the square's centre."""
    if lat >= 72.0:
        band = "X"
    elif lat < -72.0:
        band = "C"
    else:
        band = BANDS[int((lat + 80.0) // 8)]
    # Svalbard: 32X/34X/36X don't exist, so a square there is named by the band below (open sea).
    return "W" if (zone, band) in _MISSING_GZD else band


def _lon_windows(zone: int, reach_deg: float) -> list[tuple[float, float]]:
    """Longitude windows (within -180..180) where tiles of zone may lie, split at the antimeridian."""
    west, east = _ZONE_EXTENTS[zone]
    west, east = west - reach_deg, east + reach_deg
    if east - west >= 360.0:
        return [(-180.0, 180.0)]
    windows = []
    for shift in (-360.0, 0.0, 360.0):
        lo, hi = max(west + shift, -180.0), min(east + shift, 180.0)
        if lo < hi:
            windows.append((lo, hi))
    return windows


def _zone_tiles(zone: int, piece: BaseGeometry, margin: float) -> set[str]:
    """Tiles of one zone whose footprint (grown by margin metres) intersects a lon/lat piece."""
    projected = _project(shapely.segmentize(piece, _DENSIFY_DEG), _to_utm(zone))
    if projected.is_empty:
        return set()
    minx, miny, maxx, maxy = projected.bounds
    # Square (west, north) has footprint x in [west-60, west+109800], y in [north-109800, north+60].
    first_west = max(math.floor((minx - margin - TILE_M) / SQUARE_M), 1)
    last_west = min(math.floor((maxx + margin + PIXEL_GRID_M) / SQUARE_M), 8)
    first_north = math.ceil((miny - margin - PIXEL_GRID_M) / SQUARE_M)
    last_north = math.floor((maxy + margin + TILE_M) / SQUARE_M)
    if first_west > last_west or first_north > last_north:
        return set()
    cols, rows = np.meshgrid(
        np.arange(first_west, last_west + 1), np.arange(first_north, last_north + 1), indexing="ij"
    )
    wests = cols.ravel() * SQUARE_M
    norths = rows.ravel() * SQUARE_M
    ulx = np.floor(wests / PIXEL_GRID_M) * PIXEL_GRID_M
    uly = np.ceil(norths / PIXEL_GRID_M) * PIXEL_GRID_M
    footprints = shapely.box(ulx - margin, uly - TILE_M - margin, ulx + TILE_M + margin, uly + margin)
    shapely.prepare(projected)
    keep = shapely.intersects(projected, footprints)
    # Which squares the grid has in this zone (see _WEST_PART_M).
    part = SQUARE_M if zone in _WHOLE_SQUARE_ZONES else _WEST_PART_M
    parts = shapely.box(wests - _TOUCH_M, norths - SQUARE_M - _TOUCH_M, wests + part, norths + _TOUCH_M)
    keep[keep] &= shapely.intersects(_zone_region(zone), parts[keep])
    if not keep.any():
        return set()
    wests, norths = wests[keep], norths[keep]
    _, lats = _to_lonlat(zone).transform(wests + SQUARE_M / 2, norths - SQUARE_M / 2)
    columns = COLUMN_SETS[zone % 3]
    row_shift = 5 if zone % 2 == 0 else 0
    tiles = set()
    for west, north, lat in zip(wests.tolist(), norths.tolist(), np.atleast_1d(lats).tolist(), strict=True):
        column = columns[int(west // SQUARE_M) - 1]
        row = ROWS[(int(north // SQUARE_M) - 1 + row_shift) % len(ROWS)]
        tiles.add(f"{zone:02d}{_band_for(zone, lat)}{column}{row}")
    return tiles


def tiles_for_border(border: BaseGeometry) -> set[str]:
    """Sentinel-2 tiles ("33TWN") whose footprint may intersect a lon/lat border (a small superset)."""
    if not isinstance(border, BaseGeometry):
        raise InvalidInput("border must be a shapely geometry")
    tiles: set[str] = set()
    for piece in shapely.get_parts(border).tolist():
        if piece.is_empty:
            continue
        _, south, _, north = piece.bounds
        # Tiles stop near 84 degrees; beyond, there is nothing to find.
        if south > LAT_LIMIT + 2.0 or north < -LAT_LIMIT - 2.0:
            continue
        # Degrees of longitude a tile can sit beyond its zone, at the piece's poleward latitude
        # (plus the ~1.5 degrees a tile's far side can lie further poleward than the piece).
        poleward = min(max(abs(south), abs(north)) + 1.5, LAT_LIMIT + 1.0)
        reach_deg = _ZONE_REACH_M / (_M_PER_DEGREE_LON_AT_EQUATOR * math.cos(math.radians(poleward)))
        # Official footprints are straight in lon/lat, ours straight in UTM; the gap between the two
        # (measured on the grid) grows with latitude up to ~2.5 km at 84 degrees.
        margin = 500.0 + 250.0 * math.tan(math.radians(poleward))
        west, _, east, _ = piece.bounds
        for zone in range(1, 61):
            for lo, hi in _lon_windows(zone, reach_deg):
                if hi < west or lo > east:
                    continue
                # Clip to the window so nothing is projected far from the zone's central meridian.
                clipped = shapely.clip_by_rect(piece, lo, -90.0, hi, 90.0)
                if not clipped.is_empty:
                    tiles |= _zone_tiles(zone, clipped, margin)
    return tiles
