"""Names and object keys: validators, key layout, tenant isolation."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chronos_async._errors import ValidationError
from chronos_async._keys import (
    NO_TENANT,
    collection_prefix,
    head_id,
    item_prefix,
    new_item_id,
    new_write_token,
    parse_payload_key,
    payload_key,
    validate_collection,
    validate_db,
    validate_id,
    validate_tenant,
    version_id,
)

ids = st.from_regex(r"[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]{0,127}", fullmatch=True).filter(
    lambda s: ".." not in s
)
tenants = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}", fullmatch=True).filter(
    lambda s: ".." not in s
)
collections = st.from_regex(r"[A-Za-z][A-Za-z0-9_\-]{0,63}", fullmatch=True)
dbs = st.from_regex(r"[A-Za-z0-9_\-]{1,63}", fullmatch=True)
tokens = st.from_regex(r"[0-9a-f]{1,32}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(item_id=ids, tenant=tenants, collection=collections, db=dbs)
def test_validators_accept_their_alphabet(
    item_id: str, tenant: str, collection: str, db: str
) -> None:
    assert validate_id(item_id) == item_id
    assert validate_tenant(tenant) == tenant
    assert validate_collection(collection) == collection
    assert validate_db(db) == db


BAD_COMMON: list[Any] = ["", "..", "a..b", "a/b", "/a", "a\\b", "a b", "é", "a\x00", None, 1, b"ab"]


@pytest.mark.parametrize(
    ("validator", "bad"),
    [
        (validate_id, [*BAD_COMMON, "x" * 129, "a?b", "a#b"]),
        (validate_tenant, [*BAD_COMMON, "x" * 129, NO_TENANT, "_a", ".a", "-a", ":a"]),
        (validate_collection, [*BAD_COMMON, "x" * 65, "1abc", "_abc", "a.b", "a:b"]),
        (validate_db, [*BAD_COMMON, "x" * 64, "a.b", "a:b", "a$b"]),
    ],
)
def test_validators_reject(validator: Callable[[object], str], bad: list[Any]) -> None:
    for value in bad:
        with pytest.raises(ValidationError):
            validator(value)


def test_length_limits_are_inclusive() -> None:
    assert validate_id("x" * 128)
    assert validate_tenant("x" * 128)
    assert validate_collection("x" * 64)
    assert validate_db("x" * 63)


def test_rejection_messages_never_echo_huge_or_non_string_values() -> None:
    with pytest.raises(ValidationError) as info:
        validate_id("y" * 5000)
    assert "y" * 300 not in str(info.value)
    with pytest.raises(ValidationError, match="int"):
        validate_id(12)


def test_generated_ids_and_tokens_are_valid_and_unique() -> None:
    assert len({validate_id(new_item_id()) for _ in range(200)}) == 200
    made = {new_write_token() for _ in range(200)}
    assert len(made) == 200
    assert all(parse_payload_key(payload_key(None, "d", "c", "i", 0, t)) for t in made)


@settings(max_examples=60, deadline=None)
@given(
    tenant=st.none() | tenants,
    db=dbs,
    collection=collections,
    item_id=ids,
    ov=st.integers(0, 10**12),
    token=tokens,
)
def test_payload_key_round_trips(
    tenant: str | None, db: str, collection: str, item_id: str, ov: int, token: str
) -> None:
    key = payload_key(tenant, db, collection, item_id, ov, token)
    assert parse_payload_key(key) == (tenant, db, collection, item_id, ov, token)
    assert key.startswith(item_prefix(tenant, db, collection, item_id))
    assert key.startswith(collection_prefix(tenant, db, collection))


@pytest.mark.parametrize(
    "key",
    [
        "",
        "t/db/c/id/v1/ab.json/extra",
        "t/db/c/id/1/ab.json",
        "t/db/c/id/v1/AB.json",
        "t/db/c/id/v1/ab.txt",
        "t/db/c/v1/ab.json",
        "t//c/id/v1/ab.json",
    ],
)
def test_parse_payload_key_rejects_other_keys(key: str) -> None:
    assert parse_payload_key(key) is None


@settings(max_examples=60, deadline=None)
@given(a=st.none() | tenants, b=st.none() | tenants, db=dbs, collection=collections, i=ids)
def test_tenants_never_share_prefixes(
    a: str | None, b: str | None, db: str, collection: str, i: str
) -> None:
    assume(a != b)
    pa, pb = collection_prefix(a, db, collection), collection_prefix(b, db, collection)
    assert not pa.startswith(pb)
    assert not pb.startswith(pa)
    assert not payload_key(a, db, collection, i, 1, "ab").startswith(pb)
    assert head_id(a, i) != head_id(b, i)
    assert version_id(a, i, 1) != version_id(b, i, 1)


def test_no_tenant_is_a_name_no_tenant_can_have() -> None:
    assert collection_prefix(None, "db", "c") == f"{NO_TENANT}/db/c/"
    with pytest.raises(ValidationError):
        validate_tenant(NO_TENANT)


@settings(max_examples=60, deadline=None)
@given(a=ids, b=ids, tenant=st.none() | tenants)
def test_records_never_share_prefixes_or_ids(a: str, b: str, tenant: str | None) -> None:
    assume(a != b)
    assert not item_prefix(tenant, "db", "c", a).startswith(item_prefix(tenant, "db", "c", b))
    assert head_id(tenant, a) != head_id(tenant, b)
    assert version_id(tenant, a, 1) != version_id(tenant, b, 1)


def test_no_valid_id_aliases_another_records_folder() -> None:
    # A local-folder store (and any client applying RFC 3986 dot-segment removal) turns
    # "_/db/c/./v1/<token>.json" into "_/db/c/v1/<token>.json", inside item_prefix(.., "v1").
    for dotted in (".", ".hidden", "..", "a..b"):
        with pytest.raises(ValidationError):
            validate_id(dotted)
    item_id = validate_id("a.b")
    normalised = posixpath.normpath(payload_key(None, "db", "c", item_id, 1, "ab"))
    assert normalised == payload_key(None, "db", "c", item_id, 1, "ab")
