"""GDAL's environment for reading COGs from S3: tuning defaults, the S3 endpoint, one reused session.

Measured against the moto S3 server with the real TCI fixture (one GET = one ranged request):

- without `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR` a cold open costs a bucket LIST plus the header GET;
- `VSI_CACHE=TRUE` splits the header read in two 16 KiB GETs unless `GDAL_INGESTED_BYTES_AT_OPEN`
  is 32 KiB; with both, a cold open is one GET and a TCI tile at z7-z10 costs 1-4 more;
- `GDAL_CACHEMAX` passed as an int through `rasterio.Env` means BYTES (a 200-byte block cache):
  the same z7 tile then costs 281 GETs instead of 3. It is set here as an environment string (MB);
- with `GDAL_HTTP_MULTIRANGE=PARALLEL` (GDAL's default) ranges read for a tile bypass the range
  cache: a warm process downloads the same blocks again for every tile; SERIAL reuses them;
- `GDAL_SKIP=VRT` breaks every reprojected tile (rasterio builds in-memory VRTs to compute warps),
  so it is not set; instead every dataset opens with `driver="GTiff"` only (see `sputnik.tiles.pool`),
  which keeps VRT (or any other format GDAL would sniff from the bytes) from opening a user-named object.
"""

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import rasterio.cache
import rasterio.session
from rasterio.session import DummySession

ALLOWED_EXTENSIONS = (".tif", ".TIF", ".tiff", ".TIFF")

# Defaults only: a deployment may override any of them through the function's environment.
GDAL_DEFAULTS: dict[str, str] = {
    # Never LIST the bucket "directory" to look for sidecar files: saves one request per open.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # GDAL may only touch network files with these suffixes: no .ovr/.msk/.aux.xml probes.
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ",".join(ALLOWED_EXTENSIONS),
    # One GET of 32 KiB holds the whole header of a Sentinel-2 COG: a cold open is one request.
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # PARALLEL (the default) fetches a tile's ranges at once but past the range cache, so every
    # request for the same blocks downloads them again; SERIAL caches them (measured: 22 warm
    # tiles cost 12 GETs again with PARALLEL, none with SERIAL; cold, 16 GETs instead of 19).
    "GDAL_HTTP_MULTIRANGE": "SERIAL",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": "5000000",  # bytes per open file; pooled readers keep theirs across requests
    "CPL_VSIL_CURL_CACHE_SIZE": "67108864",  # process-wide cache of fetched ranges, kept while warm
    "GDAL_CACHEMAX": "200",  # MB of decoded blocks (GDAL reads values < 100000 as megabytes)
    # S3 answers 503 SlowDown under bursts; retrying beats failing a tile. Three attempts, as the
    # AWS SDKs' standard mode: GDAL retries block by block, so with 3 retries from 0.5 s a tile
    # whose four blocks all failed took 17 s to answer 503; with these, 4 s.
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "0.3",
    # A connection that hangs would otherwise hold the request until the function's timeout (a
    # 5xx from Lambda): a range read of a COG takes well under a second in S3's region.
    "GDAL_HTTP_CONNECTTIMEOUT": "3",
    "GDAL_HTTP_TIMEOUT": "5",
}


# rasterio.Env() builds a boto3 Session (~15 ms) whenever AWS keys are in the environment, and
# titiler, rio-tiler and rasterio's own Cython enter several Envs per tile: over a third of a warm
# tile's time. GDAL signs S3 requests itself from the same AWS_* variables (or the role), so one
# empty session object serves every Env.
_GDAL_SESSION = DummySession()


def gdal_env() -> dict[str, Any]:
    """Return the keyword arguments of `rasterio.Env` for a request (titiler's environment dependency)."""
    return {"session": _GDAL_SESSION}


def _session_from_environ(*args: Any, **kwargs: Any) -> DummySession:
    """Stand in for rasterio's `Session.from_environ`: no boto3 session, GDAL reads AWS_* itself."""
    return _GDAL_SESSION


def reuse_gdal_session() -> None:
    """Make every rasterio.Env, including those rasterio enters internally, reuse one empty session."""
    rasterio.session.Session.from_environ = staticmethod(_session_from_environ)


def configure_gdal(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set GDAL's S3 tuning and endpoint in the environment (call before the first dataset opens).

    Given no mapping, this configures the process: os.environ, and rasterio's session reuse.
    """
    if environ is None:
        reuse_gdal_session()
    env = os.environ if environ is None else environ
    for key, value in GDAL_DEFAULTS.items():
        env.setdefault(key, value)
    # The local stack is a moto server: point GDAL's own S3 client at whatever boto3 uses.
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        env["AWS_S3_ENDPOINT"] = parts.netloc
        env["AWS_HTTPS"] = "YES" if parts.scheme == "https" else "NO"
        env["AWS_VIRTUAL_HOSTING"] = "FALSE"  # path-style: moto has no per-bucket host names
    keys = [*GDAL_DEFAULTS, "AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING"]
    return {key: env[key] for key in keys if key in env}


# GDAL's network reader warns before each retry, e.g. "HTTP error code: 503 - <url>. Retrying again
# in 0.5 secs" (code 0: no HTTP answer at all, such as a timeout), and after the last one "HTTP
# response code on <url>: 503"; rasterio logs them (from `rasterio._env` while opening,
# `rasterio._err` while reading). The read then fails with a message about the file ("TIFFFillTile:
# Read error ... got 0 bytes"), the same as a truncated file gives: only these warnings tell that
# the storage failed, not the file.
STORAGE_TROUBLE = re.compile(r"HTTP error code: (0|429|5\d\d)\b|HTTP response code on \S+: (429|5\d\d)\b")


class _StorageWatch(logging.Handler):
    """Notes, for the thread that is reading, that GDAL saw the storage answer 429 or 5xx."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.reading = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        """Mark this thread's read if the record is one of GDAL's retry warnings."""
        if getattr(self.reading, "active", False) and STORAGE_TROUBLE.search(record.getMessage()):
            self.reading.troubled = True


_WATCH = _StorageWatch()
_GDAL_LOG = logging.getLogger("rasterio")
_GDAL_LOG.addHandler(_WATCH)
if _GDAL_LOG.getEffectiveLevel() > logging.WARNING:
    _GDAL_LOG.setLevel(logging.WARNING)


@contextmanager
def watching_storage(url: str | None) -> Iterator[Callable[[], bool]]:
    """Within the block, the function given tells whether GDAL met a failing or throttling storage.

    If it did, GDAL's cache of the object's responses is dropped at the end: GDAL would otherwise
    remember a failed open as a missing object for the rest of the process's life.
    """
    reading = _WATCH.reading
    outer = getattr(reading, "active", False)
    if not outer:
        reading.active, reading.troubled = True, False

    def troubled() -> bool:
        return bool(getattr(reading, "troubled", False))

    try:
        yield troubled
    finally:
        if not outer:
            reading.active = False
        if troubled() and url:
            rasterio.cache.invalidate(url)
