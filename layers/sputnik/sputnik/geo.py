"""Project borders: GeoJSON in, validated lon/lat (Multi)Polygons out, WKT/WKB/GeoJSON text."""

import json
import math
from typing import Any

import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from sputnik.errors import InvalidInput

MAX_BORDER_KM2 = 250_000.0  # about a 500 km square: far more than a team processes at 10 m
MAX_VERTICES = 20_000  # keeps parsing, tile search and DynamoDB items small
_GEOD = Geod(ellps="WGS84")


def parse_border(border: str | dict[str, Any]) -> Polygon | MultiPolygon:
    """Parse a GeoJSON geometry, Feature or FeatureCollection of (Multi)Polygons in lon/lat."""
    if isinstance(border, str):
        try:
            data = json.loads(border)
        except ValueError as exc:
            raise InvalidInput("border is not valid JSON") from exc
    else:
        data = border
    if not isinstance(data, dict):
        raise InvalidInput("border must be a GeoJSON object")
    geometries = [_geometry(g) for g in _geometry_dicts(data)]
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


def _geometry(data: Any) -> BaseGeometry:
    """Build one (Multi)Polygon from GeoJSON, rejecting bad coordinates and invalid rings."""
    if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("border must be a Polygon or MultiPolygon")
    try:
        geom = shape(data)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidInput(f"border has malformed {data['type']} coordinates") from exc
    if geom.is_empty:
        raise InvalidInput("border is empty")
    coords = shapely.get_coordinates(geom)
    if not all(math.isfinite(v) for v in coords.flat):
        raise InvalidInput("border coordinates must be finite numbers")
    if (abs(coords[:, 0]) > 180).any() or (abs(coords[:, 1]) > 90).any():
        raise InvalidInput(
            "border coordinates must be lon/lat degrees (lon -180..180, lat -90..90); "
            "split a border that crosses the antimeridian into a MultiPolygon"
        )
    if not geom.is_valid:
        # Rejected, not repaired: a silent repair of a bow-tie can change the area a user meant.
        raise InvalidInput(f"border is not a valid polygon ({explain_validity(geom)}); fix it and try again")
    return geom


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
