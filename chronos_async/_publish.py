"""The commit protocol shared by every write: lease, store, claim, publish, compensate.

The order is what keeps readers safe (no multi-document transaction is needed):

1. the payload is stored first (under a key unique to this write attempt), concurrently
   with the ``cv`` allocation;
2. the version document is inserted: its unique ``_id`` is the claim on ``ov``. It
   records ``claim_us`` (now) and ``prev_at``, the commit time of the version it follows;
3. once the claim is acknowledged, the commit time ``at`` is read from the clock, and the
   head is moved to the new version with a compare-and-swap on the previous ``ov`` (this
   also frees the lease). The head carries ``at``; the version document never needs it
   (the next version's ``prev_at`` holds it, see :mod:`._asof`).

Readers trust versions only up to the head's ``ov``, so a claimed-but-unpublished
version is invisible. **Commit time = the moment of visibility.** ``at`` is taken after
the claim exists and before the head moves, so a reader could miss a version whose
``at`` is already past. Readers therefore wait for a claim they can see (a leased head
with a claim on ``ov + 1``, or a claim on ``ov = 0`` without a head) while it is young;
and a writer publishes its claim within half the commit window (``deadlines.commit_ms``)
or withdraws it. A version committed at or before ``t`` is thus visible to every read
that starts after ``t``, and a read returns only versions committed before it returned:
``get_as_of(t)`` gives the same answer at any time after ``t``.

If a writer dies between 2 and 3, the next writer finds the claim (a duplicate key on its
own claim) and rolls it forward: the version is complete, because its payload was stored
before it was claimed. It is published with a new commit time (later than every read
that could have missed it). A writer that fails between 2 and 3 while it still holds its
lease withdraws its claim before it reports the failure, so a write that raised leaves no
visible trace. The MongoDB steps whose outcome decides what to undo (taking the lease,
the claim, the head write) are never abandoned half-way: if the caller is cancelled, the
clean-up first waits for the step's reply (bounded by ``deadlines.mongo_ms``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from chronos_async._codec import EncodedPayload
from chronos_async._errors import (
    ItemExistsError,
    LockLostError,
    StorageError,
    VersionConflictError,
)
from chronos_async._keys import head_id, payload_key, version_id
from chronos_async._rollforward import (
    adopt_create,
    follow_moved_payload,
    head_from_version,
    publish_claim,
    settle_age_us,
)
from chronos_async._scope import Scope, now_us
from chronos_async.counters import stamp
from chronos_async.meta import DuplicateKeyError
from chronos_async.storage._batcher import Location

__all__ = [
    "Attempt",
    "Doc",
    "head_from_version",
    "publish",
    "adopt_create",
    "publish_claim",
    "roll_forward",
    "settle_age_us",
]

Doc = dict[str, Any]
T = TypeVar("T")
S = TypeVar("S")
log = logging.getLogger("chronos_async.write")

#: Which MongoDB step an attempt is waiting on (see :meth:`Attempt.step`).
StepKind = Literal["claim", "head"]


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
    #: The claim insert failed without a definite answer: it may still land later.
    claim_in_doubt: bool = False

    def __post_init__(self) -> None:
        if self.leased and self.lease_token is None:
            self.lease_token = self.token

    stored_key: str | None = None
    #: Where the payload went when the pack writer stored it.
    location: Location | None = None
    claimed_vid: str | None = None
    published: bool = False
    #: A claim or head write whose reply the (cancelled) caller stopped waiting for.
    inflight: asyncio.Task[Any] | None = None
    inflight_kind: StepKind | None = None
    #: The version whose head write was sent, and the commit time it carried (a head
    #: found later with this ``at`` was moved by this attempt, not by a roll-forward).
    sent_version: Doc | None = None
    sent_at: int | None = None

    def landed(self, *, at: int | None) -> None:
        """The head now shows this attempt's version: the write is published. It is
        counted (once) when this attempt's own head write put it there (``at`` is the
        head's commit time; ``None``: known to be ours)."""
        self.published = True
        if self.sent_version is not None and (at is None or at == self.sent_at):
            version, self.sent_version = self.sent_version, None
            self.scope.counted(version)

    async def step(self, coro: Coroutine[Any, Any, T], kind: StepKind) -> T:
        """Await a MongoDB step that a cancellation must not abandon half-way.

        The step runs in its own task; if the caller is cancelled while waiting, the task
        goes on and the clean-up (:func:`withdraw`) waits for its reply before deciding
        what to undo. (A request already sent is applied by the server whether or not
        anyone waits for the reply.)
        """
        task = asyncio.ensure_future(coro)
        self.inflight, self.inflight_kind = task, kind
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self.inflight, self.inflight_kind = None, None


