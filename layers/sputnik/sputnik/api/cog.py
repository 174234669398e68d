"""The /cog app: titiler's COG tiler at /cog, locked to the scene archive and the caller's own products."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rio_tiler.errors import RioTilerError

from sputnik.api.common import caller, create_app, error_response
from sputnik.tiles.errors import from_rio_tiler
from sputnik.tiles.factory import CogFactory
from sputnik.tiles.prefix import MountPrefixMiddleware

PREFIX = "/cog"


async def _rio_tiler_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer rio-tiler's errors as the domain errors they stand for."""
    assert isinstance(exc, RioTilerError)
    return error_response(from_rio_tiler(exc))


def create_cog_app() -> FastAPI:
    """Build the /cog app: every contract path, Basic auth, the URL policy, pooled readers."""
    app = create_app("sputnik cog")
    factory = CogFactory(router_prefix=PREFIX, caller_dependency=caller)
    app.include_router(factory.router, prefix=PREFIX, tags=["Cloud Optimized GeoTIFF"])
    app.add_exception_handler(RioTilerError, _rio_tiler_error)
    app.add_middleware(MountPrefixMiddleware, mount=PREFIX)
    return app
