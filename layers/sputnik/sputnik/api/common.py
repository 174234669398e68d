"""What every sputnik app shares: Basic auth, error mapping, app construction."""

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool

from sputnik import auth
from sputnik.errors import Forbidden, InvalidInput, NotFound, SputnikError, Unauthorized

log = logging.getLogger(__name__)

_basic = HTTPBasic(auto_error=False, description="sputnik login and password")

# One map from domain error to HTTP status: handlers never pick a status themselves.
STATUS: dict[type[SputnikError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
}
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="sputnik", charset="UTF-8"'}


async def caller(credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> str:
    """Return the authenticated login, or answer 401 with a Basic challenge."""
    if credentials is None:
        raise Unauthorized("authentication required")
    # argon2 is CPU-bound: keep it off the event loop.
    return await run_in_threadpool(auth.authenticate, credentials.username, credentials.password)


Caller = Annotated[str, Depends(caller)]


def error_response(exc: SputnikError) -> JSONResponse:
    """Turn a domain error into its JSON response."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    headers = UNAUTHORIZED_HEADERS if status == 401 else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


async def _sputnik_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer a domain error with its mapped status."""
    assert isinstance(exc, SputnikError)
    return error_response(exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Log an unexpected error whole, answer 500 without leaking paths or traces."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def create_app(title: str, *, authenticated: bool = True, **options: Any) -> FastAPI:
    """Build a FastAPI app with sputnik's auth and error handling on every route."""
    deps = [Depends(caller)] if authenticated else []
    app = FastAPI(title=title, version="0.1.0", dependencies=deps, **options)
    app.add_exception_handler(SputnikError, _sputnik_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app
