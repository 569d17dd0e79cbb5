"""Servers of the outage tests: a SeaweedFS that can be killed and started again.

The tests that stop a server start their own (the session's are shared). A restart
reuses the dead server's ports and data folder, so the running Chronos simply
reconnects.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chronos_async import _procs
from chronos_async._procs import (
    ExecutableNotFoundError,
    NxServer,
    S3Credentials,
    WeedServer,
    start_weed,
)


async def kill(server: NxServer | WeedServer) -> None:
    """SIGKILL: the server dies without flushing or saying goodbye (a crash)."""
    if server.running:
        os.kill(server.pid, signal.SIGKILL)
    await server.wait()
    await server.stop()  # removes its pid file and sockets


async def restart_on_same_ports(
    monkeypatch: pytest.MonkeyPatch, ports: list[int], start: Callable[[], Awaitable[Any]]
) -> Any:
    """Start a server on the ports of its dead predecessor.

    ``_procs`` has no way to ask for given ports, so its port picker is pointed at them for
    the duration of the start (the free-port retries then retry the same ports).
    """
    with monkeypatch.context() as patch:
        patch.setattr(_procs, "pick_ports", lambda count, **_: list(ports[:count]))
        return await start()


@dataclass
class Weed:
    """A ``weed mini`` of one test, with its credentials and buckets."""

    folder: Path
    credentials: S3Credentials
    buckets: tuple[str, str, str]
    servers: list[WeedServer] = field(default_factory=list)

    @property
    def current(self) -> WeedServer:
        return self.servers[-1]

    def conn(self) -> dict[str, Any]:
        """The ``spaces_conns`` entry of this server."""
        return {
            "endpoint": self.current.endpoint,
            "access_key": self.credentials.access_key,
            "secret_key": self.credentials.secret_key,
            "json_bucket": self.buckets[0],
            "content_bucket": self.buckets[1],
            "backups_bucket": self.buckets[2],
        }

    async def start(self) -> WeedServer:
        server = await start_weed(
            self.folder / f"weed-{len(self.servers) + 1}",
            data_dir=self.folder / "weed-data",
            buckets=self.buckets,
            credentials=self.credentials,
        )
        self.servers.append(server)
        return server

    async def kill(self) -> None:
        """SIGKILL: the server dies without flushing or saying goodbye (a crash)."""
        await kill(self.current)

    async def restart(self, monkeypatch: pytest.MonkeyPatch) -> WeedServer:
        """Start it again on the same ports, with the same data."""
        return await restart_on_same_ports(  # type: ignore[no-any-return]
            monkeypatch, list(self.current.ports), self.start
        )


@asynccontextmanager
async def own_weed(
    folder: Path, credentials: S3Credentials, buckets: tuple[str, str, str]
) -> AsyncIterator[Weed]:
    """A running :class:`Weed` (the test is skipped without a ``weed`` executable);
    every server it started is killed at the end (the data is thrown away)."""
    weed = Weed(folder, credentials, buckets)
    try:
        await weed.start()
    except ExecutableNotFoundError as exc:
        pytest.skip(f"no weed executable: {exc}")
    try:
        yield weed
    finally:
        for server in weed.servers:
            await kill(server)
