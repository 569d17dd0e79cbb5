"""Helpers of the two S3 store test modules (aioboto3 and obstore)."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable

import aiohttp

from chronos_async import SpacesConnection

__all__ = ["ConnFactory", "closed_port", "fetch", "sha"]

#: ``make_conn(**overrides)``: a connection to the session's S3 server.
ConnFactory = Callable[..., SpacesConnection]


def sha(body: bytes) -> str:
    """The hex sha256 of ``body``."""
    return hashlib.sha256(body).hexdigest()


async def fetch(url: str) -> tuple[int, bytes]:
    """GET ``url`` with a plain HTTP client: its status and body."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
