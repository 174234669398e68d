"""Tiles of any product: RGB ones as they are, single-band ones (indices) through a colormap and rescale.

A single-band product's values are rescaled linearly from `rescale` (min, max) to 0..255, clipped,
and coloured by one of rio-tiler's named colormaps; pixels without data (the COG's nodata, clouds
masked by the index task) are transparent. The legend is that same colormap: stop i of 256 is the
colour of the value min + i (max - min) / 255.

A composite's last band is its count of clear observations, never drawn: an index composite is
drawn as its index band like an index product, an RGB composite (float reflectance) as its three
bands each rescaled from `rescale` (default 0..0.3, where most land lies) to 0..255, no colormap.
"""

import math
from dataclasses import dataclass

import rasterio
from rio_tiler.colormap import cmap
from rio_tiler.constants import WEB_MERCATOR_TMS, WGS84_CRS
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.models import ImageData

from sputnik import indices
from sputnik.tiles.errors import PATH, QUERY, InvalidParameter
from sputnik.tiles.gdal import gdal_env
from sputnik.tiles.params import check_tile
from sputnik.tiles.reader import TileReader
from sputnik.tiles.rgb import TILE_SIZE, empty_tile

COLORMAP_NAMES: tuple[str, ...] = tuple(sorted(cmap.list()))
MAX_RESCALE = 1e12  # beyond any index or reflectance; keeps (max - min) finite
REFLECTANCE_RESCALE = (0.0, 0.3)  # an RGB composite's default stretch: most land reflects under 0.3


@dataclass(frozen=True)
class Styling:
    """How a product is drawn: a named colormap over a value range (None: three bands, each rescaled)."""

    colormap_name: str | None
    rescale: tuple[float, float]


def default_styling(index: str | None) -> Styling:
    """The index's own colormap and range (RdYlGn over -1..1 for NDVI); an expression's, for any other."""
    known = indices.INDICES.get(index or "")
    colormap, (low, high) = (
        (known.colormap, known.rescale) if known else (indices.CUSTOM_COLORMAP, indices.CUSTOM_RESCALE)
    )
    return Styling(colormap, (float(low), float(high)))


def parse_rescale(text: str) -> tuple[float, float]:
    """`min,max` as two finite numbers with min < max, or a 422 naming `rescale`."""
    parts = text.split(",")
    try:
        low, high = (float(part) for part in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        low = high = math.nan
    if not all(math.isfinite(v) and abs(v) <= MAX_RESCALE for v in (low, high)) or not low < high:
        raise InvalidParameter(QUERY, "rescale", "rescale must be min,max: two finite numbers with min < max")
    return low, high


def styling(index: str | None, colormap_name: str | None, rescale: str | None) -> Styling:
    """The styling a request asks for, each part it leaves out taken from the index's default."""
    default = default_styling(index)
    name = default.colormap_name
    if colormap_name is not None:
        name = colormap_name
        if name not in COLORMAP_NAMES:
            raise InvalidParameter(
                QUERY,
                "colormap_name",
                "unknown colormap_name: use one of rio-tiler's (e.g. rdylgn, viridis, blues)",
            )
    return Styling(name, parse_rescale(rescale) if rescale is not None else default.rescale)


def rgb_composite_styling(colormap_name: str | None, rescale: str | None) -> Styling:
    """An RGB composite's stretch: the `rescale` asked for or reflectance 0..0.3; a colormap is a 422."""
    if colormap_name is not None:
        raise InvalidParameter(QUERY, "colormap_name", "colormap_name applies to single-band products")
    return Styling(None, parse_rescale(rescale) if rescale is not None else REFLECTANCE_RESCALE)


def legend(style: Styling) -> list[tuple[float, str]]:
    """The 256 stops of a single-band styling: (value, `#rrggbbaa`), lowest value first."""
    low, high = style.rescale
    colors: dict[int, tuple[int, int, int, int]] = cmap.get(style.colormap_name or "")  # type: ignore[assignment]
    return [
        (low + (high - low) * i / 255, "#" + "".join(f"{int(c):02x}" for c in colors[i])) for i in range(256)
    ]


def colorize(image: ImageData, style: Styling) -> bytes:
    """A single-band image as a PNG: rescaled to 0..255, coloured, nodata transparent."""
    scaled = image.rescale(in_range=(style.rescale,))
    if style.colormap_name is None:  # an RGB composite: each band stretched alike
        return scaled.render(img_format="PNG")
    return scaled.render(img_format="PNG", colormap=cmap.get(style.colormap_name))


def render_product_tile(
    url: str, z: int, x: int, y: int, index: str | None, style: Styling | None, composite: bool = False
) -> bytes:
    """A 256x256 PNG tile of a product: single-band ones styled, RGB ones as they are.

    `style` None means the index's default; a styling for a multi-band product is refused, but for
    an RGB composite, whose reflectance needs one (`rgb_composite_styling`). A composite's count
    band is left out.
    """
    check_tile(WEB_MERCATOR_TMS, z, x, y)
    try:
        with rasterio.Env(**gdal_env()), TileReader(url) as src:
            bands = src.dataset.count - 1 if composite else src.dataset.count
            single = bands == 1
            if not single and style is not None and not composite:
                image = None
            else:
                # Only a composite names its bands: an RGB product's tile stays /rgb/tile's, byte for byte.
                indexes = tuple(range(1, bands + 1)) if composite else None
                try:
                    image = src.tile(x, y, z, tilesize=TILE_SIZE, indexes=indexes, unscale=single)
                except TileOutsideBounds:
                    return empty_tile()
    except InvalidParameter as exc:
        # The product's COG is what could not be read: name the path parameter that chose it.
        raise InvalidParameter(PATH, "product_id", str(exc)) from exc
    if image is None:
        raise InvalidParameter(
            QUERY, "colormap_name", "colormap_name and rescale apply to single-band products"
        )
    if not single and not composite:
        return image.render(img_format="PNG")
    if style is None:
        style = default_styling(index) if single else rgb_composite_styling(None, None)
    return colorize(image, style)


@dataclass(frozen=True)
class Extent:
    """Where a product lies and the zooms worth asking for, as a TileJSON says."""

    bounds: tuple[float, float, float, float]
    minzoom: int
    maxzoom: int


def product_extent(url: str) -> Extent:
    """A product's bounds in lon/lat and its zoom range in web mercator (reads only the COG's header)."""
    try:
        with rasterio.Env(**gdal_env()), TileReader(url) as src:
            west, south, east, north = src.get_geographic_bounds(WGS84_CRS)
            return Extent((west, south, east, north), src.minzoom, src.maxzoom)
    except InvalidParameter as exc:
        raise InvalidParameter(QUERY, "product_id", str(exc)) from exc
