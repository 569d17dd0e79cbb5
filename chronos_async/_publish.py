"""The commit protocol shared by every write: lease, store, claim, publish, compensate.

Without multi-document transactions the order is what keeps readers safe:

1. the payload is stored first (under a key unique to this write attempt), concurrently
   with the ``cv`` allocation;
2. the version document is inserted: its unique ``_id`` is the claim on ``ov``;
3. the head is moved with a compare-and-swap on the previous ``ov`` (this also frees the
   lease).

Readers only trust versions up to the head's ``ov``, so a claimed-but-unpublished
version is invisible. If a writer dies between 2 and 3, the next writer finds the claim
(a duplicate key on its own claim) and rolls it forward: the version is complete,
because its payload was stored before it was claimed. A writer that fails between 2 and
3 while it still holds its lease withdraws its claim before it reports the failure, so a
write that raised leaves no visible trace. With transactions, 2 and 3 are one
transaction and none of this is needed, but it stays correct.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chronos_async._codec import EncodedPayload
from chronos_async._errors import (
    ChronosError,
    ItemExistsError,
    LockLostError,
    StorageError,
    VersionConflictError,
)
from chronos_async._keys import head_id, new_write_token, payload_key, version_id
from chronos_async._scope import Scope, now_us
from chronos_async.meta import DuplicateKeyError, Session

__all__ = [
    "Attempt",
    "Doc",
    "guarded",
    "head_from_version",
    "publish",
    "release",
    "roll_forward",
    "withdraw",
]

Doc = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger("chronos_async.write")

#: A lease this close to expiry is no longer trusted for compensation.
_LEASE_MARGIN_US = 1_000_000
#: Version fields a head does not mirror. Heads keep ``token`` (the write attempt that
#: published them): a writer whose reply was lost can tell whether its head move landed.
_VERSION_ONLY = ("_id", "function_id", "fence")


def head_from_version(version: Doc, hid: str) -> Doc:
    """The head document that publishes ``version`` (heads mirror their version)."""
    head = {k: v for k, v in version.items() if k not in _VERSION_ONLY}
    head["_id"] = hid
    head["updated_us"] = version["at"]
    return head


@dataclass(slots=True)
class Attempt:
    """One write attempt: what it stored and claimed, so a failure can be undone.

    ``leased`` is true while the attempt holds the record's lease (its ``token``).
    """

    scope: Scope
    item_id: str
    token: str
    leased: bool = False
    lease_exp_us: int | None = None
    #: The lease's fencing number (incremented on every grant of the record's lease).
    fence: int | None = None
    #: Set by the lease keeper when a renewal found the lease taken over.
    lease_lost: bool = False
    #: The attempt cannot tell whether it was published (MongoDB did not answer when
    #: asked): nothing may be withdrawn, the next writer or repair will settle it.
    uncertain: bool = False
    #: The token the lease is currently held with (``token``, until a withdrawal fences).
    lease_token: str | None = None
    #: The head insert or move was sent (its reply may be lost: it may land later).
    head_sent: bool = False

    def __post_init__(self) -> None:
        if self.leased and self.lease_token is None:
            self.lease_token = self.token

    stored_key: str | None = None
    claimed_vid: str | None = None
    published: bool = False


async def _both(first: Awaitable[Any], second: Awaitable[T]) -> T:
    """Await two steps concurrently; if one fails, the other is cancelled.

    One task (for ``first``) per write rather than a task group with two: this runs on
    every write.
    """
    side = asyncio.ensure_future(first)
    try:
        result = await second
    except BaseException:
        side.cancel()
        await asyncio.gather(side, return_exceptions=True)
        raise
    await side
    return result


async def publish(
    attempt: Attempt,
    *,
    prev_head: Doc | None,
    version: Doc,
    payload: EncodedPayload | None,
) -> Doc:
    """Store, claim and publish ``version`` (``ov``, ``at`` and ``cv`` are filled in here).

    ``prev_head`` is the head this attempt read under its lease (``None`` for a new
    record). ``payload`` is stored under a fresh key; ``None`` reuses ``version["key"]``.
    Returns the published head. On any failure (cancellation included) the attempt is
    withdrawn as far as it is safe, then the error propagates.
    """
    scope = attempt.scope
    repo = scope.repo
    ov = 0 if prev_head is None else int(prev_head["ov"]) + 1
    at = now_us() if prev_head is None else max(now_us(), int(prev_head["at"]) + 1)
    version.update(
        _id=version_id(scope.tenant, attempt.item_id, ov),
        t=scope.t,
        id=attempt.item_id,
        ov=ov,
        at=at,
        token=attempt.token,
        fence=attempt.fence,
        created_us=at if prev_head is None else prev_head["created_us"],
    )
    version["deleted_us"] = at if version.get("deleted") else None
    if payload is not None:
        key = payload_key(
            scope.tenant, scope.db, scope.collection, attempt.item_id, ov, attempt.token
        )
        attempt.stored_key = key
        version.update(key=key, size=payload.size, sha256=payload.sha256)
        limit = scope.config.limits.inline_payload_bytes
        # Inline copies are kept as text (canonical JSON is UTF-8): exact round trip, and
        # some wire-compatible servers cannot replace documents that hold binary values.
        version["inline"] = payload.body.decode() if payload.size <= limit else None
        version["cv"] = await _both(
            scope.store.put(key, payload.body, sha256=payload.sha256), repo.next_cv(scope.t)
        )
    else:
        version["cv"] = await repo.next_cv(scope.t)

    op = str(version["op"])
    await scope.reach("stored", attempt.item_id, ov, op)
    if attempt.lease_lost:
        raise LockLostError(attempt.item_id)
    hid = head_id(scope.tenant, attempt.item_id)
    head = head_from_version(version, hid)
    if prev_head is not None:
        head["lease_fence"] = prev_head.get("lease_fence", 0)
    if scope.transactions:
        try:
            await repo.in_transaction(
                lambda session: _publish_in(session, attempt, prev_head, version, head)
            )
        except StorageError as exc:
            # The commit may have happened: keep the payload, let the caller know.
            attempt.stored_key = None
            raise StorageError(
                f"transaction for {scope.where(attempt.item_id)} failed: {exc}",
                retryable=exc.retryable,
                outcome_unknown=True,
            ) from exc
        attempt.published = True
        await scope.reach("published", attempt.item_id, ov, op)
        return head

    # Registered before the insert: if its reply is lost, the claim may exist anyway.
    attempt.claimed_vid = version["_id"]
    try:
        await repo.insert_version(version)
    except DuplicateKeyError:
        attempt.claimed_vid = None  # the existing version is someone else's
        await _claim_taken(attempt, prev_head)
        raise  # _claim_taken always raises; this keeps type checkers informed
    await scope.reach("claimed", attempt.item_id, ov, op)
    attempt.head_sent = True
    try:
        if prev_head is None:
            await repo.insert_head(head)
        elif not await repo.move_head(
            hid, int(prev_head["ov"]), head, lease_token=attempt.lease_token
        ):
            await _head_moved(attempt, version)
    except DuplicateKeyError:
        raise ItemExistsError(attempt.item_id, None) from None
    except StorageError:
        if not await _landed(attempt, hid):
            raise
    attempt.published = True
    await scope.reach("published", attempt.item_id, ov, op)
    return head


async def _publish_in(
    session: Session, attempt: Attempt, prev_head: Doc | None, version: Doc, head: Doc
) -> None:
    scope = attempt.scope
    repo = scope.repo
    try:
        await repo.insert_version(version, session)
        await scope.reach("claimed", attempt.item_id, int(version["ov"]), str(version["op"]))
        if prev_head is None:
            await repo.insert_head(head, session)
            return
    except DuplicateKeyError:
        if prev_head is None:
            raise ItemExistsError(attempt.item_id, None) from None
        prev_ov = int(prev_head["ov"])
        raise VersionConflictError(prev_ov, prev_ov + 1, id=attempt.item_id) from None
    if not await repo.move_head(
        head["_id"], int(prev_head["ov"]), head, session, lease_token=attempt.lease_token
    ):
        raise VersionConflictError(int(prev_head["ov"]), None, id=attempt.item_id)


async def _claim_taken(attempt: Attempt, prev_head: Doc | None) -> None:
    """Our claim collided: a version with this ``ov`` exists that the head never showed.

    For an existing record that is a writer that died between claim and publication;
    its version is complete, so it is published now (roll-forward) and the caller,
    whose view is stale, gets a conflict.
    """
    scope = attempt.scope
    if prev_head is None:
        await _adopt_orphan_create(scope, attempt.item_id)
        raise ItemExistsError(attempt.item_id, 0)
    prev_ov = int(prev_head["ov"])
    await roll_forward(scope, attempt.item_id, prev_ov, lease_token=attempt.lease_token)
    raise VersionConflictError(prev_ov, prev_ov + 1, id=attempt.item_id)


async def _adopt_orphan_create(scope: Scope, item_id: str) -> None:
    """A create claimed ``ov=0`` and died before inserting the head: publish it.

    Only claims older than a lease are adopted, so a creator that is merely slow is
    never overtaken.
    """
    pending = await scope.repo.find_version(version_id(scope.tenant, item_id, 0))
    if pending is None or int(pending["at"]) > now_us() - scope.config.leases.lease_ms * 1000:
        return
    hid = head_id(scope.tenant, item_id)
    try:
        await scope.repo.insert_head(head_from_version(pending, hid))
        log.warning("published the orphaned creation of %s", scope.where(item_id))
    except DuplicateKeyError:
        pass


async def roll_forward(
    scope: Scope, item_id: str, head_ov: int, *, lease_token: str | None = None
) -> bool:
    """Publish the claimed version ``head_ov + 1`` if the head is still at ``head_ov``."""
    pending = await scope.repo.find_version(version_id(scope.tenant, item_id, head_ov + 1))
    if pending is None:
        return False
    hid = head_id(scope.tenant, item_id)
    moved = await scope.repo.move_head(
        hid, head_ov, head_from_version(pending, hid), lease_token=lease_token
    )
    if moved:
        log.warning(
            "rolled forward %s to ov=%d (its writer stopped)", scope.where(item_id), head_ov + 1
        )
    return moved


async def _head_moved(attempt: Attempt, version: Doc) -> None:
    """The head CAS failed although we own the claim: find out what happened."""
    scope = attempt.scope
    current = await scope.repo.find_head(head_id(scope.tenant, attempt.item_id), with_inline=False)
    if current is not None and int(current["ov"]) >= version["ov"]:
        mine = await scope.repo.find_version(version["_id"])
        if mine is not None and mine.get("token") == attempt.token:
            return  # another writer rolled our claim forward: it is published
    raise VersionConflictError(
        version["ov"] - 1, None if current is None else int(current["ov"]), id=attempt.item_id
    )


async def _landed(attempt: Attempt, hid: str) -> bool:
    """After a failed head write: did it land anyway (the reply was lost)?

    Raises :class:`StorageError` with ``outcome_unknown`` when MongoDB cannot be asked.
    """
    try:
        head = await attempt.scope.repo.find_head(hid, with_inline=False)
    except StorageError as exc:
        attempt.uncertain = True
        raise StorageError(
            f"write to {attempt.scope.where(attempt.item_id)} may or may not have been "
            "published (MongoDB stopped answering)",
            retryable=exc.retryable,
            outcome_unknown=True,
        ) from exc
    return head is not None and head.get("token") == attempt.token


async def withdraw(attempt: Attempt, error: BaseException) -> BaseException:
    """Undo what an unpublished attempt did, as far as that is safe; the error to raise.

    A claim is withdrawn only while our lease is comfortably alive: after that another
    writer may already have rolled it forward. If it cannot be withdrawn the caller is
    told the outcome is unknown (the claim will be published by the next writer).
    """
    scope = attempt.scope
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
    if outcome_unknown and not isinstance(error, asyncio.CancelledError):
        wrapped = StorageError(
            f"write to {scope.where(attempt.item_id)} failed after its version was claimed; "
            "it may still be published",
            retryable=False,
            outcome_unknown=True,
        )
        wrapped.__cause__ = error
        return wrapped
    return error


async def _withdraw_claim(attempt: Attempt) -> bool:
    """Remove our claim unless it was published; False when that cannot be settled.

    A head write whose reply was lost (or that was cancelled) may have landed, or may
    still land. So an update first fences its lease (a new token: a move sent with the
    old one can no longer match, and nobody else can take the lease meanwhile), then
    reads the head: if it points at our attempt the write is published, else the claim
    is deleted. A create has no lease to fence: once its head insert was sent, the claim
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
                return False  # the lease is gone: its new holder settles our claim
            attempt.lease_token, fenced = new_token, True
        if attempt.head_sent or fenced:
            head = await scope.repo.find_head(hid, with_inline=False)
            if head is not None and head.get("token") == attempt.token:
                attempt.published = True  # it landed: nothing to undo
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

    The clean-up is shielded from cancellation, so a cancelled writer still withdraws
    its claim and lease before the cancellation propagates.
    """
    try:
        return await body()
    except BaseException as exc:
        if (
            isinstance(exc, ChronosError)
            and not attempt.leased
            and attempt.claimed_vid is None
            and attempt.stored_key is None
        ):
            raise
        cleanup = asyncio.ensure_future(_clean_up(attempt, exc))
        try:
            replacement = await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            replacement = exc
        if replacement is exc:
            raise
        raise replacement from exc
