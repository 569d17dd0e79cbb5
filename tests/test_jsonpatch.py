"""JSON Patch: exact round trips of make_patch, RFC 6901/6902 examples, invalid patches."""

from __future__ import annotations

import copy
import doctest
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async import _jsonpatch
from chronos_async._errors import ValidationError
from chronos_async._jsonpatch import apply_patch, make_patch
from tests.support import assert_same, canon, json_scalars

keys = st.sampled_from(["a", "b", "", "a/b", "~", "~1", "/~0", "0"]) | st.text(max_size=4)
leaves = st.sampled_from([0, 1, 1.0, -0.0, 0.0, True, False, None, "", "1"]) | json_scalars
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)

# Edits start from a container holding containers, so most diffs are nested.
containers = st.dictionaries(keys, json_values, min_size=1, max_size=5) | st.lists(
    json_values, min_size=1, max_size=8
)

SETTINGS = settings(max_examples=100, deadline=None)


def assert_round_trip(old: Any, new: Any) -> list[dict[str, Any]]:
    old_before, new_before = canon(old), canon(new)
    ops = make_patch(old, new)
    assert canon(old) == old_before and canon(new) == new_before
    orjson.dumps(ops)  # a patch is itself plain JSON
    assert all(op["op"] in {"add", "remove", "replace"} for op in ops)
    assert_same(apply_patch(old, ops), new)
    assert canon(old) == old_before  # apply_patch works on a copy
    return ops


@st.composite
def edited(draw: st.DrawFn, value: Any) -> Any:
    """``value`` after a few random local edits: nested diffs, not whole replacements."""

    # Hypothesis favours 0, so 0 means "walk in": most diffs then end up nested.
    def edit(v: Any) -> Any:
        if draw(st.integers(0, 19)) == 1:
            return draw(json_values)  # now and then a whole subtree changes
        if isinstance(v, dict):
            out = {}
            for key, item in v.items():
                action = draw(st.integers(0, 4))
                if action == 1:
                    continue  # deleted
                out[key] = edit(item) if action == 0 else item
            if draw(st.integers(0, 3)) == 1:
                out[draw(keys)] = draw(json_values)
            return out
        if isinstance(v, list):
            out_list: list[Any] = []
            for item in v:
                action = draw(st.integers(0, 4))
                if action == 1:
                    continue
                if action == 2:
                    out_list.append(draw(json_values))  # inserted before
                out_list.append(edit(item) if action == 0 else item)
            if draw(st.integers(0, 3)) == 1:
                out_list.insert(draw(st.integers(0, len(out_list))), draw(json_values))
            return out_list
        return draw(leaves) if draw(st.integers(0, 3)) == 1 else v

    return edit(value)


@st.composite
def value_and_edit(draw: st.DrawFn) -> tuple[Any, Any]:
    value = draw(containers)
    # A deep copy: the edit keeps untouched subtrees, which must not be shared with old.
    return value, copy.deepcopy(draw(edited(value)))


# --- make_patch round trips --------------------------------------------------------


@SETTINGS
@given(old=json_values, new=json_values)
def test_round_trip_of_unrelated_values(old: Any, new: Any) -> None:
    assert_round_trip(old, new)


@settings(max_examples=200, deadline=None)
@given(pair=value_and_edit())
def test_round_trip_of_local_edits(pair: tuple[Any, Any]) -> None:
    assert_round_trip(*pair)


@SETTINGS
@given(value=json_values)
def test_equal_values_give_an_empty_patch(value: Any) -> None:
    assert make_patch(value, value) == []
    assert make_patch(value, copy.deepcopy(value)) == []


@SETTINGS
@given(pair=value_and_edit())
def test_the_patch_shares_nothing_with_new(pair: tuple[Any, Any]) -> None:
    old, new = pair
    ops = make_patch(old, new)
    before = canon(ops)
    new_copy = copy.deepcopy(new)
    _vandalize(new)
    assert canon(ops) == before
    result = apply_patch(old, ops)
    assert_same(result, new_copy)
    _vandalize(result)  # nor does the applied result share anything with the patch
    assert canon(ops) == before


