"""Project borders: GeoJSON in, validated lon/lat (Multi)Polygons out, WKT/WKB/GeoJSON text."""

import json
import math
from typing import Any

import antimeridian
import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from sputnik.errors import InvalidInput

MAX_BORDER_KM2 = 250_000.0  # about a 500 km square: far more than a team processes at 10 m
MAX_VERTICES = 20_000  # keeps parsing, tile search and DynamoDB items small
MAX_FEATURES = 1_000  # parts of a FeatureCollection; each costs a union
_GEOD = Geod(ellps="WGS84")


def parse_border(border: str | dict[str, Any]) -> Polygon | MultiPolygon:
    """Parse a GeoJSON geometry, Feature or FeatureCollection of (Multi)Polygons in lon/lat."""
    if isinstance(border, str):
        try:
            data = json.loads(border)
        except ValueError as exc:
            raise InvalidInput("border is not valid JSON") from exc
        except RecursionError as exc:
            raise InvalidInput("border is nested too deeply to be GeoJSON") from exc
    else:
        data = border
    if not isinstance(data, dict):
        raise InvalidInput("border must be a GeoJSON object")
    dicts = _geometry_dicts(data)
    if len(dicts) > MAX_FEATURES:
        raise InvalidInput(f"border has more than {MAX_FEATURES} features")
    # Count before building anything, so a huge border costs no more than reading it.
    parts = [_rings(g) for g in dicts]
    if sum(len(ring) for polygons in parts for rings in polygons for ring in rings) > MAX_VERTICES:
        raise InvalidInput(f"border has more than {MAX_VERTICES} vertices")
    geometries = [_geometry(polygons) for polygons in parts]
    if not geometries:
        raise InvalidInput("border is empty")
    geom = geometries[0] if len(geometries) == 1 else shapely.union_all(geometries)
    if geom.is_empty:
        raise InvalidInput("border is empty")
    if not isinstance(geom, Polygon | MultiPolygon):
        raise InvalidInput("border must be a Polygon or MultiPolygon")
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise InvalidInput(f"border has more than {MAX_VERTICES} vertices")
    area = area_km2(geom)
    if area > MAX_BORDER_KM2:
        raise InvalidInput(f"border covers {area:,.0f} km², more than the limit of {MAX_BORDER_KM2:,.0f} km²")
    return geom


def _geometry_dicts(data: dict[str, Any]) -> list[Any]:
    """Return the geometry objects inside a GeoJSON geometry, Feature or FeatureCollection."""
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InvalidInput("FeatureCollection needs a list of features")
        return [g for f in features for g in _geometry_dicts(f if isinstance(f, dict) else {})]
    if kind == "Feature":
        if not isinstance(data.get("geometry"), dict):
            raise InvalidInput("Feature has no geometry")
        return [data["geometry"]]
    if kind in ("Polygon", "MultiPolygon"):
        return [data]
    if kind in ("Point", "MultiPoint", "LineString", "MultiLineString", "GeometryCollection"):
        raise InvalidInput(f"border must be a Polygon or MultiPolygon, not {kind}")
    raise InvalidInput(
        "border is not GeoJSON: expected a Polygon, MultiPolygon, Feature or FeatureCollection"
    )


