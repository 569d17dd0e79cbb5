"""The write lease: fencing, renewal during long writes, and takeover of a slow writer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chronos_async import Chronos, Collection, LockLostError, LockTimeoutError
from chronos_async._checkpoints import CheckpointInfo, Point
from chronos_async._keys import head_id, version_id
from chronos_async._scope import now_us
from tests.support import footprint


async def test_checkpoints_are_reached_in_order(chronos: Chronos, users: Collection) -> None:
    seen: list[tuple[Point, str, int]] = []

    def record(point: Point, info: CheckpointInfo) -> None:
        seen.append((point, info.op, info.ov))

    with chronos.checkpoints.hook(record):
        r = await users.create({"email": "a@x"})
        await users.update(r.id, {"email": "b@x"}, expected_ov=0)
        await users.enrich(r.id, {"n": 1})
        await users.delete(r.id)
    assert seen == [
        ("stored", "create", 0),
        ("claimed", "create", 0),
        ("published", "create", 0),
        ("leased", "update", 1),
        ("stored", "update", 1),
        ("claimed", "update", 1),
        ("published", "update", 1),
        ("leased", "enrich", 2),
        ("stored", "enrich", 2),
        ("claimed", "enrich", 2),
        ("published", "enrich", 2),
        ("leased", "delete", 3),
        ("stored", "delete", 3),
        ("claimed", "delete", 3),
        ("published", "delete", 3),
    ]
    assert not chronos.checkpoints.active


async def test_every_grant_increments_the_fence(users: Collection) -> None:
    r = await users.create({"email": "a@x"})
    for n in range(3):
        await users.update(r.id, {"email": f"{n}@x"}, expected_ov=n)
    scope = users._scope
    head = await scope.repo.find_head(head_id(None, r.id))
    assert head is not None and head["lease_fence"] == 3
    fences = [
        (await scope.repo.find_version(version_id(None, r.id, ov)) or {}).get("fence")
        for ov in range(4)
    ]
    assert fences == [None, 1, 2, 3]


async def test_a_long_write_keeps_its_lease(make_config: Any, db_name: str) -> None:
    config = make_config("local", leases={"lease_ms": 300, "wait_ms": 150})
    async with Chronos(config) as slow_server, Chronos(config) as other_server:
        slow = slow_server.collection("users", db=db_name)
        other = other_server.collection("users", db=db_name)
        r = await slow.create({"email": "a@x"})
        stalled, go_on = asyncio.Event(), asyncio.Event()

        async def stall(point: Point, info: CheckpointInfo) -> None:
            if point == "stored":
                stalled.set()
                await go_on.wait()

        with slow_server.checkpoints.hook(stall):
            task = asyncio.create_task(slow.update(r.id, {"email": "slow@x"}, expected_ov=0))
            await stalled.wait()
            await asyncio.sleep(0.7)  # more than two lease lengths: only renewal keeps it
            with pytest.raises(LockTimeoutError):
                await other.update(r.id, {"email": "other@x"}, expected_ov=0)
            go_on.set()
            done = await task
        assert done.ov == 1
        latest = await other.get_latest(r.id)
        assert latest is not None and latest.data == {"email": "slow@x"}


async def test_a_writer_whose_lease_was_taken_over_stops_before_its_claim(
    make_config: Any, db_name: str
) -> None:
    config = make_config("local", leases={"lease_ms": 300})
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        r = await users.create({"email": "a@x"})
        before = await footprint(users)
        stalled, go_on = asyncio.Event(), asyncio.Event()

        async def stall(point: Point, info: CheckpointInfo) -> None:
            if point == "leased":
                stalled.set()
                await go_on.wait()

        with chronos.checkpoints.hook(stall):
            task = asyncio.create_task(users.update(r.id, {"email": "late@x"}, expected_ov=0))
            await stalled.wait()
            # another server takes the lease over as if it had expired
            thief = await users._scope.repo.take_lease(
                head_id(None, r.id),
                token="thief",
                owner="other-server",
                now_us=now_us() + 10_000_000,
                lease_us=60_000_000,
                with_inline=False,
            )
            assert thief is not None
            await asyncio.sleep(0.25)  # the writer's next renewal finds the lease gone
            go_on.set()
            with pytest.raises(LockLostError):
                await task
        assert await footprint(users) == before
        await users._scope.repo.release_lease(head_id(None, r.id), "thief")
        assert (await users.update(r.id, {"email": "b@x"}, expected_ov=0)).ov == 1
