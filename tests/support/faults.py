"""Fault injection below botocore's retry logic: chosen AWS calls answer a throttling or server error."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse


class _Body:
    """The raw body of a canned HTTP response, as urllib3 hands it to botocore."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield self._data


# What AWS answers, per kind of fault: (HTTP status, headers, body).
DYNAMODB_THROTTLED = (
    400,
    {"Content-Type": "application/x-amz-json-1.0"},
    json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded.",
        }
    ).encode(),
)
S3_SLOW_DOWN = (
    503,
    {"Content-Type": "application/xml"},
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message></Error>",
)
S3_INTERNAL = (
    500,
    {"Content-Type": "application/xml"},
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
    b"<Message>We encountered an internal error. Please try again.</Message></Error>",
)
LAMBDA_THROTTLED = (
    429,
    {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException"},
    json.dumps(
        {
            "Type": "User",
            "message": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
    ).encode(),
)


@dataclass
class Fault:
    """Fail the first `times` calls that `matches` (every one with times=None), until stopped."""

    matches: Any
    answer: tuple[int, dict[str, str], bytes]
    times: int | None = None
    seen: int = 0
    failed: int = 0
    stopped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self) -> None:
        """Let every request through from now on (AWS has recovered); the test's other patches stay."""
        self.stopped = True

    def take(self, request: Any) -> bool:
        """Whether this request fails now."""
        if self.stopped or not self.matches(request):
            return False
        with self.lock:
            self.seen += 1
            if self.times is not None and self.failed >= self.times:
                return False
            self.failed += 1
            return True


def dynamodb(operation: str) -> Any:
    """Match one DynamoDB operation (by its X-Amz-Target header)."""
    return lambda r: _target(r).endswith(f".{operation}")


def _target(request: Any) -> str:
    """The X-Amz-Target header of a request ("" for REST services such as S3)."""
    target = request.headers.get("X-Amz-Target") or ""
    return target.decode() if isinstance(target, bytes) else str(target)


def s3_get(key_part: str) -> Any:
    """Match S3 GETs of keys containing `key_part`."""
    return lambda r: r.method == "GET" and key_part in r.url and not _target(r)


def lambda_invoke(r: Any) -> bool:
    """Match Lambda Invoke calls."""
    return r.method == "POST" and "/functions/" in r.url and r.url.endswith("/invocations")


def inject(monkeypatch: pytest.MonkeyPatch, *faults: Fault) -> None:
    """Answer matching requests with their fault; botocore's own retries see a real error response."""
    original = botocore.endpoint.Endpoint._send

    def send(self: Any, request: Any) -> Any:
        for fault in faults:
            if fault.take(request):
                status, headers, body = fault.answer
                return AWSResponse(request.url, status, headers, _Body(body))
        return original(self, request)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_send", send)
