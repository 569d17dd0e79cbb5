"""Indexed-property extraction and read projection (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chronos_async._content import index_value
from chronos_async._errors import ValidationError
from chronos_async._sections import CollectionMap

__all__ = ["extract_indexed", "get_path", "project"]

_MISSING = object()


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` of nested dicts, or a private "missing" marker."""
    current = data
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def extract_indexed(data: dict[str, Any], cmap: CollectionMap) -> dict[str, Any]:
    """The indexed properties of ``data`` as a nested document for the head's ``meta``.

    Props named ``a.b`` land at ``meta.a.b``; ``tags[]`` lands at ``meta.tags`` (an
    array, so a query on ``tags`` matches any element). ``data`` is the stored form: a
    prop that is also a base64 prop holds a content reference there, and is indexed by
    the content's sha256. Props missing from the data are
    left out. ``validation.required_indexed`` props must be present and neither ``None``
    nor ``""``, else :class:`~chronos_async.ValidationError` is raised.
    """
    meta: dict[str, Any] = {}
    for prop in cmap.indexed_props:
        path = prop.removesuffix("[]")
        value = get_path(data, path)
        if value is _MISSING:
            continue
        if prop in cmap.base64_props:
            value = index_value(value)  # the content's sha256, never its base64
        if prop.endswith("[]"):
            if not isinstance(value, list) or not all(map(_is_scalar, value)):
                raise ValidationError(
                    f"indexed property {path!r} is declared as an array ('[]') of scalars"
                )
        elif not _is_scalar(value):
            # Indexed values become fields of the head document: objects would bring
            # their keys into MongoDB field names (and cannot be filtered on anyway).
            raise ValidationError(
                f"indexed property {path!r} must hold a string, number, bool or null"
            )
        _set_path(meta, path, value)
    for prop in cmap.validation.required_indexed:
        path = prop.removesuffix("[]")
        value = get_path(data, path)
        if value is _MISSING or value is None or value == "":
            raise ValidationError(f"required indexed property {path!r} is missing or empty")
    return meta


def project(data: dict[str, Any], paths: Sequence[str] | None) -> dict[str, Any]:
    """Keep only ``paths`` (dotted, inclusive) of ``data``; ``None`` keeps everything."""
    if paths is None:
        return data
    if not isinstance(paths, (list, tuple)):
        raise ValidationError("projection must be a list of property paths")
    out: dict[str, Any] = {}
    for path in paths:
        if not isinstance(path, str) or not path or path.startswith("$"):
            raise ValidationError(f"invalid projection path {path!r}")
        value = get_path(data, path)
        if value is not _MISSING:
            _set_path(out, path, value)
    return out
