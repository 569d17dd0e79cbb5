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

Targets by time use commit times, which are the moments versions became visible: the
state a collection is restored to is exactly what readers saw at that time. Targets by
``cv`` use the collection version, allocated when a write *starts* storing its payload;
writes to different records overlap, so a version with ``cv=4`` can become visible after
another record's ``cv=7``. ``restore_collection(cv=n)`` gives every record its newest
version with ``cv <= n``: a state that may never have been visible all at once when
writes overlapped. Use ``at=`` for "the collection as it was".

If the ``progress`` callback raises (or does not accept ``(done, total)``), no further
record is started, the records in flight finish, and
:class:`~chronos_async.RestoreInterruptedError` is raised with the report of what was
done; running the same restore again completes it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chronos_async._args import check_ov, check_text
from chronos_async._asof import pick_as_of
from chronos_async._errors import (
    ChronosError,
    NotFoundError,
    RestoreInterruptedError,
    ValidationError,
    VersionConflictError,
)
from chronos_async._idempotency import IdemKey
from chronos_async._keys import validate_id, version_id
from chronos_async._models import WriteResult, from_us
from chronos_async._publish import Doc
from chronos_async._read import parse_at
from chronos_async._write import Built, KeyUse, Writer, carry, reuse_payload
from chronos_async.lifecycle._versions import rolled_as_of, rolled_at_cv, rolled_version

__all__ = ["RestoreReport", "restore_collection", "restore_object"]

