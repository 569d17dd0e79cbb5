"""The pack writer on a real (local folder) store: idle writes go alone at once, writes
that arrive during an upload gather in one pack that goes after the window (without
waiting for that upload), limits, failures, close."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chronos_async import StorageError
from chronos_async.storage import LocalBlobStore
from chronos_async.storage._batcher import Location, PackWriter
from chronos_async.storage._packs import is_pack_key


class HeldStore(LocalBlobStore):
    """A local store whose PUTs can be held at a gate (to keep an upload in flight),
    counted, or made to fail: fault injection around the real store."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.gate = asyncio.Event()
        self.gate.set()
        self.puts: list[str] = []
        self.put_seen = asyncio.Condition()
        self.fail: Exception | None = None

    async def put(self, key: str, body: bytes, **kwargs: Any) -> None:
        self.puts.append(key)
        async with self.put_seen:
            self.put_seen.notify_all()
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        await super().put(key, body, **kwargs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HeldStore]:
    async with HeldStore(tmp_path / "blobs") as opened:
        yield opened


def writer(store: HeldStore, **limits: Any) -> PackWriter:
    options: dict[str, Any] = {
        "window_s": 5.0,
        "max_count": 100,
        "max_bytes": 1 << 20,
        "member_max_bytes": 4096,
    }
    options.update(limits)
    return PackWriter(store, **options)


async def put(packs: PackWriter, i: int, body: bytes | None = None) -> tuple[bytes, Location]:
    body = body if body is not None else f'{{"n":{i}}}'.encode()
    where = await packs.put(
        tenant=None,
        db="app",
        collection="users",
        vid=f"_/u{i}/0",
        key=f"_/app/users/u{i}/v0/t{i}.json",
        body=body,
        sha256=hashlib.sha256(body).hexdigest(),
    )
    return body, where


async def read(store: HeldStore, where: Location) -> bytes:
    if where.offset is None or where.length is None:
        return await store.get(where.key)
    return await store.get_range(where.key, offset=where.offset, length=where.length)


async def started(store: HeldStore, n: int) -> None:
    """Until ``n`` PUTs reached the store (held there or not)."""
    async with store.put_seen:
        await store.put_seen.wait_for(lambda: len(store.puts) >= n)


async def test_an_idle_store_gets_the_payload_alone_at_once(store: HeldStore) -> None:
    async with writer(store) as packs:
        body, where = await put(packs, 1)
    assert not where.packed and where.key.endswith("t1.json")
    assert await read(store, where) == body
    assert packs.stats.alone == 1 and packs.stats.packs == 0


async def test_payloads_arriving_during_an_upload_form_one_pack(store: HeldStore) -> None:
    async with writer(store, window_s=0.05) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        rest = [asyncio.create_task(put(packs, i)) for i in range(1, 21)]
        await asyncio.sleep(0)  # every one of them joined the forming pack
        assert len(store.puts) == 1  # the 20 wait for the window
        # The window passes: the pack goes although the first upload is still held.
        await started(store, 2)
        assert not first.done()
        store.gate.set()
        results = await asyncio.gather(first, *rest)
    assert len(store.puts) == 2  # one PUT alone, then one pack of 20
    pack_keys = {where.key for _, where in results[1:]}
    assert len(pack_keys) == 1 and is_pack_key(pack_keys.pop())
    for body, where in results:
        assert await read(store, where) == body
    assert packs.stats.packed == 20 and packs.stats.packs == 1 and packs.stats.puts_saved == 19
    assert packs.stats.payloads_per_pack == 20.0


async def test_a_pack_does_not_go_when_the_upload_before_it_ends(store: HeldStore) -> None:
    async with writer(store, window_s=5.0, max_count=3) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        second = asyncio.create_task(put(packs, 1))
        await asyncio.sleep(0)
        store.gate.set()
        await first
        await asyncio.sleep(0.01)
        assert len(store.puts) == 1 and not second.done()  # still gathering
        third = asyncio.create_task(put(packs, 2))
        fourth = asyncio.create_task(put(packs, 3))  # the count limit sends the pack
        results = await asyncio.gather(second, third, fourth)
    assert {where.key for _, where in results} == {store.puts[1]}
    assert packs.stats.packs == 1 and packs.stats.packed == 3


async def test_count_bytes_and_window_limits_send_a_pack_early(store: HeldStore) -> None:
    async with writer(store, max_count=5, window_s=0.05, max_bytes=1 << 20) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        batch = [asyncio.create_task(put(packs, i)) for i in range(1, 6)]
        await started(store, 2)  # five payloads: the count limit sends them at once
        store.gate.set()
        await asyncio.gather(first, *batch)
    assert packs.stats.packs == 1 and packs.stats.packed == 5

    async with writer(store, window_s=0.05) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 10))
        await started(store, 3)
        late = asyncio.create_task(put(packs, 11))
        await started(store, 4)  # the window passed with the first upload still held
        store.gate.set()
        (_, a), (_, b) = await asyncio.gather(first, late)
    assert not a.packed and not b.packed  # a pack of one goes under its own key


async def test_large_payloads_are_stored_alone(store: HeldStore) -> None:
    async with writer(store, member_max_bytes=100) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        big = asyncio.create_task(put(packs, 1, b"x" * 101))
        await started(store, 2)  # not held back by the upload in flight
        store.gate.set()
        _, (body, b) = await asyncio.gather(first, big)
    assert not b.packed and await read(store, b) == body


async def test_a_failed_pack_fails_every_member_and_nothing_is_stored(store: HeldStore) -> None:
    async with writer(store, window_s=0.05) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        members = [asyncio.create_task(put(packs, i)) for i in range(1, 4)]
        await started(store, 2)  # the pack's upload, held with the first one
        store.fail = StorageError("disk on fire", retryable=True)
        store.gate.set()
        outcomes = await asyncio.gather(first, *members, return_exceptions=True)
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert [info async for info in store.list("_/")] == []


async def test_a_cancelled_member_does_not_cancel_its_pack(store: HeldStore) -> None:
    async with writer(store, window_s=0.05) as packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        quitter = asyncio.create_task(put(packs, 1))
        stayer = asyncio.create_task(put(packs, 2))
        await started(store, 2)  # their pack is being uploaded
        quitter.cancel()
        store.gate.set()
        body, where = await stayer
        await first
    assert where.packed and await read(store, where) == body
    assert quitter.cancelled()


async def test_close_waits_for_the_uploads_in_flight(store: HeldStore) -> None:
    packs = writer(store)
    async with packs:
        store.gate.clear()
        first = asyncio.create_task(put(packs, 0))
        await started(store, 1)
        members = [asyncio.create_task(put(packs, i)) for i in range(1, 3)]
        await asyncio.sleep(0)  # both wait in the forming pack (window: 5 s)
        for task in members:
            task.cancel()  # their callers left; the pack is still uploaded
        store.gate.set()
    # leaving the block waited for the pack upload
    assert len(store.puts) == 2 and is_pack_key(store.puts[1])
    assert [key async for key in _keys(store)] == sorted([store.puts[1], *_alone(store)])
    await first


def _alone(store: HeldStore) -> list[str]:
    return [k for k in store.puts if not is_pack_key(k)]


async def _keys(store: HeldStore) -> AsyncIterator[str]:
    for key in sorted([info.key async for info in store.list("_/")]):
        yield key
