"""Validation of plain arguments: versions and short texts (pure, no I/O)."""

from __future__ import annotations

from chronos_async._errors import ValidationError

__all__ = ["check_ov", "check_text"]

_MAX_TEXT = 2048
_INT64_MAX = 2**63 - 1


def check_text(value: object, what: str) -> str | None:
    """Validate an optional short text argument (actor, reason, function id)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValidationError(f"{what} must be a string of at most {_MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid UTF-8 (a lone surrogate)") from None
    return value


def check_ov(value: object, what: str) -> int | None:
    """Validate an optional version number (a non-negative int, not a bool)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT64_MAX:
        raise ValidationError(f"{what} must be a non-negative 64-bit integer")
    return value