async def _both(first: Awaitable[S], second: Awaitable[T]) -> tuple[S, T]:
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
    return await side, result


async def _store_payload(attempt: Attempt, vid: str, key: str, payload: EncodedPayload) -> None:
    """Store the payload under ``key``, or in a pack (``write_optimization.batch_s3``);
    the version records where (a packed payload: the pack key, offset and length)."""
    scope = attempt.scope
    if scope.packs is None:
        attempt.stored_key = key
        await scope.store.put(key, payload.body, sha256=payload.sha256)
        return
    location = await scope.packs.put(
        tenant=scope.tenant,
        db=scope.db,
        collection=scope.collection,
        vid=vid,
        key=key,
        body=payload.body,
        sha256=payload.sha256,
    )
    # A pack is shared: a withdrawn member stays in it (reconcile compacts packs).
    attempt.stored_key = None if location.packed else key
    attempt.location = location


async def publish(
    attempt: Attempt,
    *,
    prev_head: Doc | None,
    version: Doc,
    payload: EncodedPayload | None,
) -> Doc:
    """Store, claim and publish ``version`` (``ov``, ``cv`` and the times are filled in).

    ``prev_head`` is the head this attempt read under its lease (``None`` for a new
    record). ``payload`` is stored under a fresh key; ``None`` reuses ``version["key"]``.
    Returns the published head. On any failure (cancellation included) the attempt is
    withdrawn as far as it is safe, then the error propagates.
    """
    scope = attempt.scope
    repo = scope.repo
    ov = 0 if prev_head is None else int(prev_head["ov"]) + 1
    prev_at = -1 if prev_head is None else int(prev_head["at"])
    version.update(
        _id=version_id(scope.tenant, attempt.item_id, ov),
        t=scope.t,
        id=attempt.item_id,
        ov=ov,
        token=attempt.token,
        fence=attempt.fence,
        prev_at=prev_at,
        created_us=None if prev_head is None else prev_head["created_us"],
    )
    if payload is not None:
        key = payload_key(
            scope.tenant, scope.db, scope.collection, attempt.item_id, ov, attempt.token
        )
        attempt.stored_key = key  # until stored: a cancelled put may still land
        version.update(size=payload.size, sha256=payload.sha256)
        limit = scope.config.limits.inline_payload_bytes
        # Inline copies are kept as text (canonical JSON is UTF-8): exact round trip, and
        # some wire-compatible servers cannot replace documents that hold binary values.
        version["inline"] = payload.body.decode() if payload.size <= limit else None
        _, version["cv"] = await _both(
            _store_payload(attempt, version["_id"], key, payload), repo.next_cv(scope.t)
        )
        where = attempt.location
        version.update(
            key=where.key if where is not None else key,
            offset=where.offset if where is not None else None,
            length=where.length if where is not None else None,
        )
    else:
        version["cv"] = await repo.next_cv(scope.t)

    op = str(version["op"])
    if scope.counting is not None:
        await stamp(scope, version, prev_head, payload)
    await scope.reach("stored", attempt.item_id, ov, op)
    if attempt.lease_lost:
        raise LockLostError(attempt.item_id)
    hid = head_id(scope.tenant, attempt.item_id)
    claim_us = max(now_us(), prev_at + 1)
    version["claim_us"] = claim_us
    # Registered before the insert: if its reply is lost, the claim may exist anyway.
    attempt.claimed_vid = version["_id"]
    try:
        await attempt.step(repo.insert_version(version), "claim")
    except DuplicateKeyError:
        attempt.claimed_vid = None  # the existing version is someone else's
        await _claim_taken(attempt, prev_head)
        raise  # _claim_taken always raises; this keeps type checkers informed
    except StorageError as exc:
        attempt.claim_in_doubt = exc.retryable  # a timeout: it may still land
        raise
    if payload is None:
        await follow_moved_payload(repo, scope.tenant, version)  # a pack rewrite moved it?
    await scope.reach("claimed", attempt.item_id, ov, op)
    # The commit time: read after the claim exists (readers that start later wait for a
    # young claim), and the head must move within half the commit window of the claim.
    at = max(now_us(), claim_us + 1)
    if at > claim_us + scope.commit_us // 2:
        raise StorageError(
            f"write to {scope.where(attempt.item_id)} was claimed but could not be published "
            f"within {scope.commit_us // 2000} ms (deadlines.commit_ms / 2); withdrawn",
            retryable=True,
        )
    head = head_from_version(version, hid, at)
    if prev_head is not None:
        head["lease_fence"] = prev_head.get("lease_fence", 0)
    attempt.head_sent = True
    # Only the write that moves the head to this version counts it (a roll-forward that
    # published it first counted it then): see Attempt.landed.
    attempt.sent_version, attempt.sent_at = version, at
    try:
        if prev_head is None:
            await attempt.step(repo.insert_head(head), "head")
        elif not await attempt.step(
            repo.move_head(hid, int(prev_head["ov"]), head, lease_token=attempt.lease_token),
            "head",
        ):
            head = await _head_moved(attempt, version)
    except DuplicateKeyError:
        head = await _create_collided(attempt)
    except StorageError:
        landed = await _landed(attempt, hid)
        if landed is None:
            raise
        head = landed
    attempt.landed(at=int(head["at"]))
    await scope.reach("published", attempt.item_id, ov, op)
    return head


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
    await roll_forward(
        scope,
        attempt.item_id,
        prev_ov,
        lease_token=attempt.lease_token,
        fence=prev_head.get("lease_fence"),
    )
    raise VersionConflictError(prev_ov, prev_ov + 1, id=attempt.item_id)


