"""Hostile input to every public ``Collection`` method: only typed errors come out, and a
call that raised wrote nothing.

Hypothesis draws the arguments: payloads with non-JSON types (sets, bytes, objects,
datetimes, Decimal, NaN/Infinity, integers beyond signed 64 bits, non-string keys, lone
surrogates), nesting deeper than the limit, a 17 MB document; ids that are empty, path-
like, too long, not strings, or hold NUL/newlines/unicode; filters with operators outside
the whitelist (``$where $expr $function $regex``...), operator injection in values,
props that are not indexed, deep nesting, oversized ``$in`` lists; and bad versions,
times, limits, cursors, sort specs, projections, TTLs and callbacks. Valid values are
mixed in (existing ids, small versions, real cursors) so that calls get past the first
check and hostile arguments reach the deeper code.

For every call: it returns, or it raises a :class:`ChronosError` subclass; nothing else
(no ``TypeError``, ``KeyError``, bson or pymongo error) may escape. After a call that
raised, the collection's footprint (heads, versions, payload objects) and its ``cv`` are
exactly what they were before it.
"""

from __future__ import annotations

import base64
import enum
import functools
import math
import reprlib
import string
import types
import uuid
from collections import OrderedDict, namedtuple
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
import pytest_asyncio
from bson import Decimal128, Int64, ObjectId
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chronos_async import ChronosError, Collection, ValidationError
from tests.support import exact_types, footprint

# -- the store every example runs against ----------------------------------------------

LIVE = ("live-1", "live-2")
DELETED = "gone-1"
CHILD = "child-1"
EXISTING = (*LIVE, DELETED, CHILD)
#: Cursors of real pages (filled in by the fixture, drawn lazily).
CURSORS: list[str] = []


@pytest_asyncio.fixture(loop_scope="session")
async def store(users: Collection) -> AsyncIterator[Collection]:
    """``users`` with a few records: live ones with history, a deleted one, a child."""
    CURSORS.clear()
    for n, item_id in enumerate(LIVE):
        r = await users.create(
            {"email": f"{item_id}@x", "status": "a", "score": n, "tags": ["t"]},
            id=item_id,
            actor="seed",
        )
        await users.update(
            item_id, {"email": f"{item_id}@x", "status": "b", "score": n + 1}, expected_ov=r.ov
        )
    r = await users.create({"email": "gone@x"}, id=DELETED)
    await users.delete(DELETED, expected_ov=r.ov)
    await users.create({"email": "child@x"}, id=CHILD, parent_id=LIVE[0])
    for sort in (None, {"score": 1}, [("email", -1), ("id", 1)]):
        page = await users.list_by_meta({}, limit=1, sort=sort, include_deleted=True)
        assert page.next_cursor is not None
        CURSORS.append(page.next_cursor)
    yield users


# -- hostile values --------------------------------------------------------------------

SURROGATES = ("\ud800", "a\udfffb", "\udc80\udc80")
#: Text of any code point, lone surrogates included.
any_text = st.text(st.characters(exclude_categories=()), max_size=24)


class Colour(enum.Enum):
    RED = 1


class Flag(enum.IntEnum):
    ON = 1


class Shade(str, enum.Enum):  # noqa: UP042 (the str-mixin form is what is tested)
    DARK = "dark"


class Mode(enum.StrEnum):
    FAST = "fast"


class Text(str):
    pass


@dataclass
class Point:
    x: int


Pair = namedtuple("Pair", "a b")


def _generator() -> Any:
    return (n for n in range(3))


non_json = st.one_of(
    st.binary(max_size=8),
    st.builds(bytearray, st.binary(max_size=4)),
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.text(max_size=3), max_size=3),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(),
    st.just(Decimal("NaN")),
    st.complex_numbers(),
    st.uuids(),
    st.builds(object),
    st.just(Ellipsis),
    st.builds(ObjectId),
    st.builds(Decimal128, st.just("1.5")),
    st.builds(Int64, st.integers(-5, 5)),
    st.sampled_from([Colour.RED, Flag.ON, Shade.DARK, Mode.FAST]),
    # orjson writes these bytes into the JSON as they are (b"nul" is not even JSON)
    st.sampled_from([b"1", b'"s"', b"nul", b"{}"]).map(lambda raw: orjson.Fragment(raw)),
    st.builds(Text, st.text(max_size=4)),
    st.builds(Point, st.integers()),
    st.builds(Pair, st.integers(), st.integers()),
    st.builds(_generator),
    st.just(types.MappingProxyType({"email": "m@x"})),
    st.just(OrderedDict(email="o@x")),
    st.just(range(3)),
    st.just(memoryview(b"ab")),
)
special_numbers = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) - 1),
    st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, 10**400]),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
