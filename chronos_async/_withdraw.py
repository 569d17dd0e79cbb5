"""Undoing a write attempt that failed or was cancelled: withdraw its claim, free its lease.

What an attempt did is recorded on its :class:`~chronos_async._publish.Attempt`, so the
undoing is mechanical: wait for the reply of a step the caller stopped waiting for, then
withdraw the claim (only while the lease is surely ours, or for a create whose head was
never sent), delete the payload, free the lease. When the outcome cannot be settled the
caller gets a :class:`~chronos_async.StorageError` with ``outcome_unknown``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chronos_async._errors import ChronosError, StorageError
from chronos_async._keys import head_id, new_write_token
from chronos_async._publish import Attempt
from chronos_async._scope import now_us
from chronos_async.meta import DuplicateKeyError

__all__ = ["guarded", "release", "withdraw"]

T = TypeVar("T")
log = logging.getLogger("chronos_async.write")

#: A lease this close to expiry is no longer trusted for compensation.
_LEASE_MARGIN_US = 1_000_000


async def _finish_inflight(attempt: Attempt) -> None:
    """Wait for the reply of a step the cancelled caller stopped waiting for; record it.

    MongoDB steps are bounded by ``deadlines.mongo_ms`` already; the wait here is bounded
    too (twice that), after which the step counts as "sent, outcome unknown".
    """
    task, kind = attempt.inflight, attempt.inflight_kind
    attempt.inflight, attempt.inflight_kind = None, None
    if task is None:
        return
    await asyncio.wait({task}, timeout=2 * attempt.scope.config.deadlines.mongo_ms / 1000)
    if not task.done():
        task.cancel()
        if kind == "claim":
            attempt.claim_in_doubt = True
        return
    if task.cancelled():
        return
    error = task.exception()
    if kind == "claim":
        if isinstance(error, DuplicateKeyError):
            attempt.claimed_vid = None  # the version with that ov is someone else's
        elif isinstance(error, StorageError):
            attempt.claim_in_doubt = error.retryable
    elif kind == "head" and error is None and task.result() is not False:
        attempt.landed(at=None)  # our head write landed: the write is complete


async def withdraw(attempt: Attempt, error: BaseException) -> BaseException:
    """Undo what an unpublished attempt did, as far as that is safe; the error to raise.

    A claim is withdrawn only while our lease is comfortably alive: after that another
    writer may already have rolled it forward. If it cannot be withdrawn the caller is
    told the outcome is unknown (the claim will be published by the next writer).
    """
    scope = attempt.scope
    await _finish_inflight(attempt)
    if attempt.published or attempt.uncertain:
        return error
    outcome_unknown = False
    if attempt.claimed_vid is not None:
        outcome_unknown = not await _withdraw_claim(attempt)
    if attempt.stored_key is not None and not outcome_unknown:
        try:
            await scope.store.delete([attempt.stored_key])
        except StorageError:
            log.info("left orphan payload %s for reconcile", attempt.stored_key)
    # A claim insert that timed out may still land after the withdrawal; the next writer
    # would then publish it. The caller must know the write may have happened.
    outcome_unknown = outcome_unknown or attempt.claim_in_doubt
    if outcome_unknown and not isinstance(error, asyncio.CancelledError):
        wrapped = StorageError(
            f"write to {scope.where(attempt.item_id)} failed after its version was claimed; "
            "it may still be published",
            retryable=isinstance(error, StorageError) and error.retryable,
            outcome_unknown=True,
        )
        wrapped.__cause__ = error
        return wrapped
    return error


async def _withdraw_claim(attempt: Attempt) -> bool:
    """Remove our claim unless it was published; False when that cannot be settled.

    A head write whose reply was lost may have landed, or may still land. So an update
    first fences its lease (a new token: a move sent with the old one can no longer
    match, and nobody else can take the lease meanwhile), then reads the head: if it
    points at our attempt the write is published, else the claim is deleted. A create has
    no lease to fence: once its head insert was sent without a definite answer, the claim
    is left for adoption (the outcome is unknown to the caller).
    """
    scope = attempt.scope
    hid = head_id(scope.tenant, attempt.item_id)
    fenced = False
    try:
        if attempt.leased and attempt.lease_token is not None:
            alive = (
                attempt.lease_exp_us is None or now_us() < attempt.lease_exp_us - _LEASE_MARGIN_US
            )
            new_token = new_write_token()
            if not alive or not await scope.repo.fence_lease(hid, attempt.lease_token, new_token):
                # The lease is gone: its new holder settles our claim, unless our own head
                # write (whose reply we lost) already published it and freed the lease.
                if attempt.head_sent:
                    head = await scope.repo.find_head(hid, with_inline=False)
                    if head is not None and head.get("token") == attempt.token:
                        attempt.landed(at=int(head["at"]))
                return False
            attempt.lease_token, fenced = new_token, True
        if attempt.head_sent or fenced:
            head = await scope.repo.find_head(hid, with_inline=False)
            if head is not None and head.get("token") == attempt.token:
                attempt.landed(at=int(head["at"]))  # it landed: nothing to undo
                return False
            if not fenced:
                return False  # a create's head insert may still land
        # Deletes only our own claim; a claim that never landed makes this a no-op.
        await scope.repo.delete_version(attempt.claimed_vid or "", attempt.token)
    except StorageError:
        return False
    return True


async def release(attempt: Attempt) -> None:
    """Free the attempt's lease if it still holds it (best effort: it expires anyway)."""
    if not attempt.leased or attempt.published:
        return
    attempt.leased = False
    try:
        await attempt.scope.repo.release_lease(
            head_id(attempt.scope.tenant, attempt.item_id), attempt.lease_token or attempt.token
        )
    except StorageError:
        log.info("lease on %s left to expire", attempt.scope.where(attempt.item_id))


async def _clean_up(attempt: Attempt, error: BaseException) -> BaseException:
    replacement = await withdraw(attempt, error)
    await release(attempt)
    return replacement


async def guarded(attempt: Attempt, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body``; on failure or cancellation undo the attempt and free its lease.

    The clean-up runs to the end even if the caller is cancelled again meanwhile (it is
    tracked by the instance, whose close waits for it).
    """
    try:
        return await body()
    except BaseException as exc:
        if (
            isinstance(exc, ChronosError)
            and not attempt.leased
            and attempt.claimed_vid is None
            and attempt.stored_key is None
            and attempt.inflight is None
        ):
            raise
        try:
            replacement = await attempt.scope.activity.settle(_clean_up(attempt, exc))
        except asyncio.CancelledError:
            replacement = exc
        if replacement is exc:
            raise
        raise replacement from exc
