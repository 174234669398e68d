"""Security headers on every answer, and state-changing requests that another site sent refused.

Browsers send `Origin` with every POST and `Sec-Fetch-Site` with every request; a page of another
site that makes a person's browser POST here (with the Basic credentials the browser remembers) is
told apart by them. Clients outside browsers send neither and are not affected.
"""

from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# JSON, images and errors: nothing in them may run, load or be framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "Content-Security-Policy": API_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser says of a request its own page (or the person, typing) made.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
CROSS_SITE = "refused: the request was sent by another site"
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin_host(origin: str) -> str | None:
    """host[:port] of an Origin header, with the scheme's default port left out; None if unusable."""
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    port = parts.port and str(parts.port)
    return parts.hostname + (f":{port}" if port and port != _DEFAULT_PORTS[parts.scheme] else "")


def _host(value: str) -> str:
    """A Host header without a default port."""
    for port in _DEFAULT_PORTS.values():
        value = value.removesuffix(f":{port}")
    return value.lower()


def sent_by_another_site(headers: Headers) -> bool:
    """Whether a browser says another site (or an opaque origin) made this request."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in OWN_FETCH_SITES:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return _origin_host(origin) != _host(headers.get("host", ""))


class SecurityMiddleware:
    """Add the security headers to every answer; refuse a state-changing request from another site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with a `send` that adds the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and sent_by_another_site(Headers(scope=scope)):
            await JSONResponse({"detail": CROSS_SITE}, status_code=403, headers=HEADERS)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