def _rings(data: Any) -> list[list[list[tuple[float, float]]]]:
    """The polygons (each a list of rings of lon/lat positions) of a GeoJSON (Multi)Polygon.

    Walks the nesting explicitly, to the depth the type has, so a hostile depth costs nothing.
    """
    if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("border must be a Polygon or MultiPolygon")
    kind = data["type"]
    coordinates = data.get("coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if not isinstance(polygons, list):
        raise InvalidInput(f"border has malformed {kind} coordinates")
    out = []
    for polygon in polygons:
        if not isinstance(polygon, list):
            raise InvalidInput(f"border has malformed {kind} coordinates")
        rings = []
        for ring in polygon:
            if not isinstance(ring, list):
                raise InvalidInput(f"border has malformed {kind} coordinates")
            rings.append([_position(p, kind) for p in ring])
        out.append(rings)
    return out


def _position(value: Any, kind: str) -> tuple[float, float]:
    """One lon/lat position (a third coordinate, if any, is ignored)."""
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise InvalidInput(f"border has malformed {kind} coordinates")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise InvalidInput("border coordinates must be numbers")
    try:
        lon, lat = float(value[0]), float(value[1])
    except OverflowError as exc:
        raise InvalidInput("border coordinates must be finite numbers") from exc
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput("border coordinates must be finite numbers")
    if abs(lon) > 180 or abs(lat) > 90:
        raise InvalidInput(
            "border coordinates must be lon/lat degrees (lon -180..180, lat -90..90); "
            "split a border that crosses the antimeridian into a MultiPolygon"
        )
    return lon, lat


def _geometry(polygons: list[list[list[tuple[float, float]]]]) -> BaseGeometry:
    """Build one (Multi)Polygon from checked positions, rejecting invalid rings."""
    if not polygons or not any(polygons):
        raise InvalidInput("border is empty")
    try:
        built = [Polygon(rings[0], rings[1:]) for rings in polygons if rings]
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        raise InvalidInput(f"border has malformed rings: {exc}") from exc
    geom = built[0] if len(built) == 1 else MultiPolygon(built)
    if geom.is_empty:
        raise InvalidInput("border is empty")
    if any(_crosses_antimeridian(ring) for ring in _rings_of(geom)):
        raise InvalidInput("border crosses the antimeridian: split it there into a MultiPolygon")
    if not geom.is_valid:
        # Rejected, not repaired: a silent repair of a bow-tie can change the area a user meant.
        raise InvalidInput(f"border is not a valid polygon ({explain_validity(geom)}); fix it and try again")
    return geom


def _rings_of(geom: BaseGeometry) -> list[Any]:
    """Every ring of a (Multi)Polygon, as coordinate arrays."""
    rings = []
    for part in shapely.get_parts(geom).tolist():
        rings.append(np.asarray(part.exterior.coords))
        rings.extend(np.asarray(r.coords) for r in part.interiors)
    return rings


def _crosses_antimeridian(coords: Any) -> bool:
    """Whether a ring jumps more than 180 degrees of longitude between two vertices (GeoJSON's sign)."""
    return len(coords) > 1 and bool((np.abs(np.diff(coords[:, 0])) > 180).any())


def split_antimeridian(geom: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    """Split a (Multi)Polygon whose rings cross the antimeridian into parts on either side of it.

    GeoJSON writes such a ring with a jump from about +180 to about -180; read as it stands it
    would span the whole globe the other way round. A geometry that does not cross is returned as is.
    """
    if not any(_crosses_antimeridian(ring) for ring in _rings_of(geom)):
        return geom
    if isinstance(geom, MultiPolygon):
        return antimeridian.fix_multi_polygon(geom, fix_winding=True)
    return antimeridian.fix_polygon(geom, fix_winding=True)


def clip(geom: BaseGeometry, bounds: tuple[float, float, float, float]) -> BaseGeometry:
    """The part of a lon/lat geometry within a box (the whole geometry if the box spans the globe)."""
    minx, miny, maxx, maxy = bounds
    if maxx - minx >= 180:
        return geom
    return shapely.intersection(geom, shapely.box(minx, miny, maxx, maxy))


def area_km2(geom: BaseGeometry) -> float:
    """Return the geodesic area of a lon/lat geometry in square kilometres."""
    area, _ = _GEOD.geometry_area_perimeter(geom)
    return abs(area) / 1e6


def to_wkt(geom: BaseGeometry) -> str:
    """Return WKT with full precision (stored form of a border)."""
    return shapely.to_wkt(geom, rounding_precision=-1)


def from_wkt(text: str) -> BaseGeometry:
    """Parse stored WKT."""
    return shapely.from_wkt(text)


def to_geojson(geom: BaseGeometry) -> str:
    """Return a GeoJSON geometry as text (the contract's `border_gj`)."""
    return json.dumps(mapping(geom), separators=(",", ":"))


def to_wkb_hex(geom: BaseGeometry) -> str:
    """Return WKB as upper-case hex text, as PostGIS prints a geometry (the contract's `border`)."""
    return shapely.to_wkb(geom, hex=True)
