"""As-of answers are final: a version's commit time is the moment it became visible.

The rule (README, "Guarantees"): a version committed at or before ``t`` is visible to
every read that starts after ``t``, and no read returns a version whose commit time is
later than the moment that read returned. So ``get_as_of(t)`` gives, at any time after
``t``, what ``get_latest`` showed at ``t``.

Before the fix (issue 9, defect 4) a version's commit time was fixed before its payload
was stored: during one 8 MB update 14 of 15 sampled instants gave a different as-of
answer later, and 189 of 282 ``get_as_of(now)`` answers changed when repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from chronos_async import Chronos, Collection, StorageError
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._keys import head_id, version_id
from chronos_async._models import from_us, to_us
from chronos_async._scope import now_us
from tests.reliability.test_faults import assert_clean, readable_history


def instant(us: int) -> datetime:
    return from_us(us)


@dataclass(frozen=True)
class Sample:
    """A get_latest that started at ``started`` and returned ``ov`` at ``ended``."""

    item_id: str
    started: int
    ended: int
    ov: int | None


async def test_as_of_answers_never_change_under_concurrent_writers(
    make_config: Any, payloads: str, db_name: str
) -> None:
    """8 writers (one of them writing 4 MB payloads) while readers sample ``get_latest``;
    afterwards ``get_as_of`` at every sampled instant agrees with what was seen."""
    config = make_config(payloads, leases={"wait_ms": 30_000})
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        ids = [f"w{i}" for i in range(8)]
        for rid in ids:
            await users.create({"n": 0}, id=rid)
        big = "b" * (4 * 1024 * 1024)
        stop, enough = asyncio.Event(), asyncio.Event()
        samples: list[Sample] = []
        repeated: list[tuple[str, int, int | None]] = []

        async def writer(rid: str, n_pad: int) -> None:
            n = 0
            rng = random.Random(rid)
            while not stop.is_set():
                n += 1
                pad = big if n_pad else "p" * rng.choice([10, 20_000, 100_000])
                await users.update(rid, {"n": n, "pad": pad}, expected_ov=None)

        async def sampler(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                rid = rng.choice(ids)
                started = now_us()
                item = await users.get_latest(rid)
                ended = now_us()
                samples.append(Sample(rid, started, ended, item.ov if item else None))
                if len(samples) >= 400:
                    enough.set()
                if rng.random() < 0.3:
                    t = now_us()
                    seen = await users.get_as_of(rid, instant(t))
                    repeated.append((rid, t, seen.ov if seen else None))

        writers = [asyncio.create_task(writer(rid, i == 0)) for i, rid in enumerate(ids)]
        readers = [asyncio.create_task(sampler(s)) for s in range(3)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout=60)
        stop.set()
        await asyncio.gather(*writers, *readers)
        assert len(samples) >= 300, len(samples)

        disagreements = []
        for s in samples:
            low = await users.get_as_of(s.item_id, instant(s.started))
            high = await users.get_as_of(s.item_id, instant(s.ended))
            low_ov = low.ov if low else -1
            high_ov = high.ov if high else -1
            if s.ov is None or not low_ov <= s.ov <= high_ov:
                disagreements.append((s, low_ov, high_ov))
        assert disagreements == [], f"{len(disagreements)} of {len(samples)}: {disagreements[:5]}"
        changed = []
        for rid, t, ov in repeated:
            again = await users.get_as_of(rid, instant(t))
            if (again.ov if again else None) != ov:
                changed.append((rid, t, ov, again.ov if again else None))
        assert changed == [], f"{len(changed)} of {len(repeated)} as-of answers changed"
        big_writes = len([v async for v in users.history("w0")])
        assert big_writes >= 3, "the large-payload writer hardly wrote"
        for rid in ids:
            await readable_history(users, rid)
        await assert_clean(chronos, db_name)


async def test_a_reader_waits_for_a_young_claim_and_sees_it(make_config: Any, db_name: str) -> None:
    """A read that starts while a claimed version is about to be published sees it (its
    commit time is before the read returned), and as-of agrees afterwards."""
    async with Chronos(make_config("local")) as chronos:
        users = chronos.collection("users", db=db_name)
        await users.create({"n": 0}, id="r")
        claimed, go = asyncio.Event(), asyncio.Event()

        async def hold(point: str, info: CheckpointInfo) -> None:
            if point == "claimed":
                claimed.set()
                await go.wait()

        with chronos.checkpoints.hook(hold):
            write = asyncio.create_task(users.update("r", {"n": 1}, expected_ov=0))
            await claimed.wait()
            started = now_us()
            read = asyncio.create_task(users.get_latest("r"))
            await asyncio.sleep(0.05)
            assert not read.done(), "the reader returned while a young claim was pending"
            go.set()
            item = await read
            ended = now_us()
            result = await write
        assert item is not None and item.ov == 1
        assert started < to_us(result.at) and result.at <= instant(ended)
        at_start = await users.get_as_of("r", instant(started))
        assert at_start is not None and at_start.ov == 0  # committed after the read started
        assert (await users.get_as_of("r", result.at)).ov == 1  # type: ignore[union-attr]


async def test_a_dead_writers_claim_delays_readers_at_most_the_commit_window(
    make_config: Any, db_name: str
) -> None:
    """A claim whose writer stopped (here: stalled forever) holds readers up for at most
    ``deadlines.commit_ms``; when it is later rolled forward it commits then, after every
    read that missed it."""
    config = make_config("local", deadlines={"commit_ms": 400}, leases={"lease_ms": 500})
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        await users.create({"n": 0}, id="r")
        claimed = asyncio.Event()

        async def die(point: str, info: CheckpointInfo) -> None:
            if point == "claimed" and info.ov == 1:
                claimed.set()
                await asyncio.Event().wait()

        with chronos.checkpoints.hook(die):
            zombie = asyncio.create_task(users.update("r", {"n": 1}, expected_ov=0))
            await claimed.wait()
            started = time.monotonic()
            item = await users.get_latest("r")
            waited = time.monotonic() - started
            missed_at = now_us()
            assert item is not None and item.ov == 0
            assert waited < 0.4 + 0.3, waited
            # Once the window has passed, reads do not wait at all.
            started = time.monotonic()
            assert (await users.get_latest("r")).ov == 0  # type: ignore[union-attr]
            assert time.monotonic() - started < 0.2
            # The zombie's head move would come too late: its commit is refused.
            await asyncio.sleep(0.6)  # its lease (500 ms) has expired
        zombie.cancel()
        with pytest.raises((asyncio.CancelledError, StorageError)):
            await zombie
        # The claim may have been withdrawn by the cancelled writer, or be there for the
        # next writer to roll forward; either way its commit time is after every read.
        await users.update("r", {"n": 2}, expected_ov=None)
        history = [v async for v in users.history("r")]
        assert all(v.at > instant(missed_at) for v in history if v.ov >= 1)
        assert (await users.get_as_of("r", instant(missed_at))).ov == 0  # type: ignore[union-attr]


async def test_a_young_create_claim_is_waited_for(make_config: Any, db_name: str) -> None:
    async with Chronos(make_config("local")) as chronos:
        users = chronos.collection("users", db=db_name)
        claimed, go = asyncio.Event(), asyncio.Event()

        async def hold(point: str, info: CheckpointInfo) -> None:
            if point == "claimed":
                claimed.set()
                await go.wait()

        with chronos.checkpoints.hook(hold):
            create = asyncio.create_task(users.create({"n": 0}, id="new"))
            await claimed.wait()
            read = asyncio.create_task(users.get_latest("new"))
            as_of = asyncio.create_task(users.get_as_of("new", instant(now_us())))
            await asyncio.sleep(0.05)
            assert not read.done() and not as_of.done()
            go.set()
            result = await create
            item, past = await read, await as_of
        assert item is not None and item.ov == 0
        assert past is None  # it committed after that instant
        assert (await users.get_as_of("new", result.at)).ov == 0  # type: ignore[union-attr]


async def test_commit_times_follow_visibility_in_the_stored_documents(
    users: Collection,
) -> None:
    """Each version records its predecessor's commit time; the head holds the newest."""
    r = await users.create({"email": "a@x"})
    for n in range(1, 4):
        await users.update(r.id, {"email": f"{n}@x"}, expected_ov=n - 1)
    repo = users._scope.repo
    head = await repo.find_head(head_id(None, r.id))
    assert head is not None
    docs = [await repo.find_version(version_id(None, r.id, ov)) for ov in range(4)]
    infos = {v.ov: v async for v in users.history(r.id)}
    assert docs[0] is not None and docs[0]["prev_at"] == -1
    for ov in range(1, 4):
        doc = docs[ov]
        assert doc is not None and doc["prev_at"] == to_us(infos[ov - 1].at)
        assert doc["claim_us"] < to_us(infos[ov].at)
    assert int(head["at"]) == to_us(infos[3].at)
    for ov in range(4):
        item = await users.get_version(r.id, ov)
        assert item is not None and item.updated_at == infos[ov].at
        assert (await users.get_as_of(r.id, infos[ov].at)).ov == ov  # type: ignore[union-attr]