def _vandalize(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            item["vandal"] = "!"
        elif isinstance(item, list):
            stack.extend(item)
            item.append("!")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (1, 1.0),
        (1, True),
        (0, False),
        (0.0, -0.0),
        ([1, 2], [1.0, 2]),
        ({"a": [True]}, {"a": [1]}),
        ({"a": -0.0}, {"a": 0.0}),
        ("1", 1),
        (None, {}),
        ([], {}),
        ([1, [2, 3]], (1, (2, 4))),
    ],
)
def test_types_are_kept_exactly(old: Any, new: Any) -> None:
    ops = make_patch(old, new)
    assert ops != []
    assert_same(apply_patch(old, ops), json_like(new))


def json_like(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def test_tuples_count_as_arrays() -> None:
    assert make_patch([1, [2]], (1, (2,))) == []


# --- patch shape -------------------------------------------------------------------


def test_object_diff_is_per_key() -> None:
    old = {"keep": {"x": 1}, "drop": 1, "change": {"deep": [1, 2]}}
    new = {"keep": {"x": 1}, "change": {"deep": [1, 3]}, "new": None}
    assert make_patch(old, new) == [
        {"op": "remove", "path": "/drop"},
        {"op": "replace", "path": "/change/deep/1", "value": 3},
        {"op": "add", "path": "/new", "value": None},
    ]


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("a/b", "/a~1b"),
        ("m~n", "/m~0n"),
        ("~1", "/~01"),
        ("/~", "/~1~0"),
        ("", "/"),
        ("~~", "/~0~0"),
    ],
)
def test_pointer_escaping(key: str, pointer: str) -> None:
    assert make_patch({}, {key: 1}) == [{"op": "add", "path": pointer, "value": 1}]
    assert apply_patch({}, [{"op": "add", "path": pointer, "value": 1}]) == {key: 1}
    assert make_patch({key: {key: 1}}, {key: {key: 2}}) == [
        {"op": "replace", "path": pointer + pointer, "value": 2}
    ]


def test_list_edits_are_small() -> None:
    rows: list[dict[str, Any]] = [{"n": n, "tags": ["a", "b"]} for n in range(200)]
    edited_rows = copy.deepcopy(rows)
    edited_rows[57]["tags"].append("c")
    assert make_patch(rows, edited_rows) == [{"op": "add", "path": "/57/tags/2", "value": "c"}]
    assert make_patch(rows, [*rows[:10], {"n": -1}, *rows[10:]]) == [
        {"op": "add", "path": "/10", "value": {"n": -1}}
    ]
    assert make_patch(rows, rows[:10] + rows[11:]) == [{"op": "remove", "path": "/10"}]
    # Two separate runs: each index is where the element is once the earlier ops applied.
    assert make_patch(list(range(10)), [0, 1, 3, 5, 6, 7, 10, 8, 9]) == [
        {"op": "remove", "path": "/2"},
        {"op": "remove", "path": "/3"},
        {"op": "add", "path": "/6", "value": 10},
    ]


def test_removes_run_from_the_highest_index_down() -> None:
    ops = make_patch([0, 1, 2, 3, 4, 5], [0, 5])
    assert ops == [{"op": "remove", "path": f"/{i}"} for i in (4, 3, 2, 1)]


def test_large_unmatched_arrays_are_replaced_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jsonpatch, "_MAX_LCS_CELLS", 8)
    old, new = {"a": [0, 1, 2, 3, 9]}, {"a": [0, 4, 5, 6, 9]}
    ops = make_patch(old, new)
    assert ops == [{"op": "replace", "path": "/a", "value": [0, 4, 5, 6, 9]}]
    assert_round_trip(old, new)
    # Under the cap the same arrays get an aligned diff.
    assert make_patch({"a": [0, 1, 9]}, {"a": [0, 4, 9]}) == [
        {"op": "replace", "path": "/a/1", "value": 4}
    ]


