"""Caching headers of tile images: a strong ETag, private caching, 304 when the client has the bytes."""

import hashlib

from starlette.requests import Request
from starlette.responses import Response

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
