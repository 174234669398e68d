"""The local HTTP front behaves as API Gateway (HTTP API) in front of Lambda, limits included."""

import base64
import http.client
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from sputnik_tools.local.front import MAX_INVOKE_PAYLOAD, MAX_REQUEST_BODY, Front
from sputnik_tools.local.ports import free_port
from sputnik_tools.local.stack import LocalStack

GATE = Path(__file__).parent / "data" / "front" / "template.yaml"
TOO_LARGE = {"message": "Request Entity Too Large"}
INTERNAL = {"message": "Internal Server Error"}


@pytest.fixture(scope="module")
def gate(stack: LocalStack) -> Iterator[LocalStack]:
    """A stack of test routes beside the main one, whose environment is restored at once.

    The test functions read no environment, so the main stack's tests can run meanwhile.
    """
    saved = dict(os.environ)
    running = LocalStack(GATE, aws_port=free_port(), stack_name="front").start()
    os.environ.clear()
    os.environ.update(saved)
    from sputnik.models import bind_tables
    from sputnik.settings import get_settings

    get_settings.cache_clear()
    bind_tables()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gate_front(gate: LocalStack) -> Iterator[Front]:
    """The front of the test routes."""
    served = Front(gate, port=free_port()).start()
    yield served
    served.stop()


def raw_exchange(front: Front, request: bytes) -> bytes:
    """Send bytes on one connection, half-close it, and return all the server answered."""
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def echoed(response: httpx.Response) -> dict[str, Any]:
    """The event the echo route received."""
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