def test_diff_of_a_large_array_stays_fast() -> None:
    old = list(range(3000))
    new = [n * 2 if n % 100 == 0 else n for n in old]  # scattered edits: the middle is large
    assert_round_trip(old, new)


def test_non_json_values_are_refused() -> None:
    with pytest.raises(ValidationError, match="non-string"):
        make_patch({}, {1: 1})
    with pytest.raises(ValidationError, match="not a JSON type"):
        make_patch([{1, 2}, 0], [0, {1, 2}])


# --- RFC 6901 and 6902 examples ----------------------------------------------------

RFC6901_DOC = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", RFC6901_DOC),
        ("/foo", ["bar", "baz"]),
        ("/foo/0", "bar"),
        ("/", 0),
        ("/a~1b", 1),
        ("/c%d", 2),
        ("/e^f", 3),
        ("/g|h", 4),
        ("/i\\j", 5),
        ('/k"l', 6),
        ("/ ", 7),
        ("/m~0n", 8),
    ],
)
def test_rfc6901_pointers(pointer: str, expected: Any) -> None:
    apply_patch(RFC6901_DOC, [{"op": "test", "path": pointer, "value": expected}])
    moved = apply_patch(RFC6901_DOC, [{"op": "copy", "from": pointer, "path": "/copied"}])
    assert moved["copied"] == expected


