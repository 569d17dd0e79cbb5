"""Hard delete: a record, its versions and its payloads removed for good."""

from __future__ import annotations

from chronos_async._args import check_ov
from chronos_async._errors import ValidationError, VersionConflictError
from chronos_async._keys import head_id, validate_id
from chronos_async._lease import LeaseKeeper, take_lease
from chronos_async._models import WriteResult, from_us
from chronos_async._scope import now_us
from chronos_async._withdraw import guarded
from chronos_async._write import Writer, leased_attempt

__all__ = ["hard_delete"]


async def hard_delete(writer: Writer, item_id: str, *, expected_ov: int | None) -> WriteResult:
    """Remove the record entirely: versions, head, then its payloads (in that order).

    Versions go first so that an interrupted hard delete never leaves a version that a
    later create could mistake for an unfinished one; payloads go last so a reader
    that still sees the head never finds its payload missing.
    """
    scope = writer.scope
    if not scope.config.hard_delete_enabled:
        raise ValidationError("hard delete is disabled (set hard_delete_enabled in the config)")
    item_id = validate_id(item_id)
    expected = check_ov(expected_ov, "expected_ov")
    await scope.ready()
    async with (
        scope.activity.write(f"hard delete of {scope.where(item_id)}"),
        scope.gates.hold(head_id(scope.tenant, item_id)),
    ):
        head, token = await take_lease(scope, item_id, with_inline=False)
        attempt = leased_attempt(scope, item_id, token, head)

        async def body() -> WriteResult:
            await scope.reach("leased", item_id, int(head["ov"]), "hard_delete")
            if expected is not None and expected != int(head["ov"]):
                raise VersionConflictError(expected, int(head["ov"]), id=item_id)
            # Only the payloads this record's versions refer to: a store shared with
            # another backend may hold a record with the same id there (orphans of
            # withdrawn attempts are left to reconcile).
            keys = sorted(
                {
                    str(v["key"])
                    async for v in scope.repo.iter_versions(
                        scope.t, item_id, max_ov=int(head["ov"])
                    )
                }
                | {str(head["key"])}
            )
            await scope.repo.delete_versions(scope.t, item_id)
            await scope.repo.delete_head(head_id(scope.tenant, item_id), token)
            attempt.published = True
            await scope.store.delete(keys)
            cv = await scope.repo.next_cv(scope.t)
            return WriteResult(id=item_id, ov=int(head["ov"]), cv=cv, at=from_us(now_us()))

        async with LeaseKeeper(attempt):
            return await guarded(attempt, body)