hostile_leaf = st.one_of(
    json_leaf, non_json, special_numbers, any_text, st.sampled_from(SURROGATES)
)
hostile_keys = st.one_of(
    st.text(max_size=8),
    any_text,
    st.sampled_from(["$where", "$set", "$", "", ".", "a.b", "_id", "\x00", "k\x00", *SURROGATES]),
    st.binary(max_size=4),
    st.just(b"\xff\xfe"),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.tuples(st.integers()),
    st.frozensets(st.integers(), max_size=2),
)
#: Anything: a hostile scalar as often as a (nested) container of them.
_containers = st.recursive(
    hostile_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(hostile_keys, inner, max_size=4),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=10,
)
values = st.one_of(hostile_leaf, _containers)


def _nested(depth: int, kind: str) -> dict[str, Any]:
    """A document nesting ``depth`` levels of dicts or lists under ``deep``."""
    inner: Any = "bottom"
    for _ in range(depth):
        inner = {"d": inner} if kind == "dict" else [inner]
    return {"email": "deep@x", "deep": inner}


@functools.cache
def _huge() -> dict[str, Any]:
    """A 17 MB document (above the 16 MiB - 64 KiB limit); built once, on first draw."""
    return {"email": "huge@x", "blob": "x" * (17 * 1024 * 1024)}


deep_documents = st.builds(
    _nested,
    st.one_of(st.integers(60, 70), st.integers(70, 400), st.just(5000), st.just(100_000)),
    st.sampled_from(["dict", "list"]),
)
valid_payloads = st.fixed_dictionaries(
    {"email": st.one_of(st.emails(), st.text(max_size=10))},
    optional={
        "status": values,
        "score": values,
        "tags": values,
        "address": st.fixed_dictionaries({"city": values}),
        "other": values,
    },
)
payloads = st.one_of(
    valid_payloads,
    st.dictionaries(hostile_keys, values, max_size=5),
    st.dictionaries(st.text(max_size=6), values, max_size=5),
    deep_documents,
    st.builds(_huge),
    values,
)
patches = st.one_of(
    payloads,
    st.lists(payloads, max_size=3),
    st.tuples(payloads, values),
    st.just([]),
    st.just("not a patch"),
    st.builds(lambda: (p for p in [{"a": 1}])),
)

hostile_ids = st.one_of(
    st.sampled_from(
        [
            "",
            "/",
            "..",
            ".",
            ".hidden",
            "a/b",
            "a..b",
            "a\x00b",
            "a\nb",
            "x" * 129,
            "é",
            "日本",
            "$where",
            "a b",
            "a\\b",
            "*",
            "?",
            "%2e%2e",
            "a/../b",
            *SURROGATES,
        ]
    ),
    any_text,
    st.text(min_size=129, max_size=300),
    st.integers(),
    st.binary(max_size=8),
    st.floats(),
    st.lists(st.text(max_size=3), max_size=2),
    st.builds(ObjectId),
    st.builds(Text, st.sampled_from(["live-1", "a"])),
)
ids = st.one_of(st.sampled_from(EXISTING), st.just("missing-1"), hostile_ids)
optional_ids = st.one_of(st.none(), ids)
ovs = st.one_of(
    st.integers(0, 4),
    st.integers(),
    st.sampled_from([-1, 2**63, 2**64, 10**30, True, False, 1.0, 0.5, "0", "1", b"1"]),
    st.floats(),
    st.decimals(),
    st.none(),
    st.builds(Int64, st.integers(0, 3)),
    non_json,
)
aware = st.builds(
    lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(),
    st.integers(-(24 * 60) + 1, 24 * 60 - 1),
)
times = st.one_of(
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    aware,
    st.sampled_from(
        [
            datetime.min,
            datetime.max,
            datetime.min.replace(tzinfo=timezone(timedelta(hours=23))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-23))),
            "2026-01-01T00:00:00Z",
            "",
            "Z",
            "now",
            "not a date",
            "2026-13-45",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.999999-23:59",
            "+275760-09-13",
            "2026-01-01T00:00:00\x00",
            "\ud800",
        ]
    ),
    any_text,
    st.integers(),
    st.floats(),
    st.dates(),
    st.none(),
    st.binary(max_size=4),
    non_json,
)
texts = st.one_of(
    st.none(),
    st.text(max_size=12),
    any_text,
    st.sampled_from(["x" * 2049, "\x00", "$where", *SURROGATES]),
    values,
)
flags = st.one_of(st.booleans(), values)

