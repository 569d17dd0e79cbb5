"""Content externalization, the I/O part: prepare a write, upload, render reads, stream.

The write side (:func:`prepare`, :func:`rebind`, :func:`upload`) runs in the write
pipeline: strict decoding, hashing and encoding happen before the record is leased
(:meth:`~chronos_async._write.Writer.prepare`); the content objects are uploaded once
the head is known (under the lease for an update, after the "id taken" check for a
create), before the version is claimed, so a published version never points at a
missing object. Keys not in the current version are uploaded; keys the current
version already has are not (a version that keeps a property uploads nothing).
Re-uploading an object that exists (a property changed back to earlier content) is a
no-op: puts of the same bytes under the same key succeed on every store.

The read side turns references back into base64 (:func:`render`, verified against
sha256 and size), or leaves them as references with presigned URLs, and streams one
object in chunks (:class:`ContentStream`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import anyio.to_thread

from chronos_async._codec import EncodedPayload, sha256_hex
from chronos_async._content import REF, Extraction, extract, refs_in
from chronos_async._content_paths import parse_concrete_path
from chronos_async._errors import IntegrityError, NotFoundError, ValidationError
from chronos_async._keys import item_prefix
from chronos_async._models import Item
from chronos_async._scope import Scope
from chronos_async.storage import BlobMissingError, BlobStore

__all__ = [
    "ContentMode",
    "ContentStream",
    "Prepared",
    "check_mode",
    "current_keys",
    "load_content",
    "open_stream",
    "prepare",
    "rebind",
    "render",
    "restore_data",
    "upload",
]

#: How a read returns externalized properties: ``"data"`` (the base64, as written) or
#: ``"ref"`` (the reference object; with ``presign=True`` it also carries ``url``).
ContentMode = Literal["data", "ref"]
#: The id a create's payload is first encoded for when the id is chosen later (its
#: digest then makes the idempotency fingerprint, the same for every attempt).
_UNBOUND: Final = "_"
#: Content objects fetched or uploaded at once per operation.
_PARALLEL: Final = 8
_DEFAULT_CHUNK: Final = 1024 * 1024

Encode = Callable[[Any], Awaitable[EncodedPayload]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A write's data, validated, externalized and encoded (before any lock).

    ``stored`` is the data as stored (references in place of base64), what indexed props
    are extracted from; ``payload`` its canonical bytes for record ``item_id``.
    """

    payload: EncodedPayload
    stored: dict[str, Any]
    extraction: Extraction | None = None
    item_id: str | None = None

    @property
    def has_content(self) -> bool:
        """True when the data holds at least one content value."""
        return self.extraction is not None and not self.extraction.empty

    def version_fields(self) -> dict[str, Any]:
        """What the version document records: its content objects (``content``)."""
        if self.extraction is None or self.extraction.empty:
            return {}
        return {"content": self.extraction.entries()}


def _prefix(scope: Scope, item_id: str) -> str:
    return item_prefix(scope.tenant, scope.db, scope.collection, item_id)


async def prepare(scope: Scope, data: Any, item_id: str | None, encode: Encode) -> Prepared:
    """Decode the base64 props of ``data`` strictly and encode the stored form.

    Raises :class:`~chronos_async.ValidationError` (naming the path) before any I/O.
    Decoding and hashing run in a worker thread (``data`` must not change meanwhile).
    """
    props = scope.cmap.base64_props
    if not props or not isinstance(data, dict):
        return Prepared(await encode(data), data)
    extraction = await anyio.to_thread.run_sync(extract, data, props)
    if extraction is None or extraction.empty:
        return Prepared(await encode(data), data)
    stored = extraction.bind(_prefix(scope, item_id or _UNBOUND))
    return Prepared(await encode(stored), stored, extraction, item_id)


async def rebind(scope: Scope, prepared: Prepared, item_id: str, encode: Encode) -> Prepared:
    """``prepared`` for record ``item_id`` (references name their record in their keys)."""
    if prepared.extraction is None or prepared.item_id == item_id:
        return prepared
    stored = prepared.extraction.bind(_prefix(scope, item_id))
    return Prepared(await encode(stored), stored, prepared.extraction, item_id)


