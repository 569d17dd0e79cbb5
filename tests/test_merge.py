"""Deep merge with array union: a naive reference, algebraic properties, edge cases."""

from __future__ import annotations

import copy
import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async import _merge
from chronos_async._errors import ValidationError
from chronos_async._merge import deep_merge, json_copy, json_equal, merge_all
from tests.support import assert_same, canon, json_scalars

# A small key alphabet and a pool of look-alike leaves (1, 1.0, True, -0.0, ...) make keys
# collide and union members compare equal often enough for the properties to bite.
keys = st.sampled_from(["a", "b", "c", "a/b", "~"]) | st.text(max_size=3)
leaves = st.sampled_from([0, 1, 1.0, -0.0, 0.0, True, False, None, "", "1", "x"]) | json_scalars
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=15,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)

SETTINGS = settings(max_examples=100, deadline=None)


def _norm(value: Any) -> Any:
    """A comparable form written independently of the module: bool apart from numbers."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", value)  # 1 == 1.0, as JSON numbers
    if isinstance(value, dict):
        return ("obj", sorted((k, _norm(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("arr", [_norm(v) for v in value])
    return ("str" if isinstance(value, str) else "null", value)


def reference_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The rules as stated, with deep copies everywhere and a linear union."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        current = result.get(key)
        if key in result and isinstance(current, dict) and isinstance(value, dict):
            result[key] = reference_merge(current, value)
        elif key in result and isinstance(current, list) and isinstance(value, list):
            union = copy.deepcopy(current)
            for item in value:
                if all(_norm(item) != _norm(present) for present in union):
                    union.append(copy.deepcopy(item))
            result[key] = union
        else:
            result[key] = copy.deepcopy(value)
    return result


# --- the reference and the algebra -------------------------------------------------


@SETTINGS
@given(base=json_objects, patch=json_objects)
def test_matches_the_naive_reference(base: dict[str, Any], patch: dict[str, Any]) -> None:
    assert_same(deep_merge(base, patch), reference_merge(base, patch))


small_items = st.recursive(
    st.sampled_from([0, 1, 1.0, True, False, None, "1", -0.0]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=3,
)


@SETTINGS
@given(
    left=st.lists(small_items, max_size=30),
    right=st.lists(small_items, max_size=30),
)
def test_long_array_union_matches_the_reference(left: list[Any], right: list[Any]) -> None:
    # Above _LINEAR_UNION_MAX comparisons the union hashes instead of scanning.
    base, patch = {"k": left}, {"k": right}
    assert_same(deep_merge(base, patch), reference_merge(base, patch))


@SETTINGS
@given(base=json_objects, patch=json_objects)
def test_merging_the_same_patch_twice_equals_once(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    once = deep_merge(base, patch)
    assert_same(deep_merge(once, patch), once)


@settings(max_examples=50, deadline=None)
@given(base=json_objects)
def test_empty_patch_is_identity(base: dict[str, Any]) -> None:
    merged = deep_merge(base, {})
    assert_same(merged, base)
    assert merged is not base
    assert_same(merge_all(base, []), base)


def _check_preserved(result: Any, base: Any, patch: Any) -> None:
    """Keys and array elements of base and patch all survive at the same path."""
    assert set(result) >= set(base) | set(patch)
    for key in base.keys() - patch.keys():
        assert_same(result[key], base[key])
    for key in patch.keys() - base.keys():
        assert_same(result[key], patch[key])
    for key in base.keys() & patch.keys():
        old, new, got = base[key], patch[key], result[key]
        if isinstance(old, dict) and isinstance(new, dict):
            _check_preserved(got, old, new)
        elif isinstance(old, list) and isinstance(new, list):
            assert got[: len(old)] == old  # the base array is a prefix, in order
            for item in [*old, *new]:
                assert any(json_equal(item, present) for present in got)
        else:
            assert_same(got, new)  # scalars, None and type changes: the patch wins


@SETTINGS
@given(base=json_objects, patch=json_objects)
def test_keys_and_array_elements_are_never_lost(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    _check_preserved(deep_merge(base, patch), base, patch)


@settings(max_examples=50, deadline=None)
@given(base=json_objects, patches=st.lists(json_objects, max_size=3))
def test_merge_all_applies_patches_in_order(
    base: dict[str, Any], patches: list[dict[str, Any]]
) -> None:
    expected = base
    for patch in patches:
        expected = deep_merge(expected, patch)
    assert_same(merge_all(base, patches), expected)


def kind_compatible(p1: dict[str, Any], p2: dict[str, Any]) -> bool:
    """Where both patches hold a value, p2's is a scalar or a container of p1's kind."""
    for key in p1.keys() & p2.keys():
        v1, v2 = p1[key], p2[key]
        if isinstance(v2, dict):
            if not isinstance(v1, dict) or not kind_compatible(v1, v2):
                return False
        elif isinstance(v2, list) and not isinstance(v1, list):
            return False
    return True


def make_compatible(p1: dict[str, Any], p2: dict[str, Any]) -> dict[str, Any]:
    """p2 with each container that conflicts with p1's value there replaced by None."""
    out = dict(p2)
    for key in p1.keys() & p2.keys():
        v1, v2 = p1[key], p2[key]
        if isinstance(v2, dict) and isinstance(v1, dict):
            out[key] = make_compatible(v1, v2)
        elif (isinstance(v2, dict) and not isinstance(v1, dict)) or (
            isinstance(v2, list) and not isinstance(v1, list)
        ):
            out[key] = None
    return out


