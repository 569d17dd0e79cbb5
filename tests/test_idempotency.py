"""Idempotency keys: a write retried with the same key takes effect once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos_async import (
    Chronos,
    ChronosError,
    Collection,
    StorageError,
    ValidationError,
    WriteResult,
)
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._idempotency import fingerprint
from chronos_async._keys import head_id
from tests.support import footprint


async def test_a_repeated_key_returns_the_first_result_and_writes_nothing(
    users: Collection,
) -> None:
    first = await users.create({"email": "a@x"}, idempotency_key="signup-1")
    before = await footprint(users)
    again = await users.create({"email": "a@x"}, idempotency_key="signup-1")
    assert again == first
    assert await footprint(users) == before
    up = await users.update(first.id, {"email": "b@x"}, expected_ov=0, idempotency_key="u-1")
    assert (
        await users.update(first.id, {"email": "b@x"}, expected_ov=0, idempotency_key="u-1") == up
    )
    en = await users.enrich(first.id, {"tags": ["x"]}, function_id="f@1", idempotency_key="e-1")
    assert (
        await users.enrich(first.id, {"tags": ["x"]}, function_id="f@1", idempotency_key="e-1")
        == en
    )
    re = await users.restore_object(first.id, ov=0, idempotency_key="r-1")
    assert await users.restore_object(first.id, ov=0, idempotency_key="r-1") == re
    de = await users.delete(first.id, idempotency_key="d-1")
    assert await users.delete(first.id, idempotency_key="d-1") == de
    assert [v.ov async for v in users.history(first.id)] == [4, 3, 2, 1, 0]


async def test_a_key_reused_with_other_arguments_is_refused(users: Collection) -> None:
    r = await users.create({"email": "a@x"}, idempotency_key="k")
    before = await footprint(users)
    for call in (
        users.create({"email": "other@x"}, idempotency_key="k"),
        users.update(r.id, {"email": "a@x"}, expected_ov=0, idempotency_key="k"),
        users.create({"email": "a@x"}, actor="someone", idempotency_key="k"),
    ):
        with pytest.raises(ValidationError, match="other arguments"):
            await call
    assert await footprint(users) == before


async def test_keys_are_scoped_to_tenant_and_collection(chronos: Chronos, db_name: str) -> None:
    plain = chronos.collection("users", db=db_name)
    acme = chronos.collection("users", db=db_name, tenant="acme")
    other = chronos.collection("orders", db=db_name)
    a = await plain.create({"email": "a@x"}, idempotency_key="same")
    b = await acme.create({"email": "a@x"}, idempotency_key="same")
    c = await other.create({"email": "a@x"}, idempotency_key="same")
    assert len({a.id, b.id, c.id}) == 3


@pytest.mark.parametrize("op", ["create", "update", "enrich"])
async def test_eight_concurrent_callers_with_one_key_make_one_version(
    users: Collection, op: str
) -> None:
    base = await users.create({"email": "base@x", "n": 0})

    async def call() -> WriteResult:
        if op == "create":
            return await users.create({"email": "new@x"}, idempotency_key="burst")
        if op == "update":
            return await users.update(
                base.id, {"email": "u@x", "n": 1}, expected_ov=None, idempotency_key="burst"
            )
        return await users.enrich(base.id, {"tags": ["once"]}, idempotency_key="burst")

    before = await footprint(users)
    results = await asyncio.gather(*(call() for _ in range(8)))
    assert len(set(results)) == 1, results
    heads, versions, blobs = before
    new_heads = 1 if op == "create" else 0
    assert (await footprint(users))[:2] == (heads + new_heads, versions + 1)
    assert blobs <= (await footprint(users))[2]


async def test_an_outcome_unknown_first_call_is_resolved_by_the_retry(
    users: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call's head move lands but its reply is lost: the caller sees
    ``outcome_unknown``; a retry with the key returns that published version."""
    r = await users.create({"email": "a@x"})
    repo = users._scope.repo
    original = repo.find_head
    original_move = repo.move_head

    async def move_then_lose_reply(*args: Any, **kwargs: Any) -> bool:
        await original_move(*args, **kwargs)
        raise StorageError("MongoDB head update failed (AutoReconnect)", retryable=True)

    async def blind_find(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("MongoDB head read failed (AutoReconnect)", retryable=True)

    monkeypatch.setattr(repo, "move_head", move_then_lose_reply)
    monkeypatch.setattr(repo, "find_head", blind_find)
    with pytest.raises(StorageError) as info:
        await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="retry-me")
    assert info.value.outcome_unknown
    monkeypatch.setattr(repo, "find_head", original)
    monkeypatch.setattr(repo, "move_head", original_move)
    again = await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="retry-me")
    assert again.ov == 1
    assert [v.ov async for v in users.history(r.id)] == [1, 0]


