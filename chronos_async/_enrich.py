"""Enrich: merge one or more patches into a record's current data as one new version.

The merge rules live in :mod:`._merge` (objects deep-merge, arrays are unioned, scalars
and ``None`` in the patch replace). Enrich takes the same lease and follows the same
pipeline as every other write. It is a merge, not a replacement, so with
``expected_ov=None`` a version conflict (another writer got in between) is retried
internally with backoff: the patch is merged into whatever is current.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from chronos_async._args import check_ov, check_text
from chronos_async._content_io import restore_data
from chronos_async._content_paths import parse_prop, touches
from chronos_async._errors import ValidationError
from chronos_async._idempotency import IdemKey
from chronos_async._keys import validate_id
from chronos_async._merge import merge_all
from chronos_async._meta import extract_indexed
from chronos_async._models import WriteResult
from chronos_async._payloads import load_data
from chronos_async._publish import Doc
from chronos_async._write import Built, KeyUse, Writer, carry, check_writable, retry_conflicts

__all__ = ["enrich"]


def _patches(patch: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(patch, Mapping):
        return [patch]
    if isinstance(patch, (list, tuple)) and all(isinstance(p, Mapping) for p in patch):
        return list(patch)
    raise ValidationError("enrich takes a patch (a dict) or a list of patches")


async def enrich(
    writer: Writer,
    item_id: str,
    patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    function_id: str | None,
    actor: str | None,
    reason: str | None,
    expected_ov: int | None,
    idempotency_key: str | None = None,
    key_use: KeyUse = "reserve",
    check: Callable[[dict[str, Any], str], None] | None = None,
) -> WriteResult:
    """Merge ``patch`` (or each of a list of patches, in order) into the current data.

    ``check(merged, item_id)`` (a typed collection's model) may refuse the merged data by
    raising; nothing is written then.
    """
    scope = writer.scope
    item_id = validate_id(item_id)
    patches = _patches(patch)
    function_id = check_text(function_id, "function_id")
    actor, reason = check_text(actor, "actor"), check_text(reason, "reason")
    expected = check_ov(expected_ov, "expected_ov")
    # Validate the patches up front (JSON types, limits, strict base64 of content props),
    # so a bad one fails before the record is leased or read; their digests make the
    # idempotency fingerprint.
    digests = [(await writer.prepare(dict(one), item_id)).payload.sha256 for one in patches]
    # Patches that meet a content value merge into the data as written (base64 restored,
    # so arrays union by content); others merge into the stored form, where references
    # are kept as they are (and their objects are not uploaded again). A typed
    # collection's model checks the data as written, so it always gets it restored.
    restore = check is not None or any(
        touches(one, parse_prop(path)) for one in patches for path in scope.cmap.base64_props
    )

    async def build(head: Doc) -> Built | None:
        check_writable(head, expected)
        base = await load_data(scope, head)
        if restore:
            base = await restore_data(scope, base, f"{scope.where(item_id)} ov={head['ov']}")
        merged = merge_all(base, patches)
        if check is not None:
            check(merged, item_id)
        prepared = await writer.prepare(merged, item_id)
        payload = prepared.payload
        if writer.unchanged(head, payload.sha256, deleted=False):
            return None
        await writer.store_content(prepared, head)
        version = carry(head)
        ids = list(head.get("function_ids") or [])
        if function_id is not None and function_id not in ids:
            ids.append(function_id)
        version.update(
            op="enrich",
            actor=actor,
            reason=reason,
            deleted=False,
            meta=extract_indexed(prepared.stored, scope.cmap),
            function_id=function_id,
            function_ids=ids,
            restored_from=None,
            **prepared.version_fields(),
        )
        return version, payload

    async def run(idem: IdemKey | None, _: str | None) -> WriteResult:
        def once() -> Awaitable[WriteResult]:
            return writer.change(item_id, build, op="enrich", with_inline=True, idem=idem)

        return await (once() if expected is not None else retry_conflicts(scope, once))

    facts = {
        "id": item_id,
        "patches": digests,
        "function_id": function_id,
        "expected_ov": expected,
        "actor": actor,
        "reason": reason,
    }
    return await writer.keyed(idempotency_key, "enrich", facts, item_id, run, key_use=key_use)
