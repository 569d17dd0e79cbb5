"""Deep merge with array union, the rule ``enrich`` applies to a record's data (pure, no I/O).

``deep_merge(base, patch)`` returns a new object; for each ``(key, value)`` of the patch:

- the base has no such key: the value is set (a deep copy of it);
- both values are objects: they are merged recursively, by these same rules;
- both values are arrays: they are **unioned**: the base array's elements in order (its
  own duplicates kept), then each patch element that is not JSON-equal to an element
  already present (so a patch's own duplicates are dropped too);
- anything else: the patch value **replaces** the base value. That covers scalars, a
  ``None`` (the way to clear a value: keys are never removed by a merge) and a value of
  another type (an object replacing an array, a scalar replacing an object, ...).

Example::

    >>> deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": "old"},
    ...            {"a": {"y": [2, 3, True], "z": None}, "b": "new"})
    {'a': {'x': 1, 'y': [1, 2, 3, True], 'z': None}, 'b': 'new'}

JSON equality (:func:`json_equal`) is deep and structural, not Python's ``==``: ``True``
is not ``1`` (Python says ``True == 1``; JSON's ``true`` is not a number), while ``1`` and
``1.0`` are the same JSON number, as they were for the original's ``===``. Arrays compare
in order, objects by key set and values. ``tuple`` counts as an array, any ``Mapping`` as
an object; leaf types are not checked here (the codec refuses non-JSON values later).

Sharing: the inputs are never mutated. Every container on a path the patch touches is
new, and whatever is taken from the patch is deep-copied, so changing the patch later
cannot change the result. Subtrees of the base that the patch does not touch are
**shared** with the result (copy-on-write), which keeps a small patch on a large record
cheap; a caller that wants to mutate the result should not mutate the base through it
(the library only encodes it).

Differences from the original (``src/util/merge.ts``, inventory 4.4.1), by design: arrays
union by JSON equality only (objects inside arrays are not matched and merged by their
``id``/``_id``), and a non-array value patched onto an array replaces it instead of being
appended as a one-element array.

Associativity: merging is sequential (``merge_all``), and merging two patches first
gives the same result, ``deep_merge(deep_merge(b, p1), p2) == deep_merge(b,
deep_merge(p1, p2))``, for every base ``b`` whenever ``p1`` and ``p2`` are *kind
compatible*: at every path both hold (reached through objects in both), ``p2``'s value
is not a container, or both are objects, or both are arrays. Otherwise it can fail:
``b = {"a": [1]}``, ``p1 = {"a": None}``, ``p2 = {"a": [2]}`` gives ``{"a": [2]}`` one way
and ``{"a": [1, 2]}`` the other (``p1`` clears what ``p2`` would have unioned with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import copysign
from typing import Any

from chronos_async._errors import ValidationError

__all__ = ["deep_merge", "json_copy", "json_equal", "json_key", "merge_all"]

#: Below this many element comparisons a union scans linearly; above it, it hashes.
_LINEAR_UNION_MAX = 64


def _is_object(value: Any) -> bool:
    # The exact-type test first: Mapping's ABC check is slower and almost never needed.
    return type(value) is dict or isinstance(value, Mapping)


def _is_array(value: Any) -> bool:
    # Not Sequence: a str is a Sequence but a JSON scalar.
    return isinstance(value, (list, tuple))


def json_equal(a: Any, b: Any, *, exact: bool = False) -> bool:
    """Deep JSON equality: ``bool`` is distinct from numbers, arrays compare in order.

    With ``exact=False`` numbers compare by value (``1 == 1.0``, ``0.0 == -0.0``), as JSON
    and the original did. With ``exact=True`` they must also have the same Python type
    and sign, i.e. encode to the same canonical bytes (what a diff must reproduce).
    """
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not exact:
            return a == b
        if isinstance(a, float) != isinstance(b, float):
            return False
        # -0.0 == 0.0 in Python, but the canonical bytes differ ("-0.0" vs "0.0").
        return a == b and (not isinstance(a, float) or copysign(1.0, a) == copysign(1.0, b))
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_object(a):
        if not _is_object(b) or len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not json_equal(value, b[key], exact=exact):
                return False
        return True
    if _is_array(a):
        if not _is_array(b) or len(a) != len(b):
            return False
        return all(json_equal(x, y, exact=exact) for x, y in zip(a, b, strict=True))
    return ta is tb and bool(a == b)


def json_copy(value: Any, *, where: str = "value") -> Any:
    """A deep copy of a JSON value: every object becomes a new ``dict``, every array a
    new ``list`` (tuples included); leaves (immutable) are shared.

    Raises :class:`~chronos_async.ValidationError` on an object key that is not a
    ``str``; ``where`` names the value in that message.
    """
    if _is_object(value):
        copied: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{where} has a non-string object key {key!r}")
            copied[key] = json_copy(item, where=where)
        return copied
    if _is_array(value):
        return [json_copy(item, where=where) for item in value]
    return value


class _Unkeyable(ValidationError):
    """A value holds a leaf type that is not JSON (the hashing fast path cannot key it)."""


def json_key(value: Any, *, exact: bool = False) -> Any:
    """A hashable key: ``json_key(a) == json_key(b)`` exactly when ``json_equal(a, b)``.

    With ``exact`` the key follows ``json_equal(.., exact=True)``: ``1`` and ``1.0``, and
    ``0.0`` and ``-0.0``, get different keys. Raises a ``ValidationError`` for a value
    that is not JSON.
    """
    if value is None:
        return (0,)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return (1, value)
    if isinstance(value, int) or (isinstance(value, float) and not exact):
        # 1 and 1.0 (and 0.0 and -0.0) are equal and hash alike, as json_equal wants.
        return (2, value)
    if isinstance(value, float):
        return (3, repr(value))  # repr is exact and tells -0.0 from 0.0
    if isinstance(value, str):
        return (4, value)
    if _is_object(value):
        return (5, frozenset((k, json_key(v, exact=exact)) for k, v in value.items()))
    if _is_array(value):
        return (6, tuple(json_key(v, exact=exact) for v in value))
    raise _Unkeyable(f"{type(value).__name__} is not a JSON type")


def _union(base: Sequence[Any], patch: Sequence[Any]) -> list[Any]:
    """``base`` in order, then each patch element not JSON-equal to one already present."""
    result = list(base)
    if not patch:
        return result
    if len(base) * len(patch) > _LINEAR_UNION_MAX:
        try:
            seen = {json_key(item) for item in result}
            for item in patch:
                key = json_key(item)
                if key not in seen:
                    seen.add(key)
                    result.append(json_copy(item, where="patch"))
            return result
        except _Unkeyable:
            # A non-JSON leaf (the codec rejects it later): fall back to the scan.
            result = list(base)
    for item in patch:
        if not any(json_equal(item, present) for present in result):
            result.append(json_copy(item, where="patch"))
    return result


def _merge_object(base: Mapping[str, Any], patch: Mapping[Any, Any]) -> dict[str, Any]:
    # A shallow copy: only the keys the patch names get new values, the rest is shared.
    result = dict(base)
    for key, value in patch.items():
        if not isinstance(key, str):
            raise ValidationError(f"patch has a non-string object key {key!r}")
        if key not in result:
            result[key] = json_copy(value, where="patch")
            continue
        current = result[key]
        if _is_object(current) and _is_object(value):
            result[key] = _merge_object(current, value)
        elif _is_array(current) and _is_array(value):
            result[key] = _union(current, value)
        else:
            result[key] = json_copy(value, where="patch")
    return result


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``base`` by the rules of this module; return a new dict.

    Neither input is mutated; untouched subtrees of ``base`` are shared with the result.
    Raises :class:`~chronos_async.ValidationError` when ``base`` is not a dict, the patch
    is not a mapping, has a non-string key at any depth, or is nested too deeply.
    """
    if not isinstance(base, dict):
        raise ValidationError(f"the base of a merge must be a dict, not {type(base).__name__}")
    if not isinstance(patch, Mapping):
        raise ValidationError(f"a patch must be a JSON object, not {type(patch).__name__}")
    try:
        return _merge_object(base, patch)
    except RecursionError:
        # The codec's depth limit would refuse such a patch anyway; say so in its terms.
        raise ValidationError("patch is nested too deeply") from None


def merge_all(base: dict[str, Any], patches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply ``patches`` to ``base`` in order with :func:`deep_merge`; return a new dict.

    An empty sequence gives a (shallow) copy of ``base``: a batch with no patch is still
    valid. Raises :class:`~chronos_async.ValidationError` when ``patches`` is not a
    sequence (a single mapping must be wrapped in a list) or a patch is invalid.
    """
    if isinstance(patches, (str, bytes, Mapping)) or not isinstance(patches, Sequence):
        raise ValidationError(
            f"patches must be a sequence of JSON objects, not {type(patches).__name__}"
        )
    if not isinstance(base, dict):
        raise ValidationError(f"the base of a merge must be a dict, not {type(base).__name__}")
    result = dict(base)
    for index, patch in enumerate(patches):
        try:
            result = deep_merge(result, patch)
        except ValidationError as exc:
            raise ValidationError(f"patch {index}: {exc}") from None
    return result
