"""What one write adds to its collection's totals (pure, no I/O).

Every published version carries its own contribution (``cnt`` on the version document),
computed once, under the record's lease, from the version and the state it replaces:

- one event count for its kind of write (``created``, ``updated``, ``deleted``,
  ``restored``, ``enriched``);
- ``r_<rule>`` for each ``events`` rule whose ``on`` includes the write and whose
  predicate the record matches (a write that deletes is judged by the record it
  removed);
- ``g_<rule>`` (+1 or -1) for each ``gauge`` rule the record starts or stops matching
  (a deleted record matches nothing).

The names of the rules the new state matches (``rm``) go with the version onto the head,
so the next write knows what it replaces without reading a payload. Totals are then the
sum of the contributions of the published versions: a withdrawn claim, a failed or a no-op
write publishes nothing and counts nothing, and :func:`contribution` is also what a
recount replays over the version index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from chronos_async._sections import CounterRule, CounterRules
from chronos_async.counters._predicate import MISSING, Predicate, lookup

__all__ = [
    "EVENT_FIELDS",
    "Change",
    "Contribution",
    "Rule",
    "RuleSet",
    "contribution",
    "retire",
    "value_hash",
]

#: The event count each kind of write (the version's ``op``) adds to.
EVENT_FIELDS: dict[str, str] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "restore": "restored",
    "enrich": "enriched",
}
_ON_NAMES = {
    "create": "CREATE",
    "update": "UPDATE",
    "delete": "DELETE",
    "restore": "RESTORE",
    "enrich": "ENRICH",
}


def value_hash(value: Any) -> str:
    """A stable digest of a JSON value (canonical JSON, SHA-256, 32 hex digits)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled :class:`~chronos_async.CounterRule`."""

    name: str
    kind: str
    on: frozenset[str] | None
    scope: str
    predicate: Predicate
    count_unique: str | None
    collections: frozenset[str] | None

    @classmethod
    def from_config(cls, rule: CounterRule) -> Rule:
        return cls(
            name=rule.name,
            kind=rule.kind,
            on=None if rule.on is None else frozenset(rule.on),
            scope=rule.scope,
            predicate=Predicate.compile(rule.when),
            count_unique=rule.count_unique,
            collections=None if rule.collections is None else frozenset(rule.collections),
        )

    @property
    def field(self) -> str:
        """The totals field this rule counts into."""
        return ("g_" if self.kind == "gauge" else "r_") + self.name


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules that apply to one collection."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def from_config(cls, config: CounterRules, collection: str | None = None) -> RuleSet:
        """The configured rules (those that apply to ``collection``, when given)."""
        compiled = (Rule.from_config(r) for r in config.rules)
        return cls(
            tuple(
                r
                for r in compiled
                if collection is None or r.collections is None or collection in r.collections
            )
        )

    @property
    def needs_payload(self) -> bool:
        """Whether some rule looks into the payload (not only the indexed props)."""
        return any(r.scope == "payload" for r in self.rules)

    @property
    def unique_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.count_unique is not None)


@dataclass(frozen=True, slots=True)
class Change:
    """A write as the counters see it: its kind, the new state and what it replaces.

    ``meta`` is the new version's indexed props and ``data`` its payload (``None`` when no
    rule needs it). ``prev_live`` is whether the replaced state was a live (not deleted)
    record, ``prev_matched`` the rules that state matched.
    """

    op: str
    deleted: bool
    meta: Mapping[str, Any] | None
    data: Mapping[str, Any] | None
    prev_live: bool = False
    prev_matched: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one version adds: counts by totals field, the rules its state matches, and
    the ``(rule, value hash)`` pairs it adds to the unique sets."""

    counts: dict[str, int] = field(default_factory=dict)
    matched: tuple[str, ...] = ()
    uniques: tuple[tuple[str, str], ...] = ()


def _doc(rule: Rule, change: Change) -> Mapping[str, Any]:
    source = change.data if rule.scope == "payload" else change.meta
    return source if source is not None else {}


def contribution(rules: RuleSet, change: Change) -> Contribution:
    """The contribution of ``change`` (see the module docstring)."""
    counts: dict[str, int] = {}
    event = EVENT_FIELDS.get(change.op)
    if event is not None:
        counts[event] = 1
    if change.deleted:
        matched = frozenset(change.prev_matched)
    else:
        matched = frozenset(r.name for r in rules.rules if r.predicate.matches(_doc(r, change)))
    uniques: list[tuple[str, str]] = []
    on = _ON_NAMES.get(change.op)
    for rule in rules.rules:
        if rule.kind == "gauge":
            now_in = not change.deleted and rule.name in matched
            was_in = change.prev_live and rule.name in change.prev_matched
            if now_in != was_in:
                counts[rule.field] = 1 if now_in else -1
        elif (rule.on is None or on in rule.on) and rule.name in matched:
            counts[rule.field] = 1
            if rule.count_unique is not None and not change.deleted:
                value = lookup(_doc(rule, change), rule.count_unique)
                if value is not MISSING and value is not None:
                    uniques.append((rule.name, value_hash(value)))
    return Contribution(counts, tuple(sorted(matched)), tuple(uniques))


def retire(rules: RuleSet, *, live: bool, matched: Iterable[str]) -> dict[str, int]:
    """What a hard delete adds: ``deleted`` when the record was live, and it leaves the
    gauges it was in."""
    if not live:
        return {}
    names = set(matched)
    counts = {"deleted": 1}
    for rule in rules.rules:
        if rule.kind == "gauge" and rule.name in names:
            counts[rule.field] = -1
    return counts
