"""Counting on the write path: stamp a version with its contribution, count it once published.

:meth:`Counting.stamp` runs under the record's lease, before the version is claimed: the
contribution (see :mod:`._rules`) is stored on the version document (``cnt``, ``cu``)
with the rules its state matches (``rm``, which the head inherits). Whoever moves the
head to that version (its writer, or another writer or a repair rolling it forward)
calls :meth:`Counting.published`, exactly once per version, since only one head
compare-and-swap can succeed: the contribution then goes to the :class:`~._tally.Tally`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chronos_async.counters._rules import Change, RuleSet, contribution, retire
from chronos_async.counters._tally import Tally
from chronos_async.meta import TotalsRepo

__all__ = ["Counting", "head_state", "totals_key"]

Doc = dict[str, Any]


def totals_key(t: str, db: str, collection: str) -> str:
    """The ``_id`` of the totals document of one (tenant as stored, db, collection)."""
    return f"{t}|{db}|{collection}"


def head_state(head: Mapping[str, Any] | None) -> tuple[bool, frozenset[str]]:
    """What a head contributes to the gauges: ``(live, matched rules)``.

    A head written while counting was off (no ``rm``) was never counted: it is not live
    for the gauges until a recount.
    """
    if head is None or "rm" not in head:
        return False, frozenset()
    return not head.get("deleted"), frozenset(head.get("rm") or ())


@dataclass(frozen=True, slots=True)
class Counting:
    """The counters of one collection handle (tenant, db, collection)."""

    rules: RuleSet
    repo: TotalsRepo
    key: str
    ident: Mapping[str, Any]
    tally: Tally

    def stamp(self, version: Doc, prev_head: Mapping[str, Any] | None, data: Any) -> None:
        """Store the version's contribution on it (``data``: the payload as a dict, when a
        rule needs it, else ``None``)."""
        live, matched = head_state(prev_head)
        part = contribution(
            self.rules,
            Change(
                op=str(version["op"]),
                deleted=bool(version.get("deleted")),
                meta=version.get("meta") or {},
                data=data if isinstance(data, dict) else None,
                prev_live=live,
                prev_matched=matched,
            ),
        )
        version["cnt"] = part.counts
        version["rm"] = list(part.matched)
        if part.uniques:
            version["cu"] = [list(pair) for pair in part.uniques]

    def published(self, version: Mapping[str, Any]) -> None:
        """Count a version that has just become the head (call once per version)."""
        counts = version.get("cnt")
        if not counts:
            return
        uniques = [(str(r), str(h), str(version["id"])) for r, h in version.get("cu") or ()]
        self.tally.add(self.repo, self.key, self.ident, counts, uniques)

    def retired(self, head: Mapping[str, Any], versions: Sequence[Mapping[str, Any]]) -> None:
        """Count a hard delete of the record whose head and versions are given.

        Its versions disappear, so their contributions (and the hard delete's own) are
        also added to the ``b_`` fields, which a recount starts from.
        """
        live, matched = head_state(head)
        own = retire(self.rules, live=live, matched=matched)
        history: dict[str, int] = dict(own)
        for version in versions:
            for field, n in (version.get("cnt") or {}).items():
                history[field] = history.get(field, 0) + int(n)
        counts = dict(own)
        counts.update({f"b_{field}": n for field, n in history.items() if n})
        self.tally.add(self.repo, self.key, self.ident, counts)
