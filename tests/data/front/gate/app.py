"""A test function behind the local front: echoes events, answers sizes, sleeps, fails."""

import base64
import json
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    """Answer according to the route."""
    route = event["routeKey"].split(" ", 1)[1]
    params = event.get("pathParameters") or {}
    if route == "/echo/{proxy+}":
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
    if route == "/text/{size}":
        return {
            "statusCode": 200,
            "headers": {"content-type": "text/plain"},
            "body": "a" * int(params["size"]),
        }
    if route == "/binary/{size}":
        body = bytes(range(256)) * (int(params["size"]) // 256)
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        }
    if route in ("/sleep/{seconds}", "/slow/{seconds}"):
        time.sleep(float(params["seconds"]))
        return {"statusCode": 200, "body": "awake"}
    if route == "/malformed":
        return {"statusCode": "teapot", "body": 42}
    raise RuntimeError("asked to fail")
