"""Named points of the write pipeline that tests (and tracing) can hook.

Every write passes these points in order; a hook runs at each point it is reached::

    leased          the record's lease is held and its head read (not for create)
    stored          the payload is stored and the cv allocated (not when reused)
    claimed         the version document is inserted (its ov is owned)
    published       the head points at the new version

A hook is ``hook(point, info)`` where ``info`` is a :class:`CheckpointInfo`; it may be a
coroutine function. It can raise (to inject a failure at that point), await (to stall the
writer, e.g. until the test cancels it) or just record. Hooks belong to one
:class:`~chronos_async.Chronos` instance::

    seen = []
    with chronos.checkpoints.hook(lambda point, info: seen.append(point)):
        await users.update(...)

With no hook installed a checkpoint costs one attribute test.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = ["POINTS", "CheckpointHook", "CheckpointInfo", "Checkpoints", "Point"]

Point = Literal["leased", "stored", "claimed", "published"]
#: The checkpoints, in the order a write reaches them.
POINTS: tuple[Point, ...] = ("leased", "stored", "claimed", "published")


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """Where a write is: its collection, record and the ``ov`` it is writing."""

    db: str
    collection: str
    tenant: str | None
    id: str
    ov: int
    op: str


CheckpointHook = Callable[[Point, CheckpointInfo], Awaitable[None] | None]


class Checkpoints:
    """The hooks of one Chronos instance."""

    def __init__(self) -> None:
        self._hooks: list[CheckpointHook] = []

    @property
    def active(self) -> bool:
        """True when at least one hook is installed."""
        return bool(self._hooks)

    @contextmanager
    def hook(self, hook: CheckpointHook) -> Iterator[None]:
        """Install ``hook`` for the duration of the block."""
        self._hooks.append(hook)
        try:
            yield
        finally:
            self._hooks.remove(hook)

    async def reach(self, point: Point, info: CheckpointInfo) -> None:
        """Run every installed hook for ``point`` (in installation order)."""
        for hook in list(self._hooks):
            result = hook(point, info)
            if inspect.isawaitable(result):
                await result
