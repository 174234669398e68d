"""The /cog app: titiler's COG tiler at /cog, locked to the scene archive and the caller's own products."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rio_tiler.errors import PointOutsideBounds, RioTilerError, TileOutsideBounds

from sputnik.api.common import create_app
from sputnik.cog import CogFactory, MountPrefixMiddleware

PREFIX = "/cog"


async def _rio_tiler_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer rio-tiler's errors: outside the data is 404 (as titiler does), bad parameters 422."""
    # rio-tiler's messages name tiles, points, bands and expressions, never the dataset's path.
    status = 404 if isinstance(exc, TileOutsideBounds | PointOutsideBounds) else 422
    return JSONResponse({"detail": str(exc)}, status_code=status)


def create_cog_app() -> FastAPI:
    """Build the /cog app: every contract path, Basic auth, the URL policy, pooled readers."""
    app = create_app("sputnik cog")
    factory = CogFactory(router_prefix=PREFIX)
    app.include_router(factory.router, prefix=PREFIX, tags=["Cloud Optimized GeoTIFF"])
    app.add_exception_handler(RioTilerError, _rio_tiler_error)
    app.add_middleware(MountPrefixMiddleware, mount=PREFIX)
    return app
