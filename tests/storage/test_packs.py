"""Pack layout (pure): members back to back, a JSON trailer, its length; pack keys."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos_async import IntegrityError
from chronos_async._keys import copy_key, is_copy_key, parse_payload_key, payload_key
from chronos_async.storage._packs import (
    TRAILER_LEN_BYTES,
    build_pack,
    is_pack_key,
    new_pack_key,
    pack_collection,
    parse_trailer,
    trailer_span,
)

bodies = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=20)


def _payloads(raw: list[bytes]) -> list[tuple[str, bytes, str]]:
    return [(f"_/id{i}/{i % 3}", b, hashlib.sha256(b).hexdigest()) for i, b in enumerate(raw)]


@given(bodies)
def test_every_member_is_its_own_bytes_and_the_trailer_lists_them(raw: list[bytes]) -> None:
    payloads = _payloads(raw)
    pack, members = build_pack(payloads)
    assert [m.vid for m in members] == [vid for vid, _, _ in payloads]
    for member, (_, body, sha) in zip(members, payloads, strict=True):
        assert pack[member.offset : member.offset + member.length] == body
        assert member.sha256 == sha
    # the trailer is found from the end alone, as a reader with only the size does
    trailer_len = int.from_bytes(pack[-TRAILER_LEN_BYTES:], "big")
    offset, length = trailer_span(len(pack), trailer_len)
    assert parse_trailer(pack[offset : offset + length], where="p") == members
    # members are back to back and end where the trailer starts
    assert sum(m.length for m in members) == offset


@given(st.binary(max_size=64))
def test_a_trailer_that_is_not_one_is_an_integrity_error(junk: bytes) -> None:
    try:
        members = parse_trailer(junk, where="pack-x")
    except IntegrityError as exc:
        problem: IntegrityError | None = exc
    else:  # junk that happens to be a valid trailer must at least parse to members
        problem = None
        assert all(isinstance(m.offset, int) for m in members)
    assert problem is None or "pack-x" in str(problem)


def test_pack_keys_are_per_collection_and_never_payload_keys() -> None:
    key = new_pack_key("acme", "app", "users")
    assert key.startswith("acme/app/users/_packs/") and key.endswith(".pack")
    assert is_pack_key(key) and parse_payload_key(key) is None
    assert pack_collection(key) == ("acme", "app", "users")
    untenanted = new_pack_key(None, "app", "users")
    assert pack_collection(untenanted) == ("_", "app", "users")
    assert new_pack_key(None, "app", "users") != untenanted
    plain = payload_key(None, "app", "users", "u1", 0, "a" * 32)
    assert not is_pack_key(plain) and pack_collection(plain) is None
    assert not is_pack_key("acme/app/users/_packs/../x.pack")


def test_copy_keys_are_found_by_their_version() -> None:
    sha = hashlib.sha256(b"{}").hexdigest()
    key = copy_key(None, "app", "users", "u1", 3, sha)
    assert parse_payload_key(key) == (None, "app", "users", "u1", 3, sha[:32])
    packed = {"offset": 10, "sha256": sha}
    assert is_copy_key(key, packed)
    assert not is_copy_key(key, {"offset": None, "sha256": sha})  # not packed: no copy
    assert not is_copy_key(key, {"offset": 10, "sha256": "f" * 64})
    assert not is_copy_key(payload_key(None, "app", "users", "u1", 3, "tok"), packed)


@pytest.mark.parametrize("count", [1, 2, 50])
def test_pack_size_is_payloads_plus_trailer(count: int) -> None:
    raw = [bytes([i]) * (i + 1) for i in range(count)]
    pack, members = build_pack(_payloads(raw))
    trailer_len = int.from_bytes(pack[-TRAILER_LEN_BYTES:], "big")
    assert len(pack) == sum(len(b) for b in raw) + trailer_len + TRAILER_LEN_BYTES
    assert len(members) == count
