"""Canonical JSON bytes for payloads: encode, hash, check, decode (pure, no I/O).

The stored form of a record's data is compact UTF-8 JSON with object keys sorted, made
by orjson. The same data therefore always gives the same bytes and the same sha256,
whatever the key order the caller used, which is what no-op detection and integrity
checks compare. Only JSON types are accepted, each exactly (no subclass): ``dict`` with
``str`` keys, ``list`` (and ``tuple``, stored as a list), ``str``, ``int`` (64-bit),
finite ``float``, ``bool`` and ``None``. Anything else raises
:class:`~chronos_async.ValidationError` before a byte is written.

How that is checked fast: orjson refuses most other types itself (through ``default``),
but it natively writes ``uuid.UUID``, ``enum.Enum`` members and ``orjson.Fragment``
(raw bytes, not even checked to be JSON), so ``marshal`` (a C dump that refuses every
object not exactly of a builtin type) runs over every payload too. What both accept is
exactly the JSON types; when either refuses, the reference walk :func:`check_shape`
decides and names the culprit. marshal's output also serves the NaN/Infinity scan.
"""

from __future__ import annotations

import enum
import hashlib
import marshal
import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread
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
    """The reference walk: raise :class:`ValidationError` for anything that is not JSON.

    Refuses every value whose type is not exactly one of the JSON types (subclasses,
    enums, UUIDs, ``orjson.Fragment``...), object keys that are not ``str``, strings that
    are not valid Unicode (lone surrogates), NaN and Infinity (orjson would write them
    as ``null``: a record must never change on the way in), integers outside the signed
    64-bit range, and non-empty containers nested ``max_depth`` levels deep. It is exact
    and slow; :func:`encode_payload` runs it only when its C-speed checks show it could
    find something.
    """
    # (container, depth): ``data`` is checked as the element of a list at depth -1.
    stack: list[tuple[Any, int]] = [([data], -1)]
    while stack:
        container, depth = stack.pop()
        if type(container) is dict:
            for key in container:
                if type(key) is not str:
                    raise ValidationError(
                        f"payload has an object key of type {type(key).__name__}; keys must be str"
                    )
                if not key.isascii():
                    _check_unicode(key, "an object key")
            children: Iterable[Any] = container.values()
        else:
            children = container
        for value in children:
            kind = type(value)
            if kind is str:
                if not value.isascii():
                    _check_unicode(value, "a string")
            elif kind is int:
                if not _INT64_MIN <= value <= _INT64_MAX:
                    # orjson also writes unsigned 64-bit values; MongoDB cannot store them.
                    raise ValidationError(f"integer {value} does not fit in a signed 64-bit number")
            elif kind is float:
                if not math.isfinite(value):
                    raise ValidationError(
                        "payload holds NaN or Infinity, which JSON cannot represent"
                    )
            elif kind is dict or kind is list or kind is tuple:
                if value:
                    if depth + 1 >= max_depth:
                        raise ValidationError(f"payload is nested deeper than {max_depth} levels")
                    stack.append((value, depth + 1))
            elif value is not None and kind is not bool:
                raise _not_a_json_type(value)


def _check_unicode(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"payload holds {what} that is not valid Unicode (a lone surrogate)"
        ) from None


#: What to do about a value that is not JSON: said by every such error.
_CONVERT_HINT = (
    "an untyped collection stores JSON types only (dict, list, str, int, float, bool, "
    "None) and converts nothing: convert the data first (a pydantic model's "
    'model_dump(mode="json") turns Decimal, datetime, UUID and enums into JSON values), '
    "or use a typed collection, chronos.collection(name, db=..., model=YourModel), "
    "which stores model instances that way"
)


def _is_pydantic_model(value: object) -> bool:
    """True for a pydantic model instance (checked by duck type: this module is pure)."""
    return hasattr(type(value), "__pydantic_fields__") and hasattr(value, "model_dump")


