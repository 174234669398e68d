"""Open datasets kept across warm invocations, each checked by its declared size before anything is read."""

import atexit
import logging
import threading
import time

import numpy
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader

from sputnik.errors import BUSY, NotFound, Unavailable
from sputnik.tiles.errors import DatasetUnreadable
from sputnik.tiles.gdal import watching_storage
from sputnik.tiles.urls import DATASET_NOT_FOUND

log = logging.getLogger(__name__)

# GDAL decodes whole blocks: one block (all bands) may not take more memory than this, whatever
# the request. A COG's blocks are 256-1024 px; a file declaring one strip of 200,000 px is refused.
MAX_BLOCK_BYTES = 64 * 2**20
MAX_BANDS = 64


def check_declared_size(dataset: DatasetReader) -> None:
    """Refuse a dataset whose header promises more than a request may decode (before any pixel read)."""
    if dataset.count > MAX_BANDS:
        raise DatasetUnreadable(f"{dataset.count} bands, more than the {MAX_BANDS} served")
    rows, cols = dataset.block_shapes[0]
    itemsize = max(numpy.dtype(dtype).itemsize for dtype in dataset.dtypes)
    if rows * cols * itemsize * dataset.count > MAX_BLOCK_BYTES:
        raise DatasetUnreadable(f"blocks of {cols} x {rows} px are too large; write it as a tiled COG")


class DatasetPool:
    """Idle open datasets by URL: a warm Lambda skips re-opening (and re-parsing) a COG's header.

    A dataset is lent to one reader at a time and comes back on close, so no two threads ever
    share one (GDAL datasets are not thread-safe). Entries expire so a replaced object is re-read.
    """

    def __init__(self, size: int = 16, ttl: float = 300.0) -> None:
        self.size = size
        self.ttl = ttl
        self._idle: list[tuple[str, float, DatasetReader]] = []
        self._lock = threading.Lock()
        self.opened = 0  # datasets opened so far: lets tests and benchmarks see reuse

    def checkout(self, url: str) -> tuple[DatasetReader, float]:
        """Lend an idle dataset of `url`, or open one; raise NotFound if GDAL cannot open it."""
        now = time.monotonic()
        expired: list[DatasetReader] = []
        found: tuple[DatasetReader, float] | None = None
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                key, opened_at, dataset = self._idle[i]
                if now - opened_at > self.ttl:
                    expired.append(dataset)
                    del self._idle[i]
                elif key == url and found is None:
                    found = (dataset, opened_at)
                    del self._idle[i]
        for dataset in expired:
            dataset.close()
        if found is not None:
            return found
        with watching_storage(url) as storage_failed:
            try:
                # GTiff only: GDAL would otherwise pick a driver from the bytes (a VRT named .tif
                # could point it at any file or URL).
                dataset = rasterio.open(url, driver="GTiff")
            except RasterioIOError as exc:
                log.warning("cannot open %s: %s", url, exc)
                if storage_failed():  # S3 throttling or failing, even after GDAL's retries
                    raise Unavailable(BUSY) from exc
                # Missing object, not a GeoTIFF, or no access: one answer that reveals nothing.
                raise NotFound(DATASET_NOT_FOUND) from exc
        try:
            check_declared_size(dataset)
        except DatasetUnreadable:
            dataset.close()
            raise
        with self._lock:
            self.opened += 1
        return dataset, now

    def checkin(self, url: str, dataset: DatasetReader, opened_at: float) -> None:
        """Take a dataset back, closing the least recently used ones beyond the pool size."""
        with self._lock:
            self._idle.append((url, opened_at, dataset))
            evicted = self._idle[: max(0, len(self._idle) - self.size)]
            del self._idle[: len(evicted)]
        for _, _, old in evicted:
            old.close()

    def clear(self) -> None:
        """Close every idle dataset (tests; a changed GDAL environment)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for _, _, dataset in idle:
            dataset.close()


POOL = DatasetPool()
# Close pooled datasets while Python is still whole: left to the interpreter's teardown, each one's
# deallocation logs through modules already gone ("Error in sys.excepthook" at every exit).
atexit.register(POOL.clear)
