"""The reader of every tile route: a pooled dataset, bands checked, a pixel budget, cheap low-zoom tiles.

rio-tiler warps a tile through a virtual raster at the dataset's resolution that spans the whole
tile. At low zooms over a small dataset (a Sentinel-2 scene at z0-z3) that raster is hundreds of
thousands of pixels across, mostly outside the dataset's projection zone, and one tile took 50 s
and 1.7 GB. This reader warps only the part of the tile the dataset covers, snapped to the tile's
pixel grid, and places it into an otherwise transparent tile; where rio-tiler's own warp is small
it is used unchanged, so those tiles stay byte-identical to rio-tiler's.
"""

import functools
import math
from types import TracebackType
from typing import Any

import attr
import numpy
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.warp import calculate_default_transform, transform_bounds
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import RioTilerError, TileOutsideBounds
from rio_tiler.expression import parse_expression
from rio_tiler.io import Reader
from rio_tiler.models import ImageData, PointData
from rio_tiler.types import BBox, Indexes
from rio_tiler.utils import cast_to_sequence, output_size

from sputnik.errors import BUSY, NotFound, Unavailable
from sputnik.tiles.errors import BODY, PATH, QUERY, DatasetUnreadable, InvalidParameter, ReadTooLarge
from sputnik.tiles.gdal import watching_storage
from sputnik.tiles.pool import POOL
from sputnik.tiles.urls import DATASET_NOT_FOUND

# Source pixels (counted at the overview GDAL reads from) one request may decode: 16 Mpx is a
# 4096 px square, ~50 MB of RGB bytes; a COG with overviews never needs as much for one answer.
MAX_PIXELS_READ = 4096 * 4096
# A feature's coverage is rasterized at `cover_scale` times the image's resolution, one byte a cell.
MAX_COVERAGE_CELLS = 128 * 2**20
# Up to this many pixels across a tile at the dataset's resolution, rio-tiler's warp of the whole
# tile costs no more than a few tens of ms (measured on the demo scene), so it is kept as it is.
STOCK_WARP_LIMIT = 8192


def _finite(bounds: tuple[float, ...]) -> bool:
    """Whether every coordinate is a finite number."""
    return all(math.isfinite(v) for v in bounds)


@functools.lru_cache(maxsize=256)
def _footprint(
    crs: CRS, src_crs: CRS, bounds: tuple[float, float, float, float], width: int, height: int
) -> tuple[BBox, float]:
    """A dataset's bounds in `crs` and its pixel size there: a function of its georeferencing only."""
    # Cached across requests (warm functions): two PROJ transforms cost more than the rest of the checks.
    out = transform_bounds(src_crs, crs, *bounds, densify_pts=21)
    transform, _, _ = calculate_default_transform(src_crs, crs, width, height, *bounds)
    if not _finite((*out, transform.a)):
        raise ValueError("the dataset does not transform to finite coordinates")
    return out, abs(transform.a)


@attr.s
class BoundedImage(ImageData):
    """rio-tiler's image, whose coverage of a feature may not take more than MAX_COVERAGE_CELLS."""

    @classmethod
    def of(cls, image: ImageData) -> "BoundedImage":
        """The same image, bounded."""
        return cls(**{a.name: getattr(image, a.name) for a in attr.fields(ImageData)})

    def get_coverage_array(
        self, shape: dict[str, Any], shape_crs: CRS = WGS84_CRS, cover_scale: int = 10
    ) -> Any:
        """Refuse a coverage over the cell budget, else compute it as rio-tiler does."""
        cells = self.height * self.width * cover_scale**2
        if cells > MAX_COVERAGE_CELLS:
            raise InvalidParameter(
                QUERY,
                "cover_scale",
                f"a {self.width} x {self.height} px image at cover_scale {cover_scale} needs {cells:,} "
                f"coverage cells, over the limit of {MAX_COVERAGE_CELLS:,}: lower cover_scale or max_size",
            )
        return super().get_coverage_array(shape, shape_crs=shape_crs, cover_scale=cover_scale)


