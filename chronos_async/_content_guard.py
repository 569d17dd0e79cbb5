"""Content objects shared by writers and reconcile: a handshake through MongoDB.

A content key is a function of the record, the bytes and their type (see
:mod:`._content`), so a write that stores the same bytes for the same record again puts
the very object a withdrawn write left behind. Reconcile removes such orphans once
they are older than its grace period, after checking that no version refers to them;
without coordination a writer could put the object and publish a version referring to
it between that check and the delete, and the new head's content would be gone
(DESIGN.md, invariants 4 and 11). Writers and reconcile therefore each *write first,
then read the other's record* (Dekker's handshake), in two small collections next to
the records (:class:`~chronos_async.meta._content_marks.ContentMarks`):

writer (only a write that uploads keys its head does not have)
    W1 insert an *intent* naming the keys (``<coll>_content_intents``);
    W2 read the live deletion marks on them; while there are some, wait (polling with
    backoff: there is no event across processes), extending the intent and reading
    again, until none is left or they expired;
    W3 upload, claim and publish; W4 delete the intent (awaited in the write's
    clean-up; a write whose outcome is unknown leaves it to expire).

reconcile (for each batch of orphan candidates)
    R1 insert a *deletion mark* per key (``<coll>_content_deleting``), on every backend
    sharing the store;
    R2 read the live intents naming the keys (every backend), R3 then ask whether any
    version or head refers to them; R4 delete only the keys neither names, R5 remove
    the marks.

Why one side always sees the other: MongoDB applies the four operations W1, W2, R1,
R2 in one order (each read on the primary sees every write acknowledged before it
started). If W2 does not see R1's mark, W2 came before R1, so W1 came before R2: R2
sees the intent. It is then either live (the key is kept), or already deleted at W4,
and then the version was claimed before that, so R3 (after R2) finds it. If W2 does see
the mark, the writer uploads only after the mark is gone, i.e. after R4: whatever
reconcile deleted, the upload puts the object back before the version is claimed.

Expiry keeps a crash from blocking anyone, and is bounded so it cannot break the
argument: an intent counts until ``until_us`` and the writer refuses to claim once it is
within :func:`claim_margin_us` of it (a retryable error, nothing published), so every
claim lands while its intent is live; reconcile deletes only while its mark has at
least ``store_ms`` (the delete's deadline) left, so the delete ends while writers still
see the mark. Both margins include :data:`SKEW_US` of clock difference between hosts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from chronos_async._content import parse_content_key
from chronos_async._errors import StorageError
from chronos_async._keys import new_write_token
from chronos_async._scope import Scope, now_us
from chronos_async._sections import DeadlinesConfig
from chronos_async.meta._content_marks import ContentMarks
from chronos_async.storage import BlobStore

__all__ = [
    "SKEW_US",
    "ContentDeletion",
    "announce",
    "check_claimable",
    "claim_margin_us",
    "intent_span_us",
    "intents_held",
]

log = logging.getLogger("chronos_async.write")

#: Clock difference between hosts that the expiries tolerate.
SKEW_US: Final = 1_000_000
#: Keys per batch of marks and checks on the reconcile side.
_MARK_BATCH: Final = 100

ReferenceCheck = Callable[[BlobStore, list[str]], Awaitable[set[str]]]


def claim_margin_us(deadlines: DeadlinesConfig) -> int:
    """How long before its intent expires a write may still claim: storing its payload,
    allocating a ``cv`` and inserting the claim, each within its deadline."""
    return (deadlines.store_ms + 4 * deadlines.mongo_ms) * 1000 + SKEW_US


def intent_span_us(deadlines: DeadlinesConfig) -> int:
    """How long an intent counts: the content uploads (two store deadlines) and the
    claim margin."""
    return claim_margin_us(deadlines) + (2 * deadlines.store_ms + deadlines.mongo_ms) * 1000


def mark_span_us(deadlines: DeadlinesConfig) -> int:
    """How long a deletion mark counts: reconcile's checks and its delete."""
    return (deadlines.store_ms + 10 * deadlines.mongo_ms) * 1000 + 2 * SKEW_US


# -- writers ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Held:
    """The intents one write announced, and when the earliest stops counting."""

    tokens: list[str] = field(default_factory=list)
    until_us: int | None = None


_HELD: ContextVar[_Held | None] = ContextVar("chronos_content_intents", default=None)


@asynccontextmanager
async def intents_held(scope: Scope) -> AsyncIterator[None]:
    """Around one write attempt: the intents it announces (:func:`announce`) are deleted
    when it ends (W4), awaited and bounded; a write whose outcome is unknown (its claim
    may still be published) leaves them to expire. Collections without ``base64_props``
    never upload content: nothing to hold."""
    if not scope.cmap.base64_props:
        yield
        return
    held = _Held()
    reset = _HELD.set(held)
    try:
        yield
    except StorageError as exc:
        if exc.outcome_unknown:
            held.tokens.clear()
        raise
    finally:
        _HELD.reset(reset)
        if held.tokens:
            await scope.activity.settle(_drop(scope, held.tokens))


