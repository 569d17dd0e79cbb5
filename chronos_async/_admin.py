"""Operator tools: health checks (verify, repair and reconcile come with reliability)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chronos_async._errors import ChronosError
from chronos_async.meta import mongo_errors

if TYPE_CHECKING:
    from chronos_async._client import Backend, Chronos

__all__ = ["Admin", "BackendHealth", "HealthReport"]


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """The state of one backend: MongoDB and the payload store, each with its latency."""

    index: int
    id: str
    mongo_ok: bool
    mongo_ms: float | None
    store_kind: str
    store_ok: bool
    store_ms: float | None
    transactions: bool
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HealthReport:
    """``ok`` is true when every backend answered."""

    ok: bool
    backends: tuple[BackendHealth, ...] = field(default_factory=tuple)


async def _timed(step: Any, seconds: float) -> tuple[bool, float | None, str | None]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await step
    except (ChronosError, TimeoutError) as exc:
        return False, None, f"{type(exc).__name__}: {exc}"
    return True, (time.perf_counter() - started) * 1000, None


class Admin:
    """Administrative operations of a :class:`~chronos_async.Chronos` instance."""

    def __init__(self, chronos: Chronos) -> None:
        self._chronos = chronos

    async def health(self, *, check_seconds: float = 5.0) -> HealthReport:
        """Ping every backend's MongoDB and payload store (each check bounded by ``check_seconds``).

        Never raises for an unhealthy backend: the report says what failed. Connection
        strings and credentials never appear in it.
        """
        self._chronos._check_open()
        checks = [self._check(b, check_seconds) for b in self._chronos.backends]
        results = tuple(await asyncio.gather(*checks))
        return HealthReport(ok=all(r.mongo_ok and r.store_ok for r in results), backends=results)

    async def _check(self, backend: Backend, check_seconds: float) -> BackendHealth:
        async def ping() -> None:
            with mongo_errors("ping"):
                await backend.client.admin.command("ping")

        (m_ok, m_ms, m_err), (s_ok, s_ms, s_err) = await asyncio.gather(
            _timed(ping(), check_seconds), _timed(backend.store.ping(), check_seconds)
        )
        return BackendHealth(
            index=backend.index,
            id=backend.id,
            mongo_ok=m_ok,
            mongo_ms=m_ms,
            store_kind=backend.store.kind,
            store_ok=s_ok,
            store_ms=s_ms,
            transactions=backend.transactions,
            errors=tuple(e for e in (m_err, s_err) if e),
        )
