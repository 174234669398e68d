"""An S3 in a process of its own for the benchmarks: moto that logs what it serves, as S3 is elsewhere.

The local stack's moto server runs in the benchmark's own process, where its Python answers compete
for the GIL with the readers being timed: concurrent reads then overlap less than they would
against S3, which serves them elsewhere. Here moto serves from a child process, and
`GET /_requests` answers (and forgets) the log of (method, path, Range header) it has served.
"""

import json
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from sputnik_tools.local.ports import free_port
from sputnik_tools.local.recording import Fault, RecordedRequest, RecordingMotoServer
from sputnik_tools.local.runtime import REGION

LOG_PATH = "/_requests"


@dataclass
class SeparateS3:
    """The child's endpoint, and its log of requests."""

    endpoint: str

    def client(self) -> Any:
        """A boto3 S3 client for the child's endpoint."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)

    def requests(self) -> list[RecordedRequest]:
        """The requests served since the last call (the log is emptied)."""
        with urllib.request.urlopen(f"{self.endpoint}{LOG_PATH}", timeout=30) as answer:
            return [(method, path, ranged) for method, path, ranged in json.loads(answer.read())]


@contextmanager
def separate_s3() -> Iterator[SeparateS3]:
    """Run moto's S3 in a child process on a free port until the block ends."""
    port = free_port()
    # The child serves until its stdin closes: when the block ends, or however this process ends.
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.separate_s3", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the separate S3 server did not start")
        yield SeparateS3(f"http://127.0.0.1:{port}")
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def serve(port: int) -> None:
    """Serve moto on `port`, logging every request but the log's own, until stdin closes."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    log: list[RecordedRequest] = []

    def record(request: RecordedRequest) -> Fault | None:
        if request[1] != LOG_PATH:
            log.append(request)
            return None
        # Read and cleared between measurements, while nothing else is being served.
        body = json.dumps(log).encode()
        log.clear()
        return "200 OK", body

    server = RecordingMotoServer(record, "127.0.0.1", port)
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
