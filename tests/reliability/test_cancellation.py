"""Cancellation at any await point of a write, and closing during writes, free every lease.

Each test here failed before the fix (issue 9, defect 2): a cancellation that landed while
the lease grant was in flight left the lease granted to nobody for the whole ``lease_ms``,
and closing the instance while writes were running left their leases held (and the
S3 client's session unclosed).

The MongoDB driver applies a request that was already sent whether or not anyone waits
for its reply (400 cancelled ``find_one_and_update`` calls: about a third still applied),
so these tests make the server's answer arrive *after* the cancellation on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
import pytest_asyncio

from chronos_async import (
    Chronos,
    ChronosError,
    ClosedError,
    Collection,
    VersionConflictError,
)
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._keys import head_id
from tests.reliability.test_faults import assert_clean, readable_history

PAD = "x" * 20_000  # stored in the payload store, not inline: writes take a little longer


@pytest_asyncio.fixture(loop_scope="session")
async def strict(make_config: Any, payloads: str) -> AsyncIterator[Chronos]:
    """An instance whose writers never wait for a lease: a lease left held fails a write."""
    config = make_config(payloads, leases={"lease_ms": 30_000, "wait_ms": 0})
    async with Chronos(config) as chronos:
        yield chronos


async def held_leases(users: Collection) -> list[str]:
    """Ids of the records whose head holds a lease right now."""
    repo = users._scope.repo
    return [
        h["id"]
        async for h in repo.heads.find(
            {"t": users._scope.t, "lease_token": {"$ne": None}}, projection={"id": 1}
        )
    ]


async def on_the_server(answered: asyncio.Event, request: Coroutine[Any, Any, Any]) -> Any:
    """A request already sent: the server applies it once ``answered`` is set, whether or
    not the caller still waits for the reply (a cancelled caller does not stop it)."""

    async def applied() -> Any:
        await answered.wait()
        return await request

    return await asyncio.shield(asyncio.ensure_future(applied()))


async def test_cancelled_while_the_lease_grant_is_in_flight(
    strict: Chronos, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grant reaches the server only after the caller was cancelled."""
    users = strict.collection("users", db=db_name)
    await users.create({"n": 0}, id="r")
    repo = users._scope.repo
    sent, answered = asyncio.Event(), asyncio.Event()
    original = repo.take_lease

    async def late_grant(*args: Any, **kwargs: Any) -> Any:
        sent.set()
        return await on_the_server(answered, original(*args, **kwargs))

    monkeypatch.setattr(repo, "take_lease", late_grant)
    task = asyncio.create_task(users.update("r", {"n": 1}, expected_ov=0))
    await sent.wait()
    task.cancel()
    await asyncio.sleep(0)
    answered.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    assert await held_leases(users) == []
    # wait_ms=0: a lease left behind would make this raise LockTimeoutError
    assert (await users.update("r", {"n": 2}, expected_ov=0)).ov == 1