@SETTINGS
@given(base=json_objects, p1=json_objects, p2=json_objects)
def test_associative_for_kind_compatible_patches(
    base: dict[str, Any], p1: dict[str, Any], p2: dict[str, Any]
) -> None:
    p2 = make_compatible(p1, p2)
    assert kind_compatible(p1, p2)
    assert_same(deep_merge(deep_merge(base, p1), p2), deep_merge(base, deep_merge(p1, p2)))


@SETTINGS
@given(base=json_objects, p1=json_objects, p2=json_objects)
def test_associativity_fails_only_for_incompatible_patches(
    base: dict[str, Any], p1: dict[str, Any], p2: dict[str, Any]
) -> None:
    left = deep_merge(deep_merge(base, p1), p2)
    right = deep_merge(base, deep_merge(p1, p2))
    if canon(left) != canon(right):
        assert not kind_compatible(p1, p2)


@pytest.mark.parametrize(
    ("base", "p1", "p2", "sequential", "pre_merged"),
    [
        ({"a": [1]}, {"a": None}, {"a": [2]}, {"a": [2]}, {"a": [1, 2]}),
        ({"a": {"x": 1}}, {"a": 0}, {"a": {"y": 2}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),
        ({"a": [1]}, {"a": {"x": 1}}, {"a": [2]}, {"a": [2]}, {"a": [1, 2]}),
    ],
)
def test_associativity_counterexamples(
    base: dict[str, Any], p1: Any, p2: Any, sequential: Any, pre_merged: Any
) -> None:
    assert not kind_compatible(p1, p2)
    assert_same(deep_merge(deep_merge(base, p1), p2), sequential)
    assert_same(deep_merge(base, deep_merge(p1, p2)), pre_merged)


# --- sharing and mutation ----------------------------------------------------------


def _containers(value: Any) -> list[Any]:
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


def _vandalize(value: Any) -> None:
    for container in _containers(value):
        if isinstance(container, dict):
            container["vandal"] = "!"
        else:
            container.append("!")


def _check_patched_paths_are_new(result: Any, base: Any, patch: Any) -> None:
    assert result is not base
    for key in base.keys() & patch.keys():
        if isinstance(base[key], (dict, list)) and isinstance(patch[key], (dict, list)):
            assert result[key] is not base[key]
            if isinstance(base[key], dict) and isinstance(patch[key], dict):
                _check_patched_paths_are_new(result[key], base[key], patch[key])


@SETTINGS
@given(base=json_objects, patch=json_objects)
def test_inputs_are_never_mutated_and_the_patch_is_never_shared(
    base: dict[str, Any], patch: dict[str, Any]
) -> None:
    base_before, patch_before = canon(base), canon(patch)
    result = deep_merge(base, patch)
    assert canon(base) == base_before
    assert canon(patch) == patch_before
    _check_patched_paths_are_new(result, base, patch)
    result_before = canon(result)
    patch_ids = {id(c) for c in _containers(patch)}
    assert not patch_ids & {id(c) for c in _containers(result)}
    _vandalize(patch)
    assert canon(result) == result_before


def test_untouched_subtrees_of_the_base_are_shared() -> None:
    big = {"rows": [{"n": n} for n in range(10_000)]}
    base = {"big": big, "small": {"x": 1}}
    result = deep_merge(base, {"small": {"y": 2}})
    assert result["big"] is big  # copy-on-write: nothing outside the patched path is copied
    assert result["small"] == {"x": 1, "y": 2}
    assert base["small"] == {"x": 1}


# --- the rules, case by case -------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "patch", "expected"),
    [
        ({"a": 1}, {"a": None}, {"a": None}),
        ({"a": {"x": 1}}, {"a": None}, {"a": None}),
        ({"a": [1, 2]}, {"a": None}, {"a": None}),
        ({"a": None}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({}, {"a": None}, {"a": None}),
        ({"a": [1]}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": {"x": 1}}, {"a": [1]}, {"a": [1]}),
        ({"a": [1]}, {"a": 2}, {"a": 2}),
        ({"a": {"x": 1}}, {"a": "s"}, {"a": "s"}),
        ({"a": 1}, {"a": 1.0}, {"a": 1.0}),
        ({"a": 1}, {"a": True}, {"a": True}),
        ({"a": {"x": {"y": 1, "z": 2}}}, {"a": {"x": {"z": 3}}}, {"a": {"x": {"y": 1, "z": 3}}}),
    ],
)
def test_replace_rules(base: dict[str, Any], patch: dict[str, Any], expected: Any) -> None:
    assert_same(deep_merge(base, patch), expected)


@pytest.mark.parametrize(
    ("base", "patch", "expected"),
    [
        ([1], [True], [1, True]),
        ([True], [1, 1.0], [True, 1]),
        ([0], [False, 0.0, -0.0], [0, False]),
        ([1.0], [1], [1.0]),
        (["1"], [1], ["1", 1]),
        ([None], [None, False, 0, ""], [None, False, 0, ""]),
        ([{"a": 1}], [{"a": True}, {"a": 1.0}], [{"a": 1}, {"a": True}]),
        ([[1]], [[True], [1]], [[1], [True]]),
        ([{"a": 1, "b": 2}], [{"b": 2, "a": 1}], [{"a": 1, "b": 2}]),
        ([1, 1], [1, 2, 2], [1, 1, 2]),  # the base keeps its duplicates, the patch not
        ([], [3, 3], [3]),
    ],
)
def test_union_uses_json_equality(base: list[Any], patch: list[Any], expected: Any) -> None:
    assert_same(deep_merge({"k": base}, {"k": patch}), {"k": expected})
    # The same through the hashing path: enough comparisons to pass _LINEAR_UNION_MAX.
    padding = [f"pad{n}" for n in range(100)]
    assert_same(deep_merge({"k": padding + base}, {"k": patch}), {"k": padding + expected})


def test_tuples_are_arrays_and_become_lists() -> None:
    assert_same(deep_merge({"k": [1]}, {"k": (1, 2)}), {"k": [1, 2]})
    assert_same(deep_merge({}, {"k": (1, (2,))}), {"k": [1, [2]]})


def test_json_equal() -> None:
    assert json_equal(1, 1.0) and not json_equal(1, 1.0, exact=True)
    assert json_equal(0.0, -0.0) and not json_equal(0.0, -0.0, exact=True)
    assert not json_equal(1, True) and not json_equal(0, False) and not json_equal(1.0, True)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2}) and not json_equal({"a": 1}, {"b": 1})
    assert not json_equal([1, 2], [2, 1]) and not json_equal([1], 1)
    assert not json_equal("1", 1) and not json_equal(None, 0) and not json_equal({}, [])
    assert json_equal((1, 2), [1, 2])
    assert json_equal(2**63 - 1, 2**63 - 1) and not json_equal(2**63 - 1, float(2**63 - 1))