def _not_a_json_type(value: object) -> ValidationError:
    """The error naming the type of ``value`` (never the value: it may be personal data)."""
    name = type(value).__name__
    article = "an" if name[:1] in "AEIOaeio" else "a"
    if isinstance(value, enum.Enum):
        note = " (an Enum member)"
    elif _is_pydantic_model(value):
        note = " (a pydantic model)"
    else:
        base = next((b for b in (str, int, float, dict, list, tuple) if isinstance(value, b)), None)
        note = f" (a subclass of {base.__name__})" if base is not None else ""
    return ValidationError(
        f"payload holds {article} {name}{note}, which is not a JSON type; {_CONVERT_HINT}"
    )


def _probe_orjson_chain_limit() -> int | None:
    """How many containers orjson encodes nested in one another (254 in orjson 3.x).

    ``None`` when it encodes 2,048 (a future orjson without the limit): the depth check
    then falls back to an indented dump.
    """
    value: Any = 0
    for count in range(1, 2049):
        value = [value]
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return count - 1
    return None


_ORJSON_CHAIN_LIMIT: Final = _probe_orjson_chain_limit()


def _not_json(data: Any) -> ValidationError:
    try:
        orjson.dumps(data, default=_reject, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        return ValidationError(f"payload is not JSON-serializable: {exc}; {_CONVERT_HINT}")
    return ValidationError(f"payload is not JSON-serializable; {_CONVERT_HINT}")


class _Wrappers(threading.local):
    """Per thread: chains of single-element lists by length, reused between encodes."""

    def __init__(self) -> None:
        self.chains: dict[int, tuple[list[Any], list[Any]]] = {}


_WRAPPERS: Final = _Wrappers()


def _dump_wrapped(data: Any, wraps: int) -> bytes:
    """orjson bytes of ``data`` nested in ``wraps`` single-element lists.

    The chain of lists is built once per thread and length (building it costs more than
    encoding a small record); ``data`` sits in its innermost list only during the call.
    """
    if wraps == 0:
        return orjson.dumps(data, default=_reject, option=_OPTIONS)
    chains = _WRAPPERS.chains
    if wraps not in chains:
        inner: list[Any] = [None]
        outer = inner
        for _ in range(wraps - 1):
            outer = [outer]
        chains[wraps] = (outer, inner)
    outer, inner = chains[wraps]
    inner[0] = data
    try:
        return orjson.dumps(outer, default=_reject, option=_OPTIONS)
    finally:
        inner[0] = None


def _dump(data: Any, max_depth: int) -> bytes:
    """Canonical bytes of ``data``; raises when it is not JSON or nests too deep.

    The depth limit costs nothing extra in the common case: ``data`` is encoded inside
    ``W`` single-element lists, chosen so that orjson's own nesting limit trips exactly
    when a chain of containers in ``data`` is longer than ``max_depth``, and the compact
    bytes of ``[[data]]`` are ``[[`` + bytes of ``data`` + ``]]``. orjson counts empty
    containers too, so when it trips the reference walk decides.
    """
    if not isinstance(data, dict):
        if _is_pydantic_model(data):
            name = type(data).__name__
            raise ValidationError(
                f"a record's data must be a JSON object (dict), not a pydantic model "
                f'({name}): pass its model_dump(mode="json"), or open the collection typed, '
                f"chronos.collection(name, db=..., model={name}), to write {name} instances"
            )
        raise ValidationError(
            f"a record's data must be a JSON object (dict), not {type(data).__name__}"
        )
    wraps = 0 if _ORJSON_CHAIN_LIMIT is None else max(_ORJSON_CHAIN_LIMIT - max_depth, 0)
    try:
        body = _dump_wrapped(data, wraps)
    except (TypeError, orjson.JSONEncodeError):
        body = b""
    if body and _ORJSON_CHAIN_LIMIT is not None:
        return body[wraps:-wraps] if wraps else body
    if body:  # no orjson limit to lean on
        if body.count(b"[") + body.count(b"{") > max_depth and _too_deep(data, max_depth):
            raise ValidationError(f"payload is nested deeper than {max_depth} levels")
        return body
    # Not JSON, or (probably) too deep: find out which, with the exact walk for depth.
    try:
        body = orjson.dumps(data, default=_reject, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        check_shape(data, max_depth=max_depth)
        raise _not_json(data) from None
    check_shape(data, max_depth=max_depth)
    return body


#: A float in ``marshal`` output (version 4) is ``g`` (``\xe7`` when referenced twice)
#: followed by its 8 IEEE 754 bytes, little-endian. NaN and the infinities, and only they,
#: have all 11 exponent bits set: the last byte is 0x7f/0xff and the one before >= 0xf0.
#: One pattern per opcode: a literal first byte lets ``re`` skip ahead (5x faster).
_NON_FINITE_FLOATS: Final = tuple(
    re.compile(opcode + rb"[\x00-\xff]{6}[\xf0-\xff][\x7f\xff]") for opcode in (b"g", b"\xe7")
)


def _too_deep(data: Any, max_depth: int) -> bool:
    """True when a non-empty container is nested ``max_depth`` levels deep or more.

    Only used if orjson ever drops its nesting limit. orjson indents each element by two
    spaces per level, and JSON strings never hold a raw newline, so an element at that
    depth shows as a newline followed by ``2 * (max_depth + 1)`` spaces.
    """
    indented = orjson.dumps(data, default=_reject, option=_OPTIONS | orjson.OPT_INDENT_2)
    return b"\n" + b" " * (2 * (max_depth + 1)) in indented


def _check_steps(data: Any, body: bytes, *, max_bytes: int, max_depth: int) -> Iterator[None]:
    """The checks orjson does not make, pausing (``yield``) between the costly steps.

    Types: ``marshal`` dumps the record in C and refuses any object not exactly of a
    builtin type; orjson already refused the builtin types that are not JSON (sets,
    bytes, ...), so what both accept holds JSON types only. When marshal refuses, the
    exact walk decides (and names the type).

    NaN and Infinity (orjson writes them as ``null``, so they can only hide when a null
    appears): a regular expression scans marshal's bytes for the bit pattern only
    non-finite floats have, under half the time of a Python walk; a byte run that merely
    looks like one costs the exact walk. Integers beyond signed 64 bits (orjson writes
    unsigned ones, MongoDB cannot hold them) show as 19 digits in a row.
    """
    if len(body) > max_bytes:
        raise ValidationError(f"payload is {len(body)} bytes; the limit is {max_bytes}")
    try:
        dumped = marshal.dumps(data, 4)
    except ValueError:  # not exactly builtin types (or nested beyond marshal's own limit)
        yield
        check_shape(data, max_depth=max_depth)  # checks NaN and 64-bit integers too
        return
    if b"null" in body:
        for pattern in _NON_FINITE_FLOATS:
            yield
            if pattern.search(dumped) is not None:
                check_shape(data, max_depth=max_depth)
                break
    yield
    if _NINETEEN_DIGITS in body.translate(_DIGITS_AS_ZERO):
        check_shape(data, max_depth=max_depth)


def encode_payload(data: Any, *, max_bytes: int, max_depth: int = 64) -> EncodedPayload:
    """Encode a record's data (a JSON object) to canonical bytes.

    Raises :class:`~chronos_async.ValidationError` when ``data`` is not a dict, holds a
    non-JSON value, is too deep, or encodes to more than ``max_bytes``.
    """
    body = _dump(data, max_depth)
    for _ in _check_steps(data, body, max_bytes=max_bytes, max_depth=max_depth):
        pass
    return EncodedPayload(body=body, sha256=sha256_hex(body))


async def encode_payload_async(
    data: Any, *, max_bytes: int, max_depth: int, offload_bytes: int
) -> EncodedPayload:
    """:func:`encode_payload`, kind to the event loop for payloads of ``offload_bytes``+.

    For those, the loop serves other tasks between the checks (each a single C call of
    about a millisecond per megabyte), and the sha256 runs in a worker thread, where
    hashlib releases the GIL. (Moving the checks to a thread would not free the loop:
    they hold the GIL wherever they run.) ``data`` must not change until this returns.
    """
    body = _dump(data, max_depth)
    if len(body) < offload_bytes:
        for _ in _check_steps(data, body, max_bytes=max_bytes, max_depth=max_depth):
            pass
        return EncodedPayload(body=body, sha256=sha256_hex(body))
    for _ in _check_steps(data, body, max_bytes=max_bytes, max_depth=max_depth):
        await anyio.lowlevel.checkpoint()
    digest = await anyio.to_thread.run_sync(sha256_hex, body)
    return EncodedPayload(body=body, sha256=digest)


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
