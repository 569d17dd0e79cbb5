"""The write operations: create, update, delete (logical and hard), and the shared step.

Each operation validates and encodes outside any lock, takes the record's lease, checks
the head, then hands a version document to :func:`~chronos_async._publish.publish`.
Enrich (:mod:`._enrich`) and restore (:mod:`._restore`) go through :meth:`Writer.change`
as well, so every write path takes the same lease and follows the same protocol. The
pieces those paths share (:func:`check_writable`, :func:`carry`, :func:`result_of`...)
live in :mod:`._write_parts` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chronos_async._args import check_ov, check_text
from chronos_async._codec import EncodedPayload, encode_payload_async
from chronos_async._content import check_carried
from chronos_async._content_guard import announce, check_claimable, intents_held
from chronos_async._content_io import Prepared, current_keys, prepare, rebind, upload
from chronos_async._errors import ItemExistsError
from chronos_async._idempotency import IdemKey, check_key, fingerprint, keyed, prior_version
from chronos_async._keys import head_id, new_item_id, new_write_token, validate_id
from chronos_async._lease import LeaseKeeper, take_lease
from chronos_async._meta import extract_indexed
from chronos_async._models import WriteResult
from chronos_async._publish import Attempt, Doc, publish
from chronos_async._scope import Scope
from chronos_async._withdraw import guarded, release
from chronos_async._write_parts import (
    Built,
    KeyUse,
    carry,
    check_writable,
    leased_attempt,
    result_of,
    retry_conflicts,
    reuse_payload,
)

__all__ = [
    "Built",
    "KeyUse",
    "Writer",
    "carry",
    "check_writable",
    "leased_attempt",
    "result_of",
    "retry_conflicts",
    "reuse_payload",
]


class Writer:
    """Write operations bound to one collection handle's :class:`Scope`."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def encode(self, data: Any) -> EncodedPayload:
        """Canonical bytes of ``data`` within the configured limits (or ValidationError).

        Large payloads are checked and hashed off the event loop.
        """
        limits = self.scope.config.limits
        return await encode_payload_async(
            data,
            max_bytes=limits.max_payload_bytes,
            max_depth=limits.max_depth,
            offload_bytes=limits.offload_bytes,
        )

    async def prepare(self, data: Any, item_id: str | None) -> Prepared:
        """:meth:`encode` of ``data`` as stored for record ``item_id``: the values of the
        collection's ``base64_props`` are decoded strictly and replaced by references
        first (see :mod:`._content`). ``item_id=None``: a create whose id is chosen
        later (:func:`~._content_io.rebind` then binds it)."""
        return await prepare(self.scope, data, item_id, self.encode)

    async def store_content(self, prepared: Prepared, head: Doc | None) -> None:
        """Upload the content objects of ``prepared`` that ``head`` does not refer to
        (after refusing references ``head`` does not hold), announcing them to
        reconcile first (:mod:`._content_guard`: call it within :func:`intents_held`)."""
        if prepared.extraction is not None and not prepared.extraction.empty:
            check_carried(prepared.extraction, None if head is None else head.get("content"))
            scope = self.scope
            if await upload(
                scope, prepared, skip=current_keys(head), before=lambda k: announce(scope, k)
            ):
                check_claimable(scope)

    def unchanged(self, head: Doc, sha256: str, *, deleted: bool, always: bool = False) -> bool:
        """True when a new version would equal the head and no-op detection applies."""
        return (
            (always or self.scope.cmap.no_op_detection)
            and head["sha256"] == sha256
            and bool(head.get("deleted")) == deleted
        )

    async def keyed(
        self,
        key: str | None,
        op: str,
        facts: dict[str, Any],
        item_id: str | None,
        run: Callable[[IdemKey | None, str | None], Awaitable[WriteResult]],
        key_use: KeyUse = "reserve",
    ) -> WriteResult:
        """Run ``run(idem, item_id)`` plainly, or once per idempotency ``key``.

        ``facts`` are the validated arguments that decide what the write stores; with a
        key they make its fingerprint (a reused key with other facts is refused).
        ``key_use`` (internal, for the fallback queue): ``"reserve"`` the key as callers
        do; only ``"record"`` it on the version (the first attempt of a new queued
        operation, with a key made for it: nobody else can hold it); ``"replay"``: record
        it and look for a version that carries it under the record's lease first (a
        later attempt of such an operation: an earlier one may have written, or may be
        running still); ``"resume"``: reserve, and always look (a caller's own key).
        """
        if key is None:
            return await run(None, item_id)
        key = check_key(key)
        fp = fingerprint(op, facts)
        if key_use in ("record", "replay"):
            return await run(IdemKey(key, fp, recheck=key_use == "replay"), item_id)
        await self.scope.ready()
        await self.scope.idem_ready()
        return await keyed(
            self.scope, key, fp, op=op, item_id=item_id, run=run, recheck=key_use == "resume"
        )

    async def create(
        self,
        data: Any,
        *,
        actor: str | None,
        reason: str | None,
        item_id: str | None,
        parent_id: str | None,
        origin_id: str | None,
        idempotency_key: str | None = None,
        key_use: KeyUse = "reserve",
        chosen_id: str | None = None,
    ) -> WriteResult:
        """Store ``ov=0`` of a new record (``chosen_id``: the id to use when none is given,
        chosen earlier by the fallback queue)."""
        given = validate_id(item_id) if item_id is not None else None
        parent_id = validate_id(parent_id) if parent_id is not None else None
        origin_id = validate_id(origin_id) if origin_id is not None else None
        actor, reason = check_text(actor, "actor"), check_text(reason, "reason")
        prepared = await self.prepare(data, given)
        payload = prepared.payload
        meta = extract_indexed(prepared.stored, self.scope.cmap)
        facts = {
            "id": given,
            "sha256": payload.sha256,
            "actor": actor,
            "reason": reason,
            "parent_id": parent_id,
            "origin_id": origin_id,
        }
        version: Doc = {
            "op": "create",
            "actor": actor,
            "reason": reason,
            "deleted": False,
            "parent_id": parent_id,
            "origin_id": origin_id,
            "function_ids": [],
            "function_id": None,
            "meta": meta,
            "restored_from": None,
        }

        # No lookup of the id when nobody can hold it yet: generated now, or chosen by the
        # fallback queue for the first attempt of a new operation.
        fresh = given is None and key_use == "record"

        async def run(idem: IdemKey | None, chosen: str | None) -> WriteResult:
            item_id = new_item_id() if chosen is None else chosen
            ready = await rebind(self.scope, prepared, item_id, self.encode)
            own = {**version, **ready.version_fields()}
            return await self._create(
                item_id,
                own,
                ready.payload,
                idem=idem,
                fresh=chosen is None or fresh,
                content=ready,
            )

        return await self.keyed(
            idempotency_key, "create", facts, given or chosen_id, run, key_use=key_use
        )

    async def _create(
        self,
        item_id: str,
        version: Doc,
        payload: EncodedPayload,
        *,
        idem: IdemKey | None,
        fresh: bool = False,
        content: Prepared | None = None,
    ) -> WriteResult:
        """``fresh``: ``item_id`` was generated just now (no one can hold it: no lookup).
        ``content``: the prepared data, whose content objects are uploaded once the id
        is known to be free."""
        scope = self.scope
        await scope.ready()
        if idem is not None and idem.recheck:
            found = await prior_version(scope, idem, item_id, None)
            if found is not None:
                return found
        # A taken id is refused before the payload is stored or a cv allocated (the
        # unique claim still decides between creators racing for the same id).
        taken = (
            None
            if fresh
            else await scope.repo.find_head(head_id(scope.tenant, item_id), with_inline=False)
        )
        if taken is not None:
            if idem is not None and idem.recheck:
                found = await prior_version(scope, idem, item_id, None)
                if found is not None:
                    return found  # a concurrent attempt with the key published it
            raise ItemExistsError(item_id, int(taken["ov"]))
        async with intents_held(scope):  # its content uploads announced to reconcile
            if content is not None:
                await self.store_content(content, None)
            parent_id, origin_id = version["parent_id"], version["origin_id"]
            version = dict(version)
            if parent_id is not None and origin_id is None:
                version["origin_id"] = await self._origin_of(parent_id)
            if idem is not None:
                version.update(idem=idem.key, idem_fp=idem.fp)
            attempt = Attempt(scope, item_id, new_write_token())
            try:
                async with (
                    scope.activity.write(f"create of {scope.where(item_id)}"),
                    scope.gates.hold(head_id(scope.tenant, item_id)),
                ):
                    head = await guarded(
                        attempt,
                        lambda: publish(attempt, prev_head=None, version=version, payload=payload),
                    )
            except ItemExistsError:
                if idem is None or not idem.recheck:
                    raise
                # Another attempt with the key claimed the record first: its result, once
                # published (until then a retryable "not settled yet").
                found = await prior_version(scope, idem, item_id, None)
                if found is None:
                    raise
                return found
            return result_of(head)

    async def _origin_of(self, parent_id: str) -> str:
        """The origin a child of ``parent_id`` inherits: the parent's origin, or the parent."""
        parent = await self.scope.repo.find_head(
            head_id(self.scope.tenant, parent_id), with_inline=False
        )
        if parent is not None and parent.get("origin_id"):
            return str(parent["origin_id"])
        return parent_id

    async def update(
        self,
        item_id: str,
        data: Any,
        *,
        expected_ov: int | None,
        actor: str | None,
        reason: str | None,
        idempotency_key: str | None = None,
        key_use: KeyUse = "reserve",
    ) -> WriteResult:
        """Replace the record's data with ``data`` as a new version."""
        item_id = validate_id(item_id)
        expected = check_ov(expected_ov, "expected_ov")
        actor, reason = check_text(actor, "actor"), check_text(reason, "reason")
        prepared = await self.prepare(data, item_id)
        payload = prepared.payload
        meta = extract_indexed(prepared.stored, self.scope.cmap)

        async def build(head: Doc) -> Built | None:
            check_writable(head, expected)
            if self.unchanged(head, payload.sha256, deleted=False):
                return None
            await self.store_content(prepared, head)
            version = carry(head)
            version.update(op="update", actor=actor, reason=reason, deleted=False, meta=meta)
            version.update(function_id=None, restored_from=None, **prepared.version_fields())
            return version, payload

        async def run(idem: IdemKey | None, _: str | None) -> WriteResult:
            def once() -> Awaitable[WriteResult]:
                return self.change(item_id, build, op="update", with_inline=False, idem=idem)

            return await (once() if expected is not None else retry_conflicts(self.scope, once))

        facts = {
            "id": item_id,
            "sha256": payload.sha256,
            "expected_ov": expected,
            "actor": actor,
            "reason": reason,
        }
        return await self.keyed(idempotency_key, "update", facts, item_id, run, key_use=key_use)

    async def delete(
        self,
        item_id: str,
        *,
        expected_ov: int | None,
        actor: str | None,
        reason: str | None,
        idempotency_key: str | None = None,
        key_use: KeyUse = "reserve",
    ) -> WriteResult:
        """Logically delete the record: a new version marked deleted, same payload."""
        item_id = validate_id(item_id)
        expected = check_ov(expected_ov, "expected_ov")
        actor, reason = check_text(actor, "actor"), check_text(reason, "reason")

        async def build(head: Doc) -> Built | None:
            check_writable(head, expected)
            version = carry(head)
            version.update(op="delete", actor=actor, reason=reason, deleted=True, function_id=None)
            version.update(reuse_payload(head))
            return version, None

        async def run(idem: IdemKey | None, _: str | None) -> WriteResult:
            return await self.change(item_id, build, op="delete", with_inline=True, idem=idem)

        facts = {"id": item_id, "expected_ov": expected, "actor": actor, "reason": reason}
        return await self.keyed(idempotency_key, "delete", facts, item_id, run, key_use=key_use)

    async def change(
        self,
        item_id: str,
        build: Callable[[Doc], Awaitable[Built | None]],
        *,
        op: str,
        with_inline: bool,
        idem: IdemKey | None = None,
    ) -> WriteResult:
        """Lease the record, let ``build(head)`` make the new version, publish it.

        ``build`` raises to refuse the change (deleted record, wrong ``expected_ov``) and
        returns ``None`` when there is nothing to store (the result would equal the
        head); the lease is released either way, and renewed while the write runs. With
        ``idem`` the version records the key; a key taken over from an earlier call is
        first looked for under the lease (that call's version is then the answer).
        """
        scope = self.scope
        await scope.ready()
        async with (
            scope.activity.write(f"{op} of {scope.where(item_id)}"),
            scope.gates.hold(head_id(scope.tenant, item_id)),
            intents_held(scope),
        ):
            head, token = await take_lease(scope, item_id, with_inline=with_inline)
            attempt = leased_attempt(scope, item_id, token, head)

            async def body() -> Doc | WriteResult | None:
                await scope.reach("leased", item_id, int(head["ov"]) + 1, op)
                if idem is not None and idem.recheck:
                    found = await prior_version(
                        scope, idem, item_id, head, lease_token=attempt.lease_token
                    )
                    if found is not None:
                        # Published just now (the head move freed the lease), or before.
                        attempt.published = found.ov > int(head["ov"])
                        return found
                built = await build(head)
                if built is None:
                    return None
                version, payload = built
                if idem is not None:
                    version.update(idem=idem.key, idem_fp=idem.fp)
                return await publish(attempt, prev_head=head, version=version, payload=payload)

            async with LeaseKeeper(attempt):
                outcome = await guarded(attempt, body)
            if isinstance(outcome, WriteResult):
                if not attempt.published:
                    await scope.activity.settle(release(attempt))
                return outcome
            if outcome is None:
                await scope.activity.settle(release(attempt))
                return result_of(head, changed=False)
        return result_of(outcome)
