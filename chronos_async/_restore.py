"""Restore, append-only: a record, or a whole collection, back to a version or a time.

A restore never rewrites history. It adds a version whose data is the target's (the
target's stored payload is reused: no bytes are copied), marked ``op="restore"`` with
``restored_from`` set to the target's ``ov``. Restoring to a version before a deletion
brings a record back; restoring to a deletion deletes it.

``restore_collection`` finds the records that changed since the target through the
version index on ``cv`` (or commit time), so its work is proportional to the changes,
not to the size of the collection. Records created since the target are logically
deleted; the others are restored to their state at the target. Every step skips records
already in their target state, so an interrupted run, run again, converges.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chronos_async._args import check_ov, check_text
from chronos_async._errors import (
    ChronosError,
    NotFoundError,
    ValidationError,
    VersionConflictError,
)
from chronos_async._keys import validate_id, version_id
from chronos_async._models import WriteResult, from_us
from chronos_async._publish import Doc
from chronos_async._read import parse_at
from chronos_async._write import Built, Writer, carry, reuse_payload

__all__ = ["RestoreReport", "restore_collection", "restore_object"]

#: ``progress(done, total)`` is called after each record of a collection restore.
Progress = Callable[[int, int], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What ``restore_collection`` did, record by record.

    ``restored``: changed back to their target version; ``deleted``: created after the
    target, now logically deleted; ``undeleted``: deleted since, now back; ``unchanged``:
    already in their target state; ``failed``: ``(id, reason)`` pairs.
    """

    target_cv: int | None
    target_at: datetime | None
    restored: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    undeleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()

    @property
    def examined(self) -> int:
        """How many records the restore looked at."""
        return sum(map(len, (self.restored, self.deleted, self.undeleted, self.unchanged))) + len(
            self.failed
        )


def _one_target(ov: object, at: object, what: str) -> None:
    if (ov is None) == (at is None):
        raise ValidationError(f"give exactly one of {what} and at")


async def _target_version(writer: Writer, head: Doc, ov: int | None, at_us: int | None) -> Doc:
    """The version of this record to restore to (published versions only)."""
    scope = writer.scope
    item_id, head_ov = head["id"], int(head["ov"])
    if ov is not None:
        found = (
            None
            if ov > head_ov
            else await scope.repo.find_version(version_id(scope.tenant, item_id, ov))
        )
        if found is None:
            raise NotFoundError(f"no version ov={ov} of {scope.where(item_id)}", id=item_id)
        return found
    assert at_us is not None
    candidates = await scope.repo.find_versions_at(scope.t, item_id, at_us, limit=2)
    visible = [d for d in candidates if int(d["ov"]) <= head_ov]
    if not visible:
        raise NotFoundError(f"{scope.where(item_id)} did not exist at that time", id=item_id)
    return visible[0]


async def restore_object(
    writer: Writer,
    item_id: str,
    *,
    ov: int | None,
    at: datetime | str | None,
    actor: str | None,
    reason: str | None,
    expected_ov: int | None = None,
    always_skip_unchanged: bool = False,
) -> WriteResult:
    """Add a version equal to version ``ov`` (or to the state at ``at``) of the record."""
    item_id = validate_id(item_id)
    _one_target(ov, at, "ov")
    target_ov = check_ov(ov, "ov")
    at_us = parse_at(at) if at is not None else None
    expected = check_ov(expected_ov, "expected_ov")
    actor, reason = check_text(actor, "actor"), check_text(reason, "reason")

    async def target_of(head: Doc) -> Doc:
        if expected is not None and expected != int(head["ov"]):
            raise VersionConflictError(expected, int(head["ov"]), id=item_id)
        return await _target_version(writer, head, target_ov, at_us)

    return await _restore_to(
        writer, item_id, target_of, actor=actor, reason=reason, always_skip=always_skip_unchanged
    )