async def test_cancelled_while_the_claim_is_in_flight(
    strict: Chronos, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that lands after the cancellation is withdrawn, never rolled forward later."""
    users = strict.collection("users", db=db_name)
    await users.create({"n": 0, "pad": PAD}, id="r")
    repo = users._scope.repo
    sent, answered = asyncio.Event(), asyncio.Event()
    original = repo.insert_version

    async def late_claim(*args: Any, **kwargs: Any) -> Any:
        sent.set()
        return await on_the_server(answered, original(*args, **kwargs))

    monkeypatch.setattr(repo, "insert_version", late_claim)
    task = asyncio.create_task(users.update("r", {"n": 1, "pad": PAD}, expected_ov=0))
    await sent.wait()
    task.cancel()
    await asyncio.sleep(0)
    answered.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()
    assert await held_leases(users) == []
    assert await readable_history(users, "r") == [0]
    # No claim was left for the next writer to roll forward: it writes ov=1 itself.
    assert (await users.update("r", {"n": 2}, expected_ov=0)).ov == 1
    await assert_clean(strict, db_name)


async def test_random_timeouts_on_concurrent_writes_leave_no_lease(
    strict: Chronos, db_name: str
) -> None:
    """300 concurrent writes on 5 records, each under a random timeout of 1-60 ms."""
    users = strict.collection("users", db=db_name)
    ids = [f"r{i}" for i in range(5)]
    for rid in ids:
        await users.create({"n": 0, "pad": PAD}, id=rid)
    rng = random.Random(9)
    outcomes: Counter[str] = Counter()

    async def one(i: int) -> None:
        rid = rng.choice(ids)
        kind = rng.choice(["update", "enrich", "update-small"])
        if kind == "update":
            call = users.update(rid, {"n": i, "pad": PAD}, expected_ov=None)
        elif kind == "enrich":
            call = users.enrich(rid, {"seen": [i]}, function_id="t@1")
        else:
            call = users.update(rid, {"n": i}, expected_ov=None)
        try:
            await asyncio.wait_for(call, timeout=rng.uniform(0.001, 0.060))
            outcomes["ok"] += 1
        except TimeoutError:
            outcomes["timed out"] += 1
        except ChronosError as exc:  # the lease is busy (wait_ms=0), a conflict: typed
            outcomes[type(exc).__name__] += 1

    await asyncio.gather(*(one(i) for i in range(300)))
    assert outcomes["timed out"] > 0, outcomes
    assert await held_leases(users) == [], outcomes
    for rid in ids:
        current = await users.get_latest(rid)
        assert current is not None
        assert (await users.update(rid, {"n": -1}, expected_ov=current.ov)).ov == current.ov + 1
        ovs = await readable_history(users, rid)
        assert ovs == list(range(ovs[0], -1, -1))
    await assert_clean(strict, db_name, reconcile=True)


async def test_closing_during_writes_frees_every_lease(
    make_config: Any, payloads: str, db_name: str
) -> None:
    """``aclose`` lets writes finish within ``close_ms``, cancels the rest, and every
    cancelled write withdraws and frees its lease before the clients close."""
    config = make_config(payloads, leases={"wait_ms": 0}, deadlines={"close_ms": 300})
    ids = [f"r{i}" for i in range(5)]
    async with Chronos(config) as setup:
        users = setup.collection("users", db=db_name)
        for rid in ids:
            await users.create({"n": 0, "pad": PAD}, id=rid)

    chronos = Chronos(config)
    await chronos.__aenter__()
    users = chronos.collection("users", db=db_name)
    stalled, quick_done = asyncio.Event(), asyncio.Event()
    at_stored: list[str] = []

    async def stall(point: str, info: CheckpointInfo) -> None:
        if point == "stored" and info.id != "r0":
            at_stored.append(info.id)
            if len(at_stored) == len(ids) - 1:
                stalled.set()
            await asyncio.Event().wait()  # never goes on by itself

    with chronos.checkpoints.hook(stall):
        writes = [
            asyncio.create_task(users.update(rid, {"n": 1, "pad": PAD}, expected_ov=0))
            for rid in ids[1:]
        ]
        await stalled.wait()
        # A write that is quick finishes during the close (within close_ms).
        quick = asyncio.create_task(users.update("r0", {"n": 1}, expected_ov=0))
        quick.add_done_callback(lambda _: quick_done.set())
        await asyncio.sleep(0)
        await chronos.aclose()
    results = await asyncio.gather(*writes, quick, return_exceptions=True)
    assert all(isinstance(r, ClosedError) for r in results[:-1]), results
    assert not isinstance(results[-1], BaseException) and results[-1].ov == 1
    with pytest.raises(ClosedError):
        await users.update("r0", {"n": 2}, expected_ov=1)

    async with Chronos(config) as after:
        users = after.collection("users", db=db_name)
        assert await held_leases(users) == []
        for rid in ids[1:]:
            assert (await users.update(rid, {"n": 2}, expected_ov=0)).ov == 1
        await assert_clean(after, db_name)


async def test_two_concurrent_closes_and_a_close_without_writes(make_config: Any) -> None:
    chronos = Chronos(make_config("local"))
    await chronos.__aenter__()
    await asyncio.gather(chronos.aclose(), chronos.aclose())
    assert not chronos.is_open
    await chronos.aclose()


async def test_conflicts_and_cancellations_mixed_keep_history_gap_free(
    strict: Chronos, db_name: str
) -> None:
    """Writers with stale expectations and cancellations interleaved on one record."""
    users = strict.collection("users", db=db_name)
    await users.create({"n": 0}, id="r")
    conflicts = 0
    for round_ in range(30):
        current = await users.get_latest("r")
        assert current is not None
        slow = asyncio.create_task(
            users.update("r", {"n": round_, "pad": PAD}, expected_ov=current.ov)
        )
        await asyncio.sleep(random.Random(round_).uniform(0, 0.004))
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        try:
            await users.update("r", {"n": -round_}, expected_ov=current.ov)
        except VersionConflictError:
            conflicts += 1  # the cancelled write had been published already
    assert await held_leases(users) == []
    ovs = await readable_history(users, "r")
    assert ovs == list(range(ovs[0], -1, -1))
    assert await users.get_latest("r") is not None
    head = await users._scope.repo.find_head(head_id(None, "r"))
    assert head is not None and head["lease_token"] is None
