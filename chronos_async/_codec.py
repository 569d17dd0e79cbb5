"""Canonical JSON bytes for payloads: encode, hash, check, decode (pure, no I/O).

The stored form of a record's data is compact UTF-8 JSON with object keys sorted, made
by orjson. The same data therefore always gives the same bytes and the same sha256,
whatever the key order the caller used, which is what no-op detection and integrity
checks compare. Only JSON types are accepted: ``dict`` with ``str`` keys, ``list`` (and
``tuple``, stored as a list), ``str``, ``int`` (64-bit), finite ``float``, ``bool`` and
``None``. Anything else raises :class:`~chronos_async.ValidationError` before a byte is
written.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from chronos_async._errors import IntegrityError, ValidationError

__all__ = [
    "EncodedPayload",
    "check_shape",
    "decode_payload",
    "decode_payload_async",
    "encode_payload",
    "encode_payload_async",
    "sha256_hex",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: 19 digits in a row may be an integer beyond the signed 64-bit range. Found by mapping
#: every digit to "0" and searching for 19 zeros: both are C loops (a regex is 10x slower).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


@dataclass(frozen=True, slots=True)
class EncodedPayload:
    """The canonical bytes of a payload with their size and sha256 (hex)."""

    body: bytes
    sha256: str

    @property
    def size(self) -> int:
        """Length of ``body`` in bytes."""
        return len(self.body)


def _reject(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON type")


def sha256_hex(body: bytes) -> str:
    """The sha256 of ``body`` as lowercase hex."""
    return hashlib.sha256(body).hexdigest()


def check_shape(data: Any, *, max_depth: int) -> None:
    """Reject what orjson would silently accept or mangle: NaN/Infinity, deep nesting.

    orjson writes NaN and Infinity as ``null``; a record must never change on the way
    in, so they are refused here. So are integers outside the signed 64-bit range and
    non-empty containers nested ``max_depth`` levels deep. This is the reference walk;
    :func:`encode_payload` runs it only when the encoded bytes show it could find
    something.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError("payload holds NaN or Infinity, which JSON cannot represent")
        elif isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            # orjson also writes unsigned 64-bit values; MongoDB cannot store them.
            raise ValidationError(f"integer {value} does not fit in a signed 64-bit number")
        elif isinstance(value, dict):
            if depth >= max_depth and value:
                raise ValidationError(f"payload is nested deeper than {max_depth} levels")
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            if depth >= max_depth and value:
                raise ValidationError(f"payload is nested deeper than {max_depth} levels")
            stack.extend((v, depth + 1) for v in value)


def _dump(data: Any) -> bytes:
    if not isinstance(data, dict):
        raise ValidationError(
            f"a record's data must be a JSON object (dict), not {type(data).__name__}"
        )
    try:
        return orjson.dumps(data, default=_reject, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValidationError(f"payload is not JSON-serializable: {exc}") from None


def _floats_finite(data: Any) -> bool:
    """True unless a float in ``data`` is NaN or infinite.

    A tight walk that allocates nothing per value (a decode round trip to compare would
    build the whole record again and feed the garbage collector).
    """
    stack = [data]
    isfinite = math.isfinite
    while stack:
        node = stack.pop()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list or kind is tuple:
                stack.append(value)
            elif kind is float and not isfinite(value):
                return False
    return True


def _too_deep(data: Any, max_depth: int) -> bool:
    """True when a non-empty container is nested ``max_depth`` levels deep or more.

    Measured in C: orjson indents each element by two spaces per level, and JSON strings
    never hold a raw newline, so an element at that depth shows as a newline followed
    by ``2 * (max_depth + 1)`` spaces. (A Python walk of a 100 KB record costs ~4 ms.)
    """
    indented = orjson.dumps(data, default=_reject, option=_OPTIONS | orjson.OPT_INDENT_2)
    return b"\n" + b" " * (2 * (max_depth + 1)) in indented


def _finish(
    data: Any, body: bytes, *, max_bytes: int, max_depth: int, hash_body: bool = True
) -> EncodedPayload:
    if len(body) > max_bytes:
        raise ValidationError(f"payload is {len(body)} bytes; the limit is {max_bytes}")
    # orjson writes NaN and Infinity as null: only when a null appears can one hide.
    if b"null" in body and not _floats_finite(data):
        check_shape(data, max_depth=max_depth)
    # orjson also writes unsigned 64-bit integers, which MongoDB cannot hold.
    if _NINETEEN_DIGITS in body.translate(_DIGITS_AS_ZERO):
        check_shape(data, max_depth=max_depth)
    if body.count(b"[") + body.count(b"{") > max_depth and _too_deep(data, max_depth):
        raise ValidationError(f"payload is nested deeper than {max_depth} levels")
    return EncodedPayload(body=body, sha256=sha256_hex(body) if hash_body else "")


def encode_payload(data: Any, *, max_bytes: int, max_depth: int = 64) -> EncodedPayload:
    """Encode a record's data (a JSON object) to canonical bytes.

    Raises :class:`~chronos_async.ValidationError` when ``data`` is not a dict, holds a
    non-JSON value, is too deep, or encodes to more than ``max_bytes``.
    """
    return _finish(data, _dump(data), max_bytes=max_bytes, max_depth=max_depth)


async def encode_payload_async(
    data: Any, *, max_bytes: int, max_depth: int, offload_bytes: int
) -> EncodedPayload:
    """:func:`encode_payload`, hashing payloads of ``offload_bytes`` or more in a thread.

    Only the sha256 moves to the worker thread: hashlib releases the GIL there, so the
    event loop keeps serving other requests meanwhile. The checks stay on the loop
    (Python code holds the GIL wherever it runs). ``data`` must not change until this
    returns.
    """
    body = _dump(data)
    if len(body) < offload_bytes:
        return _finish(data, body, max_bytes=max_bytes, max_depth=max_depth)
    checked = _finish(data, body, max_bytes=max_bytes, max_depth=max_depth, hash_body=False)
    digest = await anyio.to_thread.run_sync(sha256_hex, body)
    return EncodedPayload(body=checked.body, sha256=digest)


def decode_payload(body: bytes, *, expected_sha256: str | None, where: str) -> dict[str, Any]:
    """Decode stored bytes, verifying them against ``expected_sha256`` first.

    Raises :class:`~chronos_async.IntegrityError` on a checksum mismatch or bytes that
    are not a JSON object; ``where`` names the record for the message.
    """
    if expected_sha256 is not None and sha256_hex(body) != expected_sha256:
        raise IntegrityError(f"payload of {where} does not match its stored sha256")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise IntegrityError(f"payload of {where} is not valid JSON") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"payload of {where} is not a JSON object")
    return data


async def decode_payload_async(
    body: bytes, *, expected_sha256: str | None, where: str, offload_bytes: int
) -> dict[str, Any]:
    """:func:`decode_payload`; payloads of ``offload_bytes`` or more are hashed in a thread.

    The hash releases the GIL in the thread; the JSON decoding itself stays on the loop
    (it would hold the GIL in any thread).
    """
    if len(body) < offload_bytes or expected_sha256 is None:
        return decode_payload(body, expected_sha256=expected_sha256, where=where)
    if await anyio.to_thread.run_sync(sha256_hex, body) != expected_sha256:
        raise IntegrityError(f"payload of {where} does not match its stored sha256")
    return decode_payload(body, expected_sha256=None, where=where)
