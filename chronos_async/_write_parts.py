"""The pieces every write path shares, around :meth:`~chronos_async._write.Writer.change`.

Create, update and delete (:mod:`._write`), enrich (:mod:`._enrich`), restore
(:mod:`._restore`), hard delete (:mod:`._hard_delete`) and the fallback queue use them:
the check that refuses a change, the head fields a new version inherits, the retry of a
write without ``expected_ov``, the result of a published head, the attempt of a leased
write and the payload fields of a version that reuses its bytes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from chronos_async._codec import EncodedPayload
from chronos_async._errors import ItemDeletedError, VersionConflictError
from chronos_async._models import WriteResult, from_us
from chronos_async._publish import Attempt, Doc
from chronos_async._scope import Scope

__all__ = [
    "Built",
    "KeyUse",
    "carry",
    "check_writable",
    "leased_attempt",
    "result_of",
    "retry_conflicts",
    "reuse_payload",
]

#: How a write uses its idempotency key (see :meth:`~chronos_async._write.Writer.keyed`).
KeyUse = Literal["reserve", "record", "replay", "resume"]
#: What a change's ``build`` step returns: the new version and its payload (``None``
#: reuses the payload the version document names).
Built = tuple[dict[str, Any], EncodedPayload | None]

T = TypeVar("T")
#: Head fields a new version inherits unless the operation sets them.
_CARRIED = ("parent_id", "origin_id", "function_ids", "meta", "restored_from")


def check_writable(head: Doc, expected: int | None) -> None:
    """Refuse a change of a deleted record, or of one that moved past ``expected``."""
    if head.get("deleted"):
        raise ItemDeletedError(head["id"], int(head["ov"]))
    if expected is not None and expected != int(head["ov"]):
        raise VersionConflictError(expected, int(head["ov"]), id=head["id"])


def carry(head: Doc) -> Doc:
    """The facts a new version inherits from the head (lineage, function ids, meta)."""
    return {k: head.get(k) for k in _CARRIED}


async def retry_conflicts(scope: Scope, run: Callable[[], Awaitable[T]]) -> T:
    """Run a write that has no ``expected_ov``, retrying it after a version conflict.

    Such a write applies to whatever is current, so a conflict (another writer, or a
    dead writer's claim rolled forward on the way) only means "try again"; bounded by
    ``limits.enrich_retries``, with jittered backoff.
    """
    retries = scope.config.limits.enrich_retries
    delay = scope.config.leases.backoff_initial_ms / 1000
    for attempt in range(retries + 1):
        try:
            return await run()
        except VersionConflictError:
            if attempt == retries:
                raise
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, scope.config.leases.backoff_max_ms / 1000)
    raise AssertionError("unreachable")  # pragma: no cover


def result_of(head: Doc, *, changed: bool = True) -> WriteResult:
    """The :class:`WriteResult` describing a published head."""
    return WriteResult(
        id=head["id"],
        ov=int(head["ov"]),
        cv=int(head["cv"]),
        at=from_us(int(head["at"])),
        changed=changed,
    )


def leased_attempt(scope: Scope, item_id: str, token: str, head: Doc) -> Attempt:
    return Attempt(
        scope,
        item_id,
        token,
        leased=True,
        lease_exp_us=int(head["lease_exp"]),
        fence=int(head.get("lease_fence") or 0),
    )


def reuse_payload(doc: Doc) -> Doc:
    """The payload fields of ``doc``, for a version that points at the same bytes.

    A packed payload also records which version it was copied from (``payload_ov``): a
    pack rewrite may move it before the new version is published (see
    :func:`~chronos_async._rollforward.follow_moved_payload`).
    """
    fields = {k: doc.get(k) for k in ("key", "offset", "length", "size", "sha256", "inline")}
    fields["payload_ov"] = None if doc.get("offset") is None else int(doc["ov"])
    if doc.get("content"):
        fields["content"] = doc["content"]  # the payload's content objects (refs in it)
    return fields
