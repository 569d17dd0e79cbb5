"""Pack objects: several payloads stored back to back in one immutable object (pure).

Layout of a pack (Git packfiles are the model: written once, read by range)::

    payload 0 | payload 1 | ... | payload n-1 | trailer (JSON) | trailer length (8 bytes)

Each version of a packed payload records the pack's key, its member's ``offset`` and
``length`` and the payload's sha256; a read is one ranged GET of exactly those bytes,
verified against the sha256. The trailer makes a pack self-describing: for each member,
the version id it was written for (``<tenant>/<id>/<ov>``), its offset, length and
sha256. ``verify`` and ``reconcile`` use it to find every version that may refer to a
pack without scanning the version index: a version referring to a member belongs to the
member's record (a restore reuses the location of a version of the same record).

Pack keys: ``<tenant>/<db>/<collection>/_packs/<pack id>.pack``, one collection per
pack, so every per-tenant listing and check stays as it is; ``_packs`` can never be a
record id segment of a payload key (payload keys end in ``/v<ov>/<token>.json``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from bson import ObjectId

from chronos_async._errors import IntegrityError
from chronos_async._keys import collection_prefix

__all__ = [
    "TRAILER_LEN_BYTES",
    "PackMember",
    "build_pack",
    "is_pack_key",
    "new_pack_key",
    "pack_collection",
    "parse_trailer",
    "trailer_span",
]

#: The last 8 bytes of a pack: the trailer's length, big-endian.
TRAILER_LEN_BYTES = 8
_PACK_KEY = re.compile(r"(?P<prefix>[^/]+/[^/]+/[^/]+)/_packs/[0-9a-f]{24}[0-9a-f]{8}\.pack")


@dataclass(frozen=True, slots=True)
class PackMember:
    """One payload of a pack: the version it was written for and where it lies."""

    vid: str
    offset: int
    length: int
    sha256: str


def new_pack_key(tenant: str | None, db: str, collection: str) -> str:
    """A fresh pack key in ``db.collection`` of ``tenant`` (sortable by creation time)."""
    return (
        f"{collection_prefix(tenant, db, collection)}_packs/{ObjectId()}{secrets.token_hex(4)}.pack"
    )


def is_pack_key(key: str) -> bool:
    """Whether ``key`` names a pack object."""
    return _PACK_KEY.fullmatch(key) is not None


def pack_collection(key: str) -> tuple[str, str, str] | None:
    """``(tenant as stored, db, collection)`` of a pack key, or ``None``."""
    match = _PACK_KEY.fullmatch(key)
    if match is None:
        return None
    tenant, db, collection = match["prefix"].split("/")
    return tenant, db, collection


def build_pack(payloads: Sequence[tuple[str, bytes, str]]) -> tuple[bytes, list[PackMember]]:
    """The bytes of a pack holding ``(vid, body, sha256)`` payloads, and its members."""
    members: list[PackMember] = []
    parts: list[bytes] = []
    offset = 0
    for vid, body, sha256 in payloads:
        members.append(PackMember(vid, offset, len(body), sha256))
        parts.append(body)
        offset += len(body)
    trailer = orjson.dumps(
        {"v": 1, "members": [[m.vid, m.offset, m.length, m.sha256] for m in members]}
    )
    parts.append(trailer)
    parts.append(len(trailer).to_bytes(TRAILER_LEN_BYTES, "big"))
    return b"".join(parts), members


def trailer_span(size: int, trailer_length: int) -> tuple[int, int]:
    """``(offset, length)`` of the trailer of a pack of ``size`` bytes."""
    return size - TRAILER_LEN_BYTES - trailer_length, trailer_length


def parse_trailer(trailer: bytes, *, where: str) -> list[PackMember]:
    """The members listed in a pack's trailer (``IntegrityError`` if it is not one)."""
    try:
        doc = orjson.loads(trailer)
        members = [PackMember(str(v), int(o), int(n), str(s)) for v, o, n, s in doc["members"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise IntegrityError(f"pack {where} has no readable trailer") from None
    return members
