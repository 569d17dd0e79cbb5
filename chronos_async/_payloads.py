"""Loading a version's payload: the inline copy or the store, verified against sha256."""

from __future__ import annotations

from typing import Any

from chronos_async._codec import decode_payload_async
from chronos_async._errors import IntegrityError
from chronos_async._scope import Scope
from chronos_async.storage import BlobMissingError

__all__ = ["load_data"]


async def load_data(scope: Scope, doc: dict[str, Any]) -> dict[str, Any]:
    """The verified data of a head or version document.

    Raises :class:`~chronos_async.IntegrityError` when the payload is missing or its bytes
    do not match the recorded sha256.
    """
    where = f"{scope.where(doc['id'])} ov={doc['ov']}"
    body = doc.get("inline")
    if body is None:
        try:
            body = await scope.store.get(doc["key"])
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
