"""Paths of content values in a record's data (pure, no I/O).

A configured path (``base64_props``) is dotted; a segment ending in ``[]`` is an array
whose every element is visited: ``avatar``, ``files[]``, ``attachments[].data``. A
concrete path names one value: ``avatar``, ``files[0]``, ``attachments[2].data``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chronos_async._errors import ValidationError

__all__ = [
    "Segment",
    "Slot",
    "check_prop_paths",
    "locate",
    "parse_concrete_path",
    "parse_prop",
    "touches",
]

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PROP = re.compile(rf"{_SEGMENT}(\[\])?(\.{_SEGMENT}(\[\])?)*")
_CONCRETE = re.compile(rf"({_SEGMENT})((\[\d+\])*)")

#: One step of a configured path: a property name, and whether it is an array.
Segment = tuple[str, bool]


def parse_prop(path: str) -> tuple[Segment, ...]:
    """The segments of a configured path (``"a[].b"`` -> ``(("a", True), ("b", False))``)."""
    if not isinstance(path, str) or not _PROP.fullmatch(path):
        raise ValidationError(
            f"invalid base64 property path {path!r}: dotted names, each optionally "
            "followed by [] for an array (avatar, files[], attachments[].data)"
        )
    return tuple((part.removesuffix("[]"), part.endswith("[]")) for part in path.split("."))


def check_prop_paths(paths: list[str]) -> None:
    """Refuse invalid paths, and a path inside another (one value cannot be both)."""
    parsed = {path: tuple(name for name, _ in parse_prop(path)) for path in paths}
    for path, names in parsed.items():
        for other, other_names in parsed.items():
            if other != path and names[: len(other_names)] == other_names:
                raise ValidationError(
                    f"base64 property {path!r} lies inside base64 property {other!r}"
                )


def parse_concrete_path(path: str) -> tuple[str | int, ...]:
    """A concrete path of one value: ``"attachments[2].data"`` -> ``("attachments", 2, "data")``."""
    steps: list[str | int] = []
    for part in path.split(".") if isinstance(path, str) else [""]:
        match = _CONCRETE.fullmatch(part)
        if match is None:
            raise ValidationError(
                f"invalid content path {path!r}: use names and indexes, like "
                "'avatar', 'files[0]' or 'attachments[2].data'"
            )
        steps.append(match[1])
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match[2]))
    return tuple(steps)


def _render(steps: tuple[str | int, ...]) -> str:
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one content value sits: its concrete path, its container and its key."""

    path: str
    container: dict[str, Any] | list[Any]
    key: str | int

    @property
    def value(self) -> Any:
        """The value at the slot."""
        return self.container[self.key]  # type: ignore[index]

    def set(self, value: Any) -> None:
        """Replace the value at the slot."""
        self.container[self.key] = value  # type: ignore[index]


def locate(
    data: dict[str, Any], segments: tuple[Segment, ...], *, copy: bool = False
) -> Iterator[Slot]:
    """Every slot of ``data`` a configured path reaches (missing and ``null`` skipped).

    With ``copy`` every container on the way is replaced by a shallow copy first, so a
    caller can set slots without touching the containers the caller of the library
    passed in (``data`` itself must already be a copy).
    """
    yield from _walk(data, segments, 0, (), copy)


def _walk(
    container: dict[str, Any],
    segments: tuple[Segment, ...],
    index: int,
    steps: tuple[str | int, ...],
    copy: bool,
) -> Iterator[Slot]:
    name, is_array = segments[index]
    value = container.get(name)
    if value is None:
        return
    here = (*steps, name)
    last = index == len(segments) - 1
    if not is_array:
        if last:
            yield Slot(_render(here), container, name)
            return
        if not isinstance(value, dict):
            raise ValidationError(f"{_render(here)} must be an object (base64_props)")
        if copy:
            value = container[name] = dict(value)
        yield from _walk(value, segments, index + 1, here, copy)
        return
    if not isinstance(value, list):
        raise ValidationError(f"{_render(here)} must be an array (base64_props)")
    if copy:
        value = container[name] = list(value)
    for i, element in enumerate(value):
        if element is None:
            continue
        if last:
            yield Slot(_render((*here, i)), value, i)
            continue
        if not isinstance(element, dict):
            raise ValidationError(f"{_render((*here, i))} must be an object (base64_props)")
        if copy:
            element = value[i] = dict(element)
        yield from _walk(element, segments, index + 1, (*here, i), copy)


def touches(patch: Any, segments: tuple[Segment, ...]) -> bool:
    """Whether merging ``patch`` (enrich) can change or meet a value at the path.

    False when the patch does not reach the path, or replaces a container above it
    with a non-object (the old value is dropped either way): merging such a patch into
    the stored form (references) gives the same result as into the written form.
    """
    node = patch
    for name, is_array in segments:
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
        if is_array:
            return True  # arrays are unioned: their elements are compared
    # A scalar or null replaces the old value whatever its form; an object would be
    # merged into the reference object instead of replacing the base64 string.
    return isinstance(node, dict)
