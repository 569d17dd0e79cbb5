"""Contributions (pure): summed over any history they equal what the records say."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async._sections import CounterRules
from chronos_async.counters._rules import Change, RuleSet, contribution, retire, value_hash

RULES = RuleSet.from_config(
    CounterRules.model_validate(
        {
            "rules": [
                {"name": "on_events", "on": ["CREATE", "UPDATE"], "when": {"flag": "on"}},
                {"name": "on_now", "kind": "gauge", "when": {"flag": "on"}},
                {"name": "big", "kind": "gauge", "scope": "payload", "when": {"n": {"$gt": 5}}},
                {"name": "kinds", "when": {"flag": {"$exists": True}}, "count_unique": "kind"},
                {"name": "gone", "on": ["DELETE"], "when": {"flag": "on"}},
            ]
        }
    )
)

STATE = st.fixed_dictionaries(
    {
        "flag": st.sampled_from(["on", "off"]),
        "n": st.integers(0, 10),
        "kind": st.sampled_from(["a", "b", "c"]),
    }
)
# (record, op, new state); ops on a record that cannot take them are skipped
STEP = st.tuples(
    st.integers(0, 4),
    st.sampled_from(["create", "update", "enrich", "delete", "restore", "hard"]),
    STATE,
)


def _meta(state: dict[str, Any]) -> dict[str, Any]:
    return {"flag": state["flag"], "kind": state["kind"]}


@settings(max_examples=300)
@given(st.lists(STEP, max_size=60))
def test_totals_equal_what_the_history_and_the_records_say(steps: list[Any]) -> None:
    totals: Counter[str] = Counter()
    uniques: set[tuple[str, str]] = set()
    records: dict[int, dict[str, Any]] = {}  # record -> {"state", "deleted", "rm", "hist"}
    expected: Counter[str] = Counter()
    for rec, op, state in steps:
        cur = records.get(rec)
        if op == "create" and cur is not None:
            continue
        if op != "create" and cur is None:
            continue
        if op in ("update", "enrich", "delete", "hard") and cur is not None and cur["deleted"]:
            continue
        if op == "restore" and cur is not None and not cur["deleted"]:
            continue
        if op == "hard":
            assert cur is not None
            totals.update(retire(RULES, live=not cur["deleted"], matched=cur["rm"]))
            expected["deleted"] += 1
            del records[rec]
            continue
        deleted = op == "delete"
        new = cur["state"] if deleted and cur is not None else state
        part = contribution(
            RULES,
            Change(
                op=op,
                deleted=deleted,
                meta=_meta(new),
                data=new,
                prev_live=cur is not None and not cur["deleted"],
                prev_matched=frozenset(cur["rm"]) if cur is not None else frozenset(),
            ),
        )
        totals.update(part.counts)
        uniques.update(part.uniques)
        field = {"create": "created", "update": "updated", "enrich": "enriched"}
        expected[field.get(op, "deleted" if deleted else "restored")] += 1
        if op in ("create", "update") and new["flag"] == "on":
            expected["r_on_events"] += 1
        if deleted and cur is not None and cur["state"]["flag"] == "on":
            expected["r_gone"] += 1
        expected["r_kinds"] += 1  # every write: its record (or the one it removes) has a flag
        records[rec] = {"state": new, "deleted": deleted, "rm": part.matched}
    live = [r["state"] for r in records.values() if not r["deleted"]]
    expected["g_on_now"] = sum(1 for s in live if s["flag"] == "on")
    expected["g_big"] = sum(1 for s in live if s["n"] > 5)
    assert +totals == +expected, (totals, expected)
    kinds = {s["kind"] for rec, op, s in steps}  # superset; check membership precisely
    assert {h for _, h in uniques} <= {value_hash(k) for k in kinds}
    assert all(rule == "kinds" for rule, _ in uniques)


def test_a_deletion_is_judged_by_the_record_it_removes() -> None:
    prev = contribution(RULES, Change("create", False, {"flag": "on"}, {"n": 9}))
    assert prev.counts == {"created": 1, "r_on_events": 1, "g_on_now": 1, "g_big": 1, "r_kinds": 1}
    gone = contribution(
        RULES,
        Change("delete", True, {"flag": "off"}, None, True, frozenset(prev.matched)),
    )
    assert gone.counts == {"deleted": 1, "r_gone": 1, "r_kinds": 1, "g_on_now": -1, "g_big": -1}
    assert gone.matched == prev.matched and gone.uniques == ()


def test_a_head_written_before_counting_is_not_in_the_gauges() -> None:
    # prev_live False (no "rm" on the head): becoming "on" adds one, staying "off" nothing
    part = contribution(RULES, Change("update", False, {"flag": "on"}, {"n": 0}))
    assert part.counts["g_on_now"] == 1
    assert retire(RULES, live=False, matched=()) == {}


def test_rules_limited_to_collections() -> None:
    rules = CounterRules.model_validate(
        {"rules": [{"name": "x", "collections": ["orders"]}, {"name": "y"}]}
    )
    assert [r.name for r in RuleSet.from_config(rules, "orders").rules] == ["x", "y"]
    assert [r.name for r in RuleSet.from_config(rules, "users").rules] == ["y"]