props = st.one_of(
    st.sampled_from(
        [
            "email",
            "status",
            "score",
            "address.city",
            "tags",
            "tags[]",
            "unknown",
            "meta.email",
            "_id",
            "t",
            "deleted",
            "lease_token",
            "",
            "a..b",
            ".email",
            "email.",
            "$where",
            "email.$",
            "email\x00",
            *SURROGATES,
        ]
    ),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
operators = st.sampled_from(
    [
        "$eq",
        "$ne",
        "$in",
        "$nin",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$exists",
        "$where",
        "$expr",
        "$function",
        "$regex",
        "$options",
        "$not",
        "$nor",
        "$elemMatch",
        "$size",
        "$type",
        "$all",
        "$text",
        "$mod",
        "$jsonSchema",
        "$accumulator",
        "$",
        "eq",
        "$EQ",
    ]
)
condition_values = st.one_of(
    values,
    st.lists(values, max_size=5),
    st.lists(st.integers(0, 9), min_size=1001, max_size=1010),
    st.dictionaries(operators, values, max_size=3),
    st.sampled_from(
        [
            {"$where": "sleep(1000) || true"},
            {"$function": {"body": "return true", "args": [], "lang": "js"}},
            {"$regex": ".*"},
            "function() { return true }",
            {"$gt": ""},
            {"$ne": None},
        ]
    ),
)
conditions = st.one_of(st.dictionaries(operators, condition_values, min_size=1, max_size=3), values)
leaf_filters = st.dictionaries(props, conditions, max_size=3)


def _deep_and(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"email": "x"}
    for _ in range(depth):
        node = {"$and": [node]}
    return node


filters = st.one_of(
    st.none(),
    st.recursive(
        leaf_filters,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"$and": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda xs: {"$or": xs}, st.lists(inner, max_size=3)),
            st.builds(lambda x: {"$nor": [x]}, inner),
            st.builds(lambda x: {"$and": x}, inner),
            st.builds(lambda x: {"$or": x}, values),
            st.dictionaries(props, inner, max_size=2),
        ),
        max_leaves=8,
    ),
    st.builds(_deep_and, st.integers(1, 300)),
    st.builds(lambda n: {"$or": [{"score": i} for i in range(n)]}, st.integers(90, 150)),
    values,
)
sort_fields = st.one_of(
    props, st.sampled_from(["updated_at", "created_at", "id", "updated_us", "_id"])
)
directions = st.one_of(
    st.sampled_from([1, -1, 0, 2, "asc", "desc", True, None, 1.0, -1.5]), st.integers()
)
sorts = st.one_of(
    st.none(),
    st.dictionaries(sort_fields, directions, max_size=6),
    st.lists(st.tuples(sort_fields, directions), max_size=6),
    st.lists(st.tuples(sort_fields), max_size=2),
    values,
)
cursor_alphabet = string.ascii_letters + string.digits + "-_"
cursors = st.one_of(
    st.none(),
    st.deferred(lambda: st.sampled_from(CURSORS)),
    st.deferred(lambda: st.sampled_from(CURSORS)).map(lambda c: c[:-3]),
    st.deferred(lambda: st.sampled_from(CURSORS)).map(lambda c: c[:10] + "A" + c[11:]),
    st.text(alphabet=cursor_alphabet, max_size=60),
    st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.just("A" * 40_000),
    any_text,
    values,
)
limits = st.one_of(
    st.none(),
    st.integers(1, 5),
    st.integers(),
    st.sampled_from([0, -1, 1001, 10**30, True, False, 1.5, "10", b"1", math.nan]),
)
projections = st.one_of(
    st.none(),
    st.lists(st.sampled_from(["email", "address.city", "missing", "tags.0"]), max_size=3),
    st.lists(st.one_of(props, values), max_size=4),
    st.sampled_from(
        ["email", ["$where"], [""], ["a..b"], [".a"], ["a." * 300 + "a"], ["email"] * 2000]
    ),
    values,
)
ttls = st.one_of(
    st.integers(1, 7 * 24 * 3600),
    st.integers(),
    st.sampled_from([0, -1, 7 * 24 * 3600 + 1, True, 1.5, "60", None, math.inf]),
)


def _progress_sync(done: int, total: int) -> None:
    return None