def current_keys(head: dict[str, Any] | None) -> set[str]:
    """The content keys the version ``head`` refers to."""
    return {str(e["key"]) for e in (head or {}).get("content") or ()}


async def upload(
    scope: Scope,
    prepared: Prepared,
    *,
    skip: set[str],
    before: Callable[[list[str]], Awaitable[None]] | None = None,
) -> int:
    """Store the content objects of ``prepared`` that are not in ``skip``; how many.

    ``before(keys)`` is awaited first when there is anything to store (the handshake
    with reconcile, :func:`~._content_guard.announce`)."""
    if prepared.extraction is None or prepared.item_id is None:
        return 0
    todo = {
        key: blob
        for key, blob in prepared.extraction.uploads(_prefix(scope, prepared.item_id)).items()
        if key not in skip
    }
    if not todo:
        return 0
    if before is not None:
        await before(sorted(todo))
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(key: str, body: bytes, sha256: str, content_type: str) -> None:
        async with gate:
            await scope.store.put(
                key, body, sha256=sha256, content_type=content_type, role="content"
            )

    await _all([one(k, b.body, b.sha256, b.content_type) for k, b in sorted(todo.items())])
    return len(todo)


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``coros`` concurrently; when one fails the others are cancelled and awaited
    before the error propagates (nothing keeps running behind the caller's back)."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def load_content(scope: Scope, ref: dict[str, Any], where: str) -> bytes:
    """The verified bytes of one content object (:class:`IntegrityError` if missing or
    different from its reference)."""
    key = str(ref["key"])
    try:
        body = await scope.store.get(key, role="content")
    except BlobMissingError:
        raise IntegrityError(f"content object {key} of {where} is missing") from None
    if len(body) >= scope.config.limits.offload_bytes:
        digest = await anyio.to_thread.run_sync(sha256_hex, body)
    else:
        digest = sha256_hex(body)
    if len(body) != ref["size"] or digest != ref["sha256"]:
        raise IntegrityError(f"content object {key} of {where} does not match its sha256")
    return body


def check_mode(content: object) -> ContentMode:
    """``content`` if it is a valid :data:`ContentMode`."""
    if content not in ("data", "ref"):
        raise ValidationError('content must be "data" (base64, as written) or "ref"')
    return content


async def restore_data(scope: Scope, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Put the base64 back in place of every reference of ``data`` (changed in place)."""
    found = list(refs_in(data, scope.cmap.base64_props))
    if not found:
        return data
    gate = asyncio.Semaphore(_PARALLEL)

    async def fetch(ref: dict[str, Any]) -> bytes:
        async with gate:
            return await load_content(scope, ref, where)

    refs = {str(ref["key"]): ref for _, ref in found}  # each object fetched once
    bodies = dict(zip(refs, await _all([fetch(ref) for ref in refs.values()]), strict=True))
    for slot, ref in found:
        slot.set(base64.b64encode(bodies[ref["key"]]).decode("ascii"))
    return data


async def render(
    scope: Scope,
    item: Item[Any],
    *,
    content: ContentMode,
    presign: bool,
    ttl_seconds: int,
) -> Item[Any]:
    """``item`` with its references restored to base64 (``content="data"``, no
    ``presign``), or as references, each with a presigned ``url`` (and one under
    ``item.urls["content:<path>"]``, its text rendition's under ``"text:<path>"``)
    when ``presign`` is set."""
    data = item.data
    if not scope.cmap.base64_props or not isinstance(data, dict):
        return item
    where = f"{scope.where(item.id)} ov={item.ov}"
    if content == "data" and not presign:
        return dataclasses.replace(item, data=await restore_data(scope, data, where))
    found = list(refs_in(data, scope.cmap.base64_props))
    if not found or not presign:
        return item
    urls = dict(item.urls)
    for slot, ref in found:
        shown = dict(ref)
        shown["url"] = urls[f"content:{slot.path}"] = await scope.store.presign_get(
            ref["key"], ttl_seconds=ttl_seconds, role="content"
        )
        if isinstance(ref.get("text"), dict):
            text = dict(ref["text"])
            text["url"] = urls[f"text:{slot.path}"] = await scope.store.presign_get(
                text["key"], ttl_seconds=ttl_seconds, role="content"
            )
            shown["text"] = text
        slot.set({REF: shown})
    return dataclasses.replace(item, data=data, urls=urls)


class ContentStream:
    """The bytes of one content object, as an async iterator of chunks.

    ``size``, ``sha256`` and ``content_type`` come from the reference (what an HTTP
    response needs before the first byte). The bytes are read with ranged GETs of
    ``chunk_size`` and checked as they go: a short object, or one whose sha256 differs
    from the reference, raises :class:`~chronos_async.IntegrityError` at the end of the
    stream (the chunks before it were already yielded: a server should then abort the
    response). A missing object raises it on the first chunk.

    Example::

        stream = await users.open_content(user_id, "avatar")
        async for chunk in stream:
            await response.write(chunk)
    """

    def __init__(self, store: BlobStore, ref: dict[str, Any], *, chunk_size: int) -> None:
        self._store = store
        self.key: str = str(ref["key"])
        self.size: int = int(ref["size"])
        self.sha256: str = str(ref["sha256"])
        self.content_type: str = str(ref["content_type"])
        self._chunk = chunk_size
        self._offset = 0
        self._hash = hashlib.sha256()
        self._whole: bytes | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"ContentStream({self.key!r}, size={self.size}, type={self.content_type!r})"

    def __aiter__(self) -> ContentStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        if self._offset >= self.size:
            self._done = True
            if self._hash.hexdigest() != self.sha256:
                raise IntegrityError(f"content object {self.key} does not match its sha256")
            raise StopAsyncIteration
        length = min(self._chunk, self.size - self._offset)
        try:
            chunk = await self._read(length)
        except BlobMissingError:
            self._done = True
            raise IntegrityError(f"content object {self.key} is missing") from None
        if len(chunk) != length:
            self._done = True
            raise IntegrityError(f"content object {self.key} is shorter than its reference")
        self._offset += length
        self._hash.update(chunk)
        return chunk

    async def _read(self, length: int) -> bytes:
        if self._store.kind == "mongo":  # one document: read it once, hand out slices
            if self._whole is None:
                self._whole = await self._store.get(self.key, role="content")
            return self._whole[self._offset : self._offset + length]
        return await self._store.get_range(
            self.key, offset=self._offset, length=length, role="content"
        )

    async def read(self) -> bytes:
        """Every remaining byte at once (verified)."""
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        """Stop reading (nothing is held open between chunks)."""
        self._done = True
        self._whole = None


def open_stream(
    scope: Scope, item: Item[Any], path: str, *, text: bool, chunk_size: int | None
) -> ContentStream:
    """The stream of the content object at concrete ``path`` of ``item`` (stored form).

    :class:`NotFoundError` when that version holds no content there (or no text
    rendition, with ``text``).
    """
    chunk = _DEFAULT_CHUNK if chunk_size is None else chunk_size
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= 64 << 20:
        raise ValidationError("chunk_size must be an integer from 1 to 64 MiB")
    node: Any = item.data
    for step in parse_concrete_path(path):
        if isinstance(step, int):
            node = node[step] if isinstance(node, list) and step < len(node) else None
        else:
            node = node.get(step) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get(REF), dict):
        raise NotFoundError(
            f"{path} holds no externalized content in {scope.where(item.id)} ov={item.ov}",
            id=item.id,
            ov=item.ov,
        )
    ref = node[REF]
    if text:
        if not isinstance(ref.get("text"), dict):
            raise NotFoundError(
                f"{path} of {scope.where(item.id)} ov={item.ov} has no text rendition",
                id=item.id,
                ov=item.ov,
            )
        ref = ref["text"]
    return ContentStream(scope.store, ref, chunk_size=chunk)
