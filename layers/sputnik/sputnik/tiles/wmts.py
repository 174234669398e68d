"""OGC WMTS 1.0.0 capabilities (RESTful) of one COG on one tile matrix set."""

import xml.etree.ElementTree as ET

from morecantile import TileMatrixSet
from titiler.core.resources.enums import ImageType
from titiler.core.utils import tms_limits

_NS = {
    "": "http://www.opengis.net/wmts/1.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "xlink": "http://www.w3.org/1999/xlink",
}
for _prefix, _uri in _NS.items():
    ET.register_namespace(_prefix, _uri)


def _q(name: str) -> str:
    """Qualify `prefix:name` (or a bare WMTS name) with its namespace URI for ElementTree."""
    prefix, _, local = name.rpartition(":")
    return f"{{{_NS[prefix]}}}{local}"


def _sub(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
    """Append a namespaced child element with optional text and attributes."""
    element = ET.SubElement(parent, _q(tag), attrs)
    if text is not None:
        element.text = str(text)
    return element


def wmts_capabilities(
    self_url: str,
    tiles_url: str,
    tms: TileMatrixSet,
    tms_id: str,
    bounds: tuple[float, float, float, float],
    zooms: tuple[int, int],
    tile_format: ImageType,
    scale: int,
) -> bytes:
    """Build a RESTful WMTS 1.0.0 capabilities document with one layer on one TileMatrixSet."""
    low, high = max(zooms[0], tms.minzoom), zooms[1]
    root = ET.Element(_q("Capabilities"), {"version": "1.0.0"})
    ident = _sub(root, "ows:ServiceIdentification")
    _sub(ident, "ows:Title", "Web Map Tile Service by sputnik")
    _sub(ident, "ows:ServiceType", "OGC WMTS")
    _sub(ident, "ows:ServiceTypeVersion", "1.0.0")
    operations = _sub(root, "ows:OperationsMetadata")
    for operation in ("GetCapabilities", "GetTile"):
        dcp = _sub(_sub(operations, "ows:Operation", name=operation), "ows:DCP")
        get = _sub(_sub(dcp, "ows:HTTP"), "ows:Get")
        get.set(_q("xlink:href"), self_url)
        constraint = _sub(get, "ows:Constraint", name="GetEncoding")
        _sub(_sub(constraint, "ows:AllowedValues"), "ows:Value", "RESTful")
    contents = _sub(root, "Contents")
    layer = _sub(contents, "Layer")
    _sub(layer, "ows:Title", "Cloud Optimized GeoTIFF")
    bbox = _sub(layer, "ows:WGS84BoundingBox", crs="urn:ogc:def:crs:OGC:2:84")
    _sub(bbox, "ows:LowerCorner", f"{bounds[0]} {bounds[1]}")
    _sub(bbox, "ows:UpperCorner", f"{bounds[2]} {bounds[3]}")
    _sub(layer, "ows:Identifier", "cogeo")
    style = _sub(layer, "Style", isDefault="true")
    _sub(style, "ows:Identifier", "default")
    _sub(layer, "Format", tile_format.mediatype)
    link = _sub(layer, "TileMatrixSetLink")
    _sub(link, "TileMatrixSet", tms_id)
    limits = _sub(link, "TileMatrixSetLimits")
    for limit in tms_limits(tms, bounds, zooms=(low, high)):
        matrix_limits = _sub(limits, "TileMatrixLimits")
        _sub(matrix_limits, "TileMatrix", limit["tileMatrix"])
        _sub(matrix_limits, "MinTileRow", limit["minTileRow"])
        _sub(matrix_limits, "MaxTileRow", limit["maxTileRow"])
        _sub(matrix_limits, "MinTileCol", limit["minTileCol"])
        _sub(matrix_limits, "MaxTileCol", limit["maxTileCol"])
    _sub(layer, "ResourceURL", format=tile_format.mediatype, resourceType="tile", template=tiles_url)
    matrix_set = _sub(contents, "TileMatrixSet")
    _sub(matrix_set, "ows:Identifier", tms_id)
    _sub(matrix_set, "ows:SupportedCRS", tms.crs.srs)
    for zoom in range(low, high + 1):
        matrix = tms.matrix(zoom)
        element = _sub(matrix_set, "TileMatrix")
        _sub(element, "ows:Identifier", matrix.id)
        # A tile of `scale` times the pixels over the same ground: a finer scale denominator.
        _sub(element, "ScaleDenominator", matrix.scaleDenominator / scale)
        _sub(element, "TopLeftCorner", f"{matrix.pointOfOrigin[0]} {matrix.pointOfOrigin[1]}")
        _sub(element, "TileWidth", matrix.tileWidth * scale)
        _sub(element, "TileHeight", matrix.tileHeight * scale)
        _sub(element, "MatrixWidth", matrix.matrixWidth)
        _sub(element, "MatrixHeight", matrix.matrixHeight)
    metadata = _sub(root, "ServiceMetadataURL")
    metadata.set(_q("xlink:href"), self_url)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
