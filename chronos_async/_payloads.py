"""Loading a version's payload: the inline copy or the store, verified against sha256."""

from __future__ import annotations

from typing import Any

from chronos_async._codec import decode_payload_async, sha256_hex
from chronos_async._errors import IntegrityError
from chronos_async._keys import copy_key
from chronos_async._scope import Scope
from chronos_async.storage import BlobMissingError, BlobStore

__all__ = ["load_data", "presign_payload", "read_payload"]


async def read_payload(store: BlobStore, doc: dict[str, Any]) -> bytes:
    """The stored bytes of a version's payload: its own object, or its span of a pack
    (one ranged GET). Not verified here.

    On S3 a payload of known size is read as the range ``[0, size)`` as well: the same
    one request, but obstore answers a ranged GET in one call where a plain GET takes
    two (the response, then its body), which saves about a tenth of the client's CPU
    per read. (An object longer than recorded would pass unnoticed here; ``verify``
    reads whole objects, where it fails its sha256.)
    """
    offset = doc.get("offset")
    if offset is not None:
        return await store.get_range(doc["key"], offset=int(offset), length=int(doc["length"]))
    size = doc.get("size")
    if store.kind == "s3" and isinstance(size, int) and size > 0:
        return await store.get_range(doc["key"], offset=0, length=size)
    return await store.get(doc["key"])


async def presign_payload(scope: Scope, doc: dict[str, Any], ttl_seconds: int) -> str:
    """A presigned URL that serves exactly the payload of ``doc``.

    A packed payload cannot be served by a URL of its pack (a range would have to be
    sent as a header, which a plain link cannot do): its bytes are copied once, after
    checking them, to a stand-alone object named after the version and its sha256
    (:func:`~chronos_async._keys.copy_key`), which is presigned. ``verify`` counts the
    copy as referenced by its version; it goes when the version goes.
    """
    if doc.get("offset") is None:
        return await scope.store.presign_get(doc["key"], ttl_seconds=ttl_seconds)
    key = copy_key(
        scope.tenant, scope.db, scope.collection, doc["id"], int(doc["ov"]), doc["sha256"]
    )
    inline = doc.get("inline")
    body = inline.encode() if isinstance(inline, str) else await read_payload(scope.store, doc)
    if sha256_hex(body) != doc["sha256"]:
        raise IntegrityError(
            f"payload of {scope.where(doc['id'])} ov={doc['ov']} does not match its sha256"
        )
    await scope.store.put(key, body, sha256=doc["sha256"])  # the same bytes again: a no-op
    return await scope.store.presign_get(key, ttl_seconds=ttl_seconds)


async def load_data(scope: Scope, doc: dict[str, Any]) -> dict[str, Any]:
    """The verified data of a head or version document.

    Raises :class:`~chronos_async.IntegrityError` when the payload is missing or its bytes
    do not match the recorded sha256.
    """
    where = f"{scope.where(doc['id'])} ov={doc['ov']}"
    body = doc.get("inline")
    if body is None:
        try:
            body = await read_payload(scope.store, doc)
        except BlobMissingError:
            raise IntegrityError(f"payload of {where} is missing from the store") from None
    if isinstance(body, str):
        body = body.encode()
    return await decode_payload_async(
        bytes(body),
        expected_sha256=doc["sha256"],
        where=where,
        offload_bytes=scope.config.limits.offload_bytes,
    )
