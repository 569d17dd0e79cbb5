"""Payload codec: canonical bytes, round trips, what is refused, integrity checks."""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import uuid
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from chronos_async._codec import check_shape, decode_payload, encode_payload, sha256_hex
from chronos_async._errors import IntegrityError, ValidationError
from tests.support import exact_types, json_scalars

LIMIT = 1 << 20

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


def _reorder(value: Any) -> Any:
    """The same JSON with every object's keys inserted in reverse order."""
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(data=json_objects)
def test_round_trip(data: dict[str, Any]) -> None:
    encoded = encode_payload(data, max_bytes=LIMIT)
    assert encoded.sha256 == sha256_hex(encoded.body)
    assert encoded.size == len(encoded.body)
    decoded = decode_payload(encoded.body, expected_sha256=encoded.sha256, where="r/1")
    assert decoded == data


@settings(max_examples=60, deadline=None)
@given(data=json_objects)
def test_bytes_do_not_depend_on_key_order(data: dict[str, Any]) -> None:
    assert encode_payload(_reorder(data), max_bytes=LIMIT) == encode_payload(data, max_bytes=LIMIT)


def test_canonical_form_is_compact_sorted_utf8() -> None:
    encoded = encode_payload(
        {"b": [1, 2.5, None], "a": "é", "c": {"y": True, "x": 1}}, max_bytes=LIMIT
    )
    assert encoded.body == '{"a":"é","b":[1,2.5,null],"c":{"x":1,"y":true}}'.encode()


def test_tuples_are_stored_as_lists() -> None:
    encoded = encode_payload({"t": (1, (2, 3))}, max_bytes=LIMIT)
    assert decode_payload(encoded.body, expected_sha256=None, where="x") == {"t": [1, [2, 3]]}


def _nested(depth: int) -> dict[str, Any]:
    """A dict whose containers nest ``depth`` levels (the top dict is level one)."""
    value: Any = 0
    for _ in range(depth - 1):
        value = {"a": value} if depth % 2 else [value]
    return {"top": value}


@pytest.mark.parametrize(
    "data",
    [
        {"x": math.nan},
        {"x": [1, {"y": math.inf}]},
        {"x": -math.inf},
        {"x": 2**64},
        {"x": -(2**63) - 1},
        {"x": 10**30},
        {"x": {1, 2}},
        {"x": frozenset()},
        {"x": b"bytes"},
        {"x": bytearray(b"b")},
        {"x": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)},
        {"x": decimal.Decimal("1.5")},
        {"x": object()},
        {1: "non-str key"},
        {"x": {None: 1}},
        {"x": {("a",): 1}},
        {"x": "\ud800"},
        {"\udfff": 1},
        {"x": "ok", "y": ["\ud83d"]},
        _nested(65),
        _nested(300),
    ],
)
def test_rejects_what_json_cannot_hold_unchanged(data: Any) -> None:
    with pytest.raises(ValidationError):
        encode_payload(data, max_bytes=LIMIT)


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None, (("a", 1),)])
def test_rejects_a_non_object_top_level(data: Any) -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        encode_payload(data, max_bytes=LIMIT)


def test_depth_limit_is_inclusive() -> None:
    encode_payload(_nested(64), max_bytes=LIMIT)
    encode_payload(_nested(3), max_bytes=LIMIT, max_depth=3)
    with pytest.raises(ValidationError, match="deeper than 3"):
        encode_payload(_nested(4), max_bytes=LIMIT, max_depth=3)
    # brackets inside strings do not count as nesting
    encode_payload({"s": "[[[[{{{{"}, max_bytes=LIMIT, max_depth=1)


def test_size_limit() -> None:
    body = encode_payload({"s": "x" * 100}, max_bytes=LIMIT).body
    encode_payload({"s": "x" * 100}, max_bytes=len(body))
    with pytest.raises(ValidationError, match=f"limit is {len(body) - 1}"):
        encode_payload({"s": "x" * 100}, max_bytes=len(body) - 1)


