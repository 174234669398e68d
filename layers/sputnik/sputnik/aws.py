"""AWS clients made once per process: making one loads and parses its service model (~50 ms)."""

import os
import threading
from typing import Any

_clients: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """The boto3 client of a service for this environment (its AWS_* variables), made on first use."""
    # Keyed by the AWS_* variables too: region, endpoint or credentials set since get a new client.
    key = (service, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    found = _clients.get(key)
    if found is None:
        with _lock:  # boto3's default session is not safe to make clients from two threads at once
            found = _clients.get(key)
            if found is None:
                import boto3  # here: functions that never call AWS directly do not load it

                found = _clients[key] = boto3.client(service)
    return found
