"""Safe metadata queries: filter compiler, sort spec and keyset cursors (pure, no I/O).

A user filter names indexed props; :func:`compile_filter` turns it into a MongoDB filter
on the head's ``meta.<prop>`` fields and refuses everything else, so no caller-controlled
operator (``$where``, ``$regex``, ``$expr``, ``$function``, ...) ever reaches the server.

Paging is keyset-based: a page ends with the sort values of its last head, packed in an
opaque cursor (:func:`encode_cursor`); the next page asks for the heads strictly after
those values (:func:`after_filter`), which stays correct and fast while records change.

Sort order follows MongoDB: ``null`` and a missing field sort equal and lowest, then
numbers (``int`` and ``float`` compared by value), then strings (by UTF-8 bytes, which
is code point order), then ``false < true``. Within a sort key, ascending walks that order
up and descending walks it down. The keyset condition names every type bracket with
``$type`` instead of relying on cross-type comparisons: ``{"$gt": None}`` matches nothing
in MongoDB, and ``{"$gt": 5}`` never matches a string, so "after 5" must add the strings
and booleans explicitly. (``$type`` also keeps sort keys that hold one type, plus nulls,
correct on nx-27017, which compares across types; keys mixing types page correctly only
on MongoDB.) Array-valued props (declared ``name[]``) cannot
be sort keys: MongoDB sorts an array by its smallest or largest element, which has no
stable keyset.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from chronos_async._errors import ValidationError

__all__ = [
    "DEFAULT_SORT",
    "FILTER_OPERATORS",
    "after_filter",
    "compile_filter",
    "compile_sort",
    "decode_cursor",
    "encode_cursor",
    "scalar_value",
    "sort_values",
]

MAX_DEPTH = 4
"""Nesting levels of ``$and``/``$or`` a filter may use (the top level counts as one)."""
MAX_CLAUSES = 100
"""Prop conditions plus ``$and``/``$or`` branches in one filter."""
MAX_IN_ITEMS = 1000
MAX_SORT_KEYS = 4
MAX_CURSOR_CHARS = 32_768

FILTER_OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"})
"""The only comparison operators a user filter may use."""
_LOGICAL = ("$and", "$or")
DEFAULT_SORT: tuple[tuple[str, int], ...] = (("updated_us", -1), ("_id", -1))
"""Newest change first; ``_id`` makes the order total."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Same shape as the config's property paths, minus the trailing "[]": no component can
# start with "$" or be empty, so a prop can never turn into an operator or a bad path.
_PROP = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_HEAD_SORT_FIELDS = {"updated_at": "updated_us", "created_at": "created_us", "id": "id"}
# Head fields whose type is fixed; their keyset clauses need no other type brackets.
_TYPED_FIELDS: dict[str, type] = {"_id": str, "id": str, "updated_us": int, "created_us": int}
_CURSOR_ALPHABET = re.compile(r"[A-Za-z0-9_\-]+")
_CURSOR_VERSION = 1


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _prop_sets(indexed_props: Sequence[str]) -> tuple[frozenset[str], frozenset[str]]:
    """All queryable prop names, and those of them that hold arrays (declared ``x[]``)."""
    names: set[str] = set()
    arrays: set[str] = set()
    for declared in indexed_props:
        name = declared.removesuffix("[]")
        if _PROP.fullmatch(name):
            names.add(name)
            if name != declared:
                arrays.add(name)
    return frozenset(names), frozenset(arrays)


