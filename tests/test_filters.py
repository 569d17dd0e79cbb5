"""Filter compiler, sort spec, keyset cursors: whitelist, rejection, pagination order."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import math
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async._errors import ValidationError
from chronos_async._filters import (
    DEFAULT_SORT,
    FILTER_OPERATORS,
    after_filter,
    compile_filter,
    compile_sort,
    decode_cursor,
    encode_cursor,
    sort_values,
)

PROPS = ["email", "status", "age", "address.city", "tags[]"]
QUERYABLE = {"email", "status", "age", "address.city", "tags"}

# --- an in-memory evaluator with MongoDB's semantics for the types we allow -----------
# Type brackets: null/missing < numbers < strings < bools. Range operators only compare
# within one bracket ({"$gt": 5} never matches a string); equality to None matches null
# and missing.

_MISSING = object()
_TYPE_ALIASES = {"number": 1, "string": 2, "bool": 3}


def _lookup(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _rank(value: Any) -> int:
    if value is None or value is _MISSING:
        return 0
    if isinstance(value, bool):
        return 3
    if isinstance(value, (int, float)):
        return 1
    assert isinstance(value, str), value
    return 2


def _eq(value: Any, arg: Any) -> bool:
    return _rank(value) == _rank(arg) and (arg is None or value == arg)


def _compare(value: Any, op: str, arg: Any) -> bool:
    if _rank(value) != _rank(arg):
        return False
    if arg is None:  # $gte/$lte null match null and missing; $gt/$lt null match nothing
        return op in ("$gte", "$lte")
    return {
        "$gt": value > arg,
        "$gte": value >= arg,
        "$lt": value < arg,
        "$lte": value <= arg,
    }[op]


def _field_matches(value: Any, cond: Any) -> bool:
    if not isinstance(cond, Mapping):
        return _eq(value, cond)
    results = []
    for op, arg in cond.items():
        if op == "$eq":
            results.append(_eq(value, arg))
        elif op == "$ne":
            results.append(not _eq(value, arg))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            results.append(_compare(value, op, arg))
        elif op == "$in":
            results.append(any(_eq(value, a) for a in arg))
        elif op == "$nin":
            results.append(not any(_eq(value, a) for a in arg))
        elif op == "$exists":
            results.append((value is not _MISSING) == arg)
        elif op == "$type":
            results.append(value is not _MISSING and _rank(value) == _TYPE_ALIASES[arg])
        else:
            raise AssertionError(f"evaluator does not know {op}")
    return all(results)


def matches(doc: Mapping[str, Any], filt: Mapping[str, Any]) -> bool:
    """Whether ``doc`` matches ``filt`` as MongoDB would (scalar fields only)."""
    for key, cond in filt.items():
        if key == "$or":
            ok = any(matches(doc, sub) for sub in cond)
        elif key == "$and":
            ok = all(matches(doc, sub) for sub in cond)
        else:
            assert not key.startswith("$"), key
            ok = _field_matches(_lookup(doc, key), cond)
        if not ok:
            return False
    return True


def sorted_like_mongo(docs: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[Any]:
    def cmp(a: dict[str, Any], b: dict[str, Any]) -> int:
        for (_, direction), x, y in zip(
            sort, sort_values(a, sort), sort_values(b, sort), strict=True
        ):
            kx, ky = (_rank(x), x), (_rank(y), y)
            if kx[0] != ky[0]:
                return (kx[0] - ky[0]) * direction
            if x is not None and x != y:
                return (1 if x > y else -1) * direction
        return 0

    return sorted(docs, key=functools.cmp_to_key(cmp))


# --- strategies ----------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
# few distinct values, so ties (and int/float equality, 1 == 1.0) are frequent
sort_scalars = st.one_of(
    st.none(),
    st.just(_MISSING),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([-1.5, 0.0, 1.0, 2.5]),
    st.sampled_from(["", "a", "ab", "b", "é"]),
)


@st.composite
def head_docs(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    docs = []
    for i in range(n):
        meta: dict[str, Any] = {}
        for prop in ("status", "age"):
            value = draw(sort_scalars)
            if value is not _MISSING:
                meta[prop] = value
        docs.append(
            {
                "_id": f"_/r{i:03}",
                "id": draw(st.sampled_from(["a", "b", "c"])) + str(i),
                "updated_us": draw(st.integers(0, 3)),
                "created_us": draw(st.integers(0, 3)),
                "meta": meta,
            }
        )
    return docs


sort_specs = st.lists(
    st.tuples(
        st.sampled_from(["status", "age", "updated_at", "created_at", "id"]),
        st.sampled_from([1, -1]),
    ),
    min_size=0,
    max_size=3,
    unique_by=lambda kv: kv[0],
)


# --- after_filter / cursor: "strictly after" over random documents ----------------------


@settings(max_examples=150, deadline=None)
@given(docs=head_docs(), spec=sort_specs, data=st.data())
def test_after_filter_selects_exactly_the_documents_after_the_cursor(
    docs: list[dict[str, Any]], spec: list[tuple[str, int]], data: st.DataObject
) -> None:
    sort = compile_sort(spec, ["status", "age"])
    ordered = sorted_like_mongo(docs, sort)
    pivot = data.draw(st.integers(0, len(ordered) - 1))
    cursor = encode_cursor(sort, sort_values(ordered[pivot], sort))
    condition = after_filter(sort, decode_cursor(cursor, sort))
    assert [d for d in ordered if matches(d, condition)] == ordered[pivot + 1 :]


@settings(max_examples=80, deadline=None)
@given(docs=head_docs(), spec=sort_specs, page_size=st.integers(1, 4))
def test_paging_through_every_page_yields_each_document_once_in_order(
    docs: list[dict[str, Any]], spec: list[tuple[str, int]], page_size: int
) -> None:
    sort = compile_sort(spec, ["status", "age"])
    ordered = sorted_like_mongo(docs, sort)
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        condition = after_filter(sort, decode_cursor(cursor, sort)) if cursor else {}
        page = [d for d in ordered if matches(d, condition)][:page_size]
        seen.extend(page)
        if len(page) < page_size:
            break
        cursor = encode_cursor(sort, sort_values(page[-1], sort))
    assert seen == ordered


@pytest.mark.parametrize(
    ("direction", "value", "expected"),
    [
        # ascending: null < numbers < strings < false < true
        (1, None, [3, 4.5, "a", "b", False, True]),
        (1, 3, [4.5, "a", "b", False, True]),
        (1, 4.5, ["a", "b", False, True]),
        (1, "a", ["b", False, True]),
        (1, False, [True]),
        (1, True, []),
        (-1, True, [False, "b", "a", 4.5, 3, None]),
        (-1, False, ["b", "a", 4.5, 3, None]),
        (-1, "b", ["a", 4.5, 3, None]),
        (-1, 3, [None]),
        (-1, None, []),
    ],
)
def test_after_filter_crosses_type_brackets(
    direction: int, value: Any, expected: list[Any]
) -> None:
    sort = [("meta.x", direction), ("_id", direction)]
    docs = [{"_id": "z", "meta": {"x": v}} for v in [None, 3, 4.5, "a", "b", False, True]]
    condition = after_filter(sort, [value, "z"])  # "z" is the largest _id: strict on x

    def order(v: Any) -> tuple[int, Any]:
        return (_rank(v), 0 if v is None else v)

    got = [d["meta"]["x"] for d in docs if matches(d, condition)]
    assert sorted(got, key=order) == sorted(expected, key=order)


def test_after_filter_treats_missing_like_null() -> None:
    sort = [("meta.x", 1), ("_id", 1)]
    condition = after_filter(sort, [None, "b"])
    docs = [{"_id": "a", "meta": {}}, {"_id": "c", "meta": {}}, {"_id": "d", "meta": {"x": None}}]
    assert [d["_id"] for d in docs if matches(d, condition)] == ["c", "d"]


def test_after_filter_uses_plain_comparisons_on_typed_head_fields() -> None:
    sort = compile_sort(None, [])
    assert after_filter(sort, [10, "_/a"]) == {
        "$or": [
            {"updated_us": {"$lt": 10}},
            {"$and": [{"updated_us": {"$eq": 10}}, {"_id": {"$lt": "_/a"}}]},
        ]
    }


def test_after_filter_with_no_successor_matches_nothing() -> None:
    condition = after_filter([("meta.x", 1)], [True])
    assert not matches({"meta": {"x": True}}, condition)
    assert condition == {"_id": {"$in": []}}


def test_after_filter_rejects_values_of_the_wrong_shape() -> None:
    with pytest.raises(ValidationError, match="expected 2 sort values"):
        after_filter([("meta.x", 1), ("_id", 1)], [1])
    with pytest.raises(ValidationError, match=r"cannot page by 'meta\.x'"):
        after_filter([("meta.x", 1), ("_id", 1)], [{"a": 1}, "id"])


@settings(max_examples=120, deadline=None)
@given(values=st.lists(scalars, min_size=1, max_size=5))
def test_cursor_round_trips(values: list[Any]) -> None:
    sort = [(f"meta.p{i}", 1) for i in range(len(values))]
    decoded = decode_cursor(encode_cursor(sort, values), sort)
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


def test_cursor_is_url_safe_and_bound_to_its_sort() -> None:
    sort = compile_sort({"age": 1}, ["age"])
    cursor = encode_cursor(sort, ["x" * 50, "_/id"])
    assert cursor.isascii()
    assert not set(cursor) & set("=+/")
    with pytest.raises(ValidationError, match="different sort order"):
        decode_cursor(cursor, compile_sort({"age": -1}, ["age"]))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!!",
        "abc",
        "a" * 40_000,
        "eyJ2IjoxfQ==",  # padding is never emitted
        "eyJ2Ijox+/",
        "ü",
        _b64(b"\xff\xfe"),
        _b64(b"[1, 2]"),
        _b64(b'{"v": 1}'),
        _b64(b'{"v": true, "s": "x", "k": []}'),
        _b64(b'{"v": 2, "s": "x", "k": []}'),
        _b64(b'{"v": 1, "s": "x", "k": "nope"}'),
        _b64(b'{"v": 1, "s": "x", "k": [], "extra": 1}'),
        _b64(b'{"v": 1, "s": "x", "k": [1e400]}'),
        _b64(b"[" * 2000),
    ],
)
def test_garbage_cursors_raise_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError):
        decode_cursor(cursor, [("_id", 1)])


def test_forged_cursor_with_a_matching_fingerprint_is_still_checked() -> None:
    sort = [("meta.x", 1), ("_id", 1)]
    good = orjson.loads(base64.urlsafe_b64decode(encode_cursor(sort, [1, "a"]) + "=="))
    for values in ([1], [{"$where": "1"}, "a"], [2**63, "a"], [[1], "a"], "no"):
        forged = _b64(orjson.dumps({**good, "k": values}))
        with pytest.raises(ValidationError):
            decode_cursor(forged, sort)
    overflow = orjson.dumps({**good, "k": [0, "a"]}).replace(b"[0,", b"[1e400,")
    with pytest.raises(ValidationError):
        decode_cursor(_b64(overflow), sort)


@settings(max_examples=200, deadline=None)
@given(cursor=st.one_of(st.text(max_size=60), st.binary(max_size=60).map(_b64)))
def test_random_cursors_only_ever_raise_validation_error(cursor: str) -> None:
    with contextlib.suppress(ValidationError):
        decode_cursor(cursor, [("_id", 1)])


@pytest.mark.parametrize("cursor", [None, 1, b"abc", ["x"]])
def test_non_string_cursors_are_rejected(cursor: Any) -> None:
    with pytest.raises(ValidationError):
        decode_cursor(cursor, [("_id", 1)])


def test_encode_cursor_rejects_unpageable_values() -> None:
    with pytest.raises(ValidationError, match="list is not allowed"):
        encode_cursor([("meta.x", 1), ("_id", 1)], [[1, 2], "a"])
    with pytest.raises(ValidationError, match="finite"):
        encode_cursor([("meta.x", 1), ("_id", 1)], [math.nan, "a"])


def test_sort_values_follows_dotted_paths() -> None:
    doc = {"_id": "t/1", "meta": {"address": {"city": "Oslo"}, "n": 0}, "updated_us": 5}
    sort = [("meta.address.city", 1), ("meta.n", 1), ("meta.nope.deeper", 1), ("updated_us", 1)]
    assert sort_values(doc, sort) == ["Oslo", 0, None, 5]
    assert sort_values({"meta": {"address": "flat"}}, [("meta.address.city", 1)]) == [None]


# --- compile_sort ---------------------------------------------------------------------


def test_compile_sort_defaults_to_newest_first() -> None:
    assert compile_sort(None, PROPS) == list(DEFAULT_SORT) == [("updated_us", -1), ("_id", -1)]
    assert compile_sort({}, PROPS) == list(DEFAULT_SORT)


def test_compile_sort_maps_keys_and_appends_the_tiebreaker() -> None:
    assert compile_sort({"updated_at": 1}, PROPS) == [("updated_us", 1), ("_id", 1)]
    assert compile_sort([("address.city", 1), ("created_at", -1)], PROPS) == [
        ("meta.address.city", 1),
        ("created_us", -1),
        ("_id", -1),
    ]
    assert compile_sort([["id", -1]], PROPS) == [("id", -1), ("_id", -1)]


@pytest.mark.parametrize(
    ("sort", "message"),
    [
        ({"tags": 1}, "holds an array"),
        ({"tags[]": 1}, "cannot sort by"),
        ({"nope": 1}, "cannot sort by"),
        ({"_id": 1}, "cannot sort by"),
        ({"meta.email": 1}, "cannot sort by"),
        ({"email": 0}, "must be 1 or -1"),
        ({"email": 2}, "must be 1 or -1"),
        ({"email": True}, "must be 1 or -1"),
        ({"email": 1.0}, "must be 1 or -1"),
        ({"email": "asc"}, "must be 1 or -1"),
        ([("email", 1), ("email", -1)], "given twice"),
        ({"email": 1, "status": 1, "age": 1, "id": 1, "created_at": 1}, "at most 4"),
        ([("email",)], "pair"),
        (["email"], "pair"),
        ("email", "mapping or a list"),
        (42, "mapping or a list"),
        ({1: 1}, "not a string"),
    ],
)
def test_compile_sort_rejects(sort: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        compile_sort(sort, PROPS)


# --- compile_filter -------------------------------------------------------------------


def test_compile_filter_prefixes_props_and_keeps_operators() -> None:
    user = {
        "status": "active",
        "address.city": {"$in": ["Oslo", "Bergen"]},
        "tags": "vip",
        "email": None,
        "$or": [{"age": {"$gte": 18, "$lt": 65}}, {"email": {"$exists": False}}],
    }
    before = copy.deepcopy(user)
    assert compile_filter(user, PROPS) == {
        "meta.status": {"$eq": "active"},
        "meta.address.city": {"$in": ["Oslo", "Bergen"]},
        "meta.tags": "vip",
        "meta.email": {"$eq": None},
        "$or": [{"meta.age": {"$gte": 18, "$lt": 65}}, {"meta.email": {"$exists": False}}],
    }
    assert user == before
    assert compile_filter(None, PROPS) == {}
    assert compile_filter({}, PROPS) == {}


@pytest.mark.parametrize(
    ("filt", "named"),
    [
        ({"$where": "sleep(1000)"}, "$where"),
        ({"$expr": {"$eq": ["$a", "$b"]}}, "$expr"),
        ({"$function": {"body": "x"}}, "$function"),
        ({"$nor": [{"email": "a"}]}, "$nor"),
        ({"email": {"$where": "1"}}, "$where"),
        ({"email": {"$regex": "^a"}}, "$regex"),
        ({"email": {"$eq": "a", "$options": "i"}}, "$options"),
        ({"email": {"$elemMatch": {"a": 1}}}, "$elemMatch"),
        ({"email": {"$in": [{"$gt": ""}]}}, "dict is not allowed"),
        ({"email": {"$eq": {"$gt": ""}}}, "dict is not allowed"),
        ({"email": {"a": 1}}, "'a'"),
        ({"email": {}}, "empty condition"),
        ({"email": ["a"]}, "use $in"),
        ({"email": b"a"}, "bytes"),
        ({"email": {"$in": "abc"}}, "list"),
        ({"email": {"$exists": 1}}, "true or false"),
        ({"email": {"$gt": math.inf}}, "finite"),
        ({"email": {"$gt": 2**63}}, "64 bits"),
        ({"email": "\ud800"}, "UTF-8"),
        ({"nope": 1}, "'nope'"),
        ({"tags[]": "x"}, "'tags[]'"),
        ({"address": {"city": "Oslo"}}, "'address'"),
        ({"meta.email": 1}, "'meta.email'"),
        ({1: 1}, "not a string"),
        ({"$and": []}, "non-empty list"),
        ({"$or": {"email": 1}}, "non-empty list"),
        ({"$or": ["email"]}, "mapping"),
        ({"email": {"$in": list(range(1001))}}, "more than 1000"),
        ({"$or": [{"email": i} for i in range(101)]}, "more than 100"),
        ({"$or": [{"$or": [{"$or": [{"$or": [{"email": 1}]}]}]}]}, "deeper than 4"),
    ],
)
def test_compile_filter_rejects_and_names_the_offender(filt: Any, named: str) -> None:
    with pytest.raises(ValidationError) as info:
        compile_filter(filt, PROPS)
    assert named in str(info.value)


def test_compile_filter_rejects_a_non_mapping() -> None:
    for filt in ("email", [{"email": 1}], 3):
        with pytest.raises(ValidationError, match="mapping"):
            compile_filter(filt, PROPS)


def test_compile_filter_ignores_malformed_declared_props() -> None:
    # the config refuses such props; the compiler must not turn them into operators anyway
    with pytest.raises(ValidationError):
        compile_filter({"$where": "1"}, ["$where", "a.$b"])
    with pytest.raises(ValidationError):
        compile_filter({"a.$b": 1}, ["$where", "a.$b"])


_DANGEROUS_KEYS = ["$where", "$expr", "$function", "$regex", "$gt", "$in", "$exists", "$and"]
_keys = st.one_of(
    st.sampled_from([*sorted(QUERYABLE), "tags[]", "meta.email", "$or", *_DANGEROUS_KEYS]),
    st.text(max_size=6),
    st.integers(),
)
_leaves = st.one_of(
    scalars,
    st.floats(),
    st.integers(),
    st.binary(max_size=3),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    st.frozensets(st.integers(), max_size=2),
)
_untrusted = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)


def _audit(node: Any) -> None:
    """Every key of a compiled filter is whitelisted and every value is plain data."""
    assert isinstance(node, dict)
    for key, value in node.items():
        if key in ("$and", "$or"):
            assert isinstance(value, list)
            assert value
            for sub in value:
                _audit(sub)
            continue
        assert key.startswith("meta."), key
        assert key[5:] in QUERYABLE, key
        if not isinstance(value, dict):  # shorthand equality to a non-null scalar
            value = {"$eq": value}
            assert value["$eq"] is not None
        assert value
        assert set(value) <= FILTER_OPERATORS, value
        for arg in value.values():
            for item in arg if isinstance(arg, list) else [arg]:
                assert item is None or isinstance(item, (bool, int, float, str)), item


@settings(max_examples=150, deadline=None)
@given(filt=st.dictionaries(_keys, _untrusted, max_size=4))
def test_untrusted_filters_compile_to_whitelisted_output_or_raise_validation_error(
    filt: dict[Any, Any],
) -> None:
    before = repr(filt)
    try:
        compiled = compile_filter(filt, PROPS)
    except ValidationError:
        pass
    else:
        _audit(compiled)
    assert repr(filt) == before


_conditions = st.one_of(
    scalars,
    st.dictionaries(
        st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]), scalars, min_size=1
    ),
    st.fixed_dictionaries({"$in": st.lists(scalars, max_size=5)}),
    st.fixed_dictionaries({"$nin": st.lists(scalars, max_size=5)}),
    st.fixed_dictionaries({"$exists": st.booleans()}),
)
_valid = st.recursive(
    st.dictionaries(st.sampled_from(sorted(QUERYABLE)), _conditions, max_size=3),
    lambda inner: st.dictionaries(
        st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3), min_size=1
    ),
    max_leaves=8,
)


def _nesting(node: dict[str, Any]) -> int:
    subs = [sub for key in ("$and", "$or") for sub in node.get(key, [])]
    return 1 + max((_nesting(sub) for sub in subs), default=0)


@settings(max_examples=200, deadline=None)
@given(filt=_valid)
def test_valid_filters_compile_key_by_key(filt: dict[str, Any]) -> None:
    if _nesting(filt) > 4:
        with pytest.raises(ValidationError, match="deeper"):
            compile_filter(filt, PROPS)
        return
    compiled = compile_filter(filt, PROPS)
    _audit(compiled)

    def expected(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$and", "$or"):
                out[key] = [expected(sub) for sub in value]
            else:
                bare = key == "tags" and value is not None and not isinstance(value, dict)
                plain = isinstance(value, dict) or bare
                out[f"meta.{key}"] = value if plain else {"$eq": value}
        return out

    assert compiled == expected(filt)
