"""The /cog app: titiler's COG tiler at /cog, locked to the scene archive and the caller's own products."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from rio_tiler.errors import RioTilerError

from sputnik.api.common import add_routes, caller, create_app, error_doc, error_response, prefixed_router
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
    # The router carries the prefix, so titiler's url_for needs no router_prefix; `name` prefixes
    # the operation ids (cog.getTile, ...).
    router = prefixed_router(app, PREFIX, ["Cloud Optimized GeoTIFF"])
    router.responses[403] = error_doc(
        "url not allowed: only the scene archive and your own projects' products"
    )
    factory = CogFactory(router=router, name="cog", caller_dependency=caller)
    add_routes(app, factory.router)
    app.add_exception_handler(RioTilerError, _rio_tiler_error)
    app.add_middleware(MountPrefixMiddleware, mount=PREFIX)
    return app
