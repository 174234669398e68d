"""The local HTTP front: uvicorn serving the template's HttpApi routes as API Gateway and Lambda do.

Each request is routed as the HttpApi events of template.yaml declare, turned into a payload v2.0
event, and handed to its function's handler in a worker thread. The limits are those of an HTTP API
in front of Lambda, answered with the bodies API Gateway sends:
- request body over 10 MB (the HTTP API payload quota), or an event over Lambda's 6 MB
  invocation payload: 413 {"message":"Request Entity Too Large"};
- a function that raises, times out (its template `Timeout`), answers more than Lambda's 6 MB
  response payload or a malformed result: 500 {"message":"Internal Server Error"}, as an HTTP API
  answers a failed Lambda invocation (a REST API would answer 502);
- no answer within the route's integration timeout (`TimeoutInMillis`, at most 30 s):
  503 {"message":"Service Unavailable"};
- no route: 404 {"message":"Not Found"}.
"""

import asyncio
import base64
import binascii
import json
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import uvicorn

from sputnik_tools.local.stack import LocalStack
from sputnik_tools.template import Route

log = logging.getLogger(__name__)

# API Gateway HTTP API quota: payload size 10 MB.
MAX_REQUEST_BODY = 10 * 1024 * 1024
# Lambda's synchronous invocation payload, request and response: 6 MB, enforced at 6,291,556 bytes.
MAX_INVOKE_PAYLOAD = 6_291_556
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")
# Headers of a function's answer that API Gateway sets itself for the client's connection.
_HOP_BY_HOP = ("content-length", "connection", "transfer-encoding", "keep-alive")
# Invocations running at once; more wait their turn (within their timeouts), as throttled ones would.
CONCURRENCY = 64

# ASGI's callables, loosely typed: the server hands plain dicts.
Scope = dict[str, Any]
Message = dict[str, Any]


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


def gateway_error(status: int, message: str) -> HttpResponse:
    """An answer of API Gateway itself (not of a function), in its JSON shape."""
    return HttpResponse(
        status, {"content-type": "application/json"}, json.dumps({"message": message}).encode()
    )


def not_found() -> HttpResponse:
    """API Gateway's answer for a route the template does not declare."""
    return gateway_error(404, "Not Found")


def too_large() -> HttpResponse:
    """API Gateway's answer for a request over its payload quota or over Lambda's."""
    return gateway_error(413, "Request Entity Too Large")


def internal_error() -> HttpResponse:
    """An HTTP API's answer for a failed Lambda invocation."""
    return gateway_error(500, "Internal Server Error")


def unavailable() -> HttpResponse:
    """An HTTP API's answer when its integration timeout passes."""
    return gateway_error(503, "Service Unavailable")