def test_json_copy_converts_and_checks_keys() -> None:
    source = {"a": (1, [2]), "b": {"c": 3}}
    copied = json_copy(source)
    assert copied == {"a": [1, [2]], "b": {"c": 3}} and copied["b"] is not source["b"]
    with pytest.raises(ValidationError, match="non-string"):
        json_copy({"a": {1: 2}})


# --- what is refused ---------------------------------------------------------------


@pytest.mark.parametrize("patch", [[{"a": 1}], "a", None, 1, [("a", 1)]])
def test_patch_must_be_a_mapping(patch: Any) -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        deep_merge({}, patch)


@pytest.mark.parametrize(
    "patch",
    [{1: "x"}, {"a": {2: "x"}}, {"a": [{None: 1}]}, {"a": {"b": [[{(1,): 1}]]}}],
)
def test_non_string_keys_anywhere_in_the_patch_are_refused(patch: Any) -> None:
    with pytest.raises(ValidationError, match="non-string"):
        deep_merge({"a": {"b": [0]}}, patch)


def test_base_must_be_a_dict() -> None:
    with pytest.raises(ValidationError, match="base"):
        deep_merge([], {})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="base"):
        merge_all(None, [])  # type: ignore[arg-type]


@pytest.mark.parametrize("patches", [{"a": 1}, "ab", None, 3])
def test_merge_all_wants_a_sequence(patches: Any) -> None:
    with pytest.raises(ValidationError, match="sequence"):
        merge_all({}, patches)


def test_merge_all_names_the_bad_patch() -> None:
    with pytest.raises(ValidationError, match=r"^patch 1: "):
        merge_all({}, [{"a": 1}, [1]])  # type: ignore[list-item]


def test_absurdly_deep_patch_is_a_validation_error() -> None:
    patch: dict[str, Any] = {}
    for _ in range(5000):
        patch = {"a": patch}
    with pytest.raises(ValidationError, match="deep"):
        deep_merge({}, patch)


def test_docstring_example() -> None:
    result = doctest.testmod(_merge, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 1 and result.failed == 0