@pytest.mark.parametrize(
    ("doc", "ops", "expected"),
    [
        # A.1 - A.8, A.10, A.11, A.14, A.16 of RFC 6902
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
         {"baz": "qux", "foo": "bar"}),
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
         {"foo": ["bar", "qux", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
         {"foo": ["bar", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
         {"baz": "boo", "foo": "bar"}),
        ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
         [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
         {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ({"foo": ["all", "grass", "cows", "eat"]},
         [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
         {"foo": ["all", "cows", "eat", "grass"]}),
        ({"baz": "qux", "foo": ["a", 2, "c"]},
         [{"op": "test", "path": "/baz", "value": "qux"},
          {"op": "test", "path": "/foo/1", "value": 2}],
         {"baz": "qux", "foo": ["a", 2, "c"]}),
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
         {"foo": "bar", "child": {"grandchild": {}}}),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
         {"foo": "bar", "baz": "qux"}),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}],
         {"/": 9, "~1": 10}),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
         {"foo": ["bar", ["abc", "def"]]}),
        # beyond the appendix: root targets, copy, no-op move, numeric test
        ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
        ({"a": 1}, [{"op": "add", "path": "", "value": None}], None),
        ({"a": [1]}, [{"op": "copy", "from": "/a", "path": "/b"},
                      {"op": "add", "path": "/b/-", "value": 2}], {"a": [1], "b": [1, 2]}),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": {"b": 1}}),
        ({"a": [1, {"b": 2.0}]}, [{"op": "test", "path": "/a", "value": [1.0, {"b": 2}]}],
         {"a": [1, {"b": 2.0}]}),
        ({"a": [1, 2]}, [{"op": "replace", "path": "/a/1", "value": 3}], {"a": [1, 3]}),
        ([], [{"op": "add", "path": "/0", "value": 1}, {"op": "add", "path": "/1", "value": 2}],
         [1, 2]),
    ],
)  # fmt: skip
def test_rfc6902_examples(doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    before = canon(doc)
    assert_same(apply_patch(doc, ops), expected)
    assert canon(doc) == before


def test_replace_keeps_the_member_in_place() -> None:
    result = apply_patch({"a": 1, "b": 2, "c": 3}, [{"op": "replace", "path": "/b", "value": 0}])
    assert list(result) == ["a", "b", "c"]


def test_added_values_are_copies() -> None:
    value = {"x": [1]}
    ops = [{"op": "add", "path": "/a", "value": value}, {"op": "add", "path": "/b", "value": value}]
    result = apply_patch({}, ops)
    result["a"]["x"].append(2)
    assert value == {"x": [1]} and result["b"] == {"x": [1]}


@pytest.mark.parametrize(
    ("doc", "ops", "message"),
    [
        # A.9, A.12, A.15 of RFC 6902
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "test failed"),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "no member"),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "test failed"),
        # malformed operations
        ({}, [{"path": "/a", "value": 1}], "unknown op None"),
        ({}, [{"op": "upsert", "path": "/a", "value": 1}], "unknown op 'upsert'"),
        ({}, [{"op": "add", "value": 1}], "must be a string"),
        ({}, [{"op": "add", "path": 3, "value": 1}], "must be a string"),
        ({}, [{"op": "add", "path": "a", "value": 1}], "does not start with '/'"),
        ({}, [{"op": "add", "path": "/a~2", "value": 1}], "bad '~' escape"),
        ({}, [{"op": "add", "path": "/a~", "value": 1}], "bad '~' escape"),
        ({}, [{"op": "add", "path": "/a"}], "no 'value'"),
        ({"a": 1}, [{"op": "replace", "path": "/a"}], "no 'value'"),
        ({"a": 1}, [{"op": "test", "path": "/a"}], "no 'value'"),
        ({"a": 1}, [{"op": "move", "path": "/b"}], "must be a string"),
        ({"a": 1}, [{"op": "copy", "from": "a", "path": "/b"}], "does not start with '/'"),
        ({}, ["add"], "not an object"),
        # targets that do not exist
        ({"a": 1}, [{"op": "remove", "path": "/b"}], "no member"),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], "no member"),
        ({"a": 1}, [{"op": "test", "path": "/b", "value": 1}], "no member"),
        ({"a": 1}, [{"op": "move", "from": "/b", "path": "/c"}], "no member"),
        ({"a": 1}, [{"op": "copy", "from": "/b", "path": "/c"}], "no member"),
        ({"a": 1}, [{"op": "move", "from": "/b", "path": "/b"}], "no member"),
        ({"a": 1}, [{"op": "add", "path": "/a/b", "value": 1}], "not a container"),
        ({"a": 1}, [{"op": "test", "path": "/a/b", "value": 1}], "in a scalar"),
        ({}, [{"op": "remove", "path": ""}], "whole document"),
        # array indices
        ({"a": [1, 2]}, [{"op": "remove", "path": "/a/2"}], "out of range"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/3", "value": 0}], "out of range"),
        ({"a": [1, 2]}, [{"op": "replace", "path": "/a/2", "value": 0}], "out of range"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/01", "value": 0}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 0}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/+1", "value": 0}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/\u0661", "value": 0}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "remove", "path": "/a/-"}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "test", "path": "/a/x", "value": 1}], "not an array index"),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/-/0", "value": 0}], "not an array index"),
        # move into its own child; a test that tells bool from number
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/c"}], "own children"),
        ({"a": {"b": 1}}, [{"op": "move", "from": "", "path": "/c"}], "own children"),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "test failed"),
        ({"a": [1]}, [{"op": "test", "path": "/a", "value": [1, 1]}], "test failed"),
    ],
)
def test_invalid_patches_are_refused(doc: Any, ops: Any, message: str) -> None:
    before = canon(doc)
    with pytest.raises(ValidationError, match=message):
        apply_patch(doc, ops)
    assert canon(doc) == before


def test_a_failing_operation_applies_nothing() -> None:
    doc = {"a": [1]}
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/a/-", "value": 2},
        {"op": "remove", "path": "/zzz"},
    ]
    with pytest.raises(ValidationError, match=r"^operation 1 "):
        apply_patch(doc, ops)
    assert doc == {"a": [1]}


@pytest.mark.parametrize("ops", [{"op": "add", "path": "/a", "value": 1}, "ops", None, 3])
def test_a_patch_must_be_a_list(ops: Any) -> None:
    with pytest.raises(ValidationError, match="list of operations"):
        apply_patch({}, ops)


def test_docstring_example() -> None:
    result = doctest.testmod(_jsonpatch, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0
