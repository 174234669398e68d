"""Shared by the tile tests: one moto server (S3 + DynamoDB) per process, seeded with users, projects, COGs.

GDAL reads the COGs over HTTP from the server, as it reads S3 in production. The server records
every request it serves, so tests can count what GDAL fetched.
"""

import base64
import dataclasses
import importlib.util
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import numpy
import pytest
import rasterio
import rasterio.session
from fastapi.testclient import TestClient
from rasterio.env import set_gdal_config
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.io import Reader
from rio_tiler.models import ImageData

from sputnik import auth
from sputnik.models import TABLES, ProductModel, ProjectModel, bind_tables
from sputnik.settings import Settings, get_settings
from sputnik.tiles.gdal import configure_gdal
from sputnik.tiles.pool import POOL
from sputnik_tools.local.recording import Fault, RecordedRequest
from sputnik_tools.local.recording import RecordingMotoServer as LocalRecordingMotoServer
from tests.support.real_scene import SCENE, SCENE_DIR, SCENE_PREFIX

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = "sputnik-test-archive"
PRODUCTS = "sputnik-test-products"
OTHER_BUCKET = "sputnik-test-elsewhere"
TCI_KEY = f"{SCENE_PREFIX}/TCI.tif"
TCI = f"s3://{ARCHIVE}/{TCI_KEY}"  # the real scene's TCI, as /cog's `url` names it
TCI_QUERY = f"url={quote(TCI, safe='')}"
SYNTH_KEY = "synthetic/33/T/WN/2021/6/S2X_33TWN_20210629_0_L2A/TCI.tif"
EVIL_KEY = "synthetic/evil/TCI.tif"  # a VRT in disguise, pointing at bob's product

# S3's answer when a prefix gets more requests than it can take (a retry-later error).
SLOW_DOWN: Fault = (
    "503 Slow Down",
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>",
)

TABLE_SETTINGS = [f.name for f in dataclasses.fields(Settings) if f.name.endswith("_table")]

ALICE = ("alice", "alice-password-1")
BOB = ("bob", "bob-password-22")
ALICE_PROJECT = 1001
ALICE_EMPTY_PROJECT = 1003
BOB_PROJECT = 2002
UNKNOWN_PROJECT = 9009

TCI_PRODUCT = f"{SCENE}-rgb"
SYNTH_PRODUCT = "S2X_33TWN_20210629_0_L2A-rgb"
NDVI_PRODUCT = f"{SCENE}-ndvi"


def product_key(project_id: int, product_id: str) -> str:
    """Where a product's COG lies in the products bucket."""
    return f"projects/{project_id}/{product_id}.tif"


class RecordingMotoServer(LocalRecordingMotoServer):
    """A moto server on a free port that remembers (method, path, Range) of every request it serves."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._failing: Callable[[RecordedRequest], bool] | None = None
        super().__init__(self._append, "127.0.0.1", 0)  # port 0: the OS picks a free one

    def _append(self, request: RecordedRequest) -> Fault | None:
        """Keep one served request; answer S3's 503 SlowDown instead while `failing` says so."""
        with self._lock:
            self.requests.append(request)
            if self._failing is not None and self._failing(request):
                return SLOW_DOWN
        return None

    @contextmanager
    def failing(self, which: Callable[[RecordedRequest], bool]) -> Iterator[None]:
        """Within the block, every request `which` picks gets S3's 503 SlowDown."""
        self._failing = which
        try:
            yield
        finally:
            self._failing = None

    def gets(self, bucket: str, key: str) -> list[str | None]:
        """The Range headers of the GETs made so far for one object."""
        with self._lock:
            return [
                rng for method, path, rng in self.requests if method == "GET" and path == f"/{bucket}/{key}"
            ]


