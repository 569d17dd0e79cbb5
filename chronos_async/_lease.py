"""The per-record write lease: taking it (bounded wait) and keeping it (renewal).

The lease lives on the head document itself (``lease_exp``, ``lease_token``,
``lease_owner``, ``lease_fence``), so taking it and reading the head is one
``find_one_and_update``, and the head's compare-and-swap at publication releases it in
the same write. ``lease_fence`` counts the grants: each version records the fence of the
lease it was written under. There is no lease document to leak, so no TTL clean-up is
needed; an expired lease is simply taken over.

The lease gives liveness (writers queue instead of colliding); safety comes from the
unique version claim and the compare-and-swap, which hold even when a slow writer's
lease expires under it. A writer that finds its lease taken over before it claims its
version stops with :class:`~chronos_async.LockLostError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from types import TracebackType
from typing import Any

from chronos_async._errors import LockTimeoutError, NotFoundError, StorageError
from chronos_async._keys import head_id, new_write_token
from chronos_async._publish import Attempt
from chronos_async._scope import Scope, now_us

__all__ = ["LeaseKeeper", "take_lease"]

Doc = dict[str, Any]
log = logging.getLogger("chronos_async.write")


async def take_lease(scope: Scope, item_id: str, *, with_inline: bool) -> tuple[Doc, str]:
    """Take the record's lease, waiting (with jittered backoff) up to the configured bound.

    Returns the head (as of the moment the lease was granted) and the lease token.
    Raises :class:`NotFoundError` when there is no record, :class:`LockTimeoutError` when
    another writer kept the lease past the wait bound. A cancellation while a grant is in
    flight never leaves the lease held: the grant's reply is awaited and the lease freed
    if it was granted.
    """
    cfg = scope.config.leases
    hid = head_id(scope.tenant, item_id)
    token = new_write_token()
    started = time.monotonic()
    delay = cfg.backoff_initial_ms / 1000
    while True:
        grant = asyncio.ensure_future(
            scope.repo.take_lease(
                hid,
                token=token,
                owner=scope.owner,
                now_us=now_us(),
                lease_us=cfg.lease_ms * 1000,
                with_inline=with_inline,
            )
        )
        try:
            head = await asyncio.shield(grant)
        except asyncio.CancelledError:
            # Cancelled while the request was out: the server applies it anyway. Wait for
            # its answer and free the lease if it was granted.
            with contextlib.suppress(asyncio.CancelledError):
                await scope.activity.settle(_give_back(scope, hid, token, grant))
            raise
        if head is not None:
            return head, token
        current = await scope.repo.find_head(hid, with_inline=False)
        if current is None:
            raise NotFoundError(f"no record {scope.where(item_id)}", id=item_id)
        waited = time.monotonic() - started
        if waited * 1000 >= cfg.wait_ms:
            raise LockTimeoutError(item_id, waited * 1000)
        # Another process holds it (writers of this process queue on the item gate).
        until_expiry = max(0.0, (int(current.get("lease_exp", 0)) - now_us()) / 1e6)
        remaining = cfg.wait_ms / 1000 - waited
        pause = min(delay * (0.5 + random.random()), remaining, until_expiry + 0.001)
        await asyncio.sleep(max(pause, 0.0005))
        delay = min(delay * 2, cfg.backoff_max_ms / 1000)


async def _give_back(scope: Scope, hid: str, token: str, grant: asyncio.Future[Any]) -> None:
    """Wait for a lease grant whose caller gave up on it, then free the lease if granted."""
    await asyncio.wait({grant})
    if grant.cancelled() or grant.exception() is not None or grant.result() is None:
        return  # not granted (a grant that timed out is left to expire)
    try:
        await scope.repo.release_lease(hid, token)
    except StorageError:
        log.info("lease on %s left to expire", hid)


class LeaseKeeper:
    """Renews the attempt's lease every third of its length while the block runs.

    Costs one timer for a write that finishes quickly; the renewal task only starts when
    a write is still running a third of a lease after it began. A renewal that finds the
    lease taken over sets ``attempt.lease_lost``, which stops the write before its claim.
    """

    def __init__(self, attempt: Attempt) -> None:
        self._attempt = attempt
        self._period = attempt.scope.config.leases.lease_ms / 3000
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        self._schedule()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._period, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        attempt = self._attempt
        if not attempt.leased or attempt.published:
            return
        scope = attempt.scope
        expires = now_us() + scope.config.leases.lease_ms * 1000
        try:
            kept = await scope.repo.renew_lease(
                head_id(scope.tenant, attempt.item_id), attempt.lease_token or "", expires
            )
        except StorageError:
            log.info("lease renewal of %s failed; retrying", scope.where(attempt.item_id))
            kept = True  # unknown: the next renewal (or the claim) will tell
        else:
            if kept:
                attempt.lease_exp_us = expires
        if not kept:
            attempt.lease_lost = True
            log.warning("lease on %s was taken over", scope.where(attempt.item_id))
            return
        self._schedule()
