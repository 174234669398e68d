"""RGB products of a project: listing them and cutting web-mercator PNG tiles from their COGs."""

from functools import cache

import numpy
import rasterio
from pynamodb.exceptions import DoesNotExist
from rio_tiler.constants import WEB_MERCATOR_TMS
from rio_tiler.errors import TileOutsideBounds
from rio_tiler.utils import render

from sputnik.errors import NotFound
from sputnik.models import ProductModel
from sputnik.settings import get_settings
from sputnik.tiles.errors import PATH, InvalidParameter
from sputnik.tiles.gdal import gdal_env
from sputnik.tiles.params import check_tile
from sputnik.tiles.reader import TileReader
from sputnik.tiles.urls import ProjectLookup, parse_s3_url

RGB = "rgb"
TILE_SIZE = 256


def list_rgb(login: str, project_id: int, owns_project: ProjectLookup) -> list[str]:
    """Return the ids of a project's RGB products (one Query; NotFound unless the project is the caller's)."""
    owns_project(login, project_id)
    products = ProductModel.query(project_id, filter_condition=ProductModel.kind == RGB)
    return [product.product_id for product in products]


def get_rgb(login: str, project_id: int, product_id: str, owns_project: ProjectLookup) -> ProductModel:
    """Return one RGB product of the caller's project, or raise NotFound."""
    owns_project(login, project_id)
    try:
        product = ProductModel.get(project_id, product_id)
    except DoesNotExist as exc:
        raise NotFound("product not found") from exc
    if product.kind != RGB:
        raise NotFound("product not found")
    return product


def product_url(product: ProductModel) -> str:
    """Return the s3:// URL of a product's COG, checked like any /cog URL (the key comes from a table)."""
    return parse_s3_url(f"s3://{get_settings().products_bucket}/{product.key}").url


@cache
def empty_tile() -> bytes:
    """Return a fully transparent 256x256 RGBA PNG (made once per process)."""
    data = numpy.zeros((3, TILE_SIZE, TILE_SIZE), dtype="uint8")
    mask = numpy.zeros((TILE_SIZE, TILE_SIZE), dtype="uint8")
    return render(data, mask, img_format="PNG")


def render_tile(url: str, z: int, x: int, y: int) -> bytes:
    """Render a 256x256 PNG of the COG at `url`, with alpha from its mask.

    A tile outside the product's bounds is a fully transparent PNG, not an error: every web map
    client (Leaflet, OpenLayers, MapLibre) draws it as nothing, logs no error for it, and may
    cache it like any tile; 204 is handled by some clients only and 404 shows as a failed tile.
    """
    check_tile(WEB_MERCATOR_TMS, z, x, y)
    try:
        with rasterio.Env(**gdal_env()), TileReader(url) as src:
            try:
                image = src.tile(x, y, z, tilesize=TILE_SIZE)
            except TileOutsideBounds:
                return empty_tile()
    except InvalidParameter as exc:
        # The product's COG is what could not be read: name the path parameter that chose it.
        raise InvalidParameter(PATH, "product_id", str(exc)) from exc
    return image.render(img_format="PNG")
