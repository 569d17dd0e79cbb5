"""The transaction-free commit protocol: claims, roll-forward, withdrawal, leases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos_async import (
    Chronos,
    Collection,
    LockTimeoutError,
    StorageError,
    VersionConflictError,
)
from chronos_async._keys import head_id, version_id
from chronos_async._publish import head_from_version
from chronos_async._scope import now_us
from tests.support import footprint


async def _claim_without_publishing(
    users: Collection, item_id: str, data_from_ov: int
) -> dict[str, Any]:
    """Simulate a writer that died after claiming ov+1 (its payload already stored)."""
    scope = users._scope
    head = await scope.repo.find_head(head_id(None, item_id))
    assert head is not None
    source = await scope.repo.find_version(version_id(None, item_id, data_from_ov))
    assert source is not None
    ov = int(head["ov"]) + 1
    pending = {
        **source,
        "_id": version_id(None, item_id, ov),
        "ov": ov,
        "prev_at": int(head["at"]),
        "claim_us": now_us() - 60_000_000,  # long ago: its writer is gone
        "cv": await scope.repo.next_cv(scope.t),
        "op": "update",
        "actor": "crashed-writer",
        "token": "feedfacefeedface",
    }
    await scope.repo.insert_version(pending)
    return pending


async def test_unpublished_claim_is_invisible_to_readers(users: Collection) -> None:
    r = await users.create({"email": "v0@x"})
    await users.update(r.id, {"email": "v1@x"}, expected_ov=0)
    pending = await _claim_without_publishing(users, r.id, data_from_ov=0)
    assert await users.get_version(r.id, pending["ov"]) is None
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.ov == 1
    as_of = await users.get_as_of(r.id, "2100-01-01T00:00:00Z")
    assert as_of is not None and as_of.ov == 1
    assert [v.ov async for v in users.history(r.id)] == [1, 0]


async def test_next_writer_rolls_a_dead_claim_forward(users: Collection) -> None:
    r = await users.create({"email": "v0@x"})
    await users.update(r.id, {"email": "v1@x"}, expected_ov=0)
    await _claim_without_publishing(users, r.id, data_from_ov=0)
    with pytest.raises(VersionConflictError) as info:
        await users.update(r.id, {"email": "mine@x"}, expected_ov=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.ov == 2 and latest.actor == "crashed-writer"
    assert latest.data == {"email": "v0@x"}
    done = await users.update(r.id, {"email": "mine@x"}, expected_ov=2)
    assert done.ov == 3
    assert [v.ov async for v in users.history(r.id)] == [3, 2, 1, 0]


async def test_head_mirrors_its_version(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    scope = users._scope
    head = await scope.repo.find_head(head_id(None, r.id))
    version = await scope.repo.find_version(version_id(None, r.id, 0))
    assert head is not None and version is not None
    rebuilt = head_from_version(version, head["_id"], int(head["at"]))
    for key, value in rebuilt.items():
        assert head[key] == value, key
    # The commit time is taken once the claim exists, before the head moves.
    assert version["prev_at"] == -1 and version["claim_us"] < head["at"]


async def test_failed_publish_withdraws_claim_and_payload(
    users: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await users.create({"email": "a@x", "pad": "p" * 30_000})
    before = await footprint(users)
    repo = users._scope.repo

    async def broken_move(*args: Any, **kwargs: Any) -> bool:
        raise StorageError("simulated network failure", retryable=True)

    monkeypatch.setattr(repo, "move_head", broken_move)
    with pytest.raises(StorageError, match="simulated"):
        await users.update(r.id, {"email": "b@x", "pad": "q" * 30_000}, expected_ov=0)
    monkeypatch.undo()
    assert await footprint(users) == before
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.ov == 0
    # the lease was released: the next write goes straight through
    assert (await users.update(r.id, {"email": "c@x"}, expected_ov=0)).ov == 1


@pytest.mark.parametrize("reply", ["lands", "fails"])
async def test_cancel_during_head_move_waits_for_its_reply(
    users: Collection, monkeypatch: pytest.MonkeyPatch, reply: str
) -> None:
    """A head move already sent when the writer is cancelled is applied by the server
    anyway; the clean-up waits for its reply: published (it landed) or withdrawn (it
    failed), never half of each, and the lease is free either way."""
    r = await users.create({"email": "a@x", "pad": "p" * 30_000})
    before = await footprint(users)
    repo = users._scope.repo
    entered, answer = asyncio.Event(), asyncio.Event()
    original = repo.move_head

    async def slow_move(*args: Any, **kwargs: Any) -> bool:
        entered.set()
        await answer.wait()  # the reply arrives only after the caller was cancelled
        if reply == "fails":
            raise StorageError("MongoDB head update failed (AutoReconnect)", retryable=True)
        return await original(*args, **kwargs)

    monkeypatch.setattr(repo, "move_head", slow_move)
    task = asyncio.create_task(
        users.update(r.id, {"email": "b@x", "pad": "q" * 30_000}, expected_ov=0)
    )
    await entered.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    answer.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    head = await repo.find_head(head_id(None, r.id))
    assert head is not None and head["lease_token"] is None
    if reply == "lands":
        heads, versions, blobs = before
        assert await footprint(users) == (heads, versions + 1, blobs + 1)
        assert (await users.update(r.id, {"email": "c@x"}, expected_ov=1)).ov == 2
    else:
        assert await footprint(users) == before
        assert (await users.update(r.id, {"email": "c@x"}, expected_ov=0)).ov == 1


async def test_lease_held_elsewhere_times_out(make_config: Any, db_name: str) -> None:
    config = make_config("local", leases={"lease_ms": 60_000, "wait_ms": 200})
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        r = await users.create({"email": "a@x"})
        scope = users._scope
        taken = await scope.repo.take_lease(
            head_id(None, r.id),
            token="other",
            owner="another-server",
            now_us=now_us(),
            lease_us=60_000_000,
            with_inline=False,
        )
        assert taken is not None
        with pytest.raises(LockTimeoutError):
            await users.update(r.id, {"email": "b@x"}, expected_ov=0)
        await scope.repo.release_lease(head_id(None, r.id), "other")
        assert (await users.update(r.id, {"email": "b@x"}, expected_ov=0)).ov == 1


async def test_expired_lease_is_taken_over(make_config: Any, db_name: str) -> None:
    async with Chronos(make_config("local")) as chronos:
        users = chronos.collection("users", db=db_name)
        r = await users.create({"email": "a@x"})
        scope = users._scope
        await scope.repo.take_lease(
            head_id(None, r.id),
            token="dead",
            owner="dead-server",
            now_us=now_us() - 10_000_000,
            lease_us=1_000,
            with_inline=False,
        )
        assert (await users.update(r.id, {"email": "b@x"}, expected_ov=0)).ov == 1


async def test_two_instances_writing_one_record(make_config: Any, db_name: str) -> None:
    config = make_config("s3")
    async with Chronos(config) as one, Chronos(config) as two:
        a, b = one.collection("users", db=db_name), two.collection("users", db=db_name)
        r = await a.create({"email": "x@x", "n": 0})

        async def bump(handle: Collection) -> None:
            while True:
                cur = await handle.get_latest(r.id)
                assert cur is not None
                try:
                    await handle.update(
                        r.id, {"email": "x@x", "n": cur.data["n"] + 1}, expected_ov=cur.ov
                    )
                    return
                except VersionConflictError:
                    continue

        await asyncio.gather(*(bump(a if i % 2 else b) for i in range(12)))
        final = await b.get_latest(r.id)
        assert final is not None and final.ov == 12 and final.data["n"] == 12
        assert [v.ov async for v in a.history(r.id)] == list(range(12, -1, -1))


async def test_a_head_move_landing_after_withdrawal_is_fenced_off(
    users: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply of the head move is lost and the request lands only later: by then the
    withdrawal has fenced the lease, so the late move matches nothing."""
    r = await users.create({"email": "a@x", "pad": "p" * 30_000})
    repo = users._scope.repo
    original = repo.move_head
    late: list[Any] = []

    async def delayed(*args: Any, **kwargs: Any) -> bool:
        late.append((args, kwargs))  # sent, not yet applied
        raise StorageError("connection reset", retryable=True)

    monkeypatch.setattr(repo, "move_head", delayed)
    with pytest.raises(StorageError):
        await users.update(r.id, {"email": "b@x", "pad": "q" * 30_000}, expected_ov=0)
    monkeypatch.undo()
    args, kwargs = late[0]
    assert await original(*args, **kwargs) is False  # the straggler cannot land
    latest = await users.get_latest(r.id)
    assert latest is not None and latest.ov == 0 and latest.data["email"] == "a@x"
    assert (await users.update(r.id, {"email": "c@x"}, expected_ov=0)).ov == 1