async def _progress_async(done: int, total: int) -> None:
    return None


progresses = st.one_of(
    st.none(), st.just(_progress_sync), st.just(_progress_async), non_json, special_numbers
)
concurrencies = st.one_of(
    st.none(), st.integers(1, 8), st.integers(), st.sampled_from([0, 257, True, 1.5, "8"])
)

# -- valid values: mixed in so that one hostile argument reaches the deeper code --------

json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
good_payloads = st.fixed_dictionaries(
    {"email": st.text(string.ascii_letters, min_size=1, max_size=8).map(lambda s: s + "@x")},
    optional={
        "status": st.sampled_from(["a", "b", "c"]),
        "score": st.integers(0, 5),
        "tags": st.lists(st.sampled_from(["t", "u"]), max_size=2),
        "address": st.fixed_dictionaries({"city": st.text(max_size=5)}),
        "other": json_values,
    },
)
good_patches = st.one_of(
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=2), min_size=1, max_size=3),
)
good_ids = st.sampled_from([*LIVE, *LIVE, DELETED, CHILD])
good_texts = st.one_of(st.none(), st.text(max_size=16))
good_ovs = st.integers(0, 3)
good_expected = st.one_of(st.none(), good_ovs)
good_times = st.one_of(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["2100-01-01T00:00:00Z", "2000-01-01T00:00:00+02:00"]),
)
good_projections = st.one_of(
    st.none(), st.lists(st.sampled_from(["email", "address.city", "missing", "tags"]), max_size=3)
)
good_filters = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries({"status": st.sampled_from(["a", "b"])}),
    st.fixed_dictionaries({"score": st.fixed_dictionaries({"$gte": st.integers(0, 3)})}),
    st.just({"$or": [{"status": "a"}, {"tags": "t"}]}),
    st.just({"email": {"$in": ["live-1@x", "child@x"]}, "address.city": {"$exists": False}}),
)
good_sorts = st.sampled_from([None, {"score": 1}, [("email", -1), ("id", 1)], {"updated_at": -1}])
good_cursors = st.one_of(st.none(), st.deferred(lambda: st.sampled_from(CURSORS)))
good_progress = st.sampled_from([None, _progress_sync, _progress_async])

#: (valid, hostile, required) per keyword argument.
Spec = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any], bool]]
READ_OPTIONS: Spec = {
    "projection": (good_projections, projections, False),
    "presign": (st.booleans(), flags, False),
    "ttl_seconds": (st.integers(1, 3600), ttls, False),
}
SPECS: dict[str, Spec] = {
    "create": {
        "data": (good_payloads, payloads, True),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
        "id": (st.uuids().map(lambda u: f"new-{u.hex[:12]}"), hostile_ids, False),
        "parent_id": (st.one_of(st.none(), good_ids), hostile_ids, False),
        "origin_id": (st.one_of(st.none(), good_ids), hostile_ids, False),
    },
    "update": {
        "id": (good_ids, hostile_ids, True),
        "data": (good_payloads, payloads, True),
        "expected_ov": (good_expected, ovs, True),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
    },
    "delete": {
        "id": (good_ids, hostile_ids, True),
        "expected_ov": (good_expected, ovs, False),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
        "hard": (st.just(False), flags, False),
    },
    "enrich": {
        "id": (good_ids, hostile_ids, True),
        "patch": (good_patches, patches, True),
        "function_id": (good_texts, texts, False),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
        "expected_ov": (good_expected, ovs, False),
    },
    "get_latest": {
        "id": (good_ids, hostile_ids, True),
        **READ_OPTIONS,
        "include_deleted": (st.booleans(), flags, False),
    },
    "get_version": {
        "id": (good_ids, hostile_ids, True),
        "ov": (good_ovs, ovs, True),
        **READ_OPTIONS,
    },
    "get_as_of": {
        "id": (good_ids, hostile_ids, True),
        "at": (good_times, times, True),
        **READ_OPTIONS,
        "include_deleted": (st.booleans(), flags, False),
    },
    "list_by_meta": {
        "filter": (good_filters, filters, True),
        "limit": (st.integers(1, 5), limits, False),
        "after": (good_cursors, cursors, False),
        "sort": (good_sorts, sorts, False),
        "include_deleted": (st.booleans(), flags, False),
        **READ_OPTIONS,
    },
    "history": {
        "id": (good_ids, hostile_ids, True),
        "include_diff": (st.booleans(), flags, False),
    },
    "diff": {
        "id": (good_ids, hostile_ids, True),
        "from_ov": (good_ovs, ovs, True),
        "to_ov": (good_ovs, ovs, True),
    },
    "lineage": {"id": (good_ids, hostile_ids, True)},
    "restore_object": {
        "id": (good_ids, hostile_ids, True),
        "ov": (good_ovs, ovs, False),
        "at": (good_times, times, False),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
        "expected_ov": (good_expected, ovs, False),
    },
    "restore_collection": {
        "cv": (st.integers(0, 12), ovs, False),
        "at": (good_times, times, False),
        "actor": (good_texts, texts, False),
        "reason": (good_texts, texts, False),
        "concurrency": (st.integers(1, 8), concurrencies, False),
        "progress": (good_progress, progresses, False),
    },
}


