"""Content externalization, the pure part: paths, strict base64, references (hypothesis)."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async import ConfigError, ValidationError
from chronos_async._config import ChronosConfig
from chronos_async._content import (
    REF,
    TEXT_TYPE,
    check_carried,
    content_key,
    decode_strict,
    extract,
    index_value,
    parse_content_key,
    refs_in,
    text_rendition,
)
from chronos_async._content_paths import (
    check_prop_paths,
    locate,
    parse_concrete_path,
    parse_prop,
    touches,
)
from chronos_async._keys import item_prefix, parse_payload_key
from chronos_async._merge import merge_all
from chronos_async._sections import Base64Prop

BIN = Base64Prop(content_type="application/octet-stream")
TEXT = Base64Prop(content_type="text/plain")
PREFIX = item_prefix(None, "db", "mail", "r1")


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def restore(data: dict[str, Any], blobs: dict[str, bytes], props: dict[str, Base64Prop]) -> Any:
    """What a read with content="data" does, without a store."""
    out = copy.deepcopy(data)
    for slot, ref in list(refs_in(out, props)):
        slot.set(b64(blobs[ref["key"]]))
    return out


@given(st.binary(max_size=300))
def test_strict_base64_round_trips(body: bytes) -> None:
    assert decode_strict(b64(body), "p") == body


@given(st.binary(min_size=1, max_size=60), st.sampled_from(["strip", "space", "urlsafe", "bits"]))
def test_non_canonical_base64_is_refused(body: bytes, how: str) -> None:
    text = b64(body)
    if how == "strip":
        bad = text.rstrip("=")
    elif how == "space":
        bad = text[:2] + "\n" + text[2:]
    elif how == "urlsafe":
        bad = base64.urlsafe_b64encode(body).decode()
    else:  # a padded value whose unused trailing bits are set
        if not text.endswith("="):
            return
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = text.rstrip("=")[-1]
        bad = (
            text.rstrip("=")[:-1]
            + alphabet[alphabet.index(last) | 1]
            + text[len(text.rstrip("=")) :]
        )
    if bad == text:
        return
    with pytest.raises(ValidationError, match="files\\[3\\]"):
        decode_strict(bad, "files[3]")


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))
blobs = st.lists(st.binary(max_size=40), min_size=0, max_size=4)


@given(blobs, st.binary(max_size=40), json_leaf)
@settings(max_examples=60)
def test_extract_then_restore_is_the_identity(
    files: list[bytes], avatar: bytes, other: Any
) -> None:
    props = {"files[]": BIN, "avatar": BIN, "parts[].data": TEXT}
    data = {
        "files": [b64(f) for f in files],
        "avatar": b64(avatar),
        "parts": [{"data": b64(f), "n": i} for i, f in enumerate(files)] + [None],
        "other": other,
    }
    before = copy.deepcopy(data)
    ext = extract(data, props)
    assert ext is not None and data == before  # the caller's data is untouched
    stored = ext.bind(PREFIX)
    uploads = {key: blob.body for key, blob in ext.uploads(PREFIX).items()}
    for key, body in uploads.items():
        assert key.startswith(PREFIX + "c/") and parse_content_key(key) == ("_", "db", "mail", "r1")
        assert parse_payload_key(key) is None
        assert key == content_key(PREFIX, hashlib.sha256(body).hexdigest(), key_type(ext, key))
    assert restore(stored, uploads, props) == data
    # The same data gives the same stored form (content-addressed: dedupe across versions).
    again = extract(copy.deepcopy(data), props)
    assert again is not None and again.bind(PREFIX) == stored
    assert {e["key"] for e in ext.entries()} == set(uploads)


def key_type(ext: Any, key: str) -> str:
    for _, blob, text in ext.new:
        for one in (blob, text):
            if one is not None and content_key(PREFIX, one.sha256, one.content_type) == key:
                return str(one.content_type)
    raise AssertionError(key)


def test_text_rendition_when_asked_and_text() -> None:
    assert text_rendition(b"hello", TEXT) == b"hello"
    assert text_rendition(b"hello", BIN) is None
    preferred = Base64Prop(
        content_type="application/x-mail", preferred_text=True, text_charset="latin-1"
    )
    assert text_rendition("grüße".encode("latin-1"), preferred) == "grüße".encode()
    assert text_rendition(bytes(range(32)) * 4, preferred) is None  # control characters
    assert text_rendition(b"\xff\xfe\xfa", TEXT) is None  # not UTF-8
    ext = extract({"body": b64(b"hi there")}, {"body": TEXT})
    assert ext is not None
    ref = ext.bind(PREFIX)["body"][REF]
    assert ref["text"]["content_type"] == TEXT_TYPE and ref["size"] == 8


@pytest.mark.parametrize(
    ("value", "needle"),
    [(12, "avatar must hold base64"), ({"x": 1}, "avatar must hold base64"), ("no!", "avatar")],
)
def test_bad_values_name_their_path(value: Any, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        extract({"avatar": value}, {"avatar": BIN})


def test_shape_errors_name_the_path() -> None:
    with pytest.raises(ValidationError, match="files must be an array"):
        extract({"files": "abc="}, {"files[]": BIN})
    with pytest.raises(ValidationError, match=r"parts\[1\] must be an object"):
        extract({"parts": [{"data": None}, 3]}, {"parts[].data": BIN})
    assert extract({"x": 1}, {"avatar": BIN}) is not None  # missing: fine
    assert extract({"avatar": None}, {"avatar": BIN}).empty  # type: ignore[union-attr]


def test_carried_references_must_be_the_current_versions() -> None:
    ext = extract({"avatar": b64(b"abc")}, {"avatar": BIN})
    assert ext is not None
    stored = ext.bind(PREFIX)
    current = ext.entries()
    kept = extract(copy.deepcopy(stored), {"avatar": BIN})
    assert kept is not None and kept.carried and not kept.new
    check_carried(kept, current)  # the current version holds it: fine
    with pytest.raises(ValidationError, match="current version does not have"):
        check_carried(kept, [])
    shown = copy.deepcopy(stored)
    shown["avatar"][REF]["url"] = "https://example/x"  # a presigned read, written back
    again = extract(shown, {"avatar": BIN})
    assert again is not None and again.bind(PREFIX) == stored
    tampered = copy.deepcopy(stored)
    tampered["avatar"][REF]["sha256"] = "0" * 64
    with pytest.raises(ValidationError, match="malformed content reference"):
        extract(tampered, {"avatar": BIN})


@given(st.lists(st.binary(max_size=8), max_size=3))
def test_index_value_is_the_sha256(files: list[bytes]) -> None:
    ext = extract({"files": [b64(f) for f in files]}, {"files[]": BIN})
    assert ext is not None
    stored = ext.bind(PREFIX)
    assert index_value(stored["files"]) == [hashlib.sha256(f).hexdigest() for f in files]


names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@given(st.lists(st.tuples(names, st.booleans()), min_size=1, max_size=4))
def test_prop_paths_parse_back(segments: list[tuple[str, bool]]) -> None:
    path = ".".join(name + ("[]" if arr else "") for name, arr in segments)
    assert parse_prop(path) == tuple(segments)


@pytest.mark.parametrize("bad", ["", "a..b", "a[]]", "1a", "a.[]", "a b", "$a"])
def test_bad_prop_paths(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_prop(bad)


def test_nested_prop_paths_are_refused_in_config() -> None:
    with pytest.raises(ValidationError, match="inside"):
        check_prop_paths(["a", "a.b"])
    check_prop_paths(["a", "ab.c", "b[].a"])
    base = {"mongo_uris": ["mongodb://x"], "local_storage": {"enabled": True, "base_path": "/t"}}
    with pytest.raises(ConfigError):
        ChronosConfig.model_validate(
            {**base, "collectionMaps": {"m": {"base64Props": {"a[].b": {"contentType": ""}}}}}
        )
    with pytest.raises(ConfigError, match="text_charset"):
        ChronosConfig.model_validate(
            {
                **base,
                "collectionMaps": {
                    "m": {"base64Props": {"a": {"contentType": "t/x", "textCharset": "nope"}}}
                },
            }
        )


def test_concrete_paths() -> None:
    assert parse_concrete_path("attachments[2].data") == ("attachments", 2, "data")
    assert parse_concrete_path("a[0][1]") == ("a", 0, 1)
    for bad in ("", "a[x]", "a.", "[0]"):
        with pytest.raises(ValidationError):
            parse_concrete_path(bad)


def test_locate_visits_every_element() -> None:
    data = {"a": [{"b": "x"}, None, {"c": 1}, {"b": "y"}]}
    assert [s.path for s in locate(data, parse_prop("a[].b"))] == ["a[0].b", "a[3].b"]


patch_values = st.recursive(
    json_leaf, lambda inner: st.dictionaries(names, inner, max_size=3), max_leaves=6
)


@given(st.dictionaries(st.sampled_from(["avatar", "meta", "x"]), patch_values, max_size=3))
@settings(max_examples=80)
def test_untouched_patches_merge_alike_on_both_forms(patch: dict[str, Any]) -> None:
    """A patch that `touches` says misses the content merges the same into the stored
    form (references) as into the written form (base64): enrich relies on it."""
    props = {"avatar": BIN, "meta.logo": BIN}
    data = {"avatar": b64(b"one"), "meta": {"logo": b64(b"two"), "k": 1}, "x": 0}
    if any(touches(patch, parse_prop(p)) for p in props):
        return
    ext = extract(copy.deepcopy(data), props)
    assert ext is not None
    stored = ext.bind(PREFIX)
    uploads = {key: blob.body for key, blob in ext.uploads(PREFIX).items()}
    try:
        written = merge_all(data, [patch])
    except ValidationError:
        return
    merged_stored = merge_all(stored, [patch])
    assert restore(merged_stored, uploads, props) == written