async def _restore_to(
    writer: Writer,
    item_id: str,
    target_of: Callable[[Doc], Awaitable[Doc]],
    *,
    actor: str | None,
    reason: str | None,
    always_skip: bool,
    seen: dict[str, Any] | None = None,
) -> WriteResult:
    """Publish a restore version copying ``await target_of(head)`` (read under the lease).

    ``seen["deleted"]`` receives whether the record was deleted before the restore.
    """

    async def build(head: Doc) -> Built | None:
        target = await target_of(head)
        if seen is not None:
            seen["deleted"] = bool(head.get("deleted"))
        deleted = bool(target.get("deleted"))
        if writer.unchanged(head, target["sha256"], deleted=deleted, always=always_skip):
            return None
        version = carry(head)
        version.update(
            op="restore",
            actor=actor,
            reason=reason,
            deleted=deleted,
            meta=target.get("meta"),
            function_id=None,
            function_ids=list(target.get("function_ids") or []),
            restored_from=int(target["ov"]),
        )
        version.update(reuse_payload(target))
        return version, None

    return await writer.change(item_id, build, op="restore", with_inline=False)


async def _delete_if_live(
    writer: Writer, item_id: str, actor: str | None, reason: str | None
) -> bool:
    """Logically delete a record created after the target; False if already deleted."""

    async def build(head: Doc) -> Built | None:
        if head.get("deleted"):
            return None
        version = carry(head)
        version.update(op="delete", actor=actor, reason=reason, deleted=True, function_id=None)
        version.update(reuse_payload(head))
        return version, None

    result = await writer.change(item_id, build, op="delete", with_inline=True)
    return result.changed


async def restore_collection(
    writer: Writer,
    *,
    cv: int | None,
    at: datetime | str | None,
    actor: str | None,
    reason: str | None,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Return every record of the collection (this tenant) to its state at ``cv``/``at``."""
    scope = writer.scope
    _one_target(cv, at, "cv")
    target_cv = check_ov(cv, "cv")
    at_us = parse_at(at) if at is not None else None
    actor, reason = check_text(actor, "actor"), check_text(reason, "reason")
    if progress is not None and not callable(progress):
        raise ValidationError("progress must be a callable progress(done, total)")
    limit = concurrency if concurrency is not None else scope.config.restore.concurrency
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 256:
        raise ValidationError("concurrency must be an integer from 1 to 256")
    await scope.ready()
    changed = await scope.repo.items_changed_since(scope.t, cv=target_cv, at_us=at_us)
    outcome: dict[str, list[Any]] = {
        k: [] for k in ("restored", "deleted", "undeleted", "unchanged", "failed")
    }
    gate = asyncio.Semaphore(limit)
    done = 0

    async def one(item_id: str) -> None:
        nonlocal done
        async with gate:
            try:
                kind = await _restore_one(writer, item_id, target_cv, at_us, actor, reason)
                outcome[kind].append(item_id)
            except ChronosError as exc:
                outcome["failed"].append((item_id, f"{type(exc).__name__}: {exc}"))
            done += 1
            if progress is not None:
                maybe = progress(done, len(changed))
                if maybe is not None:
                    await maybe

    async with asyncio.TaskGroup() as group:
        for item_id in sorted(changed):
            group.create_task(one(item_id))
    return RestoreReport(
        target_cv=target_cv,
        target_at=None if at_us is None else from_us(at_us),
        **{k: tuple(sorted(v)) for k, v in outcome.items()},
    )


async def _restore_one(
    writer: Writer,
    item_id: str,
    target_cv: int | None,
    at_us: int | None,
    actor: str | None,
    reason: str | None,
) -> str:
    """Bring one record to its target state; which outcome bucket it falls in."""
    scope = writer.scope
    state = await scope.repo.version_at_target(scope.t, item_id, cv=target_cv, at_us=at_us)
    if state is None:
        return "deleted" if await _delete_if_live(writer, item_id, actor, reason) else "unchanged"
    # The target version is immutable: the one just read serves the restore as well, and
    # the head read under the lease says whether the record was deleted (no extra reads).

    async def target_of(head: Doc) -> Doc:
        if int(state["ov"]) > int(head["ov"]):
            raise NotFoundError(
                f"version ov={state['ov']} of {scope.where(item_id)} is unpublished"
            )
        return state

    seen: dict[str, Any] = {}
    result = await _restore_to(
        writer, item_id, target_of, actor=actor, reason=reason, always_skip=True, seen=seen
    )
    if not result.changed:
        return "unchanged"
    return "undeleted" if seen.get("deleted") and not state.get("deleted") else "restored"
