"""Ports for the local servers."""

import socket


def free_port() -> int:
    """Ask the OS for a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