async def _adopt_orphan_create(scope: Scope, item_id: str) -> None:
    """A create claimed ``ov=0`` and died before inserting the head: publish it."""
    settle_us = settle_age_us(scope.config, create=True)
    adopted = await adopt_create(scope.repo, scope.tenant, item_id, settle_us)
    if adopted is not None:
        scope.counted(adopted)
        log.warning("published the orphaned creation of %s", scope.where(item_id))


async def roll_forward(
    scope: Scope,
    item_id: str,
    head_ov: int,
    *,
    lease_token: str | None = None,
    fence: int | None = None,
) -> bool:
    """Publish the claimed version ``head_ov + 1`` if the head is still at ``head_ov``."""
    moved = await publish_claim(
        scope.repo, scope.tenant, item_id, head_ov, lease_token=lease_token, fence=fence
    )
    if moved is not None:
        scope.counted(moved)
        log.warning(
            "rolled forward %s to ov=%d (its writer stopped)", scope.where(item_id), head_ov + 1
        )
    return moved is not None


async def _head_moved(attempt: Attempt, version: Doc) -> Doc:
    """The head CAS failed although we own the claim: find out what happened.

    Another writer (or a repair) may have rolled our claim forward: the write is then
    published, with the commit time the roll-forward gave it, which is what we report.
    """
    scope = attempt.scope
    hid = head_id(scope.tenant, attempt.item_id)
    current = await scope.repo.find_head(hid, with_inline=False)
    ov = int(version["ov"])
    if current is not None and int(current["ov"]) >= ov:
        mine = await scope.repo.find_version(version["_id"])
        if mine is not None and mine.get("token") == attempt.token:
            if int(current["ov"]) == ov:
                return current
            after = await scope.repo.find_version(version_id(scope.tenant, attempt.item_id, ov + 1))
            at = int(after["prev_at"]) if after is not None else int(current["at"])
            return head_from_version(mine, hid, at)
    raise VersionConflictError(
        ov - 1, None if current is None else int(current["ov"]), id=attempt.item_id
    )


async def _create_collided(attempt: Attempt) -> Doc:
    """The head insert of a create found a head: ours (adopted meanwhile) or another's."""
    scope = attempt.scope
    current = await scope.repo.find_head(head_id(scope.tenant, attempt.item_id), with_inline=False)
    if current is not None and current.get("token") == attempt.token:
        return current
    raise ItemExistsError(attempt.item_id, None if current is None else int(current["ov"]))


async def _landed(attempt: Attempt, hid: str) -> Doc | None:
    """After a failed head write: did it land anyway (the reply was lost)? Its head, or None.

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
    return head if head is not None and head.get("token") == attempt.token else None