def _is_text(content_type: str, body: bytes) -> bool:
    """Whether a body goes into the event as text (else base64): a text type that is valid UTF-8."""
    if not any(content_type.startswith(t) for t in _TEXT_TYPES):
        return False
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def build_event(
    route_key: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """Build the API Gateway HTTP API payload v2.0 event for one request.

    `headers` are as the client sent them; `x-forwarded-proto` and `x-forwarded-port` are added
    here when absent (the front sets them to how the client really reached it, as API Gateway does).
    """
    path, _, raw_query = target.partition("?")
    lower = {k.lower(): v for k, v in headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        # API Gateway joins repeated parameters with commas in queryStringParameters.
        query[key] = f"{query[key]},{value}" if key in query else value
    is_base64 = bool(body) and not _is_text(lower.get("content-type", ""), body)
    lower.setdefault("x-forwarded-proto", "http")
    lower.setdefault("x-forwarded-port", "80")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {k: v for k, v in lower.items() if k != "cookie"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lower.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if "cookie" in lower:
        event["cookies"] = [c.strip() for c in lower["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = {k: unquote(v) for k, v in path_parameters.items()}
    if body:
        event["body"] = base64.b64encode(body).decode() if is_base64 else body.decode()
    return event


def parse_result(result: Any) -> HttpResponse:
    """Turn a Lambda proxy result (payload v2.0) into the HTTP response API Gateway sends.

    Raises ValueError for a result API Gateway would refuse (the caller answers 500).
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway's v2 rule: a result without statusCode is a 200 JSON body.
        return HttpResponse(200, {"content-type": "application/json"}, json.dumps(result).encode())
    status = result["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f"malformed statusCode {status!r}")
    raw = result.get("body") or ""
    try:
        body = base64.b64decode(raw, validate=True) if result.get("isBase64Encoded") else raw.encode()
    except (binascii.Error, AttributeError, TypeError) as exc:
        raise ValueError(f"malformed body: {exc}") from exc
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ", ".join(str(v) for v in values)
    return HttpResponse(status, headers, body, [str(c) for c in result.get("cookies") or []])


class Gateway:
    """The ASGI app: API Gateway's routing, events and limits in front of the stack's functions."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        # The functions' threads: the handlers are synchronous, like Lambda's Python runtime.
        self.executor = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="invocation")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve one HTTP request (the server runs without lifespan, so only HTTP arrives)."""
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        response = await self.respond(scope, receive, request_id)
        headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.items()
            if k not in _HOP_BY_HOP
        ]
        headers += [(b"set-cookie", c.encode("latin-1")) for c in response.cookies]
        headers += [
            (b"content-length", str(len(response.body)).encode()),
            (b"apigw-requestid", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else response.body}
        )

    async def respond(self, scope: Scope, receive: Any, request_id: str) -> HttpResponse:
        """Route, check the limits, invoke the function and shape its answer."""
        method = scope["method"]
        path = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
        for route in self.stack.routes:
            params = route.match(method, path)
            if params is not None:
                break
        else:
            return not_found()
        headers = _headers(scope)
        declared = headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BODY:
            return too_large()
        body = await _read_body(receive)
        if body is None:
            return too_large()
        query = scope.get("query_string", b"").decode("latin-1")
        target = f"{path}?{query}" if query else path
        client = scope.get("client") or ("127.0.0.1", 0)
        server = scope.get("server") or ("127.0.0.1", 80)
        # API Gateway tells the function how the client reached it (links in tilejson/WMTS use it):
        # its own values, whatever the client sent.
        headers["x-forwarded-proto"] = scope.get("scheme", "http")
        headers["x-forwarded-port"] = str(server[1])
        headers["x-forwarded-for"] = ", ".join(filter(None, [headers.get("x-forwarded-for"), client[0]]))
        headers.setdefault("host", f"{server[0]}:{server[1]}")
        event = build_event(route.route_key, method, target, headers, body, params, source_ip=client[0])
        event["requestContext"]["requestId"] = request_id
        if len(json.dumps(event, ensure_ascii=False).encode()) > MAX_INVOKE_PAYLOAD:
            return too_large()
        return await self._invoke(route, event)

    async def _invoke(self, route: Route, event: dict[str, Any]) -> HttpResponse:
        """Run the route's function in a worker thread within both timeouts, as API Gateway would."""
        name = self.stack.function_for(route.function)
        function_timeout = self.stack.functions[name].timeout
        integration_timeout = route.timeout_ms / 1000
        where = f"{route.function} on {event['requestContext']['http']['method']} {event['rawPath']}"
        invocation = asyncio.get_running_loop().run_in_executor(self.executor, self.stack.invoke, name, event)
        try:
            # A handler cannot be stopped from outside its thread: past the deadline the thread is
            # left to finish on its own while the client gets its answer, as from API Gateway.
            result = await asyncio.wait_for(invocation, min(function_timeout, integration_timeout))
        except TimeoutError:
            if function_timeout <= integration_timeout:
                log.error("function %s timed out after %.2f seconds", where, function_timeout)
                return internal_error()
            log.error("integration of %s timed out after %.2f seconds", where, integration_timeout)
            return unavailable()
        except Exception:
            log.exception("function %s failed", where)
            return internal_error()
        try:
            size = len(json.dumps(result).encode())
        except (TypeError, ValueError):
            log.exception("function %s returned a result that is not JSON", where)
            return internal_error()
        if size > MAX_INVOKE_PAYLOAD:
            log.error(
                "function %s: response payload of %d bytes exceeds Lambda's %d",
                where,
                size,
                MAX_INVOKE_PAYLOAD,
            )
            return internal_error()
        try:
            return parse_result(result)
        except ValueError:
            log.exception("function %s returned a malformed response", where)
            return internal_error()


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers, lower-cased, repeated ones joined with commas as API Gateway does."""
    headers: dict[str, str] = {}
    for raw_key, raw_value in scope["headers"]:
        key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body (chunked or not), or None once it passes the payload quota."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class Front:
    """The local API endpoint: uvicorn serving the Gateway app in a background thread."""

    def __init__(
        self, stack: LocalStack, port: int = 8000, host: str = "127.0.0.1", *, access_log: bool = False
    ) -> None:
        # Bind here so that the port is known (and taken) before start; uvicorn listens on it.
        # IPPROTO_TCP named, not implied: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
        # say so, and with Nagle on, uvicorn's two writes per response meet the client's delayed
        # ACK: 40 ms added to most requests.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self.gateway = Gateway(stack)
        config = uvicorn.Config(
            self.gateway,
            http="h11",
            lifespan="off",
            # Keep the process's logging as it is; requests go to `uvicorn.access` if asked.
            log_config=None,
            access_log=access_log,
            # The peer's address is the client's: API Gateway does not trust X-Forwarded-For.
            proxy_headers=False,
            server_header=False,
            backlog=2048,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> "Front":
        """Serve in a background thread; return once it accepts connections."""
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, name="front", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local front did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving, let the idle invocation threads end, and release the port."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.gateway.executor.shutdown(wait=False, cancel_futures=True)
        self._socket.close()
