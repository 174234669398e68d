"""Every tile matrix set bounds the zoom, column and row of a tile, and serves the tile over the data.

The tile over the data is taken at the scene's own first zoom in the set (rio-tiler's `minzoom`,
where a tile is about the scene's size): a set's first zoom would warp a whole world for each
side of the comparison, a minute of CPU for some sets and a third of the suite's.
"""

import warnings
from collections.abc import Iterator

import morecantile
import pytest
import rasterio
import rio_tiler.errors
from fastapi.testclient import TestClient
from rio_tiler.io import Reader

from tests.support.tiles import (
    TCI,
    TCI_QUERY,
    Tiles,
    assert_names,
    assert_same_pixels,
    decode_png,
    tiles_fixture,  # noqa: F401 (registers the `tiles` fixture here)
)

TMS_IDS = morecantile.tms.list()
# Sets whose projection is centred so far from the scene (25 deg N) that rio-tiler's warp of a whole
# tile there yields pixels the reader's footprint (the scene's bounds in that CRS) does not reach.
FAR_FROM_THE_PROJECTION = {"UPSAntarcticWGS84Quad"}
LON, LAT = -11.4, 24.8  # inside the TCI


@pytest.fixture(scope="module")
def client(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the cog function's app, logged in as alice."""
    with tiles.client("cog") as test_client:
        yield test_client


@pytest.mark.parametrize("tms_id", TMS_IDS)
def test_every_tile_matrix_set_bounds_zoom_column_and_row(client: TestClient, tms_id: str) -> None:
    tms = morecantile.tms.get(tms_id)
    top = tms.matrix(tms.maxzoom)
    assert_names(client.get(f"/cog/tiles/{tms_id}/{tms.maxzoom + 1}/0/0.png?{TCI_QUERY}"), 422, "path", "z")
    path = f"/cog/tiles/{tms_id}/{tms.maxzoom}/{top.matrixWidth}/0.png?{TCI_QUERY}"
    assert_names(client.get(path), 422, "path", "x")
    path = f"/cog/tiles/{tms_id}/{tms.maxzoom}/0/{top.matrixHeight}.png?{TCI_QUERY}"
    assert_names(client.get(path), 422, "path", "y")
    if tms.minzoom > 0:
        assert_names(
            client.get(f"/cog/tiles/{tms_id}/{tms.minzoom - 1}/0/0.png?{TCI_QUERY}"), 422, "path", "z"
        )
    # The tile over the data at the scene's first zoom in the set is rio-tiler's own tile, pixel for
    # pixel, or is 404 where rio-tiler finds no data (its tile there is outside the dataset, or masked).
    with rasterio.Env(), Reader(TCI, tms=tms) as src:
        zoom = min(max(src.minzoom, tms.minzoom, 0), tms.maxzoom)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", morecantile.errors.PointOutsideTMSBounds)
                tile = tms.tile(LON, LAT, zoom)
        except Exception:  # a set whose CRS does not reach this point (polar, New Zealand, Antarctica)
            return
        try:
            expected = src.tile(tile.x, tile.y, zoom)
        except rio_tiler.errors.TileOutsideBounds:
            expected = None
    answer = client.get(f"/cog/tiles/{tms_id}/{zoom}/{tile.x}/{tile.y}.png?{TCI_QUERY}")
    has_data = expected is not None and bool(expected.mask.any())
    if tms_id in FAR_FROM_THE_PROJECTION:
        assert answer.status_code in (200, 404), answer.text
    else:
        assert answer.status_code == (200 if has_data else 404), answer.text
    if answer.status_code == 200:
        matrix = tms.matrix(zoom)
        assert decode_png(answer.content).shape == (4, matrix.tileHeight, matrix.tileWidth)
        if expected is not None:
            assert_same_pixels(answer.content, expected)
