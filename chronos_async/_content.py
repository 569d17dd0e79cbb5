"""Content externalization, the pure part: paths, strict base64, references (no I/O).

A collection's ``base64_props`` names the properties that hold base64 text (an email
attachment, an avatar, a PDF). On write each such string is decoded **strictly** (a
value that does not re-encode to exactly the same text is refused, naming its path) and
replaced in the stored JSON by a reference::

    {"content_ref": {"key": "<tenant>/<db>/<coll>/<id>/c/<sha256>.<type hash>",
                     "size": 5242880, "sha256": "...", "content_type": "application/pdf",
                     "text": {"key": ..., "size": ..., "sha256": ...,
                              "content_type": "text/plain; charset=utf-8"}}}

``text`` is the text rendition, present when the property asks for one
(``preferred_text`` or a ``text/*`` type) and the bytes decode with ``text_charset``
to mostly printable text. The decoded bytes go to the content store (see
:mod:`._content_io`) under a key that is a function of the record, the bytes and the
content type only: a version that keeps a property keeps its key, so nothing is
uploaded again and every version shares the one immutable object.

Paths are dotted; a segment ending in ``[]`` is an array whose every element is
visited: ``avatar``, ``files[]`` (an array of base64 strings),
``attachments[].data``, ``mail.parts[].body``. Missing properties and ``null`` are left
alone; anything else at such a path that is not a string (or a reference kept from
the current version) is a :class:`~chronos_async.ValidationError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chronos_async._content_paths import Slot, locate, parse_prop
from chronos_async._errors import ValidationError
from chronos_async._sections import Base64Prop

__all__ = [
    "REF",
    "TEXT_TYPE",
    "Blob",
    "Extraction",
    "check_carried",
    "content_key",
    "content_prefix",
    "decode_strict",
    "extract",
    "index_value",
    "is_ref",
    "parse_content_key",
    "ref_entries",
    "refs_in",
    "text_rendition",
]

#: The key of a reference object in the stored JSON.
REF: Final = "content_ref"
#: The content type of every text rendition (stored as UTF-8).
TEXT_TYPE: Final = "text/plain; charset=utf-8"
#: A text rendition is made only when at most this share of its characters are control
#: characters other than tab, newline and carriage return (binary that merely decodes).
_MAX_CONTROL_SHARE: Final = 0.05

_CONTENT_KEY = re.compile(
    r"(?P<tenant>[^/]+)/(?P<db>[^/]+)/(?P<collection>[^/]+)/(?P<id>[^/]+)"
    r"/c/(?P<sha>[0-9a-f]{64})\.(?P<type>[0-9a-f]{8})"
)


def decode_strict(text: str, path: str) -> bytes:
    """The bytes of standard, padded base64 ``text``; anything that does not re-encode
    to exactly ``text`` (whitespace, missing padding, URL-safe letters, stray bits) is a
    :class:`ValidationError` naming ``path`` (never the value: it may be personal data)."""
    if not text.isascii():
        raise ValidationError(f"{path} is not base64 text (non-ASCII characters)")
    raw = text.encode("ascii")
    try:
        body = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            f"{path} is not valid base64 (standard alphabet, padded, no whitespace)"
        ) from None
    if base64.b64encode(body) != raw:
        raise ValidationError(f"{path} is not canonical base64: it does not round-trip")
    return body


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def text_rendition(body: bytes, prop: Base64Prop) -> bytes | None:
    """UTF-8 text of ``body`` when ``prop`` asks for a rendition and the bytes are text.

    Asked for by ``preferred_text`` or a ``text/*`` content type; made when ``body``
    decodes with ``text_charset`` and at most 5 % of its characters are control
    characters (other than tab, newline, carriage return). ``None`` otherwise.
    """
    if not (prop.preferred_text or prop.content_type.lower().startswith("text/")):
        return None
    try:
        text = body.decode(prop.text_charset)
    except (UnicodeDecodeError, LookupError):
        return None
    if text and len(_CONTROL.findall(text)) > _MAX_CONTROL_SHARE * len(text):
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (surrogateescape-like charsets)
        return None


def content_prefix(item_prefix: str) -> str:
    """The key prefix of every content object of one record."""
    return f"{item_prefix}c/"


def content_key(item_prefix: str, sha256: str, content_type: str) -> str:
    """The key of a content object: a function of the record, the bytes and the type.

    The same bytes stored as two types are two objects (each served with its own
    ``Content-Type``); the same bytes and type are one object for every version.
    """
    kind = hashlib.sha256(content_type.encode("utf-8")).hexdigest()[:8]
    return f"{content_prefix(item_prefix)}{sha256}.{kind}"


def parse_content_key(key: str) -> tuple[str, str, str, str] | None:
    """``(tenant as stored, db, collection, id)`` of a content key, or ``None``."""
    match = _CONTENT_KEY.fullmatch(key)
    if match is None:
        return None
    return match["tenant"], match["db"], match["collection"], match["id"]


@dataclass(frozen=True, slots=True)
class Blob:
    """Decoded bytes of one content value (or of a text rendition) and their facts."""

    body: bytes
    sha256: str
    content_type: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> Blob:
        """The blob of ``body`` (hashed here)."""
        return cls(body, hashlib.sha256(body).hexdigest(), content_type)

    def ref(self, item_prefix: str) -> dict[str, Any]:
        """The reference fields of this blob for a record with ``item_prefix``."""
        return {
            "key": content_key(item_prefix, self.sha256, self.content_type),
            "size": len(self.body),
            "sha256": self.sha256,
            "content_type": self.content_type,
        }


def is_ref(value: Any) -> bool:
    """Whether ``value`` is a reference object (``{"content_ref": {...}}``)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(REF), dict)


_SHA = re.compile(r"[0-9a-f]{64}")


def _canonical(ref: Mapping[str, Any], path: str, *, text: bool) -> dict[str, Any]:
    """The stored fields of a reference (``url`` and ``expires`` dropped), checked."""
    out = {k: ref.get(k) for k in ("key", "size", "sha256", "content_type")}
    size = out["size"]
    if (
        not isinstance(out["key"], str)
        or isinstance(size, bool)
        or not isinstance(size, int)
        or size < 0
        or not isinstance(out["sha256"], str)
        or not _SHA.fullmatch(out["sha256"])
        or not isinstance(out["content_type"], str)
        or not out["content_type"]
        or content_key(_prefix_of(out["key"]), out["sha256"], out["content_type"]) != out["key"]
    ):
        raise ValidationError(f"{path} holds a malformed content reference")
    if text and ref.get("text") is not None:
        if not isinstance(ref["text"], Mapping):
            raise ValidationError(f"{path} holds a malformed content reference")
        out["text"] = _canonical(ref["text"], path, text=False)
    return out


def _prefix_of(key: str) -> str:
    """The item prefix of a content key (``""`` when it is not one)."""
    return key[: key.rfind("/c/") + 1] if "/c/" in key else ""


@dataclass(slots=True)
class Extraction:
    """The data with every content value replaced by a reference, and what to upload.

    ``data`` holds the references; their keys are filled in by :meth:`bind` once the
    record id is known. ``new`` pairs each new reference (its inner dict) with its blob
    and text rendition; ``carried`` lists references kept from the current version
    (``(path, inner dict)``), which :func:`check_carried` checks against that version.
    """

    data: dict[str, Any]
    new: list[tuple[dict[str, Any], Blob, Blob | None]] = field(default_factory=list)
    carried: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the data holds no content value at all."""
        return not self.new and not self.carried

    def bind(self, item_prefix: str) -> dict[str, Any]:
        """Fill in the keys of the new references for the record with ``item_prefix``."""
        for ref, blob, text in self.new:
            ref.update(blob.ref(item_prefix))
            if text is not None:
                ref["text"] = text.ref(item_prefix)
        return self.data

    def uploads(self, item_prefix: str) -> dict[str, Blob]:
        """Every object the new references need, by key (one per distinct key)."""
        out: dict[str, Blob] = {}
        for _, blob, text in self.new:
            for one in (blob, text):
                if one is not None:
                    out.setdefault(content_key(item_prefix, one.sha256, one.content_type), one)
        return out

    def entries(self) -> list[dict[str, Any]]:
        """The ``content`` list of the version document (after :meth:`bind`)."""
        refs = [ref for ref, _, _ in self.new] + [ref for _, ref in self.carried]
        return ref_entries(refs)


def ref_entries(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{key, size, sha256}]`` of references (inner dicts) and their texts, by key."""
    found: dict[str, dict[str, Any]] = {}
    for ref in refs:
        for one in (ref, ref.get("text")):
            if one is not None:
                found.setdefault(
                    one["key"], {"key": one["key"], "size": one["size"], "sha256": one["sha256"]}
                )
    return [found[key] for key in sorted(found)]


def extract(
    data: Any,
    props: Mapping[str, Base64Prop],
    *,
    hash_blob: Callable[[bytes, str], Blob] = Blob.of,
) -> Extraction | None:
    """Decode every content value of ``data`` and put a reference in its place.

    ``data`` is not changed (containers on the paths are copied). ``None`` when
    ``data`` is not a dict (the codec then refuses it) or no prop is configured.
    Raises :class:`ValidationError` naming the path of a value that is not strict
    base64, nor ``null``, nor a well-formed reference.
    """
    if not props or not isinstance(data, dict):
        return None
    out = Extraction(dict(data))
    for path, prop in props.items():
        for slot in list(locate(out.data, parse_prop(path), copy=True)):
            value = slot.value
            if isinstance(value, str):
                body = decode_strict(value, slot.path)
                blob = hash_blob(body, prop.content_type)
                text_body = text_rendition(body, prop)
                text = None if text_body is None else hash_blob(text_body, TEXT_TYPE)
                ref: dict[str, Any] = {}
                slot.set({REF: ref})
                out.new.append((ref, blob, text))
            elif is_ref(value):
                kept = _canonical(value[REF], slot.path, text=True)
                slot.set({REF: kept})
                out.carried.append((slot.path, kept))
            else:
                raise ValidationError(
                    f"{slot.path} must hold base64 text (it is listed in base64_props), "
                    f"not {type(value).__name__}"
                )
    return out


def check_carried(extraction: Extraction, current: list[dict[str, Any]] | None) -> None:
    """Refuse references that the current version (its ``content`` list) does not hold.

    A reference read with ``content="ref"`` can be written back unchanged, so a caller
    can change other fields without sending the content again; any other reference
    (from another record, an older version, or edited) would point at bytes this record
    does not own.
    """
    owned = {e["key"]: e for e in current or ()}
    for path, ref in extraction.carried:
        for one in (ref, ref.get("text")):
            if one is None:
                continue
            entry = owned.get(one["key"])
            if entry is None or entry["size"] != one["size"] or entry["sha256"] != one["sha256"]:
                raise ValidationError(
                    f"{path} holds a content reference the current version does not have: "
                    "send the content as base64 instead"
                )


def index_value(value: Any) -> Any:
    """What an indexed prop that is also a base64 prop stores: the content's sha256
    (a list of them for an array), never the base64 itself."""
    if is_ref(value):
        return value[REF]["sha256"]
    if isinstance(value, list):
        return [index_value(v) for v in value]
    return value


def refs_in(data: Any, props: Mapping[str, Base64Prop]) -> Iterator[tuple[Slot, dict[str, Any]]]:
    """Every reference the configured paths of ``data`` hold (``(slot, inner dict)``).

    Values that are not references (an old version written before a prop was listed)
    are skipped; ``data`` is not copied.
    """
    if not isinstance(data, dict):
        return
    for path in props:
        try:
            slots = list(locate(data, parse_prop(path)))
        except ValidationError:
            continue  # stored before the prop was configured: not a reference
        for slot in slots:
            if is_ref(slot.value):
                yield slot, slot.value[REF]
