"""Serving COGs from S3: GDAL tuning, the /cog URL policy, pooled readers, tile caching and the /cog factory.

Measured against the moto S3 server with the real TCI fixture (one GET = one ranged request):

- without `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR` a cold open costs a bucket LIST plus the header GET;
- `VSI_CACHE=TRUE` splits the header read in two 16 KiB GETs unless `GDAL_INGESTED_BYTES_AT_OPEN`
  is 32 KiB; with both, a cold open is one GET and a TCI tile at z7-z10 costs 1-4 more;
- `GDAL_CACHEMAX` passed as an int through `rasterio.Env` means BYTES (a 200-byte block cache):
  the same z7 tile then costs 281 GETs instead of 3. It is set here as an environment string (MB);
- with `GDAL_HTTP_MULTIRANGE=PARALLEL` (GDAL's default) ranges read for a tile bypass the range
  cache: a warm process downloads the same blocks again for every tile; SERIAL reuses them;
- `GDAL_SKIP=VRT` breaks every reprojected tile (rasterio builds in-memory VRTs to compute warps),
  so it is not set; instead every dataset opens with `driver="GTiff"` only, which keeps VRT (or any
  other format GDAL would sniff from the bytes) from ever opening a user-named object.
"""

import hashlib
import logging
import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode, urlsplit

import attr
import rasterio
import rasterio.session
from attrs import define
from fastapi import Depends, Path, Query
from morecantile import TileMatrixSet
from morecantile import tms as morecantile_tms
from pydantic import BaseModel, Field
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.session import DummySession
from rio_tiler.constants import WGS84_CRS
from rio_tiler.errors import RioTilerError
from rio_tiler.io import BaseReader, Reader
from rio_tiler.utils import CRS_to_uri
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from titiler.core.dependencies import HistogramParams, PartFeatureParams, PreviewParams, TileParams
from titiler.core.factory import TilerFactory, img_endpoint_params
from titiler.core.models.mapbox import TileJSON
from titiler.core.resources.enums import ImageType
from titiler.core.resources.responses import XMLResponse
from titiler.core.utils import tms_limits

from sputnik.api.common import Caller
from sputnik.errors import Forbidden, InvalidInput, NotFound
from sputnik.settings import get_settings

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# GDAL environment
# ---------------------------------------------------------------------------------------------

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
    # S3 answers 503 SlowDown under bursts; retrying beats failing a tile.
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
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


# ---------------------------------------------------------------------------------------------
# URL policy
# ---------------------------------------------------------------------------------------------

MAX_URL_LENGTH = 1024
DATASET_NOT_FOUND = "dataset not found"
URL_REFUSED = (
    "url not allowed: /cog reads only s3:// GeoTIFFs (.tif, .tiff) of the scene archive "
    "or of your own projects' products"
)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A whitelist, so that percent-encoding, backslashes, control characters, spaces, '?', '#', ':'
# (hence any scheme, http:// included) and leading dots cannot appear in a key at all.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
_PROJECT_ID = re.compile(r"[1-9][0-9]{0,17}")

ProjectLookup = Callable[[str, int], object]


@dataclass(frozen=True)
class S3Object:
    """A bucket and key that passed the syntax checks of the URL policy."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        """Return the canonical s3:// URL of the object."""
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(url: str) -> S3Object:
    """Split an s3:// URL of a GeoTIFF into bucket and key; raise Forbidden for anything else."""
    # The message never echoes the URL: error bodies must not reflect what was asked for.
    if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.startswith("s3://"):
        raise Forbidden(URL_REFUSED)
    bucket, slash, key = url.removeprefix("s3://").partition("/")
    if not slash or not _BUCKET.fullmatch(bucket):
        raise Forbidden(URL_REFUSED)
    segments = key.split("/")
    if any(not _SEGMENT.fullmatch(part) or part in {".", ".."} for part in segments):
        raise Forbidden(URL_REFUSED)
    if not key.endswith(ALLOWED_EXTENSIONS):
        raise Forbidden(URL_REFUSED)
    return S3Object(bucket, key)


def dataset_url(url: str, login: str, owns_project: ProjectLookup) -> str:
    """Return the URL GDAL may open for this caller, or raise Forbidden/NotFound before anything opens."""
    obj = parse_s3_url(url)
    settings = get_settings()
    # Products first: should both buckets be one, the archive rule must not unlock projects/.
    if obj.bucket == settings.products_bucket and obj.key.startswith("projects/"):
        parts = obj.key.split("/")
        if len(parts) < 3 or not _PROJECT_ID.fullmatch(parts[1]):
            raise Forbidden(URL_REFUSED)
        try:
            owns_project(login, int(parts[1]))
        except NotFound as exc:
            # One body for unknown projects, other users' projects and missing objects alike.
            raise NotFound(DATASET_NOT_FOUND) from exc
        return obj.url
    if obj.bucket == settings.archive_bucket:
        return obj.url
    raise Forbidden(URL_REFUSED)