async def _drop(scope: Scope, tokens: list[str]) -> None:
    try:
        async with asyncio.timeout(2 * scope.config.deadlines.mongo_ms / 1000):
            await _marks(scope).drop_intents(tokens)
    except (StorageError, TimeoutError):
        log.info("content intents of %s left to expire", _where(scope))


def _where(scope: Scope) -> str:
    tenant = f"tenant {scope.tenant!r}, " if scope.tenant else ""
    return f"{tenant}{scope.db}.{scope.collection}"


def _marks(scope: Scope) -> ContentMarks:
    return ContentMarks(scope.repo.db, scope.collection)


async def announce(scope: Scope, keys: Sequence[str]) -> None:
    """W1 and W2: announce that this write uploads ``keys``, and wait while reconcile is
    deleting any of them. Raises a retryable :class:`StorageError` when marks keep
    appearing for longer than two mark lifetimes."""
    deadlines = scope.config.deadlines
    marks = _marks(scope)
    token = new_write_token()
    held = _HELD.get()
    if held is not None:
        held.tokens.append(token)  # before the insert: a reply lost still gets dropped
    until = now_us() + intent_span_us(deadlines)
    await marks.add_intent(token, keys, until)
    give_up = now_us() + 2 * mark_span_us(deadlines)
    delay = scope.config.leases.backoff_initial_ms / 1000
    while (marked := await marks.marked_until(keys, now_us())) is not None:
        now = now_us()
        if now > give_up:
            raise StorageError(
                f"content of {_where(scope)} is being deleted by reconcile; try again",
                retryable=True,
            )
        await asyncio.sleep(min(delay * (0.5 + random.random()), (marked - now) / 1e6 + 0.001))
        delay = min(delay * 2, scope.config.leases.backoff_max_ms / 1000)
        # Extended before reading again: a mark made after that read must find it live.
        until = now_us() + intent_span_us(deadlines)
        await marks.extend_intent(token, until)
    if held is not None:
        held.until_us = until if held.until_us is None else min(held.until_us, until)


def check_claimable(scope: Scope) -> None:
    """Refuse to go on to the claim when this write's intent expires too soon (its
    content uploads took too long): a retryable :class:`StorageError`."""
    held = _HELD.get()
    if held is None or held.until_us is None:
        return
    if now_us() > held.until_us - claim_margin_us(scope.config.deadlines):
        raise StorageError(
            f"content upload to {_where(scope)} took too long; nothing was written",
            retryable=True,
        )


# -- reconcile -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContentDeletion:
    """Where reconcile marks the content objects it deletes: the MongoDB ``clients`` of
    every backend whose writers may put them, and the ``deadlines`` they work with."""

    clients: Sequence[Any]
    deadlines: DeadlinesConfig = field(default_factory=DeadlinesConfig)

    async def remove(
        self, store: BlobStore, keys: Sequence[str], still_referenced: ReferenceCheck
    ) -> int:
        """Delete the objects of ``keys`` that neither an intent nor a version names
        (R1 to R5 of the module docs); how many went."""
        by_coll: dict[tuple[str, str], list[str]] = {}
        for key in keys:
            parsed = parse_content_key(key)
            if parsed is not None:  # anything else is never deleted
                by_coll.setdefault((parsed[1], parsed[2]), []).append(key)
        removed = 0
        for (db, collection), group in by_coll.items():
            repos = [ContentMarks(client[db], collection) for client in self.clients]
            await asyncio.gather(*(repo.sweep(now_us() - SKEW_US) for repo in repos))
            for start in range(0, len(group), _MARK_BATCH):
                batch = group[start : start + _MARK_BATCH]
                removed += await self._batch(repos, store, batch, still_referenced)
        return removed

    async def _batch(
        self,
        repos: list[ContentMarks],
        store: BlobStore,
        batch: list[str],
        still_referenced: ReferenceCheck,
    ) -> int:
        token = new_write_token()
        until = now_us() + mark_span_us(self.deadlines)
        try:
            await asyncio.gather(*(repo.mark(token, batch, until) for repo in repos))
            now = now_us()
            busy = set[str]().union(*await asyncio.gather(*(r.intended(batch, now) for r in repos)))
            rest = [key for key in batch if key not in busy]
            kept = await still_referenced(store, rest) if rest else set()
            doomed = [key for key in rest if key not in kept]
            if not doomed or now_us() >= until - self.deadlines.store_ms * 1000 - SKEW_US:
                return 0  # too late for this mark: left for the next reconcile
            await store.delete(doomed, role="content")
            return len(doomed)
        finally:
            await asyncio.shield(self._unmark(repos, token, batch))

    @staticmethod
    async def _unmark(repos: list[ContentMarks], token: str, batch: list[str]) -> None:
        results = await asyncio.gather(
            *(repo.unmark(token, batch) for repo in repos), return_exceptions=True
        )
        if any(isinstance(r, BaseException) for r in results):
            log.info("content deletion marks left to expire")
