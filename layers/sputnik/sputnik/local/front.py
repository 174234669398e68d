"""The local HTTP front: route each request as the template's HttpApi events do, as a v2 event."""

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sputnik.local.stack import LocalStack

log = logging.getLogger(__name__)

_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")


@dataclass
class HttpResponse:
    """What API Gateway returns to the client for one request."""

    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def build_event(
    route_key: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Build the API Gateway HTTP API payload v2.0 event for one request."""
    parts = urlsplit(target)
    lower = {k.lower(): v for k, v in headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        # API Gateway joins repeated parameters with commas in queryStringParameters.
        query[key] = f"{query[key]},{value}" if key in query else value
    is_text = any(lower.get("content-type", "").startswith(t) for t in _TEXT_TYPES)
    # API Gateway tells the function how the client reached it; links in tilejson/WMTS depend on it.
    lower.setdefault("x-forwarded-proto", "http")
    lower.setdefault("x-forwarded-port", lower.get("host", "").rpartition(":")[2] or "80")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {k: v for k, v in lower.items() if k != "cookie"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lower.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": bool(body) and not is_text,
    }
    if "cookie" in lower:
        event["cookies"] = [c.strip() for c in lower["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = {k: unquote(v) for k, v in path_parameters.items()}
    if body:
        event["body"] = base64.b64encode(body).decode() if event["isBase64Encoded"] else body.decode()
    return event


def parse_result(result: Any) -> HttpResponse:
    """Turn a Lambda proxy result (payload v2.0) into the HTTP response API Gateway sends."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway's v2 rule: a result without statusCode is a 200 JSON body.
        return HttpResponse(200, {"content-type": "application/json"}, json.dumps(result).encode())
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ", ".join(str(v) for v in values)
    return HttpResponse(int(result["statusCode"]), headers, body, list(result.get("cookies") or []))


def not_found() -> HttpResponse:
    """API Gateway's answer for a route the template does not declare."""
    return HttpResponse(404, {"content-type": "application/json"}, b'{"message":"Not Found"}')


def handle(
    stack: LocalStack, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> HttpResponse:
    """Route one request to its function exactly as HttpApi would, and return the response."""
    path = urlsplit(target).path
    for route in stack.routes:
        params = route.match(method, path)
        if params is not None:
            event = build_event(route.route_key, method, target, headers, body, params)
            try:
                result = stack.invoke(stack.function_for(route.function), event)
            except Exception:
                log.exception("function %s failed on %s %s", route.function, method, path)
                return HttpResponse(
                    500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}'
                )
            return parse_result(result)
    return not_found()


class _Handler(BaseHTTPRequestHandler):
    """Hand every request to `handle`."""

    stack: LocalStack
    protocol_version = "HTTP/1.1"
    # Send each response in one write: headers and body apart meet delayed ACKs (~40 ms a request).
    wbufsize = -1
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        """Serve one request of any method."""
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        response = handle(self.stack, self.command, self.path, dict(self.headers.items()), body)
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        for cookie in response.cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests through logging, not stderr."""
        log.info("%s " + format, self.client_address[0], *args)


class Front:
    """The local API endpoint: a threaded HTTP server in front of the stack's functions."""

    def __init__(self, stack: LocalStack, port: int = 8000, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (_Handler,), {"stack": stack})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> "Front":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