def project_lookup() -> ProjectLookup:
    """Dependency giving the function that raises NotFound unless a project is the caller's."""
    # Imported on first use: sputnik.projects brings the geometry stack, which only this needs.
    from sputnik.projects import get_project

    return get_project


ProjectCheck = Annotated[ProjectLookup, Depends(project_lookup)]


def policy_dataset_path(
    url: Annotated[str, Query(description="Dataset URL")],
    login: Caller,
    owns_project: ProjectCheck,
) -> str:
    """Resolve `url` through the URL policy for the authenticated caller (titiler's path dependency)."""
    return dataset_url(url, login, owns_project)


# ---------------------------------------------------------------------------------------------
# Readers reused across warm invocations
# ---------------------------------------------------------------------------------------------


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
        try:
            # GTiff only: GDAL would otherwise pick a driver from the bytes (a VRT named .tif
            # could point it at any file or URL).
            dataset = rasterio.open(url, driver="GTiff")
        except RasterioIOError as exc:
            # Missing object, not a GeoTIFF, or storage unreachable: one answer that reveals nothing.
            log.warning("cannot open %s: %s", url, exc)
            raise NotFound(DATASET_NOT_FOUND) from exc
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


@attr.s
class PooledReader(Reader):
    """A rio-tiler Reader that borrows its dataset from POOL and gives it back when closed."""

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
        """Keep the dataset after success or a rio-tiler error (e.g. tile outside bounds), else drop it."""
        keep = exc_value is None or isinstance(exc_value, RioTilerError)
        super().close()
        self._release(keep=keep)


# ---------------------------------------------------------------------------------------------
# Caching headers
# ---------------------------------------------------------------------------------------------

# Tiles need credentials, so only the caller's own browser may keep them (`private`), keyed by
# the credentials it sent (`Vary`); an hour is safe: archive scenes and products never change.
TILE_MAX_AGE = 3600
CACHE_CONTROL = f"private, max-age={TILE_MAX_AGE}"