def test_a_dict_subclass_is_refused_even_though_it_is_a_json_object() -> None:
    # Current behaviour (OPT_PASSTHROUGH_SUBCLASS sends subclasses to the rejecting
    # default): callers must pass plain dicts. Pinned so a change is deliberate.
    with pytest.raises(ValidationError):
        encode_payload(OrderedDict(a=1), max_bytes=LIMIT)


def test_checksum_mismatch_is_an_integrity_error() -> None:
    encoded = encode_payload({"a": 1}, max_bytes=LIMIT)
    tampered = encoded.body.replace(b"1", b"2")
    with pytest.raises(IntegrityError, match="r/7"):
        decode_payload(tampered, expected_sha256=encoded.sha256, where="r/7")
    with pytest.raises(IntegrityError):
        decode_payload(encoded.body, expected_sha256="0" * 64, where="r/7")
    # without an expected sha256 the bytes are only parsed
    assert decode_payload(tampered, expected_sha256=None, where="r/7") == {"a": 2}


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[1]", b'"s"', b"null", b"NaN"])
def test_undecodable_or_non_object_bytes_are_integrity_errors(body: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_payload(body, expected_sha256=sha256_hex(body), where="r/1")


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_integrity_error(body: bytes) -> None:
    try:
        data = decode_payload(body, expected_sha256=sha256_hex(body), where="r/1")
    except IntegrityError:
        return
    assert isinstance(data, dict)


async def test_large_payloads_are_hashed_and_decoded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from chronos_async import _codec

    threads: list[str] = []
    real_sha = _codec.sha256_hex

    def spy(body: bytes) -> str:
        threads.append(threading.current_thread().name)
        return real_sha(body)

    monkeypatch.setattr(_codec, "sha256_hex", spy)
    small = {"a": "x" * 100}
    large = {"a": "x" * 300_000}
    limits = {"max_bytes": 10**7, "max_depth": 64, "offload_bytes": 256 * 1024}
    await _codec.encode_payload_async(small, **limits)
    encoded = await _codec.encode_payload_async(large, **limits)
    decoded = await _codec.decode_payload_async(
        encoded.body, expected_sha256=encoded.sha256, where="t", offload_bytes=256 * 1024
    )
    assert decoded == large
    main = threading.main_thread().name
    assert threads[0] == main
    assert threads[1] != main and threads[2] != main


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["dict", "list"]), min_size=1, max_size=80),
    leaf=st.sampled_from([None, 1, "x", "empty"]),
    limit=st.integers(min_value=1, max_value=70),
)
def test_fast_depth_check_agrees_with_the_reference_walk(
    kinds: list[str], leaf: object, limit: int
) -> None:
    value: Any = {} if leaf == "empty" else leaf
    for kind in reversed(kinds):
        value = {"k": value} if kind == "dict" else [value]
    data = {"root": value}

    def refused(run: Callable[[], object]) -> bool:
        try:
            run()
        except ValidationError:
            return True
        return False

    fast = refused(lambda: encode_payload(data, max_bytes=10**6, max_depth=limit))
    reference = refused(lambda: check_shape(data, max_depth=limit))
    assert fast == reference


any_floats = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324])
values_with_any_float = st.recursive(
    st.none() | st.integers(-(2**31), 2**31) | any_floats | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=4), values_with_any_float, max_size=6))
def test_fast_non_finite_check_agrees_with_the_reference_walk(data: dict[str, Any]) -> None:
    try:
        check_shape(data, max_depth=64)
    except ValidationError:
        with pytest.raises(ValidationError, match="NaN or Infinity"):
            encode_payload(data, max_bytes=LIMIT)
    else:
        encoded = encode_payload(data, max_bytes=LIMIT)
        assert decode_payload(encoded.body, expected_sha256=None, where="r") == data


