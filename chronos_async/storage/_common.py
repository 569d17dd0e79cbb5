"""Helpers shared by the payload stores: key rules and the open/closed state (pure).

Every store applies the same key rules, so a key accepted by one backend is accepted by
all of them and payloads can move between backends unchanged.
"""

from __future__ import annotations

import re
from typing import Final

from chronos_async._errors import ClosedError, ValidationError

__all__ = [
    "MAX_KEY_LENGTH",
    "Lifecycle",
    "check_key",
    "check_prefix",
    "check_span",
    "is_valid_key",
]

#: S3's limit on key length (bytes; keys are ASCII here, so also characters).
MAX_KEY_LENGTH: Final = 1024
#: The usual file-name limit (ext4, APFS, NTFS): keeps keys valid for the local store.
_MAX_SEGMENT_LENGTH: Final = 255
_KEY_CHARS = re.compile(r"[A-Za-z0-9_.:/\-]*")


def _shown(value: object) -> str:
    if isinstance(value, str) and len(value) <= 200:
        return repr(value)
    return type(value).__name__


def check_prefix(prefix: object) -> str:
    """Validate a listing prefix: ``""`` or the start of a valid key (may end with ``/``).

    Raises :class:`~chronos_async.ValidationError` for anything a key could not start with.
    """
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH:
        raise ValidationError(f"invalid key prefix {_shown(prefix)}")
    if not prefix:
        return prefix
    if not _KEY_CHARS.fullmatch(prefix) or prefix.startswith("/"):
        raise ValidationError(
            f"invalid key prefix {_shown(prefix)}: use A-Z a-z 0-9 _ . : - / and no leading '/'"
        )
    segments = prefix.split("/")
    # The last segment may be partial ("v1" of "v12", or "" after a trailing slash) and is
    # never used as a path; the complete ones before it follow the key rules.
    for segment in segments[:-1]:
        _check_segment(segment, prefix, what="key prefix")
    return prefix


def check_key(key: object) -> str:
    """Validate an object key and return it.

    A key is relative: 1-1024 characters of ``A-Z a-z 0-9 _ . : - /``, split by ``/`` into
    non-empty segments of at most 255 characters, none of them ``.`` or ``..``. Raises
    :class:`~chronos_async.ValidationError` otherwise.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"invalid object key {_shown(key)}: use 1-{MAX_KEY_LENGTH} characters"
        )
    if not _KEY_CHARS.fullmatch(key):
        raise ValidationError(f"invalid object key {_shown(key)}: use only A-Z a-z 0-9 _ . : - /")
    for segment in key.split("/"):
        _check_segment(segment, key, what="object key")
    return key


def check_span(offset: object, length: object) -> None:
    """Validate a byte range: a non-negative ``offset`` and a positive ``length`` (ints)."""
    for value, name, low in ((offset, "offset", 0), (length, "length", 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValidationError(f"{name} must be an integer of at least {low}")


def is_valid_key(key: str) -> bool:
    """Whether :func:`check_key` accepts ``key`` (used to skip foreign objects in listings)."""
    try:
        check_key(key)
    except ValidationError:
        return False
    return True


def _check_segment(segment: str, whole: str, *, what: str) -> None:
    if not segment:
        raise ValidationError(f"invalid {what} {_shown(whole)}: empty path segment")
    if segment in (".", ".."):
        raise ValidationError(f"invalid {what} {_shown(whole)}: {segment!r} segment")
    if len(segment) > _MAX_SEGMENT_LENGTH:
        raise ValidationError(
            f"invalid {what} {_shown(whole)}: a segment is longer than {_MAX_SEGMENT_LENGTH}"
        )


class Lifecycle:
    """The unopened -> open -> closed state of a store: opened once, closed idempotently."""

    __slots__ = ("_name", "_state")

    def __init__(self, name: str) -> None:
        self._name = name
        self._state = "unopened"

    def opening(self) -> None:
        """Mark the store open; raise :class:`~chronos_async.ClosedError` on re-entry."""
        if self._state != "unopened":
            raise ClosedError(
                f"the {self._name} is already open or was closed; open a store only once"
            )
        self._state = "open"

    def closing(self) -> bool:
        """Mark the store closed; ``False`` when it was not open (close is idempotent)."""
        was_open = self._state == "open"
        self._state = "closed"
        return was_open

    def check(self) -> None:
        """Raise :class:`~chronos_async.ClosedError` unless the store is open."""
        if self._state != "open":
            raise ClosedError(f"the {self._name} is not open (use 'async with store:')")

    @property
    def is_open(self) -> bool:
        """Whether the store is open."""
        return self._state == "open"