def event_body(event: dict[str, Any]) -> bytes:
    """The request body as the function received it."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event["isBase64Encoded"] else body.encode()


# ---------------------------------------------------------------- request bodies


def test_non_utf8_text_body_reaches_the_function_in_base64(gate_front: Front) -> None:
    body = b"caf\xe9 \xff\xfe"  # latin-1, not UTF-8, though the client calls it text
    event = echoed(
        httpx.post(f"{gate_front.url}/echo/x", content=body, headers={"content-type": "text/plain"})
    )
    assert event["isBase64Encoded"] is True and event_body(event) == body


def test_json_body_is_text_and_binary_body_is_base64(gate_front: Front) -> None:
    event = echoed(httpx.post(f"{gate_front.url}/echo/x", json={"a": "é"}))
    assert event["isBase64Encoded"] is False and json.loads(event["body"]) == {"a": "é"}
    binary = bytes(range(256))
    event = echoed(httpx.post(f"{gate_front.url}/echo/x", content=binary))
    assert event["isBase64Encoded"] is True and event_body(event) == binary


def test_chunked_request_body_is_read_whole(gate_front: Front) -> None:
    parts = [b"x" * 100_000, b"y" * 3, b"z" * 70_000]
    r = httpx.post(f"{gate_front.url}/echo/x", content=iter(parts))  # an iterator goes out chunked
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert event_body(echoed(r)) == b"".join(parts)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3"])
def test_bad_content_length_is_answered_400(gate_front: Front, length: bytes) -> None:
    answer = raw_exchange(
        gate_front, b"POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: " + length + b"\r\n\r\nhello"
    )
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_content_length_shorter_than_the_body_reads_what_it_declares(gate_front: Front) -> None:
    host, port = gate_front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nabcd"
        )
        answer = http.client.HTTPResponse(conn)
        answer.begin()
        assert answer.status == 200
        assert json.loads(answer.read())["body"] == "ab"


def test_body_over_10_mb_is_413_whether_declared_or_chunked(gate_front: Front) -> None:
    big = b"x" * (MAX_REQUEST_BODY + 1)
    declared = httpx.post(f"{gate_front.url}/echo/x", content=big, timeout=60)
    assert (declared.status_code, declared.json()) == (413, TOO_LARGE)
    chunked = httpx.post(
        f"{gate_front.url}/echo/x",
        content=(big[i : i + (1 << 20)] for i in range(0, len(big), 1 << 20)),
        timeout=60,
    )
    assert (chunked.status_code, chunked.json()) == (413, TOO_LARGE)


def test_event_over_lambdas_6_mb_is_413(gate_front: Front) -> None:
    # 5 MB of binary is 6.7 MB of base64 in the event: under API Gateway's quota, over Lambda's.
    r = httpx.post(f"{gate_front.url}/echo/x", content=b"\x00" * (5 * 1024 * 1024), timeout=60)
    assert (r.status_code, r.json()) == (413, TOO_LARGE)
    # The same size as text stays under both.
    text = httpx.post(
        f"{gate_front.url}/echo/x", content=b"a" * (5 * 1024 * 1024), headers={"content-type": "text/plain"}
    )
    assert len(event_body(echoed(text))) == 5 * 1024 * 1024


# ---------------------------------------------------------------- responses


def test_response_under_6_mb_arrives_whole_text_and_binary(gate_front: Front) -> None:
    text = httpx.get(f"{gate_front.url}/text/{MAX_INVOKE_PAYLOAD - 1000}", timeout=60)
    assert text.status_code == 200 and text.content == b"a" * (MAX_INVOKE_PAYLOAD - 1000)
    binary = httpx.get(f"{gate_front.url}/binary/{256 * 1000}")
    assert binary.status_code == 200 and binary.content == bytes(range(256)) * 1000


def test_response_over_lambdas_6_mb_is_500_as_an_http_api_answers(gate_front: Front) -> None:
    text = httpx.get(f"{gate_front.url}/text/{MAX_INVOKE_PAYLOAD + 1}", timeout=60)
    assert (text.status_code, text.json()) == (500, INTERNAL)
    # Binary counts at its base64 size: 4.8 MB of bytes is 6.4 MB in the payload.
    binary = httpx.get(f"{gate_front.url}/binary/{256 * 19_000}", timeout=60)
    assert (binary.status_code, binary.json()) == (500, INTERNAL)


def test_function_timeout_is_500_and_integration_timeout_is_503(gate_front: Front) -> None:
    # GateFunction's Timeout (2 s) comes before the route's 30 s: Lambda fails the invocation.
    assert httpx.get(f"{gate_front.url}/sleep/0.1").text == "awake"
    lambda_timeout = httpx.get(f"{gate_front.url}/sleep/3", timeout=60)
    assert (lambda_timeout.status_code, lambda_timeout.json()) == (500, INTERNAL)
    # The /slow route's TimeoutInMillis (1 s) comes before SlowFunction's 10 s: API Gateway gives up.
    gateway_timeout = httpx.get(f"{gate_front.url}/slow/2", timeout=60)
    assert (gateway_timeout.status_code, gateway_timeout.json()) == (503, {"message": "Service Unavailable"})


def test_failing_or_malformed_function_is_500(gate_front: Front) -> None:
    for path in ("/fail", "/malformed"):
        r = httpx.get(gate_front.url + path)
        assert (r.status_code, r.json()) == (500, INTERNAL)
        assert r.headers["apigw-requestid"]


def test_head_is_not_routed_to_a_get_route(gate_front: Front) -> None:
    assert httpx.head(f"{gate_front.url}/text/10").status_code == 404
    assert httpx.head(f"{gate_front.url}/echo/x").headers["content-length"] != "0"


# ---------------------------------------------------------------- connections and headers


def test_host_without_port_gets_the_real_port(gate_front: Front, front: Front, api: httpx.Client) -> None:
    port = gate_front.url.rsplit(":", 1)[1]
    event = echoed(
        httpx.get(f"{gate_front.url}/echo/x", headers={"host": "localhost", "x-forwarded-port": "x"})
    )
    assert event["headers"]["host"] == "localhost"
    assert event["headers"]["x-forwarded-port"] == port
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    # A real function builds its URLs from those headers.
    r = api.get("/project/list", headers={"host": "localhost"})
    assert r.status_code == 200, r.text


def test_200_concurrent_clients_are_all_accepted_and_served(gate_front: Front) -> None:
    host, port = gate_front.url.removeprefix("http://").split(":")
    clients = 200
    ready = threading.Barrier(clients)

    def call(i: int) -> bytes:
        ready.wait()
        # A full listen queue drops the SYN and the client sends it again only after 1 s: a connect
        # that waits longer than 0.9 s was dropped by the queue, not slowed by the server.
        with socket.create_connection((host, int(port)), timeout=0.9) as conn:
            conn.settimeout(120)
            conn.sendall(f"GET /echo/{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
            answer = http.client.HTTPResponse(conn)
            answer.begin()
            return json.loads(answer.read())["pathParameters"]["proxy"].encode()

    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(call, range(clients)))
    assert answers == [str(i).encode() for i in range(clients)]


# ---------------------------------------------------------------- the local stack under concurrency


def test_concurrent_dynamodb_transactions_neither_fail_nor_lose_writes(gate: LocalStack) -> None:
    # No retries: a moto error must show, not be hidden by botocore's retrying.
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=gate.endpoint,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=16),
    )
    table = gate.template.physical_name("LedgerTable")

    def write(worker: int) -> None:
        for n in range(20):
            items = [
                {"Put": {"TableName": table, "Item": {"key": {"S": f"t{worker}-{n}-{k}"}}}} for k in range(3)
            ]
            ddb.transact_write_items(TransactItems=items)
            ddb.put_item(TableName=table, Item={"key": {"S": f"p{worker}-{n}"}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    keys = [f"t{w}-{n}-{k}" for w in range(8) for n in range(20) for k in range(3)]
    keys += [f"p{w}-{n}" for w in range(8) for n in range(20)]
    found = set()
    for i in range(0, len(keys), 100):
        batch = {table: {"Keys": [{"key": {"S": k}} for k in keys[i : i + 100]]}}
        found |= {item["key"]["S"] for item in ddb.batch_get_item(RequestItems=batch)["Responses"][table]}
    assert found == set(keys)


def test_log_lines_carry_the_function_that_logged_them(
    stack: LocalStack, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # IngestFunction decorates its handler with Powertools' context: its keys are process-wide.
    stack.invoke(stack.function_for("IngestFunction"), {"backfill_project": 10**12})
    powertools = [h for h in logging.getLogger("sputnik").handlers if h.formatter is not None]
    assert powertools, "IngestFunction's Powertools logger is set up"
    caplog.set_level(logging.INFO, logger="mangum")
    assert api.get("/project/list").status_code == 200
    (record,) = [
        r for r in caplog.records if r.name.startswith("mangum") and "/project/list" in r.getMessage()
    ]
    assert record.function_name == stack.function_for("ProjectsFunction")
    # Formatted as Powertools formats it, the line names ProjectsFunction, not IngestFunction.
    line = json.loads(powertools[0].format(record))
    assert line["function_name"] == stack.function_for("ProjectsFunction")
    assert line["function_memory_size"] == 1024
    # A line of the local stack itself (no invocation) bears no function's context either.
    outside = logging.getLogger("sputnik_tools.local.front").makeRecord(
        "sputnik_tools.local.front", logging.ERROR, "", 0, "x", (), None
    )
    line = json.loads(powertools[0].format(outside))
    assert line["function_name"] == "local" and "function_arn" not in line


def test_connections_send_without_nagle_delay(gate_front: Front) -> None:
    """Every accepted connection has TCP_NODELAY: with Nagle, most answers wait 40 ms for an ACK."""
    host, port = gate_front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 404")
        served = [c.transport.get_extra_info("socket") for c in gate_front.server.server_state.connections]
        assert served and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in served)