def etag_of(content: bytes) -> str:
    """Return a strong ETag: a digest of the body, so equal bytes always share one tag."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Tell whether an If-None-Match header names this ETag (weak comparison, as RFC 9110 says)."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def tile_response(
    request: Request, content: bytes, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    """Answer an image with ETag and Cache-Control, or 304 when the client already has it."""
    etag = etag_of(content)
    cache_headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=cache_headers)
    return Response(content, media_type=media_type, headers={**(headers or {}), **cache_headers})


# ---------------------------------------------------------------------------------------------
# Path prefixes (API Gateway stages, custom-domain mapping keys)
# ---------------------------------------------------------------------------------------------


class MountPrefixMiddleware:
    """Move whatever precedes the app's mount point in the path into root_path.

    API Gateway (a named stage, a custom domain's mapping key) and the local front pass the path
    as the client sent it, e.g. `/prod/cog/tiles/...`. With `/prod` as root_path, routing sees
    `/cog/tiles/...` and every URL the app builds (tilejson, WMTS) keeps the `/prod` prefix, so
    it works when followed as it is.
    """

    def __init__(self, app: ASGIApp, mount: str) -> None:
        self.app = app
        self.mount = mount.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set root_path from the path's prefix, then call the app."""
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            route = path[len(root) :] if root and path.startswith(root) else path
            if not (route == self.mount or route.startswith(self.mount + "/")):
                index = route.find(self.mount + "/")
                if index > 0:
                    scope = {**scope, "root_path": root + route[:index]}
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# The /cog factory
# ---------------------------------------------------------------------------------------------

DEFAULT_TMS = "WebMercatorQuad"
MAX_SCALE = 4
MAX_TILESIZE = 1024
MAX_IMAGE_SIZE = 4096
MAX_BUFFER = 64

if TYPE_CHECKING:
    TileMatrixSetName = str
else:
    # A named enum, as the contract's schema has it (`TileMatrixSetName`).
    TileMatrixSetName = StrEnum("TileMatrixSetName", {name: name for name in morecantile_tms.list()})

TmsPath = Annotated[TileMatrixSetName, Field(description="TileMatrixSet Name (default: 'WebMercatorQuad')")]
ScaleParam = Annotated[
    int | None, Field(ge=1, le=MAX_SCALE, description="Tile size scale. 1=256x256, 2=512x512...")
]
FormatParam = Annotated[ImageType | None, Field(description="Output image type. Default is auto.")]
TileSizeParam = Annotated[
    int | None, Query(gt=0, le=MAX_TILESIZE, description="Tilesize in pixels (overrides `scale`).")
]
TileScaleParam = Annotated[
    int, Query(ge=1, le=MAX_SCALE, description="Tile size scale. 1=256x256, 2=512x512...")
]
ZoomParam = Annotated[int | None, Query(ge=0, le=30, description="Overwrite default minzoom.")]
MaxZoomParam = Annotated[int | None, Query(ge=0, le=30, description="Overwrite default maxzoom.")]


@dataclass
class BoundedTileParams(TileParams):
    """Tile buffer and padding, bounded so one request cannot ask for a giant image."""

    buffer: Annotated[
        float | None,
        Query(
            gt=0,
            le=MAX_BUFFER,
            title="Tile buffer.",
            description="Buffer on each side of the given tile. It must be a multiple of `0.5`. "
            "Output **tilesize** will be expanded to `tilesize + 2 * tile_buffer` "
            "(e.g 0.5 = 257x257, 1.0 = 258x258).",
        ),
    ] = None
    padding: Annotated[
        int | None,
        Query(gt=0, le=MAX_BUFFER, title="Tile padding.", description="Padding to apply to each tile edge."),
    ] = None


MaxSize = Annotated[int, Field(gt=0, le=MAX_IMAGE_SIZE, description="Maximum image size to read onto.")]
OptionalMaxSize = Annotated[
    int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Maximum image size to read onto.")
]
Height = Annotated[int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Force output image height.")]
Width = Annotated[int | None, Field(gt=0, le=MAX_IMAGE_SIZE, description="Force output image width.")]


@dataclass
class BoundedPreviewParams(PreviewParams):
    """Preview and statistics sizes, bounded."""

    max_size: MaxSize = 1024
    height: Height = None
    width: Width = None


@dataclass
class BoundedPartParams(PartFeatureParams):
    """Crop sizes, bounded (they may come from the path, as in `/crop/.../{width}x{height}.png`)."""

    max_size: OptionalMaxSize = None
    height: Height = None
    width: Width = None


MAX_HISTOGRAM_BINS = 1000


@dataclass
class BoundedHistogramParams(HistogramParams):
    """Histogram bins, bounded: numpy would allocate whatever count a request names."""

    def __post_init__(self) -> None:
        """Parse as titiler does, then refuse more bins than anyone draws."""
        super().__post_init__()
        bins = self.bins
        count = len(bins) if isinstance(bins, list) else int(bins or 0)
        if count > MAX_HISTOGRAM_BINS:
            raise InvalidInput(f"histogram_bins asks for {count} bins; the limit is {MAX_HISTOGRAM_BINS}")


class Bounds(BaseModel):
    """Dataset Bounding box."""

    bounds: tuple[float, float, float, float]


@define(kw_only=True)
class CogFactory(TilerFactory):
    """titiler's TilerFactory behind sputnik's URL policy, serving titiler 2.4's routes and the contract's.

    The contract's tile and tilejson paths replace titiler's same-shaped ones (one handler accepts
    both `scale` and titiler's `tilesize`); `/bounds`, `WMTSCapabilities.xml` and the `/crop`
    forms are added; titiler's `/bbox`, `/feature`, `/tiles` (tilesets), `map.html`, `/point`,
    `/preview` stay as they are.
    """

    path_dependency: Callable[..., Any] = policy_dataset_path
    environment_dependency: Callable[..., dict[str, Any]] = gdal_env
    reader: type[BaseReader] = PooledReader
    tile_dependency: type[TileParams] = BoundedTileParams
    img_preview_dependency: type[PreviewParams] = BoundedPreviewParams
    histogram_dependency: type[HistogramParams] = BoundedHistogramParams
    img_part_dependency: type[PartFeatureParams] = BoundedPartParams

    def register_routes(self) -> None:
        """Register titiler's routes, the contract's forms of them, and the contract's extra routes."""
        self.bounds()
        super().register_routes()
        self.wmts()
        self.crop()

    def url_for(self, request: Request, name: str, **path_params: Any) -> str:
        """Build a route's URL, accepting titiler's `tileMatrixSetId` for the contract's `TileMatrixSetId`."""
        if "tileMatrixSetId" in path_params and name in {"tile", "tilejson", "wmts"}:
            path_params["TileMatrixSetId"] = path_params.pop("tileMatrixSetId")
        return super().url_for(request, name, **path_params)

    def bounds(self) -> None:
        """Register /bounds."""

        @self.router.get(
            "/bounds",
            response_model=Bounds,
            responses={200: {"description": "Return dataset's bounds."}},
            operation_id=f"{self.operation_prefix}getBounds",
        )
        def bounds(
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> dict[str, Any]:
            """Return the bounds of the COG."""
            with rasterio.Env(**env), self.reader(src_path, **reader_params.as_dict()) as src:
                return {"bounds": src.get_geographic_bounds(WGS84_CRS)}

    def tile(self) -> None:
        """Register the eight tile forms of the contract (titiler's two included)."""
        # Order matters: `{y}.{format}` would also swallow `5@2x.png`, so the `@{scale}x` forms go first.
        forms = [
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x.{format}", "getTileWithTmsScaleFormat"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}@{scale}x", "getTileWithTmsScale"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}.{format}", "getTileWithFormat"),
            ("/tiles/{TileMatrixSetId}/{z}/{x}/{y}", "getTile"),
            ("/tiles/{z}/{x}/{y}@{scale}x.{format}", "getTileWithScaleFormat"),
            ("/tiles/{z}/{x}/{y}@{scale}x", "getTileWithScale"),
            ("/tiles/{z}/{x}/{y}.{format}", "getTileWithFormatDefaultTms"),
            ("/tiles/{z}/{x}/{y}", "getTileDefaultTms"),
        ]

        def tile(
            request: Request,
            z: Annotated[int, Path(ge=0, le=30, description="TMS tiles's zoom level")],
            x: Annotated[int, Path(ge=0, description="TMS tiles's column")],
            y: Annotated[int, Path(ge=0, description="TMS tiles's row")],
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            scale: ScaleParam = None,
            format: FormatParam = None,
            tilesize: TileSizeParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> Response:
            """Create map tile from a dataset."""
            tms = self.supported_tms.get(TileMatrixSetId)
            size = tilesize or (scale or 1) * tms.matrix(z).tileWidth
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                image = src.tile(
                    x,
                    y,
                    z,
                    tilesize=size,
                    **tile_params.as_dict(),
                    **layer_params.as_dict(),
                    **dataset_params.as_dict(),
                )
                dst_colormap = getattr(src, "colormap", None)
            if post_process:
                image = post_process(image)
            content, media_type = self.render_func(
                image, output_format=format, colormap=colormap or dst_colormap, **render_params.as_dict()
            )
            headers = {"Content-Bbox": ",".join(map(str, image.bounds))}
            if uri := CRS_to_uri(image.crs):
                headers["Content-Crs"] = f"<{uri}>"
            return tile_response(request, content, media_type, headers)

        for path, operation in forms:
            self.router.add_api_route(
                path,
                tile,
                methods=["GET"],
                name="tile",
                operation_id=f"{self.operation_prefix}{operation}",
                **img_endpoint_params,
            )

    def tilejson(self) -> None:
        """Register `/{TileMatrixSetId}/tilejson.json` and `/tilejson.json`."""

        def tilejson(
            request: Request,
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            tile_format: Annotated[
                ImageType | None, Query(description="Output image type. Default is auto.")
            ] = None,
            tile_scale: TileScaleParam = 1,
            minzoom: ZoomParam = None,
            maxzoom: MaxZoomParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> dict[str, Any]:
            """Return TileJSON document for a dataset."""
            route_params = {"z": "{z}", "x": "{x}", "y": "{y}", "scale": str(tile_scale)}
            route_params["TileMatrixSetId"] = TileMatrixSetId
            if tile_format:
                route_params["format"] = tile_format.value
            tiles_url = self.url_for(request, "tile", **route_params) + _tile_query(request)
            tms = self.supported_tms.get(TileMatrixSetId)
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                return {
                    "bounds": src.get_geographic_bounds(tms.rasterio_geographic_crs),
                    "minzoom": minzoom if minzoom is not None else src.minzoom,
                    "maxzoom": maxzoom if maxzoom is not None else src.maxzoom,
                    "tiles": [tiles_url],
                }

        for path, operation in [
            ("/{TileMatrixSetId}/tilejson.json", "getTileJSON"),
            ("/tilejson.json", "getTileJSONDefaultTms"),
        ]:
            self.router.add_api_route(
                path,
                tilejson,
                methods=["GET"],
                name="tilejson",
                response_model=TileJSON,
                response_model_exclude_none=True,
                responses={200: {"description": "Return a tilejson"}},
                operation_id=f"{self.operation_prefix}{operation}",
            )

    def wmts(self) -> None:
        """Register `/{TileMatrixSetId}/WMTSCapabilities.xml` and `/WMTSCapabilities.xml`."""

        def wmts(
            request: Request,
            TileMatrixSetId: TmsPath = TileMatrixSetName(DEFAULT_TMS),  # the contract's name
            tile_format: Annotated[ImageType, Query(description="Output image type. Default is png.")] = (
                ImageType.png
            ),
            tile_scale: TileScaleParam = 1,
            minzoom: ZoomParam = None,
            maxzoom: MaxZoomParam = None,
            src_path: str = Depends(self.path_dependency),
            reader_params: Any = Depends(self.reader_dependency),
            tile_params: Any = Depends(self.tile_dependency),
            layer_params: Any = Depends(self.layer_dependency),
            dataset_params: Any = Depends(self.dataset_dependency),
            post_process: Any = Depends(self.process_dependency),
            colormap: Any = Depends(self.colormap_dependency),
            render_params: Any = Depends(self.render_dependency),
            env: dict[str, Any] = Depends(self.environment_dependency),
        ) -> Response:
            """OGC WMTS endpoint."""
            route_params = {
                "z": "{TileMatrix}",
                "x": "{TileCol}",
                "y": "{TileRow}",
                "scale": str(tile_scale),
                "format": tile_format.value,
                "TileMatrixSetId": TileMatrixSetId,
            }
            ogc = ["service", "request"]  # WMTS KVP leftovers: not tile parameters
            tiles_url = self.url_for(request, "tile", **route_params) + _tile_query(request, ogc)
            tms = self.supported_tms.get(TileMatrixSetId)
            with rasterio.Env(**env), self.reader(src_path, tms=tms, **reader_params.as_dict()) as src:
                bounds = src.get_geographic_bounds(WGS84_CRS)
                low = minzoom if minzoom is not None else src.minzoom
                high = maxzoom if maxzoom is not None else src.maxzoom
            zooms = (low, high)
            document = wmts_capabilities(
                str(request.url), tiles_url, tms, str(TileMatrixSetId), bounds, zooms, tile_format, tile_scale
            )
            return XMLResponse(document, media_type="application/xml")

        for path, operation in [
            ("/{TileMatrixSetId}/WMTSCapabilities.xml", "getWMTS"),
            ("/WMTSCapabilities.xml", "getWMTSDefaultTms"),
        ]:
            self.router.add_api_route(
                path,
                wmts,
                methods=["GET"],
                name="wmts",
                response_class=XMLResponse,
                responses={200: {"content": {"application/xml": {}}, "description": "Successful Response"}},
                operation_id=f"{self.operation_prefix}{operation}",
            )

    def crop(self) -> None:
        """Register the contract's `/crop` forms on titiler's `/bbox` and `/feature` handlers."""
        endpoints = {getattr(r, "name", None): getattr(r, "endpoint", None) for r in self.router.routes}
        bbox_image, feature_image = endpoints.get("bbox_image"), endpoints.get("feature_image")
        if bbox_image is None or feature_image is None:
            return  # add_part=False
        forms = [
            (
                "/crop/{minx},{miny},{maxx},{maxy}/{width}x{height}.{format}",
                "GET",
                bbox_image,
                "getCropSized",
            ),
            ("/crop/{minx},{miny},{maxx},{maxy}.{format}", "GET", bbox_image, "getCropWithFormat"),
            ("/crop/{width}x{height}.{format}", "POST", feature_image, "postCropWithSize"),
            ("/crop.{format}", "POST", feature_image, "postCropWithFormat"),
            ("/crop", "POST", feature_image, "postCrop"),
        ]
        for path, method, endpoint, operation in forms:
            self.router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=f"{self.operation_prefix}{operation}",
                **img_endpoint_params,
            )


def _tile_query(request: Request, also_drop: list[str] | None = None) -> str:
    """Return the query string a tile URL keeps from a tilejson/WMTS request (dataset and rendering)."""
    drop = {"tilematrixsetid", "tile_format", "tile_scale", "minzoom", "maxzoom", *(also_drop or [])}
    kept = [(key, value) for key, value in request.query_params.multi_items() if key.lower() not in drop]
    return f"?{urlencode(kept)}" if kept else ""


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
