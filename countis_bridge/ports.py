"""TCP ports: MQTT's standard one, a free one for a server of ours, and whether one is open."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
MQTT_PORT = 1883  # a broker's port unless configured otherwise (IANA: mqtt)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0