#: ``progress(done, total)`` is called after each record of a collection restore.
Progress = Callable[[int, int], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What ``restore_collection`` did, record by record.

    ``restored``: changed back to their target version; ``deleted``: created after the
    target, now logically deleted; ``undeleted``: deleted since, now back; ``unchanged``:
    already in their target state; ``failed``: ``(id, reason)`` pairs; ``not_started``:
    how many records an interrupted run did not get to.
    """

    target_cv: int | None
    target_at: datetime | None
    restored: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    undeleted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    not_started: int = 0

    @property
    def examined(self) -> int:
        """How many records the restore looked at."""
        return sum(map(len, (self.restored, self.deleted, self.undeleted, self.unchanged))) + len(
            self.failed
        )


def _one_target(ov: object, at: object, what: str) -> None:
    if (ov is None) == (at is None):
        raise ValidationError(f"give exactly one of {what} and at")


async def _state_at(writer: Writer, head: Doc, cv: int | None, at_us: int | None) -> Doc | None:
    """The record's published version current at ``cv`` / ``at_us`` (``None``: not yet).

    Read under the record's lease, so no other writer can publish meanwhile: a claim
    above the head is a dead writer's and never counts.
    """
    scope = writer.scope
    item_id, head_ov = head["id"], int(head["ov"])
    if cv is not None:
        found = await scope.repo.version_at_cv(scope.t, item_id, cv, max_ov=head_ov)
        return found if found is not None else await rolled_at_cv(scope, item_id, cv)
    assert at_us is not None
    candidates = await scope.repo.find_versions_before(scope.t, item_id, at_us, limit=2)
    version = pick_as_of(head, candidates, at_us).version
    return version if version is not None else await rolled_as_of(scope, item_id, at_us)


async def restore_object(
    writer: Writer,
    item_id: str,
    *,
    ov: int | None,
    at: datetime | str | None,
    actor: str | None,
    reason: str | None,
    expected_ov: int | None = None,
    idempotency_key: str | None = None,
    key_use: KeyUse = "reserve",
) -> WriteResult:
    """Add a version equal to version ``ov`` (or to the state at ``at``) of the record."""
    scope = writer.scope
    item_id = validate_id(item_id)
    _one_target(ov, at, "ov")
    target_ov = check_ov(ov, "ov")
    at_us = parse_at(at) if at is not None else None
    expected = check_ov(expected_ov, "expected_ov")
    actor, reason = check_text(actor, "actor"), check_text(reason, "reason")

    async def build(head: Doc) -> Built | None:
        if expected is not None and expected != int(head["ov"]):
            raise VersionConflictError(expected, int(head["ov"]), id=item_id)
        if target_ov is not None:
            target = None
            if target_ov <= int(head["ov"]):
                target = await scope.repo.find_version(version_id(scope.tenant, item_id, target_ov))
                if target is None:
                    target = await rolled_version(scope, item_id, target_ov)
            if target is None:
                raise NotFoundError(
                    f"ov={target_ov}: no such version of {scope.where(item_id)} "
                    f"(its newest is ov={int(head['ov'])})",
                    id=item_id,
                    ov=target_ov,
                )
        else:
            target = await _state_at(writer, head, None, at_us)
            if target is None:
                raise NotFoundError(
                    f"{scope.where(item_id)} did not exist at that time", id=item_id
                )
        return _restore_version(writer, head, target, actor, reason, always_skip=False)

    async def run(idem: IdemKey | None, _: str | None) -> WriteResult:
        return await writer.change(item_id, build, op="restore", with_inline=False, idem=idem)

    facts = {
        "id": item_id,
        "ov": target_ov,
        "at": at_us,
        "expected_ov": expected,
        "actor": actor,
        "reason": reason,
    }
    return await writer.keyed(idempotency_key, "restore", facts, item_id, run, key_use=key_use)


def _restore_version(
    writer: Writer,
    head: Doc,
    target: Doc,
    actor: str | None,
    reason: str | None,
    *,
    always_skip: bool,
) -> Built | None:
    """A restore version copying ``target`` (``None`` when the head already equals it)."""
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


async def _restore_one(
    writer: Writer,
    item_id: str,
    target_cv: int | None,
    at_us: int | None,
    actor: str | None,
    reason: str | None,
) -> str:
    """Bring one record to its target state; which outcome bucket it falls in."""
    outcome = "unchanged"

    async def build(head: Doc) -> Built | None:
        nonlocal outcome
        target = await _state_at(writer, head, target_cv, at_us)
        if target is None:
            # Created after the target: delete it (a deleted record stays as it is).
            if head.get("deleted"):
                return None
            outcome = "deleted"
            version = carry(head)
            version.update(op="delete", actor=actor, reason=reason, deleted=True, function_id=None)
            version.update(reuse_payload(head))
            return version, None
        built = _restore_version(writer, head, target, actor, reason, always_skip=True)
        if built is not None:
            outcome = (
                "undeleted" if head.get("deleted") and not target.get("deleted") else "restored"
            )
        return built

    result = await writer.change(item_id, build, op="restore", with_inline=True)
    return outcome if result.changed else "unchanged"


def _check_progress(progress: Progress | None) -> None:
    if progress is None:
        return
    if not callable(progress):
        raise ValidationError("progress must be a callable progress(done, total)")
    try:
        inspect.signature(progress).bind(0, 0)
    except TypeError:
        raise ValidationError("progress must accept two arguments: progress(done, total)") from None
    except ValueError:
        pass  # no signature to inspect (some builtins): a wrong one fails at the first call


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
    _check_progress(progress)
    limit = concurrency if concurrency is not None else scope.config.restore.concurrency
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 256:
        raise ValidationError("concurrency must be an integer from 1 to 256")
    await scope.ready()
    changed = sorted(await scope.repo.items_changed_since(scope.t, cv=target_cv, at_us=at_us))
    outcome: dict[str, list[Any]] = {
        k: [] for k in ("restored", "deleted", "undeleted", "unchanged", "failed")
    }
    gate = asyncio.Semaphore(limit)
    done = 0
    stopped: BaseException | None = None

    async def one(item_id: str) -> None:
        nonlocal done, stopped
        async with gate:
            if stopped is not None:
                return
            try:
                kind = await _restore_one(writer, item_id, target_cv, at_us, actor, reason)
                outcome[kind].append(item_id)
            except ChronosError as exc:
                outcome["failed"].append((item_id, f"{type(exc).__name__}: {exc}"))
            done += 1
            if progress is not None and stopped is None:
                try:
                    maybe = progress(done, len(changed))
                    if maybe is not None:
                        await maybe
                except Exception as exc:  # the caller's callback: stop cleanly, report
                    stopped = exc

    async with asyncio.TaskGroup() as group:
        for item_id in changed:
            group.create_task(one(item_id))
    report = RestoreReport(
        target_cv=target_cv,
        target_at=None if at_us is None else from_us(at_us),
        not_started=len(changed) - done,
        **{k: tuple(sorted(v)) for k, v in outcome.items()},
    )
    if stopped is not None:
        raise RestoreInterruptedError(
            f"restore_collection stopped after {done} of {len(changed)} records: the "
            f"progress callback raised {type(stopped).__name__}: {stopped}",
            report=report,
        ) from stopped
    return report