async def test_a_failure_reported_after_publication_is_not_written_twice(
    chronos: Chronos, db_name: str
) -> None:
    users = chronos.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})

    async def fail_after(point: str, info: CheckpointInfo) -> None:
        if point == "published":
            raise StorageError("injected", retryable=True)

    with chronos.checkpoints.hook(fail_after):
        result = await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="k")
    assert result.ov == 1  # the published version is the answer
    assert (await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="k")).ov == 1


async def test_a_definite_failure_frees_the_key(chronos: Chronos, db_name: str) -> None:
    users = chronos.collection("users", db=db_name)
    r = await users.create({"email": "a@x"})
    fail = True

    async def fail_once(point: str, info: CheckpointInfo) -> None:
        if point == "stored" and fail:
            raise StorageError("injected outage", retryable=True)

    with chronos.checkpoints.hook(fail_once), pytest.raises(StorageError):
        await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="k2")
    fail = False
    assert (await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="k2")).ov == 1


async def test_a_dead_holder_is_taken_over_and_its_claim_published_once(
    make_config: Any, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer reserved the key, claimed its version and died: the next call with the
    key takes the reservation over and publishes that claim instead of writing again."""
    config = make_config("local", leases={"lease_ms": 300}, deadlines={"commit_ms": 200})
    # Two instances: the stalled writer holds its own instance's per-record gate.
    async with Chronos(config) as dying, Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        r = await users.create({"email": "a@x"})
        claimed = asyncio.Event()

        async def die(point: str, info: CheckpointInfo) -> None:
            if point == "claimed":
                claimed.set()
                await asyncio.Event().wait()

        doomed = dying.collection("users", db=db_name)

        async def dead_process_renews_nothing(*args: Any, **kwargs: Any) -> bool:
            await asyncio.Event().wait()
            return False

        monkeypatch.setattr(doomed._scope.repo, "renew_lease", dead_process_renews_nothing)
        with dying.checkpoints.hook(die):
            zombie = asyncio.create_task(
                doomed.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="z")
            )
            await claimed.wait()
            # The zombie's lease (300 ms) expires; the retry takes everything over.
            await asyncio.sleep(0.5)
            retried = await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key="z")
            zombie.cancel()
            with pytest.raises((asyncio.CancelledError, ChronosError)):
                await zombie
        assert retried.ov == 1
        assert [v.ov async for v in users.history(r.id)] == [1, 0]
        head = await users._scope.repo.find_head(head_id(None, r.id))
        assert head is not None and head["lease_token"] is None


async def test_bad_keys_and_hard_deletes_are_refused(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    for key in ("", "x" * 257, "tab\there", "é", 5):
        with pytest.raises(ValidationError):
            await users.update(r.id, {"email": "b@x"}, expected_ov=0, idempotency_key=key)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await users.delete(r.id, hard=True, idempotency_key="h")


def test_the_fingerprint_is_stable_and_sensitive() -> None:
    a = fingerprint("update", {"id": "x", "sha256": "00", "expected_ov": 1})
    assert a == fingerprint("update", {"expected_ov": 1, "sha256": "00", "id": "x"})
    assert a != fingerprint("update", {"id": "x", "sha256": "00", "expected_ov": 2})
    assert a != fingerprint("enrich", {"id": "x", "sha256": "00", "expected_ov": 1})
