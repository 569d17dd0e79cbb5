"""Counter-rule predicates: the ``list_by_meta`` filter language, evaluated in memory (pure).

A predicate maps dotted paths to a value (equality) or to a condition built from
:data:`~chronos_async._filters.FILTER_OPERATORS`; ``$and``/``$or`` take lists of
predicates; the entries of one mapping must all hold. Matching follows MongoDB's ``find``
so that a rule counts exactly the records ``list_by_meta`` would return with the same
filter:

- a missing path and ``null`` are equal (``{"x": None}`` matches both), ``$exists``
  tells them apart, and ``$ne``/``$nin`` match a missing path;
- a path that holds an array matches when any element does (and ``$ne``/``$nin`` only
  when no element does);
- comparisons never cross types: numbers (``int`` and ``float`` by value, ``bool`` is
  not a number), strings (code point order), booleans (``false < true``) are separate
  brackets; ``{"$gte": None}``/``{"$lte": None}`` match ``null`` and missing,
  ``{"$gt": None}``/``{"$lt": None}`` match nothing.

Compilation rejects everything else with :class:`~chronos_async.ValidationError` (the
same limits as the filter compiler), so a rule can never smuggle in ``$where`` or
``$regex``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chronos_async._errors import ValidationError
from chronos_async._filters import (
    FILTER_OPERATORS,
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_IN_ITEMS,
    scalar_value,
)

__all__ = ["Predicate", "lookup", "MISSING"]

MISSING: Any = object()
"""What :func:`lookup` returns for a path that is not there."""

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def lookup(doc: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` of nested mappings, or :data:`MISSING`."""
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return MISSING
        current = current[part]
    return current


def _bracket(value: Any) -> int:
    """MongoDB's comparison type order, for the types a predicate can hold."""
    if value is None or value is MISSING:
        return 0
    if isinstance(value, bool):
        return 3
    if isinstance(value, (int, float)):
        return 1
    if isinstance(value, str):
        return 2
    return 4  # objects and anything else: never equal or ordered against a scalar


def _equal(value: Any, arg: Any) -> bool:
    if arg is None:
        return value is None or value is MISSING
    return _bracket(value) == _bracket(arg) and value == arg


def _ordered(op: str, value: Any, arg: Any) -> bool:
    if arg is None:
        return op in ("$gte", "$lte") and (value is None or value is MISSING)
    if _bracket(value) != _bracket(arg):
        return False
    return bool(_COMPARE[op](value, arg))


def _candidates(value: Any) -> list[Any]:
    """The values a condition is tried against: an array's elements, or the value."""
    return list(value) if isinstance(value, list) else [value]


@dataclass(frozen=True, slots=True)
class _Condition:
    path: str
    ops: tuple[tuple[str, Any], ...]

    def holds(self, doc: Mapping[str, Any]) -> bool:
        value = lookup(doc, self.path)
        return all(self._one(op, arg, value) for op, arg in self.ops)

    @staticmethod
    def _one(op: str, arg: Any, value: Any) -> bool:
        if op == "$exists":
            return (value is not MISSING) is bool(arg)
        if op == "$ne":
            return not any(_equal(v, arg) for v in _candidates(value))
        if op == "$nin":
            return not any(_equal(v, a) for v in _candidates(value) for a in arg)
        if op == "$eq":
            return any(_equal(v, arg) for v in _candidates(value))
        if op == "$in":
            return any(_equal(v, a) for v in _candidates(value) for a in arg)
        return any(_ordered(op, v, arg) for v in _candidates(value))


@dataclass(frozen=True, slots=True)
class Predicate:
    """A compiled predicate: every condition and every ``$and`` holds, and one ``$or`` branch
    of each ``$or`` list does. The empty predicate matches every record."""

    conditions: tuple[_Condition, ...] = ()
    all_of: tuple[Predicate, ...] = ()
    any_of: tuple[tuple[Predicate, ...], ...] = ()

    @classmethod
    def compile(cls, when: Mapping[str, Any]) -> Predicate:
        """Check ``when`` and compile it (:class:`ValidationError` when it is not valid)."""
        return _Compiler().node(when, 1)

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` satisfies the predicate."""
        return (
            all(c.holds(doc) for c in self.conditions)
            and all(p.matches(doc) for p in self.all_of)
            and all(any(p.matches(doc) for p in branch) for branch in self.any_of)
        )


class _Compiler:
    def __init__(self) -> None:
        self.clauses = 0

    def count(self, n: int = 1) -> None:
        self.clauses += n
        if self.clauses > MAX_CLAUSES:
            raise ValidationError(f"counter rule has more than {MAX_CLAUSES} clauses")

    def node(self, node: object, depth: int) -> Predicate:
        if not isinstance(node, Mapping):
            raise ValidationError(f"a counter rule's 'when' must be a mapping, not {node!r:.60}")
        if depth > MAX_DEPTH:
            raise ValidationError(f"counter rule nests $and/$or deeper than {MAX_DEPTH} levels")
        conditions: list[_Condition] = []
        all_of: list[Predicate] = []
        any_of: list[tuple[Predicate, ...]] = []
        for key, value in node.items():
            if key in ("$and", "$or"):
                if not isinstance(value, (list, tuple)) or not value:
                    raise ValidationError(f"{key} takes a non-empty list of conditions")
                self.count(len(value))
                branches = tuple(self.node(item, depth + 1) for item in value)
                if key == "$and":
                    all_of.extend(branches)
                else:
                    any_of.append(branches)
            elif not isinstance(key, str) or not _PATH.fullmatch(key):
                raise ValidationError(
                    f"{key!r:.60} is not allowed in a counter rule: use a dotted path, $and or $or"
                )
            else:
                self.count()
                conditions.append(_Condition(key, self.condition(key, value)))
        return Predicate(tuple(conditions), tuple(all_of), tuple(any_of))

    def condition(self, path: str, value: object) -> tuple[tuple[str, Any], ...]:
        if not isinstance(value, Mapping):
            if isinstance(value, (list, tuple)):
                raise ValidationError(f"{path!r}: to match one of several values use $in")
            return (("$eq", scalar_value(value, f"rule condition on {path!r}")),)
        if not value:
            raise ValidationError(
                f"{path!r}: empty condition; equality to an object is not supported"
            )
        ops: list[tuple[str, Any]] = []
        for op, arg in value.items():
            if op not in FILTER_OPERATORS:
                raise ValidationError(
                    f"operator {op!r:.40} on {path!r} is not allowed in a counter rule; "
                    f"allowed: {', '.join(sorted(FILTER_OPERATORS))}"
                )
            where = f"{op} on {path!r}"
            if op == "$exists":
                if not isinstance(arg, bool):
                    raise ValidationError(f"{where} takes true or false")
                ops.append((op, arg))
            elif op in ("$in", "$nin"):
                ops.append((op, _values(arg, where)))
            else:
                ops.append((op, scalar_value(arg, where)))
        return tuple(ops)


def _values(arg: object, where: str) -> tuple[Any, ...]:
    if not isinstance(arg, (list, tuple)):
        raise ValidationError(f"{where} takes a list of values")
    if len(arg) > MAX_IN_ITEMS:
        raise ValidationError(f"{where} has more than {MAX_IN_ITEMS} values")
    items: Sequence[Any] = arg
    return tuple(scalar_value(item, where) for item in items)