def scalar_value(value: object, where: str) -> Any:
    """``value`` as a plain JSON scalar, or :class:`ValidationError` naming ``where``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValidationError(f"{where}: integer {_shown(value)} does not fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{where}: {value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(f"{where}: string is not valid UTF-8 (lone surrogate)") from None
        return str(value)
    raise ValidationError(
        f"{where}: {type(value).__name__} is not allowed; use a string, number, bool or None"
    )


class _FilterCompiler:
    def __init__(self, indexed_props: Sequence[str]) -> None:
        self.props, self.arrays = _prop_sets(indexed_props)
        self.clauses = 0

    def count(self, n: int = 1) -> None:
        self.clauses += n
        if self.clauses > MAX_CLAUSES:
            raise ValidationError(f"filter has more than {MAX_CLAUSES} clauses")

    def node(self, node: object, depth: int) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise ValidationError(f"a filter must be a mapping, not {type(node).__name__}")
        if depth > MAX_DEPTH:
            raise ValidationError(f"filter nests $and/$or deeper than {MAX_DEPTH} levels")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValidationError(f"filter key {_shown(key)} is not a string")
            if key in _LOGICAL:
                if not isinstance(value, (list, tuple)) or not value:
                    raise ValidationError(f"{key} takes a non-empty list of filters")
                self.count(len(value))
                out[key] = [self.node(item, depth + 1) for item in value]
            elif key.startswith("$"):
                raise ValidationError(
                    f"operator {_shown(key)} is not allowed in a filter; "
                    "only $and and $or may appear outside a prop's condition"
                )
            else:
                if key not in self.props or not _PROP.fullmatch(key):
                    raise ValidationError(
                        f"{_shown(key)} is not an indexed prop of this collection; "
                        f"filterable props: {sorted(self.props)}"
                    )
                self.count()
                out[f"meta.{key}"] = self.condition(key, value)
        return out

    def condition(self, prop: str, value: object) -> Any:
        if not isinstance(value, Mapping):
            if isinstance(value, (list, tuple)):
                raise ValidationError(f"{prop!r}: to match one of several values use $in")
            scalar = scalar_value(value, f"filter on {prop!r}")
            # Both forms mean the same in MongoDB. nx-27017 needs the bare value to match
            # an array element, and {"$eq": v} everywhere else: it matches nothing for a
            # bare null inside $or/$and, or a bare 24-hex-digit string (taken for an id).
            if prop in self.arrays and scalar is not None:
                return scalar
            return {"$eq": scalar}
        if not value:
            raise ValidationError(
                f"{prop!r}: empty condition; equality to an object is not supported"
            )
        out: dict[str, Any] = {}
        for op, arg in value.items():
            if not isinstance(op, str) or op not in FILTER_OPERATORS:
                if isinstance(op, str) and op.startswith("$"):
                    raise ValidationError(
                        f"operator {_shown(op)} on {prop!r} is not allowed; "
                        f"allowed: {', '.join(sorted(FILTER_OPERATORS))}"
                    )
                raise ValidationError(
                    f"{prop!r}: equality to an object (key {_shown(op)}) is not supported"
                )
            where = f"{op} on {prop!r}"
            if op == "$exists":
                if not isinstance(arg, bool):
                    raise ValidationError(f"{where} takes true or false")
                out[op] = arg
            elif op in ("$in", "$nin"):
                if not isinstance(arg, (list, tuple)):
                    raise ValidationError(f"{where} takes a list of values")
                if len(arg) > MAX_IN_ITEMS:
                    raise ValidationError(f"{where} has more than {MAX_IN_ITEMS} values")
                out[op] = [scalar_value(item, where) for item in arg]
            else:
                out[op] = scalar_value(arg, where)
        return out


def compile_filter(
    filter: Mapping[str, Any] | None, indexed_props: Sequence[str]
) -> dict[str, Any]:
    """Compile a user filter over indexed props into a MongoDB filter on ``meta.<prop>``.

    A filter maps props to a value (equality) or to a condition using only
    :data:`FILTER_OPERATORS`; ``$and``/``$or`` take lists of filters. A prop declared
    ``tags[]`` is named ``tags`` and, as in MongoDB, equality matches any element.
    Values are JSON scalars (``$in``/``$nin`` take lists of them, ``$exists`` a bool).
    Anything else raises :class:`~chronos_async.ValidationError`; the input is not changed.
    The result is a ``find``/``$match`` filter (where a string value is always a literal).

    >>> compile_filter({"status": "active", "age": {"$gte": 18}}, ["status", "age"])
    {'meta.status': 'active', 'meta.age': {'$gte': 18}}
    """
    if filter is None:
        return {}
    return _FilterCompiler(indexed_props).node(filter, 1)


def _sort_field(key: object, props: frozenset[str], arrays: frozenset[str]) -> str:
    if not isinstance(key, str):
        raise ValidationError(f"sort key {_shown(key)} is not a string")
    # Head fields win over a prop of the same name: the API documents them as sort keys.
    if key in _HEAD_SORT_FIELDS:
        return _HEAD_SORT_FIELDS[key]
    if key in arrays:
        raise ValidationError(f"{key!r} holds an array and cannot be a sort key")
    if key in props:
        return f"meta.{key}"
    raise ValidationError(
        f"cannot sort by {_shown(key)}; use updated_at, created_at, id or an indexed prop "
        f"({sorted(props - arrays)})"
    )


def compile_sort(
    sort: Mapping[str, int] | Sequence[tuple[str, int]] | None, indexed_props: Sequence[str]
) -> list[tuple[str, int]]:
    """Compile a user sort spec into MongoDB sort keys with a unique ``_id`` tiebreaker.

    Keys are ``updated_at``, ``created_at``, ``id`` or an indexed (non-array) prop;
    directions are ``1`` or ``-1``; at most :data:`MAX_SORT_KEYS` keys. ``None`` or an
    empty spec means :data:`DEFAULT_SORT`.

    >>> compile_sort({"status": 1}, ["status"])
    [('meta.status', 1), ('_id', 1)]
    """
    spec: object = sort  # callers are untyped: check every shape, not just the hinted ones
    items: list[tuple[object, object]] = []
    if spec is None:
        return list(DEFAULT_SORT)
    if isinstance(spec, Mapping):
        items.extend(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        for entry in spec:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise ValidationError(f"sort entry {_shown(entry)} is not a (key, direction) pair")
            items.append((entry[0], entry[1]))
    else:
        raise ValidationError("sort must be a mapping or a list of (key, direction) pairs")
    if not items:
        return list(DEFAULT_SORT)
    if len(items) > MAX_SORT_KEYS:
        raise ValidationError(f"at most {MAX_SORT_KEYS} sort keys are allowed")
    props, arrays = _prop_sets(indexed_props)
    out: list[tuple[str, int]] = []
    for key, direction in items:
        field = _sort_field(key, props, arrays)
        if (
            isinstance(direction, bool)
            or not isinstance(direction, int)
            or direction not in (1, -1)
        ):
            raise ValidationError(f"sort direction of {key!r} must be 1 or -1")
        if any(field == seen for seen, _ in out):
            raise ValidationError(f"sort key {key!r} is given twice")
        out.append((field, int(direction)))
    if out[-1][0] != "_id":
        out.append(("_id", out[-1][1]))
    return out


def sort_values(doc: Mapping[str, Any], sort: Sequence[tuple[str, int]]) -> list[Any]:
    """The values of ``doc`` at each sort key (dotted paths); ``None`` where missing."""
    values: list[Any] = []
    for field, _ in sort:
        value: Any = doc
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values.append(value)
    return values


def _check_values(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> list[Any]:
    if not isinstance(values, (list, tuple)) or len(values) != len(sort):
        raise ValidationError(f"expected {len(sort)} sort values")
    return [
        scalar_value(v, f"cannot page by {field!r}")
        for (field, _), v in zip(sort, values, strict=True)
    ]


def _fingerprint(sort: Sequence[tuple[str, int]]) -> str:
    spec = orjson.dumps([[field, direction] for field, direction in sort])
    return hashlib.sha256(spec).hexdigest()[:16]


def encode_cursor(sort: list[tuple[str, int]], last_doc_values: list[Any]) -> str:
    """An opaque, URL-safe cursor for the page that follows a head with these sort values.

    The cursor carries a fingerprint of ``sort``, so it only works with the same order.
    """
    payload = {
        "v": _CURSOR_VERSION,
        "s": _fingerprint(sort),
        "k": _check_values(sort, last_doc_values),
    }
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, sort: list[tuple[str, int]]) -> list[Any]:
    """The sort values packed in ``cursor``; :class:`~chronos_async.ValidationError` when
    the cursor is malformed or was made for another sort order."""
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
        raise ValidationError("invalid cursor")
    if not _CURSOR_ALPHABET.fullmatch(cursor):
        raise ValidationError("invalid cursor: not URL-safe base64")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        raise ValidationError("invalid cursor: not a cursor made by this library") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"v", "s", "k"}
        or type(data["v"]) is not int
        or data["v"] != _CURSOR_VERSION
        or not isinstance(data["k"], list)
    ):
        raise ValidationError("invalid cursor: not a cursor made by this library")
    if data["s"] != _fingerprint(sort):
        raise ValidationError("cursor was made for a different sort order")
    return _check_values(sort, data["k"])


def _rank(value: Any) -> int:
    """The MongoDB type bracket of an allowed scalar: null < number < string < bool."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 3
    if isinstance(value, (int, float)):
        return 1
    return 2