def test_a_non_finite_float_is_found_wherever_it_hides() -> None:
    # next to nulls, shared by reference, deep in a large record, in a tuple
    shared_nan = math.nan
    rows = [{"v": float(i) / 3, "n": None, "t": (1, i)} for i in range(2000)]
    for bad in (shared_nan, math.inf, -math.inf):
        for where in (0, 999, 1999):
            record = {"rows": [dict(r) for r in rows], "same": [shared_nan, shared_nan]}
            if bad is not shared_nan:
                record["same"] = [1.5, 2.5]
            record["rows"][where]["v"] = bad
            with pytest.raises(ValidationError, match="NaN or Infinity"):
                encode_payload(record, max_bytes=LIMIT)
    encode_payload({"rows": rows}, max_bytes=LIMIT)


@pytest.mark.parametrize("limit", [1, 2, 200, 253, 254, 255, 300])
def test_depth_limit_holds_near_and_beyond_the_encoder_limit(limit: int) -> None:
    encode_payload(_nested(min(limit, 254)), max_bytes=LIMIT, max_depth=limit)
    # an empty container one level below the deepest allowed one is still fine
    deepest_allowed: Any = {}
    for _ in range(min(limit, 254) - 1):
        deepest_allowed = [deepest_allowed]
    if min(limit, 254) < 254:
        encode_payload({"x": deepest_allowed}, max_bytes=LIMIT, max_depth=limit)
    with pytest.raises(ValidationError):
        encode_payload(_nested(limit + 1), max_bytes=LIMIT, max_depth=limit)


@pytest.mark.parametrize("with_null", [False, True])
def test_integers_beyond_signed_64_bits_are_found_with_or_without_nulls(with_null: bool) -> None:
    extra = {"n": None} if with_null else {}
    big = 2**63
    for bad in ({"x": big}, {"x": [big, big]}, {"x": {"y": 2**64 - 1}}):
        with pytest.raises(ValidationError, match="signed 64-bit"):
            encode_payload({**extra, **bad}, max_bytes=LIMIT)
    for fine in (2**63 - 1, -(2**63), 2**60, 2**60 - 1, 2**31):
        encoded = encode_payload({**extra, "x": [fine, fine]}, max_bytes=LIMIT)
        assert decode_payload(encoded.body, expected_sha256=None, where="r")["x"] == [fine, fine]


# -- types orjson writes natively although they are not JSON -----------------------------


class Colour(enum.Enum):
    RED = 1


class Shade(str, enum.Enum):  # noqa: UP042 (the mixin form is what is tested)
    DARK = "dark"


class Level(enum.IntEnum):
    HIGH = 3


class Mode(enum.StrEnum):
    FAST = "fast"


class Text(str):
    pass


class Number(int):
    pass


class Ratio(float):
    pass


class Items(list[Any]):
    pass


Pair = namedtuple("Pair", "a b")