#: Arguments of which a valid call passes exactly one.
EXCLUSIVE = {"restore_object": ("ov", "at"), "restore_collection": ("cv", "at")}


@st.composite
def arguments(draw: st.DrawFn, method: str) -> dict[str, Any]:
    """Keyword arguments: usually one hostile (sometimes none or two), the rest valid or
    omitted, so that the hostile one gets past the others' checks."""
    spec = SPECS[method]
    names = list(spec)
    count = draw(st.sampled_from([1, 1, 1, 1, 0, 2]), label="hostile count")
    hostile = set(draw(st.permutations(names), label="order")[:count])
    kwargs: dict[str, Any] = {}
    for name, (good, bad, required) in spec.items():
        if name in hostile:
            kwargs[name] = draw(bad, label=name)
        elif required or draw(st.booleans()):
            kwargs[name] = draw(good, label=name)
    if method in EXCLUSIVE:
        first, second = EXCLUSIVE[method]
        if first not in hostile and second not in hostile:
            keep = draw(st.sampled_from([first, second]), label="target")
            drop = second if keep == first else first
            kwargs.pop(drop, None)
            if keep not in kwargs:
                kwargs[keep] = draw(spec[keep][0], label=keep)
        elif first in hostile and second not in hostile:
            kwargs.pop(second, None)
        elif second in hostile and first not in hostile:
            kwargs.pop(first, None)
    return kwargs


async def _state(users: Collection) -> tuple[int, int, int, int]:
    """(heads, versions, payload objects, cv) of the collection."""
    scope = users._scope
    heads, versions, blobs = await footprint(users)
    return heads, versions, blobs, await scope.repo.current_cv(scope.t)


async def _call(users: Collection, method: str, kwargs: dict[str, Any]) -> Any:
    if method == "history":
        return [v async for v in users.history(**kwargs)]
    return await getattr(users, method)(**kwargs)


_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 6, 120, 120


def _shown(kwargs: dict[str, Any]) -> str:
    """The arguments for an assertion message (17 MB strings and deep nesting elided)."""
    return ", ".join(f"{key}={_SHORT.repr(value)}" for key, value in kwargs.items())


