"""Reconcile removing an orphan content object while a writer puts the same object again.

A content key depends only on the record, the bytes and the type, so a withdrawn
write's upload and a later write of the same bytes share one object. The handshake of
:mod:`chronos_async._content_guard` (writer: intent, then marks; reconcile: mark, then
intents and references) must keep every published version's content in place.

The interleavings are forced step by step (reconcile's side called directly, the
writer stalled at a checkpoint), then a randomized run races withdrawn writes, writes
of the same bytes and reconcile's content removal (``grace_seconds=0``).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chronos_async import Chronos, Collection, StorageError
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._content import content_key
from chronos_async._content_guard import ContentDeletion
from chronos_async._content_verify import remove_content_orphans
from chronos_async._keys import item_prefix
from chronos_async._scope import now_us
from chronos_async.meta._content_marks import ContentMarks
from tests.support import Outage

pytestmark = pytest.mark.timeout(60)

MAPS = {"mail": {"base64_props": {"avatar": {"content_type": "image/png"}}}}


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
async def chronos(make_config: Any) -> AsyncIterator[Chronos]:
    async with Chronos(make_config("local", collection_maps=MAPS)) as opened:
        yield opened


def _key(mail: Collection, item_id: str, body: bytes) -> str:
    scope = mail._scope
    return content_key(
        item_prefix(None, scope.db, scope.collection, item_id), sha(body), "image/png"
    )


async def _orphan(chronos: Chronos, mail: Collection, item_id: str, body: bytes) -> str:
    """A withdrawn update of ``item_id`` to ``body``: its content object is left behind."""
    with chronos.checkpoints.hook(Outage()), pytest.raises(StorageError):
        await mail.update(item_id, {"subject": "s", "avatar": b64(body)}, expected_ov=None)
    key = _key(mail, item_id, body)
    assert await mail._scope.store.get(key, role="content") == body
    return key


def _marks(mail: Collection) -> ContentMarks:
    return ContentMarks(mail._scope.repo.db, "mail")


async def _intents(mail: Collection) -> int:
    return await _marks(mail).intents.count_documents({})


async def test_writer_waits_for_a_deletion_mark_then_puts_the_object_back(
    chronos: Chronos, db_name: str
) -> None:
    mail = chronos.collection("mail", db=db_name)
    r = await mail.create({"subject": "s", "avatar": b64(b"first")})
    key = await _orphan(chronos, mail, r.id, b"second")
    store, marks = mail._scope.store, _marks(mail)
    # Reconcile: R1 mark, R2 no intent, R3 no reference: the object is doomed.
    await marks.mark("rc", [key], now_us() + 60_000_000)
    assert await marks.intended([key], now_us()) == set()
    assert await chronos.admin._reference_check()(store, [key]) == set()
    # The writer of the same bytes announces itself, sees the mark and waits.
    writer = asyncio.create_task(
        mail.update(r.id, {"subject": "s", "avatar": b64(b"second")}, expected_ov=None)
    )
    for _ in range(200):
        if await _intents(mail):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert not writer.done()
    # R4, R5: reconcile deletes the object, then removes its mark.
    await store.delete([key], role="content")
    await marks.unmark("rc", [key])
    done = await asyncio.wait_for(writer, 10)
    assert done.ov == 1
    item = await mail.get_latest(r.id)
    assert item is not None and item.data["avatar"] == b64(b"second")
    assert await _intents(mail) == 0
    assert (await chronos.admin.verify(mail._scope.db, grace_seconds=0)).ok


async def test_expired_mark_does_not_hold_a_writer(chronos: Chronos, db_name: str) -> None:
    mail = chronos.collection("mail", db=db_name)
    r = await mail.create({"subject": "s", "avatar": b64(b"first")})
    key = _key(mail, r.id, b"later")
    await _marks(mail).mark("dead", [key], now_us() - 1)  # a crashed reconcile's mark
    done = await asyncio.wait_for(
        mail.update(r.id, {"subject": "s", "avatar": b64(b"later")}, expected_ov=None), 5
    )
    assert done.ov == 1
    # A write that uploads nothing new announces nothing.
    await mail.update(r.id, {"subject": "t", "avatar": b64(b"later")}, expected_ov=None)
    assert await _intents(mail) == 0


async def test_reconcile_keeps_an_object_a_writer_announced(chronos: Chronos, db_name: str) -> None:
    mail = chronos.collection("mail", db=db_name)
    r = await mail.create({"subject": "s", "avatar": b64(b"first")})
    key = await _orphan(chronos, mail, r.id, b"second")
    uploaded, release = asyncio.Event(), asyncio.Event()

    async def stall(point: str, info: CheckpointInfo) -> None:
        if point == "stored" and info.id == r.id:
            uploaded.set()  # content uploaded, version not claimed yet
            await release.wait()

    store = mail._scope.store
    deletion = ContentDeletion([chronos.backends[0].client], chronos.config.deadlines)
    check = chronos.admin._reference_check()
    with chronos.checkpoints.hook(stall):
        writer = asyncio.create_task(
            mail.update(r.id, {"subject": "s", "avatar": b64(b"second")}, expected_ov=None)
        )
        await asyncio.wait_for(uploaded.wait(), 10)
        assert await remove_content_orphans(store, [key], check, deletion) == 0
        assert await _marks(mail).marks.count_documents({}) == 0
        release.set()
        await asyncio.wait_for(writer, 10)
    item = await mail.get_latest(r.id)
    assert item is not None and item.data["avatar"] == b64(b"second")
    # Once published, the object is referenced: reconcile keeps it for good.
    assert await remove_content_orphans(store, [key], check, deletion) == 0
    assert (await chronos.admin.verify(mail._scope.db, grace_seconds=0)).ok


_FAIL: contextvars.ContextVar[bool] = contextvars.ContextVar("fail", default=False)


async def _fail_marked(point: str, info: CheckpointInfo) -> None:
    """Withdraw the writes of tasks that asked for it, after their content upload."""
    if point == "stored" and _FAIL.get():
        raise StorageError("injected failure after the upload", retryable=True)


async def test_random_race_of_orphans_rewrites_and_reconcile(
    chronos: Chronos, db_name: str
) -> None:
    mail = chronos.collection("mail", db=db_name)
    rng = random.Random(11)
    ids = [(await mail.create({"subject": "s", "avatar": b64(b"base")})).id for _ in range(3)]
    db = mail._scope.db
    check = chronos.admin._reference_check()
    deletion = ContentDeletion([b.client for b in chronos.backends], chronos.config.deadlines)
    stop = asyncio.Event()
    removed = 0

    async def reconciler() -> None:
        nonlocal removed
        while not stop.is_set():
            for scan in await chronos.admin._scan(
                db, "mail", check_payloads=False, grace_seconds=0, progress=None
            ):
                for store, keys in scan.content_orphans:
                    removed += await remove_content_orphans(store, keys, check, deletion)
            await asyncio.sleep(rng.random() * 0.005)

    async def withdrawn(item_id: str, body: bytes) -> None:
        _FAIL.set(True)  # this task's context only
        with pytest.raises(StorageError):
            await mail.update(item_id, {"subject": "s", "avatar": b64(body)}, expected_ov=None)

    async def cycles(item_id: str) -> None:
        for _ in range(12):
            body = os.urandom(64)  # new bytes per cycle: once published they stay referenced
            await asyncio.create_task(withdrawn(item_id, body))
            await asyncio.sleep(rng.random() * 0.02)  # let reconcile pick the orphan up
            await mail.update(item_id, {"subject": "s", "avatar": b64(body)}, expected_ov=None)
            item = await mail.get_latest(item_id)
            assert item is not None and item.data["avatar"] == b64(body)

    with chronos.checkpoints.hook(_fail_marked):
        task = asyncio.create_task(reconciler())
        try:
            await asyncio.gather(*(cycles(item_id) for item_id in ids))
        finally:
            stop.set()
            await task
    for item_id in ids:
        latest = await mail.get_latest(item_id)
        assert latest is not None
        for ov in range(latest.ov + 1):
            assert await mail.get_version(item_id, ov) is not None  # content verified
    fixed = await chronos.admin.reconcile(db, grace_seconds=0)
    report = await chronos.admin.verify(db, grace_seconds=0)
    assert report.ok, report.problems
    assert removed + fixed.content_removed > 0  # reconcile did remove orphans meanwhile
    assert await _intents(mail) == 0