#: Values orjson writes without calling ``default`` (so they slipped through before),
#: and other non-JSON values, each with the type name the error must give.
NOT_JSON: list[tuple[str, Any]] = [
    ("UUID", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("Colour", Colour.RED),
    ("Shade", Shade.DARK),
    ("Level", Level.HIGH),
    ("Mode", Mode.FAST),
    ("Fragment", orjson.Fragment(b'"looks like a string"')),
    ("Fragment", orjson.Fragment(b"nul")),  # not even JSON: would be stored as is
    ("Decimal", decimal.Decimal("1.5")),
    ("datetime", datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
    ("bytes", b"x"),
    ("set", {1}),
    ("Text", Text("x")),
    ("Number", Number(1)),
    ("Ratio", Ratio(1.5)),
    ("Items", Items([1])),
    ("Pair", Pair(1, 2)),
    ("OrderedDict", OrderedDict(a=1)),
]


@pytest.mark.parametrize("null", [False, True], ids=["no-null", "with-null"])
@pytest.mark.parametrize(("name", "value"), NOT_JSON, ids=[n for n, _ in NOT_JSON])
def test_every_non_json_type_is_refused_and_named(name: str, value: Any, null: bool) -> None:
    # Anywhere in the record; with a null present too (that takes the NaN-scan branch).
    extra = {"n": None} if null else {}
    for data in ({"x": value}, {"a": [1, {"b": (value,)}]}, {"a": {"b": {"c": [value]}}}):
        with pytest.raises(ValidationError, match=rf"holds an? {name}\b.*not a JSON type"):
            encode_payload({**extra, **data}, max_bytes=LIMIT)
        with pytest.raises(ValidationError, match=rf"holds an? {name}\b"):
            check_shape({**extra, **data}, max_depth=64)


@pytest.mark.parametrize(
    "key", [1, None, True, 1.5, ("a",), Text("k"), Shade.DARK, Mode.FAST], ids=repr
)
def test_object_keys_must_be_exactly_str(key: Any) -> None:
    for data in ({key: 1}, {"a": [{key: 1}]}):
        with pytest.raises(ValidationError):
            encode_payload(data, max_bytes=LIMIT)
        with pytest.raises(ValidationError, match="key"):
            check_shape(data, max_depth=64)


def test_lone_surrogates_are_named_by_the_reference_walk() -> None:
    with pytest.raises(ValidationError, match="string that is not valid Unicode"):
        check_shape({"x": ["ok", "\ud800"]}, max_depth=64)
    with pytest.raises(ValidationError, match="key that is not valid Unicode"):
        check_shape({"x": {"\udfff": 1}}, max_depth=64)
    check_shape({"x": {"é": ["日本", "\U0001f600"]}}, max_depth=64)


non_json_leaves = st.one_of(
    st.uuids(),
    st.sampled_from([Colour.RED, Shade.DARK, Level.HIGH, Mode.FAST]),
    st.sampled_from([b"1", b"nul", b'"x"', b"[1,2]", b"{}"]).map(lambda raw: orjson.Fragment(raw)),
    st.decimals(allow_nan=False),
    st.datetimes(),
    st.binary(max_size=3),
    st.sets(st.integers(), max_size=2),
    st.builds(Text, st.text(max_size=3)),
    st.builds(Number, st.integers(-5, 5)),
    st.builds(Ratio, st.floats(allow_nan=False)),
    st.builds(Pair, st.integers(), st.none()),
)


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Draw from each strategy ``weight`` times out of the total."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


json_ish_leaves = _weighted(
    (20, json_scalars),
    (1, st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**20, math.nan, -math.inf])),
    (1, st.sampled_from(["\ud800", "a\udfffb"])),
    (3, non_json_leaves),
)
json_ish_keys = _weighted(
    (30, st.text(max_size=4)),
    (1, st.sampled_from(["\ud800", 1, None, True, Text("k"), Shade.DARK, Mode.FAST])),
)
json_ish = st.recursive(
    json_ish_leaves,
    lambda inner: _weighted(
        (6, st.lists(inner, max_size=4)),
        (2, st.tuples(inner, inner)),
        (6, st.dictionaries(json_ish_keys, inner, max_size=4)),
        (1, st.builds(Items, st.lists(inner, max_size=2))),
        (1, st.builds(OrderedDict, st.dictionaries(st.text(max_size=3), inner, max_size=2))),
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(data=st.dictionaries(json_ish_keys, json_ish, max_size=5))
def test_fast_path_and_reference_walk_agree_on_json_ish_values(data: dict[Any, Any]) -> None:
    try:
        check_shape(data, max_depth=64)
    except ValidationError as exc:
        with pytest.raises(ValidationError):
            encode_payload(data, max_bytes=LIMIT)
        event(f"refused: {str(exc).split(',')[0][:40]}")
        return
    encoded = encode_payload(data, max_bytes=LIMIT)
    # Accepted: stored exactly, each value with its own JSON type (nothing converted).
    decoded = decode_payload(encoded.body, expected_sha256=encoded.sha256, where="r")
    assert exact_types(decoded) == exact_types(data)
    event("accepted")