@pytest.mark.parametrize("method", sorted(SPECS))
@settings(
    deadline=None,
    max_examples=50,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
async def test_only_typed_errors_and_refusals_write_nothing(
    store: Collection, method: str, data: st.DataObject
) -> None:
    kwargs = data.draw(arguments(method), label="kwargs")
    before = await _state(store)
    try:
        result = await _call(store, method, kwargs)
    except ChronosError as exc:
        refused: ChronosError | None = exc
        event(f"refused: {type(exc).__name__}")
    else:
        refused = None
        event("accepted")
        if method in ("create", "update"):
            # Accepted data is stored exactly: nothing was converted on the way in.
            stored = await store.get_version(result.id, result.ov)
            assert stored is not None
            assert exact_types(stored.data) == exact_types(kwargs["data"]), (
                f"{method}({_shown(kwargs)}) stored {_SHORT.repr(stored.data)}"
            )
    if refused is not None:
        after = await _state(store)
        assert after == before, (
            f"{method}({_shown(kwargs)}) raised {type(refused).__name__}: {refused} but "
            f"changed (heads, versions, payloads, cv) from {before} to {after}"
        )


#: Values that are not JSON, several of which orjson writes without complaint (UUID,
#: enums, Fragment), with the type name the refusal must give.
NOT_JSON: list[tuple[str, Any]] = [
    ("UUID", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("Colour", Colour.RED),
    ("Shade", Shade.DARK),
    ("Flag", Flag.ON),
    ("Mode", Mode.FAST),
    ("Fragment", orjson.Fragment(b'"s"')),
    ("Fragment", orjson.Fragment(b"nul")),
    ("Decimal", Decimal("1.5")),
    ("datetime", datetime(2026, 1, 1, tzinfo=UTC)),
    ("bytes", b"b"),
    ("set", {1}),
    ("Text", Text("t")),
    ("OrderedDict", OrderedDict(city="c")),
]


@pytest.mark.parametrize(("name", "value"), NOT_JSON, ids=[n for n, _ in NOT_JSON])
async def test_non_json_values_are_refused_by_every_write_and_write_nothing(
    store: Collection, name: str, value: Any
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("create", {"data": {"email": "n@x", "x": value}}),
        ("create", {"data": {"email": "n@x", "n": None, "deep": [{"x": value}]}, "id": "n-1"}),
        ("update", {"id": LIVE[0], "data": {"email": "u@x", "x": value}, "expected_ov": None}),
        (
            "update",
            {"id": LIVE[0], "data": {"email": "u@x", "a": {"b": [value]}}, "expected_ov": 1},
        ),
        ("enrich", {"id": LIVE[0], "patch": {"x": value}}),
        ("enrich", {"id": LIVE[1], "patch": [{"ok": 1}, {"n": None, "deep": {"x": (value,)}}]}),
    ]
    if name == "OrderedDict":  # a dict subclass as the whole record
        calls.append(("create", {"data": OrderedDict(email="o@x")}))
        calls.append(("update", {"id": LIVE[1], "data": value, "expected_ov": None}))
    before = await _state(store)
    for method, kwargs in calls:
        with pytest.raises(ValidationError, match=rf"\b{name}\b.*not a JSON type"):
            await _call(store, method, kwargs)
        assert await _state(store) == before, f"{method}({_shown(kwargs)}) wrote something"
    assert (await store.get_latest(LIVE[0])) is not None
    assert (await store.get_latest("n-1")) is None


#: Hostile calls found by the property test above, replayed on every run. Each must
#: raise a ``ChronosError`` (or succeed) and, when it raises, leave no trace.
KNOWN: list[tuple[str, dict[str, Any]]] = [
    ("get_latest", {"id": LIVE[0], "projection": 5}),
    ("get_version", {"id": LIVE[0], "ov": 0, "projection": Decimal("1.5")}),
    ("get_as_of", {"id": LIVE[0], "at": "2100-01-01T00:00:00Z", "projection": object()}),
    ("list_by_meta", {"filter": {}, "projection": 1.5}),
    ("create", {"data": {"email": "s@x"}, "actor": "\ud800"}),
    ("create", {"data": {"email": "dup@x"}, "id": LIVE[0]}),
    ("update", {"id": LIVE[0], "data": {"email": "u@x"}, "expected_ov": None, "reason": "\udc80"}),
    ("enrich", {"id": LIVE[0], "patch": {"a": 1}, "function_id": "a\udfffb"}),
    ("delete", {"id": LIVE[1], "actor": "\ud800"}),
    ("restore_object", {"id": LIVE[0], "ov": 0, "actor": "\ud800"}),
    ("restore_collection", {"cv": 2**63}),
    ("restore_collection", {"cv": 0, "progress": 5}),
    ("restore_collection", {"at": datetime.max}),
    ("restore_collection", {"at": datetime.min.replace(tzinfo=timezone(timedelta(hours=23)))}),
]


@pytest.mark.parametrize(
    ("method", "kwargs"), KNOWN, ids=[f"{m}-{n}" for n, (m, _) in enumerate(KNOWN)]
)
async def test_known_hostile_calls(store: Collection, method: str, kwargs: dict[str, Any]) -> None:
    before = await _state(store)
    try:
        await _call(store, method, kwargs)
    except ChronosError as exc:
        refused: ChronosError | None = exc
    else:
        refused = None
    if refused is not None:
        after = await _state(store)
        assert after == before, (
            f"{method}({_shown(kwargs)}) raised {type(refused).__name__}: {refused} but "
            f"changed (heads, versions, payloads, cv) from {before} to {after}"
        )


async def test_the_seeded_store_is_as_expected(store: Collection) -> None:
    """The fixture's records exist as the strategies assume (ids, deletion, lineage)."""
    for item_id in LIVE:
        item = await store.get_latest(item_id)
        assert item is not None and item.ov == 1
    assert await store.get_latest(DELETED) is None
    assert [a.id for a in await store.lineage(CHILD)] == [LIVE[0]]
    assert len(CURSORS) == 3
