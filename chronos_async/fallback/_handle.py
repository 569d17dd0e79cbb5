"""``QueuedCollection``: a collection handle whose writes queue instead of failing.

Each write is tried at once, exactly as :class:`~chronos_async.Collection` does it. If it
fails on a retryable error (decided by :func:`._ops.is_worth_retrying`: an outage, a
timeout, a busy record; never a validation error, a conflict or a deleted record), the
whole operation is stored in the fallback queue and the call returns a
:class:`QueuedWrite` instead of raising. Every attempt, the first included, carries the
operation's idempotency key (the caller's, or ``op:<op_id>``), so a first attempt whose
outcome was unknown is found by the worker instead of being applied twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chronos_async._collection import Collection
from chronos_async._enrich import enrich
from chronos_async._keys import new_item_id, validate_id
from chronos_async._models import Operation, WriteResult
from chronos_async._restore import restore_object
from chronos_async._write import KeyUse
from chronos_async.fallback._ops import (
    QueuedWrite,
    encode_data,
    is_worth_retrying,
    new_op_id,
)

if TYPE_CHECKING:
    from chronos_async.fallback._service import Fallback

__all__ = ["QueuedCollection"]

Doc = dict[str, Any]


class QueuedCollection:
    """Writes of one collection that return :class:`QueuedWrite` when they cannot be
    applied now (get one from ``chronos.fallback.collection(name, db=..., tenant=...)``).

    The write methods take the arguments of :class:`~chronos_async.Collection`'s and
    return ``WriteResult | QueuedWrite``; reads go through :attr:`plain`::

        orders = chronos.fallback.collection("orders", db="shop")
        r = await orders.update(order_id, data, expected_ov=3, idempotency_key=request_id)
        if isinstance(r, QueuedWrite):          # or: if r.queued
            return JSONResponse({"op_id": r.op_id}, status_code=202)
        return {"ov": r.ov}
    """

    def __init__(self, plain: Collection, service: Fallback) -> None:
        self.plain = plain
        self._service = service

    def __repr__(self) -> str:
        return f"<QueuedCollection {self.plain.db}.{self.plain.name}>"

    async def _attempt(
        self,
        op: Operation,
        item_id: str,
        args: Callable[[], Doc],
        key: str | None,
        call: Callable[[str, KeyUse], Awaitable[WriteResult]],
    ) -> WriteResult | QueuedWrite:
        """Try the write now; queue it when the failure may pass (``args()`` makes the
        stored arguments then: the attempt has validated them by that time)."""
        op_id = new_op_id()
        key_use: KeyUse = "reserve" if key is not None else "record"
        key = key if key is not None else f"op:{op_id}"
        try:
            return await call(key, key_use)
        except Exception as exc:
            if not is_worth_retrying(exc):
                raise
            return await self._service.enqueue(
                op_id=op_id,
                op=op,
                scope=self.plain._scope,
                item_id=item_id,
                args=args(),
                key=key,
                cause=exc,
            )

    async def create(
        self,
        data: dict[str, Any],
        *,
        actor: str | None = None,
        reason: str | None = None,
        id: str | None = None,
        parent_id: str | None = None,
        origin_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult | QueuedWrite:
        """:meth:`Collection.create`, queued on a retryable failure."""
        chosen = validate_id(id) if id is not None else new_item_id()

        def args() -> Doc:
            return {
                "id": chosen,
                "given": id is not None,
                "data": encode_data(data),
                "actor": actor,
                "reason": reason,
                "parent_id": parent_id,
                "origin_id": origin_id,
            }

        def call(key: str, key_use: KeyUse) -> Awaitable[WriteResult]:
            return self.plain._writer.create(
                data,
                actor=actor,
                reason=reason,
                item_id=id,
                parent_id=parent_id,
                origin_id=origin_id,
                idempotency_key=key,
                key_use=key_use,
                chosen_id=chosen,
            )

        return await self._attempt("create", chosen, args, idempotency_key, call)

    async def update(
        self,
        id: str,
        data: dict[str, Any],
        *,
        expected_ov: int | None,
        actor: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult | QueuedWrite:
        """:meth:`Collection.update`, queued on a retryable failure. A queued update
        whose ``expected_ov`` is stale when it is applied goes to the dead letters."""

        def args() -> Doc:
            return {
                "id": id,
                "data": encode_data(data),
                "expected_ov": expected_ov,
                "actor": actor,
                "reason": reason,
            }

        def call(key: str, key_use: KeyUse) -> Awaitable[WriteResult]:
            return self.plain._writer.update(
                id,
                data,
                expected_ov=expected_ov,
                actor=actor,
                reason=reason,
                idempotency_key=key,
                key_use=key_use,
            )

        return await self._attempt("update", id, args, idempotency_key, call)

    async def delete(
        self,
        id: str,
        *,
        expected_ov: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult | QueuedWrite:
        """:meth:`Collection.delete` (logical), queued on a retryable failure."""

        def args() -> Doc:
            return {"id": id, "expected_ov": expected_ov, "actor": actor, "reason": reason}

        def call(key: str, key_use: KeyUse) -> Awaitable[WriteResult]:
            return self.plain._writer.delete(
                id,
                expected_ov=expected_ov,
                actor=actor,
                reason=reason,
                idempotency_key=key,
                key_use=key_use,
            )

        return await self._attempt("delete", id, args, idempotency_key, call)

    async def enrich(
        self,
        id: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        function_id: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        expected_ov: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult | QueuedWrite:
        """:meth:`Collection.enrich`, queued on a retryable failure."""
        patches = [patch] if isinstance(patch, Mapping) else list(patch)  # validated by then

        def args() -> Doc:
            return {
                "id": id,
                "patches": [encode_data(dict(p)) for p in patches],
                "function_id": function_id,
                "actor": actor,
                "reason": reason,
                "expected_ov": expected_ov,
            }

        def call(key: str, key_use: KeyUse) -> Awaitable[WriteResult]:
            return enrich(
                self.plain._writer,
                id,
                patch,
                function_id=function_id,
                actor=actor,
                reason=reason,
                expected_ov=expected_ov,
                idempotency_key=key,
                key_use=key_use,
            )

        return await self._attempt("enrich", id, args, idempotency_key, call)

    async def restore_object(
        self,
        id: str,
        *,
        ov: int | None = None,
        at: datetime | str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        expected_ov: int | None = None,
        idempotency_key: str | None = None,
    ) -> WriteResult | QueuedWrite:
        """:meth:`Collection.restore_object`, queued on a retryable failure."""

        def args() -> Doc:
            return {
                "id": id,
                "ov": ov,
                "at": at.isoformat() if isinstance(at, datetime) else at,
                "actor": actor,
                "reason": reason,
                "expected_ov": expected_ov,
            }

        def call(key: str, key_use: KeyUse) -> Awaitable[WriteResult]:
            return restore_object(
                self.plain._writer,
                id,
                ov=ov,
                at=at,
                actor=actor,
                reason=reason,
                expected_ov=expected_ov,
                idempotency_key=key,
                key_use=key_use,
            )

        return await self._attempt("restore", id, args, idempotency_key, call)