@dataclass
class Tiles:
    """The seeded server and what tests need to reach it."""

    server: RecordingMotoServer
    endpoint: str
    fixtures_dir: Path
    functions: dict[str, ModuleType] = field(default_factory=dict)

    def function(self, name: str) -> ModuleType:
        """Import `functions/<name>/app.py` (once) as a Lambda would, in this environment."""
        if name not in self.functions:
            spec = importlib.util.spec_from_file_location(
                f"function_{name}_app", REPO / "functions" / name / "app.py"
            )
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.functions[name] = module
        return self.functions[name]

    @contextmanager
    def client(self, name: str) -> Iterator[TestClient]:
        """A client of `functions/<name>/app.py`'s app, logged in as alice."""
        with TestClient(self.function(name).app, raise_server_exceptions=False) as test_client:
            test_client.auth = ALICE
            yield test_client


_server: RecordingMotoServer | None = None
_seeded = False


def _running_server() -> RecordingMotoServer:
    """Start the process's moto server on first use."""
    global _server
    if _server is None:
        _server = RecordingMotoServer()
        _server.start()
    return _server


def synthetic_cog(path: Path) -> None:
    """Write a 512x512 uint8 RGB COG in EPSG:32633 whose upper-left triangle is nodata (0)."""
    rows, cols = numpy.mgrid[0:512, 0:512]
    data = numpy.stack([1 + (rows % 255), 1 + (cols % 255), 1 + ((rows + cols) // 4 % 255)]).astype(
        "uint8"
    )  # 1..255: 0 is only ever nodata
    data[:, rows + cols < 300] = 0
    profile = {
        "driver": "GTiff",
        "width": 512,
        "height": 512,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 5000000, 10, 10),
        "nodata": 0,
    }
    with MemoryFile() as memfile:
        with memfile.open(**profile) as dst:
            dst.write(data)
        with memfile.open() as src:
            cog_translate(src, str(path), cog_profiles.get("deflate"), in_memory=True, quiet=True)


def _seed(fixtures_dir: Path) -> None:
    """Create tables, buckets, users, projects, products and COGs (once per server)."""
    global _seeded
    if _seeded:
        return
    for model in TABLES:
        if not model.exists():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    s3 = boto3.client("s3")
    for bucket in (ARCHIVE, PRODUCTS, OTHER_BUCKET):
        s3.create_bucket(Bucket=bucket)
    auth.add_user(*ALICE)
    auth.add_user(*BOB)
    for project_id, login in ((ALICE_PROJECT, "alice"), (ALICE_EMPTY_PROJECT, "alice"), (BOB_PROJECT, "bob")):
        ProjectModel(
            project_id,
            owner=auth.get_user(login).user_id,
            login=login,
            name=f"project {project_id}",
            border="POLYGON((-12 24, -10 24, -10 26, -12 26, -12 24))",
            created="2026-01-01T00:00:00+00:00",
        ).save()
    tci = fixtures_dir / SCENE_DIR / "TCI.tif"
    with tempfile.TemporaryDirectory() as tmp:
        synth = Path(tmp) / "synthetic.tif"
        synthetic_cog(synth)
        s3.upload_file(str(tci), ARCHIVE, TCI_KEY)
        s3.upload_file(str(synth), ARCHIVE, SYNTH_KEY)
        s3.upload_file(str(tci), OTHER_BUCKET, TCI_KEY)
        for project_id, product_id, source in (
            (ALICE_PROJECT, TCI_PRODUCT, tci),
            (ALICE_PROJECT, SYNTH_PRODUCT, synth),
            (BOB_PROJECT, TCI_PRODUCT, tci),
        ):
            key = product_key(project_id, product_id)
            s3.upload_file(str(source), PRODUCTS, key)
            ProductModel(project_id, product_id, kind="rgb", scene_id=product_id[:-4], key=key).save()
    ProductModel(
        ALICE_PROJECT, NDVI_PRODUCT, kind="ndvi", key=product_key(ALICE_PROJECT, NDVI_PRODUCT)
    ).save()
    vrt = (
        '<VRTDataset rasterXSize="1098" rasterYSize="1098"><VRTRasterBand dataType="Byte" band="1">'
        f"<SimpleSource><SourceFilename>/vsis3/{PRODUCTS}/{product_key(BOB_PROJECT, TCI_PRODUCT)}"
        "</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>"
    )
    s3.put_object(Bucket=ARCHIVE, Key=EVIL_KEY, Body=vrt.encode())
    _seeded = True


@pytest.fixture(name="gdal_option")
def gdal_option_fixture() -> Iterator[Callable[[str, str], None]]:
    """Set a GDAL option process-wide for one test; the environment's value applies again after.

    Not an environment variable: once a batch read's `rasterio.Env(GDAL_HTTP_TIMEOUT=...)` has ended,
    rasterio sets the value it found on entry (the variable's) as a GDAL option, and an option wins
    over any later change of the variable, so a test that sets one would depend on the tests before it.
    """
    names: list[str] = []

    def set_option(name: str, value: str) -> None:
        names.append(name)
        set_gdal_config(name, value)

    yield set_option
    for name in names:
        set_gdal_config(name, None)


@pytest.fixture(scope="module", name="tiles")
def tiles_fixture(fixtures_dir: Path) -> Iterator[Tiles]:
    """The seeded moto server, with this process's environment pointing at it for one test module."""
    server = _running_server()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = os.environ.copy()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "SPUTNIK_ARCHIVE_BUCKET": ARCHIVE,
            "SPUTNIK_PRODUCTS_BUCKET": PRODUCTS,
            # moto keeps one state per process, shared with the local stack's server: own names.
            **{f"SPUTNIK_{name.upper()}": f"tiles-test-{name}" for name in TABLE_SETTINGS},
        }
    )
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_S3_ENDPOINT",
    ):
        os.environ.pop(name, None)
    get_settings.cache_clear()
    bind_tables()
    from_environ = rasterio.session.Session.__dict__["from_environ"]
    configure_gdal()
    try:
        _seed(fixtures_dir)
        POOL.clear()
        yield Tiles(server, endpoint, fixtures_dir)
    finally:
        POOL.clear()
        auth.clear_cache()
        rasterio.session.Session.from_environ = from_environ
        # Everything this module set (configure_gdal included) goes, so other tests see their own world.
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        bind_tables()


