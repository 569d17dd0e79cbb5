"""Idempotency keys: a write retried with the same key takes effect once.

A keyed write first *reserves* its key (``<coll>_idem``, see :mod:`.meta._idem`):

1. the key is new: the reservation is ours; the write runs and records the key on the
   version it publishes (``idem``, ``idem_fp``); then the reservation is completed with
   the result. A write that failed without writing anything (a typed error, or a
   retryable one before its claim) releases the reservation, so a retry runs again;
   one that ended with ``outcome_unknown`` (or was cancelled) leaves it pending.
2. the key is taken with other arguments: :class:`ValidationError`, nothing written.
3. it is done: the first call's :class:`WriteResult` is returned, nothing written.
4. it is pending: if a published version carries the key (a first call that ended with
   ``outcome_unknown``, or was rolled forward later), that is the answer; while its holder
   may still be running (``busy_us``), or a claim with the key is young, the call waits;
   otherwise it takes the reservation over and runs the write, *rechecking under the
   record's lease* whether a version with the key was published or claimed meanwhile
   (which makes an early takeover harmless: writers of one record are serialized by
   its lease, and creates of one key share one record id, chosen at the first
   reservation).

Keys expire after ``idempotency.ttl_seconds`` (24 h): then the same key is a new write.
The fingerprint covers everything that decides what the write stores: the operation,
the record, the data (its sha256), ``expected_ov``, actor, reason and the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from chronos_async._asof import is_young
from chronos_async._codec import sha256_hex
from chronos_async._errors import ChronosError, ClosedError, StorageError, ValidationError
from chronos_async._keys import head_id, new_item_id, new_write_token, version_id
from chronos_async._models import WriteResult, from_us, result_from_doc, result_to_doc
from chronos_async._rollforward import adopt_create, publish_claim, settle_age_us
from chronos_async._scope import Scope, now_us
from chronos_async.meta import DuplicateKeyError

__all__ = [
    "IdemKey",
    "check_key",
    "fingerprint",
    "keyed",
    "prior_version",
    "published_result",
]

Doc = dict[str, Any]
_MAX_KEY = 256
#: Polling a pending reservation: first and longest pause (seconds).
_FIRST_PAUSE, _LONGEST_PAUSE = 0.002, 0.1


@dataclass(frozen=True, slots=True)
class IdemKey:
    """A reserved idempotency key, as the write pipeline needs it.

    ``recheck`` is true when the reservation was taken over (or found pending): the
    write then looks under the record's lease for a version that already carries it.
    """

    key: str
    fp: str
    recheck: bool


def check_key(key: object) -> str:
    """Validate an idempotency key: 1-256 printable ASCII characters."""
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY:
        raise ValidationError(f"idempotency_key must be a string of 1-{_MAX_KEY} characters")
    if not key.isascii() or not key.isprintable():
        raise ValidationError("idempotency_key may hold only printable ASCII characters")
    return key


def fingerprint(op: str, facts: Mapping[str, Any]) -> str:
    """A stable digest of what a write would store (its operation and arguments)."""
    body = orjson.dumps({"op": op, **facts}, option=orjson.OPT_SORT_KEYS)
    return sha256_hex(body)


async def published_result(scope: Scope, version: Doc) -> WriteResult | None:
    """The :class:`WriteResult` of ``version`` if it is published, else ``None``."""
    repo = scope.repo
    head = await repo.find_head(head_id(scope.tenant, version["id"]), with_inline=False)
    ov = int(version["ov"])
    if head is None or ov > int(head["ov"]):
        return None
    if ov == int(head["ov"]):
        at = int(head["at"])
    else:
        after = await repo.find_version(version_id(scope.tenant, version["id"], ov + 1))
        if after is None:
            return None
        at = int(after["prev_at"])
    return WriteResult(id=version["id"], ov=ov, cv=int(version["cv"]), at=from_us(at))


async def _written_with_key(
    scope: Scope, item_id: str, key: str, ttl_us: int
) -> WriteResult | None:
    """The published result of a version of ``item_id`` carrying ``key``, if any."""
    version = await scope.idem.version_with_key(scope.t, item_id, key, now_us() - ttl_us)
    return None if version is None else await published_result(scope, version)


def _expired(doc: Doc, now: datetime) -> bool:
    expires = doc.get("expires")
    if not isinstance(expires, datetime):
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires < now


async def keyed(
    scope: Scope,
    key: str,
    fp: str,
    *,
    op: str,
    item_id: str | None,
    run: Callable[[IdemKey, str], Awaitable[WriteResult]],
    recheck: bool = False,
) -> WriteResult:
    """Run ``run(idem, item_id)`` at most once per key (see the module docstring).

    ``item_id`` is ``None`` for a create without an id: the reservation chooses one, and
    every retry of the key creates that same record. ``recheck=True`` looks for a
    version with the key under the lease even when the reservation is new (a queued
    operation whose first attempt recorded the key without reserving it).
    """
    repo = scope.idem
    rid = f"{scope.t}/{key}"
    token = new_write_token()
    cfg = scope.config
    ttl_us = cfg.idempotency.ttl_seconds * 1_000_000
    busy_for = cfg.leases.lease_ms * 1000
    for tries in itertools.count():
        now = now_us()
        mine: Doc = {
            "_id": rid,
            "fp": fp,
            "op": op,
            "id": item_id if item_id is not None else new_item_id(),
            "state": "pending",
            "token": token,
            "busy_us": now + busy_for,
            "result": None,
            "expires": from_us(now + ttl_us),
        }
        try:
            await repo.reserve(mine)
            held = mine
            break
        except DuplicateKeyError:
            pass
        existing = await repo.find(rid)
        if existing is None:
            continue  # expired and removed meanwhile
        if _expired(existing, from_us(now)):
            await repo.forget(rid, from_us(now))
            continue
        if existing.get("fp") != fp:
            raise ValidationError(
                f"idempotency_key {key!r} was used with other arguments "
                f"(a {existing.get('op')} of {existing.get('id')!r})"
            )
        if existing.get("state") == "done" and existing.get("result"):
            return result_from_doc(existing["result"])
        version = await repo.version_with_key(scope.t, str(existing["id"]), key, now - ttl_us)
        if version is not None:
            found = await published_result(scope, version)
            if found is not None:
                with contextlib.suppress(StorageError):
                    await repo.complete(rid, result_to_doc(found))
                return found
        if int(existing.get("busy_us") or 0) > now or (
            version is not None and is_young(version, now, scope.commit_us)
        ):
            await asyncio.sleep(min(_FIRST_PAUSE * 2**tries, _LONGEST_PAUSE))
            continue
        taken = await repo.take_over(rid, str(existing.get("token")), token, now + busy_for)
        if taken is not None:
            held, recheck = taken, True
            break
    idem = IdemKey(key, fp, recheck)
    try:
        result = await run(idem, str(held["id"]))
    except ChronosError as exc:
        # Nothing was written: free the key for a retry. Not after "outcome unknown", nor
        # after a close that cancelled the write: it may have been published.
        definite = not isinstance(exc, ClosedError) and not (
            isinstance(exc, StorageError) and exc.outcome_unknown
        )
        item = str(held["id"])
        if not definite or not await _released(scope, rid, token, item, key, ttl_us):
            raise
        written = await _written_with_key(scope, item, key, ttl_us)
        if written is None:
            raise
        result = written
    with contextlib.suppress(StorageError):
        # Best effort: the version records the key, so a retry finds the answer anyway.
        await repo.complete(rid, result_to_doc(result))
    return result


async def _released(
    scope: Scope, rid: str, token: str, item_id: str, key: str, ttl_us: int
) -> bool:
    """After a failed keyed write: release the reservation unless a version carries the
    key after all (a failure reported after the head moved: a hook, a cancellation at
    the very end); True when such a version exists. When MongoDB cannot tell, the
    reservation stays pending, which is safe: a retry resolves it."""
    try:
        if await _written_with_key(scope, item_id, key, ttl_us) is not None:
            return True
        await scope.idem.release(rid, token)
    except StorageError:
        pass
    return False


async def prior_version(
    scope: Scope,
    idem: IdemKey,
    item_id: str,
    head: Doc | None,
    *,
    lease_token: str | None = None,
) -> WriteResult | None:
    """The result of a version ``idem``'s key already wrote for ``item_id``, or ``None``.

    Called under the record's lease (``head`` is the head read with it), or, for a
    create (``head is None``), before its claim. A claim with the key whose writer
    stopped is published here: under the lease by moving the head (nobody else can),
    for a create by adopting it once it is settled; until then the call raises a
    retryable :class:`StorageError` (the queue, or the caller, tries again later).
    """
    ttl_us = scope.config.idempotency.ttl_seconds * 1_000_000
    version = await scope.idem.version_with_key(scope.t, item_id, idem.key, now_us() - ttl_us)
    if version is None:
        return None
    found = await published_result(scope, version)
    if found is not None:
        return found
    ov = int(version["ov"])
    if head is not None and ov == int(head["ov"]) + 1:
        moved = await publish_claim(
            scope.repo,
            scope.tenant,
            item_id,
            int(head["ov"]),
            lease_token=lease_token,
            fence=head.get("lease_fence"),
        )
        if moved is not None:
            scope.counted(moved)
            return await published_result(scope, version)
    elif head is None and ov == 0 and not is_young(version, now_us(), scope.commit_us):
        settle_us = settle_age_us(scope.config, create=True)
        adopted = await adopt_create(scope.repo, scope.tenant, item_id, settle_us)
        if adopted is not None:
            scope.counted(adopted)
            return await published_result(scope, version)
    raise StorageError(
        f"an earlier call with idempotency_key {idem.key!r} claimed a version of "
        f"{scope.where(item_id)} that is not settled yet; retry later",
        retryable=True,
    )
