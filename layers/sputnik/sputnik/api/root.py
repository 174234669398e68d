"""HTTP routes of the Root function: the map viewer at /, the API documentation at /docs and /openapi.json.

This function stays light (no numpy, shapely or pyproj): it only serves files that the build bundled
into its package (`make bundle`), so it answers quickly even on a cold start.
"""

import base64
import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.middleware.gzip import GZipMiddleware

from sputnik.api.common import create_app
from sputnik.errors import NotFound

# Every URL is relative, so the pages work at the API's root and under an API Gateway stage prefix.
ASSETS = "assets"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}
# The files need the caller's credentials, so shared caches must not keep them; browsers revalidate.
CACHE_CONTROL = "private, no-cache"
# Scripts of a page written into it (no src): allowed by their hash, so no other inline script runs.
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# The one origin beyond the stack: the OpenStreetMap base layer, asked for only when it is switched on.
OSM_TILES = "https://tile.openstreetmap.org"


def page_policy(html: str, *, images: str = "") -> str:
    """The Content-Security-Policy of one of the stack's pages: its own files, its own inline scripts."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self'; "
        f"img-src 'self' blob: data:{' ' + images if images else ''}; connect-src 'self'; "
        "font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class BundleMissing(RuntimeError):
    """The function's package lacks a file that `make bundle` puts there."""


@dataclass(frozen=True)
class BundledFile:
    """One file of the bundle, read into memory with its strong ETag."""

    body: bytes
    media_type: str
    etag: str
    policy: str | None = None  # a page's own Content-Security-Policy

    @classmethod
    def read(cls, path: Path) -> "BundledFile":
        """Read a file of the bundle."""
        body = path.read_bytes()
        media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        policy = page_policy(body.decode(), images=OSM_TILES) if path.suffix == ".html" else None
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', policy)

    def response(self, request: Request) -> Response:
        """Answer with the file, or 304 when the browser already has this version."""
        headers = {"ETag": self.etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
        if self.policy:
            headers["Content-Security-Policy"] = self.policy
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


@dataclass
class Bundle:
    """The bundled viewer and documentation files of a folder, read on first use and then kept."""

    folder: Path
    _files: dict[str, BundledFile] = field(default_factory=dict)
    _asset_names: frozenset[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def file(self, name: str) -> BundledFile:
        """A top-level file of the bundle (index.html, openapi.json)."""
        return self._get(name, self.folder / name)

    def asset(self, name: str) -> BundledFile:
        """A file of the bundle's assets folder, by its plain name; anything else is not found."""
        if name not in self._assets():
            raise NotFound(f"no asset {name!r}")
        return self._get(f"{ASSETS}/{name}", self.folder / ASSETS / name)

    def _assets(self) -> frozenset[str]:
        """Names of the files in the assets folder, listed once (a request never builds a path itself)."""
        if self._asset_names is None:
            folder = self.folder / ASSETS
            if not folder.is_dir():
                raise BundleMissing(f"{folder} is missing: build the viewer with `make bundle`")
            self._asset_names = frozenset(p.name for p in folder.iterdir() if p.is_file())
        return self._asset_names

    def _get(self, key: str, path: Path) -> BundledFile:
        """Read a file once per warm function."""
        with self._lock:
            if key not in self._files:
                if not path.is_file():
                    raise BundleMissing(f"{path} is missing: build the viewer with `make bundle`")
                self._files[key] = BundledFile.read(path)
            return self._files[key]


def docs_page() -> str:
    """Swagger UI over the combined document, every asset from this function (no CDN)."""
    html = get_swagger_ui_html(
        openapi_url="openapi.json",
        title="sputnik API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )
    return bytes(html.body).decode()


def create_root_app(bundle_folder: Path) -> FastAPI:
    """Build the Root app over the bundle that `make bundle` put in `bundle_folder`."""
    bundle = Bundle(bundle_folder)
    # The combined document of every function replaces this app's own one.
    app = create_app("sputnik", openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    docs = docs_page()
    docs_headers = {"Cache-Control": CACHE_CONTROL, "Content-Security-Policy": page_policy(docs)}

    @app.get("/", summary="Root", response_class=HTMLResponse)
    def root(request: Request) -> Response:
        """The map viewer: projects, scenes by date, products and task runs."""
        return bundle.file("index.html").response(request)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request) -> Response:
        """The combined OpenAPI document of every function."""
        return bundle.file("openapi.json").response(request)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Interactive API documentation."""
        return HTMLResponse(docs, headers=docs_headers)

    @app.get(f"/{ASSETS}/{{name}}", include_in_schema=False)
    def asset(name: str, request: Request) -> Response:
        """A script, style sheet or image of the viewer or the docs."""
        return bundle.asset(name).response(request)

    return app