@pytest.fixture(scope="module", name="rgb_client")
def rgb_client_fixture(tiles: Tiles) -> Iterator[TestClient]:
    """A client of the rgb function's app, logged in as alice."""
    with tiles.client("rgb") as test_client:
        yield test_client


def basic(credentials: tuple[str, str]) -> str:
    """An Authorization header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def expected_tile(url: str, z: int, x: int, y: int, tilesize: int = 256) -> ImageData:
    """What rio-tiler itself reads for a tile: the reference every served tile must equal."""
    with rasterio.Env(), Reader(url) as src:
        return src.tile(x, y, z, tilesize=tilesize)


def decode_png(content: bytes) -> numpy.ndarray:
    """Decode a PNG into a (bands, rows, cols) array."""
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memfile, memfile.open() as dataset:
            return dataset.read()


def assert_same_pixels(content: bytes, expected: ImageData) -> None:
    """Assert a PNG holds exactly rio-tiler's data, with its mask as alpha."""
    pixels = decode_png(content)
    assert pixels.shape == (expected.count + 1, expected.height, expected.width)
    numpy.testing.assert_array_equal(pixels[:-1], expected.data)
    numpy.testing.assert_array_equal(pixels[-1], expected.mask)


def api_event(
    method: str,
    url: str,
    credentials: tuple[str, str] | None = ALICE,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for a path or an absolute URL."""
    parts = urlsplit(url)
    all_headers = {
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        **({"authorization": basic(credentials)} if credentials else {}),
        **(headers or {}),
    }
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": all_headers["host"],
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "request-1",
            "routeKey": "$default",
            "stage": stage,
            "time": "24/Nov/2026:12:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def invoke(
    handler: Callable[..., dict[str, Any]], event: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    """Call a Lambda handler; return status, headers and the decoded body."""
    result = handler(event, None)
    body = result.get("body", "")
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return result["statusCode"], result.get("headers", {}), raw


def assert_names(response: Any, status: int, location: str, name: str) -> None:
    """Assert a 422 in FastAPI's validation-error shape whose error names one parameter."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    assert all({"loc", "msg", "type"} <= set(error) for error in detail)
    assert [location, name] in [error["loc"][:2] for error in detail], detail
