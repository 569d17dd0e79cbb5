"""The pure parts of rollup: periods, the bound, manifest bytes (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos_async import IntegrityError
from chronos_async.lifecycle import RetentionRule
from chronos_async.lifecycle._layout import (
    Entry,
    decode_manifest,
    encode_manifest,
    merge_entries,
    period_of,
    rollup_bound,
)

DAY = 86_400 * 1_000_000
times = st.integers(0, 4_000_000_000 * 1_000_000)


@given(st.lists(times, min_size=2, max_size=50), st.sampled_from(["daily", "weekly", "monthly"]))
def test_periods_are_contiguous_in_time(ats: list[int], period: str) -> None:
    ats.sort()
    names = [period_of(at, period) for at in ats]  # type: ignore[arg-type]
    # a period never comes back once left: versions of a period are consecutive
    seen: list[str] = []
    for name in names:
        if not seen or seen[-1] != name:
            assert name not in seen
            seen.append(name)
    assert names == sorted(names)


def test_period_names() -> None:
    at = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp() * 1e6)
    assert period_of(at, "daily") == "2026-03-01"
    assert period_of(at, "weekly") == "2026-W09"
    assert period_of(at, "monthly") == "2026-03"


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int]], int]:
    floor = draw(st.integers(0, 20))
    head = floor + draw(st.integers(0, 60))
    gaps = draw(st.lists(st.integers(1, 3 * DAY), min_size=head - floor, max_size=head - floor))
    at, commits = 10**15, []
    for ov, gap in zip(range(floor, head), gaps, strict=True):
        at += gap
        commits.append((ov, at))
    now = at + draw(st.integers(0, 30 * DAY))
    return floor, head, commits, now


@given(
    histories(),
    st.one_of(st.none(), st.integers(1, 80)),
    st.one_of(st.none(), st.integers(1, 40)),
)
def test_bound_keeps_what_the_rule_keeps(
    history: tuple[int, int, list[tuple[int, int]], int],
    max_versions: int | None,
    max_age: int | None,
) -> None:
    floor, head, commits, now = history
    rule = RetentionRule(max_versions, max_age)
    bound = rollup_bound(head, commits, rule, now, floor=floor)
    assert floor <= bound <= head  # the head's version always stays
    for ov, at in commits:
        beyond_count = max_versions is not None and ov <= head - max_versions
        too_old = max_age is not None and at < now - max_age * DAY
        if beyond_count or too_old:
            assert ov < bound or ov < floor
        else:
            assert ov >= bound


@given(st.lists(st.integers(0, 200), unique=True), st.lists(st.integers(0, 200), unique=True))
def test_merge_is_a_union_in_ov_order(old: list[int], new: list[int]) -> None:
    a = [Entry(ov, ov * 10, {"ov": ov, "from": "old"}) for ov in old]
    b = [Entry(ov, ov * 10, {"ov": ov, "from": "new"}) for ov in new]
    merged = merge_entries(a, b)
    assert [e.ov for e in merged] == sorted(set(old) | set(new))
    assert all(e.doc["from"] == "old" for e in merged if e.ov in set(old))
    assert merge_entries(merged, b) == merged  # idempotent


bson_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.datetimes(timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.lists(st.dictionaries(st.sampled_from(["cnt", "rm", "meta", "x"]), bson_values), max_size=5)
)
def test_manifest_round_trip_keeps_documents_verbatim(extra: list[dict[str, object]]) -> None:
    entries = [
        Entry(ov, 1000 + ov, {"_id": f"_/a/{ov}", "ov": ov, "cv": ov + 1, "key": "k", **fields})
        for ov, fields in enumerate(extra)
    ]
    body = encode_manifest({"id": "a"}, entries)
    header, back = decode_manifest(body, where="m")
    assert header["count"] == len(entries)
    assert [(e.ov, e.at) for e in back] == [(e.ov, e.at) for e in entries]
    for got, want in zip(back, entries, strict=True):
        # the same BSON bytes: every field, every type, every value, in the same order
        assert bson.encode(got.doc) == bson.encode(want.doc)


def test_damaged_manifests_are_refused() -> None:
    body = encode_manifest({"id": "a"}, [Entry(0, 1, {"ov": 0, "cv": 1})])
    with pytest.raises(IntegrityError):
        decode_manifest(body[:-5], where="m")
    with pytest.raises(IntegrityError):
        decode_manifest(b"not gzip", where="m")
