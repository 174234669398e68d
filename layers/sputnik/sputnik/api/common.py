"""What every sputnik app shares: Basic auth, error mapping, app construction."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from sputnik import auth
from sputnik.api.security import HEADERS, SecurityMiddleware
from sputnik.errors import (
    BUSY,
    Forbidden,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    SputnikError,
    Unauthorized,
    Unavailable,
)
from sputnik.transient import is_transient

log = logging.getLogger(__name__)

_basic = HTTPBasic(auto_error=False, description="sputnik login and password")

# One map from domain error to HTTP status: handlers never pick a status themselves.
STATUS: dict[type[SputnikError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Unauthorized: 401,
    Forbidden: 403,
    QuotaExceeded: 429,
    Unavailable: 503,
}


class ErrorMessage(BaseModel):
    """An error other than a validation error: what went wrong, in one line."""

    detail: str


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response of an error status: JSON, whatever the route's own media type."""
    # Inline, not as a `model`: FastAPI would document a model under the route's media type
    # (image/png, application/geo+json), while errors are always JSON.
    schema = ErrorMessage.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# What any route of an authenticated app may answer besides its own 2xx and FastAPI's 422, as its
# OpenAPI document says: clients (and the contract fuzzing) hold the API to it.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("The request body is not well-formed"),
    401: error_doc("Credentials missing or wrong"),
    404: error_doc("Not found: an unknown id, or another user's"),
    503: error_doc("AWS is busy: try again shortly (see Retry-After)"),
}
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="sputnik", charset="UTF-8"'}


async def current_user(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> auth.User:
    """Return the authenticated user, or answer 401 with a Basic challenge."""
    if credentials is None:
        raise Unauthorized("authentication required")
    # Lockout is per login and address: API Gateway's sourceIp, which Mangum hands on as the client.
    source = request.client.host if request.client else ""
    # argon2 is CPU-bound: keep it off the event loop.
    return await run_in_threadpool(auth.authenticate, credentials.username, credentials.password, source)


async def caller(user: Annotated[auth.User, Depends(current_user)]) -> str:
    """Return the authenticated user's immutable id: what owns projects, procs and products."""
    return user.id


# FastAPI runs a dependency once per request, so a route taking both authenticates once.
Caller = Annotated[str, Depends(caller)]
CurrentUser = Annotated[auth.User, Depends(current_user)]


def error_response(exc: SputnikError) -> JSONResponse:
    """Turn a domain error into its JSON response (a 422 in FastAPI's validation-error shape)."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = UNAUTHORIZED_HEADERS
    elif status == 503:
        headers = {"Retry-After": "1"}
    elif isinstance(exc, QuotaExceeded):
        headers = {"Retry-After": str(exc.retry_after)}
    detail: object = str(exc)
    if status == 422:  # the OpenAPI schema of every 422 is HTTPValidationError: a list of errors
        detail = [{"type": "value_error", "loc": list(getattr(exc, "loc", ())), "msg": str(exc)}]
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


# Characters of a rejected value (and of a message) a 422 may echo: never the whole input.
MAX_ECHO, MAX_MESSAGE = 100, 1000


def _capped(value: object, limit: int = MAX_ECHO) -> object:
    """Return a rejected value short enough to echo: long text cut, containers left out."""
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return text if len(text) <= limit else text[:limit] + "…"
    return value if value is None or isinstance(value, bool | int | float) else None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer FastAPI's validation errors in their documented shape, echoing at most a short value."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors()[:20]:
        item: dict[str, object] = {
            "type": str(error.get("type", "value_error")),
            "loc": list(error.get("loc", ())),
        }
        item["msg"] = str(_capped(str(error.get("msg", "")), MAX_MESSAGE))
        if (value := _capped(error.get("input"))) is not None:
            item["input"] = value
        errors.append(item)
    return JSONResponse({"detail": errors}, status_code=422)


async def _sputnik_error(request: Request, exc: Exception) -> JSONResponse:
    """Answer a domain error with its mapped status."""
    assert isinstance(exc, SputnikError)
    return error_response(exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Log an unexpected error whole, answer 500 without leaking paths or traces."""
    if is_transient(exc):
        # Throttling that outlasted the SDK's retries: nothing was half-done, the client may retry.
        log.warning("AWS is busy on %s %s: %s", request.method, request.url.path, exc)
        return error_response(Unavailable(BUSY))
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    # Starlette answers this outside every middleware, so the security headers come with it here.
    return JSONResponse({"detail": "internal error"}, status_code=500, headers=HEADERS)


def create_app(title: str, *, authenticated: bool = True, **options: Any) -> FastAPI:
    """Build a FastAPI app with sputnik's auth, error handling and security headers on every route."""
    deps = [Depends(caller)] if authenticated else []
    responses = ERROR_RESPONSES if authenticated else {}
    app = FastAPI(title=title, version="0.1.0", dependencies=deps, responses=dict(responses), **options)
    app.add_exception_handler(SputnikError, _sputnik_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(SecurityMiddleware)
    return app


def prefixed_router(app: FastAPI, prefix: str, tags: list[str]) -> APIRouter:
    """A router for routes under a prefix that carries the app's own dependencies (auth) to each route."""
    return APIRouter(
        prefix=prefix,
        tags=list(tags),
        dependencies=list(app.router.dependencies),
        responses=dict(app.router.responses),
    )


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put a prefixed_router's routes on the app itself, so that each is analysed once.

    `include_router` would keep the router apart and analyse every route again at the first request
    (to apply its prefix, tags and dependencies): on /cog, 34 routes, most of a cold start's first
    request. A prefixed_router applied those when each route was added.
    """
    app.router.routes.extend(router.routes)