def _whole_bracket(field: str, rank: int) -> dict[str, Any]:
    if rank == 0:
        return {field: {"$eq": None}}  # null and missing, which sort together
    return {field: {"$type": ("number", "string", "bool")[rank - 1]}}


def _strictly_after(field: str, direction: int, value: Any) -> dict[str, Any] | None:
    """A condition matching the values of ``field`` that come after ``value``, or None."""
    rank = _rank(value)
    op = "$gt" if direction == 1 else "$lt"
    fixed = _TYPED_FIELDS.get(field)
    if fixed is not None and type(value) is fixed:
        return {field: {op: value}}
    clauses: list[dict[str, Any]] = []
    if rank in (1, 2):
        clauses.append({field: {op: value}})
    elif rank == 3 and value is (direction == -1):
        # the other boolean; None and the last boolean have no successor in their bracket
        clauses.append({field: {"$eq": not value}})
    others = range(rank + 1, 4) if direction == 1 else range(rank - 1, -1, -1)
    clauses.extend(_whole_bracket(field, r) for r in others)
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def after_filter(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> dict[str, Any]:
    """The MongoDB condition for "strictly after ``values`` in ``sort`` order".

    For keys k1..kn it is the ``$or`` over i of (k1..k(i-1) equal to their values, and ki
    strictly after its value in its direction). ``None`` equals null and missing; see the
    module docstring for the order across types.
    """
    checked = _check_values(sort, values)
    branches: list[dict[str, Any]] = []
    for i, (field, direction) in enumerate(sort):
        strict = _strictly_after(field, direction, checked[i])
        if strict is None:
            continue
        prefix = [{f: {"$eq": v}} for (f, _), v in zip(sort[:i], checked[:i], strict=True)]
        if prefix:
            branches.append({"$and": [*prefix, strict]})
        else:  # the first key's alternatives join the top-level $or directly
            branches.extend(strict.get("$or", [strict]))
    if not branches:
        return {"_id": {"$in": []}}  # nothing sorts after the last possible value
    return branches[0] if len(branches) == 1 else {"$or": branches}