@attr.s
class TileReader(Reader):
    """A rio-tiler Reader that borrows its dataset from the pool and bounds what each read costs."""

    _borrowed: tuple[DatasetReader, float] | None = attr.ib(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        """Borrow the dataset (unless one was given), then let rio-tiler inspect it."""
        if self.dataset is None:
            if self.input is None:
                raise NotFound(DATASET_NOT_FOUND)
            self._borrowed = POOL.checkout(self.input)
            self.dataset = self._borrowed[0]
        try:
            super().__attrs_post_init__()
        except BaseException:
            super().close()
            self._release(keep=False)
            raise

    def _release(self, *, keep: bool) -> None:
        """Return the borrowed dataset to the pool, or close it if it may be in a bad state."""
        if self._borrowed is None or self.input is None:
            return
        dataset, opened_at = self._borrowed
        self._borrowed = None
        if keep and not dataset.closed:
            POOL.checkin(self.input, dataset, opened_at)
        else:
            dataset.close()

    def close(self) -> None:
        """Close what rio-tiler opened on top (a WarpedVRT) and give the dataset back."""
        super().close()
        self._release(keep=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Keep the dataset after success or a refused request, drop it after anything else."""
        keep = exc_value is None or isinstance(exc_value, RioTilerError | InvalidParameter)
        super().close()
        self._release(keep=keep)

    @property
    def source(self) -> DatasetReader:
        """The open dataset (there is always one once the reader is built)."""
        assert self.dataset is not None
        return self.dataset

    # -- checks made before any pixel is read ------------------------------------------------

    def check_bands(self, indexes: Indexes | None, expression: str | None) -> None:
        """Refuse band numbers the dataset does not have (GDAL would fail deep inside the read)."""
        name, wanted = "bidx", cast_to_sequence(indexes) if indexes else []
        if expression:
            name, wanted = "expression", parse_expression(expression)
        count = self.source.count
        for band in wanted or []:
            if not 1 <= band <= count:
                raise InvalidParameter(
                    QUERY, name, f"band {band} does not exist: the dataset has bands 1-{count}"
                )

    def check_nodata(self, nodata: float | None) -> None:
        """Refuse a nodata value the dataset's type cannot hold (numpy fails on it after the read)."""
        if nodata is None:
            return
        dtype = numpy.dtype(self.source.dtypes[0])
        if dtype.kind in "iu":
            info = numpy.iinfo(dtype)
            if not (math.isfinite(nodata) and nodata == int(nodata) and info.min <= nodata <= info.max):
                raise InvalidParameter(
                    QUERY, "nodata", f"nodata must be a whole number in {info.min}-{info.max}"
                )

    def check_budget(self, bounds: BBox | None, crs: CRS | None, width: int, height: int) -> None:
        """Refuse reading `bounds` in `crs` (None: all the dataset) onto width x height px over the budget."""
        dataset = self.source
        if bounds is None or crs is None:
            cols, rows = float(dataset.width), float(dataset.height)
            step = min(cols / max(width, 1), rows / max(height, 1))
        else:
            # Measured in the request's CRS at the dataset's pixel size there: no transform per request.
            (left, bottom, right, top), size = self.footprint(crs)
            cols = (min(bounds[2], right) - max(bounds[0], left)) / size
            rows = (min(bounds[3], top) - max(bounds[1], bottom)) / size
            if cols <= 0 or rows <= 0:
                return  # nothing of the dataset lies there: nothing is read
            step = (bounds[2] - bounds[0]) / size / max(width, 1)
        # GDAL reads from the coarsest overview that is still at least as fine as the output.
        factor = max([1, *(o for o in dataset.overviews(1) if o <= step)])
        pixels = math.ceil(cols / factor) * math.ceil(rows / factor)
        if pixels > MAX_PIXELS_READ:
            raise ReadTooLarge(pixels, MAX_PIXELS_READ)

    def footprint(self, crs: CRS) -> tuple[BBox, float]:
        """Return the dataset's bounds in `crs` and its pixel size there."""
        dataset = self.source
        try:
            return _footprint(crs, dataset.crs, tuple(dataset.bounds), dataset.width, dataset.height)
        except (RasterioError, CPLE_BaseError, ValueError) as exc:
            raise TileOutsideBounds("the dataset cannot be shown in this CRS") from exc

    # -- reads ------------------------------------------------------------------------------------

    def read(self, indexes: Indexes | None = None, expression: str | None = None, **kwargs: Any) -> ImageData:
        """Read the whole dataset (preview, statistics) within the band and pixel checks."""
        self.check_bands(indexes, expression)
        self.check_nodata(kwargs.get("nodata"))
        height, width = output_size(
            dataset_height=self.source.height,
            dataset_width=self.source.width,
            output_height=kwargs.get("height"),
            output_width=kwargs.get("width"),
            max_size=kwargs.get("max_size"),
        )
        self.check_budget(None, None, width, height)
        return self._reading(super().read, indexes=indexes, expression=expression, **kwargs)

    def point(
        self,
        lon: float,
        lat: float,
        coord_crs: CRS = WGS84_CRS,
        indexes: Indexes | None = None,
        expression: str | None = None,
        **kwargs: Any,
    ) -> PointData:
        """Read one pixel's values within the band checks."""
        self.check_bands(indexes, expression)
        self.check_nodata(kwargs.get("nodata"))
        point = super().point
        return self._reading(
            point, lon, lat, coord_crs=coord_crs, indexes=indexes, expression=expression, **kwargs
        )

    def part(
        self,
        bbox: BBox,
        dst_crs: CRS | None = None,
        bounds_crs: CRS = WGS84_CRS,
        indexes: Indexes | None = None,
        expression: str | None = None,
        max_size: int | None = None,
        height: int | None = None,
        width: int | None = None,
        buffer: float | None = None,
        **kwargs: Any,
    ) -> ImageData:
        """Read an area (tiles, crops, features); warp only what the dataset covers when that is cheaper."""
        self.check_bands(indexes, expression)
        self.check_nodata(kwargs.get("nodata"))
        if bounds_crs.is_geographic and not (
            -180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90
        ):
            # A feature's vertex at latitude 1e16 would overflow the warp's size far from any check.
            raise InvalidParameter(
                BODY, "geometry", "the area must lie within longitudes ±180 and latitudes ±90"
            )
        if not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
            # A Point, or a line along a meridian or parallel, covers no pixel: nothing to read.
            raise InvalidParameter(
                BODY,
                "geometry",
                "the area is empty: crop with a Polygon, or read a point at /point/{lon},{lat}",
            )
        crs = dst_crs or bounds_crs
        if bounds_crs != crs:
            bbox = self._transformed(bbox, bounds_crs, crs)
        (left, bottom, right, top), resolution = self.footprint(crs)
        if not (height and width):
            # rio-tiler's own output size: the dataset's resolution over the area, within max_size.
            height, width = output_size(
                dataset_height=(bbox[3] - bbox[1]) / resolution,
                dataset_width=(bbox[2] - bbox[0]) / resolution,
                output_height=height,
                output_width=width,
                max_size=max_size,
            )
        if buffer:
            if buffer % 0.5:
                raise InvalidParameter(QUERY, "buffer", "buffer must be a multiple of 0.5")
            x_res, y_res = (bbox[2] - bbox[0]) / width, (bbox[3] - bbox[1]) / height
            bbox = (
                bbox[0] - x_res * buffer,
                bbox[1] - y_res * buffer,
                bbox[2] + x_res * buffer,
                bbox[3] + y_res * buffer,
            )
            width, height = width + int(2 * buffer), height + int(2 * buffer)
        x_res, y_res = (bbox[2] - bbox[0]) / width, (bbox[3] - bbox[1]) / height
        # The output pixels the dataset covers, snapped outward to whole pixels.
        col0 = max(0, math.floor((left - bbox[0]) / x_res))
        col1 = min(width, math.ceil((right - bbox[0]) / x_res))
        row0 = max(0, math.floor((bbox[3] - top) / y_res))
        row1 = min(height, math.ceil((bbox[3] - bottom) / y_res))
        if col0 >= col1 or row0 >= row1:
            raise TileOutsideBounds("the area is outside the dataset")
        whole = (col0, row0, col1, row1) == (0, 0, width, height)
        options = {"indexes": indexes, "expression": expression, **kwargs}
        if whole or (bbox[2] - bbox[0]) / resolution <= STOCK_WARP_LIMIT:
            self.check_budget(bbox, crs, width, height)
            read = super().part
            return BoundedImage.of(
                self._reading(read, bbox, dst_crs=crs, bounds_crs=crs, height=height, width=width, **options)
            )
        inner = (
            bbox[0] + col0 * x_res,
            bbox[3] - row1 * y_res,
            bbox[0] + col1 * x_res,
            bbox[3] - row0 * y_res,
        )
        self.check_budget(inner, crs, col1 - col0, row1 - row0)
        image = self._reading(
            super().part, inner, dst_crs=crs, bounds_crs=crs, height=row1 - row0, width=col1 - col0, **options
        )
        # Zeros under the mask, as rio-tiler's own warp leaves them (JPEG shows them).
        zeros = numpy.zeros((image.count, height, width), dtype=image.array.dtype)
        data = numpy.ma.MaskedArray(zeros, mask=True, fill_value=image.array.fill_value)
        data[:, row0:row1, col0:col1] = image.array
        return BoundedImage(
            data,
            assets=image.assets,
            bounds=bbox,
            crs=crs,
            metadata=image.metadata,
            nodata=image.nodata,
            scales=image.scales,
            offsets=image.offsets,
            band_names=image.band_names,
            band_descriptions=image.band_descriptions,
            dataset_statistics=image.dataset_statistics,
        )

    def _transformed(self, bbox: BBox, src: CRS, dst: CRS) -> BBox:
        """Transform an area between CRSs, refusing what does not transform to finite numbers."""
        try:
            out = transform_bounds(src, dst, *bbox, densify_pts=21)
        except (RasterioError, CPLE_BaseError, ValueError) as exc:
            raise InvalidParameter(PATH, "bbox", "the area does not transform to the output CRS") from exc
        if not _finite(out) or out[0] >= out[2] or out[1] >= out[3]:
            raise InvalidParameter(PATH, "bbox", "the area does not transform to the output CRS")
        return out

    def _reading(self, read: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a rio-tiler read: a failing storage is 503, a file GDAL cannot decode a short 422."""
        with watching_storage(self.input) as storage_failed:
            try:
                result = read(*args, **kwargs)
            except (RasterioError, CPLE_BaseError) as exc:
                if storage_failed():
                    raise Unavailable(BUSY) from exc
                if "HTTP" in str(exc) or "curl" in str(exc).lower():
                    raise  # a storage error that is not a retryable one stays a 5xx, logged whole
                raise DatasetUnreadable("it is damaged or truncated") from exc
        if isinstance(result, ImageData) and result.array.dtype == numpy.bool_:
            # A comparison (`b1>100`) gives true/false, which no image format holds and rio-tiler's
            # mask cannot range: serve it as 0/1 bytes, as statistics and points already count it.
            result.array = numpy.ma.MaskedArray(result.array, dtype=numpy.uint8)
        return result
