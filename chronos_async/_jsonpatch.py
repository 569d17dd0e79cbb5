"""JSON Patch (RFC 6902) with JSON Pointer paths (RFC 6901): diff and apply (pure, no I/O).

``make_patch(old, new)`` returns a list of ``add`` / ``remove`` / ``replace`` operations
such that ``apply_patch(old, make_patch(old, new))`` is ``new`` exactly: same Python
types (``True`` is not ``1``, ``1`` is not ``1.0``, ``-0.0`` is not ``0.0``), so the result
encodes to the same canonical bytes. Objects are diffed key by key; arrays lose their
common prefix and suffix, then the rest is aligned on a longest common subsequence and
the unmatched runs become nested diffs (paired by position), removes (highest index
first, so earlier indices stay valid) or adds. When that rest is too large for the
quadratic alignment (more than ``_MAX_LCS_CELLS`` element pairs) the whole array is
replaced instead.

``apply_patch(doc, ops)`` implements all six operations (``add``, ``remove``,
``replace``, ``move``, ``copy``, ``test``), ``-`` as the end of an array for ``add``, and
the array-index syntax of RFC 6901 (no leading zeros, no sign). Any invalid operation or
missing target raises :class:`~chronos_async.ValidationError`; ``doc`` is never mutated
(the patch applies to a copy, so a failed patch leaves nothing half-applied). ``test``
compares numbers by value, as the RFC says (``1`` tests equal to ``1.0``, not to
``true``). Operation members the RFC does not define are ignored, as it requires.

Example::

    >>> make_patch({"a/b": [1, 2, 3], "c": 1}, {"a/b": [1, 3, 4]})
    [{'op': 'remove', 'path': '/c'}, {'op': 'remove', 'path': '/a~1b/1'},
     {'op': 'add', 'path': '/a~1b/2', 'value': 4}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from chronos_async._errors import ValidationError
from chronos_async._merge import json_copy, json_equal, json_key

__all__ = ["apply_patch", "make_patch"]

#: The largest (unmatched old elements) x (unmatched new elements) an array diff aligns
#: with its O(n*m) table; beyond it the array is replaced whole (the table costs ~50 ns
#: a cell on CPython 3.11, so well under a second at the cap).
_MAX_LCS_CELLS = 1_000_000

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


# --- JSON Pointer --------------------------------------------------------------------


def _escape(token: str) -> str:
    # "~" first, or the "~" of a "~1" just written would be escaped again.
    return token.replace("~", "~0").replace("/", "~1")


def _parse_pointer(pointer: Any, where: str) -> list[str]:
    if not isinstance(pointer, str):
        raise ValidationError(f"{where}: a JSON pointer must be a string, not {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValidationError(f"{where}: JSON pointer {pointer!r} does not start with '/'")
    tokens = pointer.split("/")[1:]
    for position, token in enumerate(tokens):
        if "~" in token:
            if _BAD_ESCAPE.search(token):
                raise ValidationError(f"{where}: JSON pointer {pointer!r} has a bad '~' escape")
            # "~1" first: "~01" is the token "~1", not "/".
            tokens[position] = token.replace("~1", "/").replace("~0", "~")
    return tokens


# --- make_patch ----------------------------------------------------------------------


def make_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``old`` into ``new`` (``[]`` when they are equal).

    The values in the operations are copies: mutating ``new`` later does not change the
    patch. Raises :class:`~chronos_async.ValidationError` on a non-JSON value or a
    non-string object key met while diffing, or on nesting too deep to walk.
    """
    ops: list[dict[str, Any]] = []
    try:
        _diff(old, new, "", ops)
    except RecursionError:
        raise ValidationError("value is nested too deeply to diff") from None
    return ops


def _is_object(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _diff(old: Any, new: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if _is_object(old) and _is_object(new):
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _child_path(path, key)})
        for key, value in new.items():
            child = _child_path(path, key)
            if key in old:
                _diff(old[key], value, child, ops)
            else:
                ops.append({"op": "add", "path": child, "value": json_copy(value)})
    elif _is_array(old) and _is_array(new):
        _diff_array(old, new, path, ops)
    elif not json_equal(old, new, exact=True):
        ops.append({"op": "replace", "path": path, "value": json_copy(new)})


def _child_path(path: str, key: Any) -> str:
    if not isinstance(key, str):
        raise ValidationError(f"object at {path or '/'!r} has a non-string key {key!r}")
    return f"{path}/{_escape(key)}"


def _diff_array(
    old: Sequence[Any], new: Sequence[Any], path: str, ops: list[dict[str, Any]]
) -> None:
    # Trimming the common ends first keeps the quadratic part to the region that changed.
    start, end_old, end_new = 0, len(old), len(new)
    while start < end_old and start < end_new and json_equal(old[start], new[start], exact=True):
        start += 1
    while (
        end_old > start
        and end_new > start
        and json_equal(old[end_old - 1], new[end_new - 1], exact=True)
    ):
        end_old -= 1
        end_new -= 1
    removed, added = old[start:end_old], new[start:end_new]
    if len(removed) * len(added) > _MAX_LCS_CELLS:
        ops.append({"op": "replace", "path": path, "value": json_copy(new)})
        return
    # Walk the alignment left to right. ``index`` is where the next unmatched run sits in
    # the array as patched so far: everything before it already equals ``new``.
    index = start
    i = j = 0
    for match_i, match_j in [*_lcs(removed, added), (len(removed), len(added))]:
        _diff_run(removed[i:match_i], added[j:match_j], path, index, ops)
        index += match_j - j + 1
        i, j = match_i + 1, match_j + 1


def _diff_run(
    olds: Sequence[Any], news: Sequence[Any], path: str, index: int, ops: list[dict[str, Any]]
) -> None:
    """Ops turning the run ``olds`` (at ``index``) into ``news``."""
    paired = min(len(olds), len(news))
    for offset in range(paired):
        # Position by position: an edited element gets a nested diff, not remove + add.
        _diff(olds[offset], news[offset], f"{path}/{index + offset}", ops)
    for offset in range(len(olds) - 1, paired - 1, -1):
        ops.append({"op": "remove", "path": f"{path}/{index + offset}"})
    for offset in range(paired, len(news)):
        ops.append(
            {"op": "add", "path": f"{path}/{index + offset}", "value": json_copy(news[offset])}
        )


def _lcs(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` of a longest common subsequence of ``a`` and ``b``."""
    if not a or not b:
        return []
    # Elements become small ints so the table loop compares ints, not nested values.
    ids: dict[Any, int] = {}
    ka = [ids.setdefault(json_key(x, exact=True), len(ids)) for x in a]
    kb = [ids.get(json_key(y, exact=True), -1) for y in b]
    if all(k < 0 for k in kb):
        return []
    n, m = len(ka), len(kb)
    # table[i][j] is the LCS length of a[i:] and b[j:].
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below, x = table[i], table[i + 1], ka[i]
        for j in range(m - 1, -1, -1):
            if x == kb[j]:
                row[j] = below[j + 1] + 1
            else:
                down, right = below[j], row[j + 1]
                row[j] = down if down >= right else right
    pairs: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if ka[i] == kb[j]:
            pairs.append((i, j))
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


# --- apply_patch ---------------------------------------------------------------------


def apply_patch(doc: Any, ops: Sequence[Mapping[str, Any]]) -> Any:
    """Apply RFC 6902 ``ops`` to a copy of ``doc`` and return it; ``doc`` is not mutated.

    Raises :class:`~chronos_async.ValidationError` when ``ops`` is not a sequence of
    operation objects, an operation is malformed or unknown, a path or ``from`` does not
    resolve as the operation requires, or a ``test`` fails; the message names the
    operation's index.
    """
    if isinstance(ops, (str, bytes, Mapping)) or not isinstance(ops, Sequence):
        raise ValidationError(f"a JSON patch must be a list of operations, not {ops!r}")
    try:
        result = json_copy(doc, where="document")
        for index, op in enumerate(ops):
            result = _apply_one(result, op, index)
    except RecursionError:
        raise ValidationError("document or patch is nested too deeply") from None
    return result


def _apply_one(doc: Any, op: Any, index: int) -> Any:
    if not isinstance(op, Mapping):
        raise ValidationError(f"operation {index} is not an object: {op!r}")
    name = op.get("op")
    where = f"operation {index} ({name!r} at {op.get('path')!r})"
    tokens = _parse_pointer(op.get("path"), where)
    if name == "add":
        return _add(doc, tokens, json_copy(_value(op, where)), where)
    if name == "remove":
        _remove(doc, tokens, where)
        return doc
    if name == "replace":
        value = json_copy(_value(op, where))
        if not tokens:
            return value
        parent, last = _get(doc, tokens[:-1], where), tokens[-1]
        if isinstance(parent, dict):
            if last not in parent:
                raise ValidationError(f"{where}: no member {last!r}")
            parent[last] = value  # in place: the member keeps its position
        elif isinstance(parent, list):
            parent[_index(last, len(parent), where, for_add=False)] = value
        else:
            raise ValidationError(f"{where}: the parent of the target is not a container")
        return doc
    if name == "move":
        source = _parse_pointer(op.get("from"), where)
        if source == tokens:
            _get(doc, tokens, where)  # a no-op, but the location must exist
            return doc
        if tokens[: len(source)] == source:
            raise ValidationError(f"{where}: cannot move a value into one of its own children")
        return _add(doc, tokens, _remove(doc, source, where), where)
    if name == "copy":
        source = _parse_pointer(op.get("from"), where)
        return _add(doc, tokens, json_copy(_get(doc, source, where)), where)
    if name == "test":
        if not json_equal(_get(doc, tokens, where), _value(op, where)):
            raise ValidationError(f"{where}: test failed")
        return doc
    raise ValidationError(f"operation {index}: unknown op {name!r}")


def _value(op: Mapping[str, Any], where: str) -> Any:
    if "value" not in op:
        raise ValidationError(f"{where}: the operation has no 'value'")
    return op["value"]


def _index(token: str, length: int, where: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return length
    if not _ARRAY_INDEX.fullmatch(token):
        raise ValidationError(f"{where}: {token!r} is not an array index")
    position = int(token)
    # add may insert just past the end; every other operation needs an existing element.
    if position > length or (position == length and not for_add):
        raise ValidationError(f"{where}: index {position} is out of range (length {length})")
    return position


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    value = doc
    for token in tokens:
        if _is_object(value):
            if token not in value:
                raise ValidationError(f"{where}: no member {token!r}")
            value = value[token]
        elif _is_array(value):
            value = value[_index(token, len(value), where, for_add=False)]
        else:
            raise ValidationError(f"{where}: cannot look up {token!r} in a scalar")
    return value


def _add(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value  # "add" at the root replaces the whole document
    parent, last = _get(doc, tokens[:-1], where), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value  # an existing member is replaced, per the RFC
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), where, for_add=True), value)
    else:
        raise ValidationError(f"{where}: the parent of the target is not a container")
    return doc


def _remove(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        raise ValidationError(f"{where}: cannot remove the whole document")
    parent, last = _get(doc, tokens[:-1], where), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ValidationError(f"{where}: no member {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), where, for_add=False))
    raise ValidationError(f"{where}: the parent of the target is not a container")
