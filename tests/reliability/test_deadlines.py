"""Every I/O step has a deadline: a stalled server never holds a caller, or a lease, long.

Before the fix (issue 9, defect 3), with SeaweedFS stopped (SIGSTOP) for 400 s an
``update`` waited the whole 400 s, renewing its lease throughout, so another instance's
writes on that record failed with ``LockTimeoutError`` for the whole outage. Here the
servers are stopped with SIGSTOP (they keep their connections open and answer nothing,
the worst case for client-side timeouts), so each test starts its own server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from chronos_async import Chronos, LockTimeoutError, StorageError
from chronos_async._procs import (
    ExecutableNotFoundError,
    NxServer,
    S3Credentials,
    WeedServer,
    start_nx,
    start_weed,
)
from tests.reliability.test_cancellation import held_leases
from tests.reliability.test_faults import _external, assert_clean

BUCKETS = ("deadline-json", "deadline-content", "deadline-backups")
PAD = "x" * 40_000  # not inline: every write and most reads need the store


@pytest_asyncio.fixture(loop_scope="session")
async def own_weed(tmp_path: Path) -> AsyncIterator[WeedServer]:
    if _external("CHRONOS_TEST_S3_ENDPOINT"):
        pytest.skip("stops its S3 server: not possible with CHRONOS_TEST_S3_* (external)")
    creds = S3Credentials("CHRONOSDEADLINE", "deadline-secret")
    try:
        server = await start_weed(tmp_path / "weed", buckets=BUCKETS, credentials=creds)
    except ExecutableNotFoundError as exc:
        pytest.skip(f"no weed executable: {exc}")
    try:
        yield server
    finally:
        if server.running:
            os.kill(server.pid, signal.SIGCONT)
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def own_nx(tmp_path: Path) -> AsyncIterator[NxServer]:
    if _external("CHRONOS_TEST_MONGO_URI"):
        pytest.skip("stops its MongoDB: not possible with CHRONOS_TEST_MONGO_URI (external)")
    server = await start_nx(tmp_path / "nx")
    try:
        yield server
    finally:
        if server.running:
            os.kill(server.pid, signal.SIGCONT)
        await server.stop()


def _s3_conn(weed: WeedServer) -> dict[str, Any]:
    return {
        "endpoint": weed.endpoint,
        "access_key": weed.access_key,
        "secret_key": weed.secret_key,
        "json_bucket": BUCKETS[0],
        "content_bucket": BUCKETS[1],
        "backups_bucket": BUCKETS[2],
    }


async def test_a_stalled_object_store_fails_writes_within_the_deadline(
    make_config: Any, own_weed: WeedServer, db_name: str
) -> None:
    config = make_config(
        "s3",
        spaces_conns=[_s3_conn(own_weed)],
        deadlines={"store_ms": 800},
        leases={"lease_ms": 30_000, "wait_ms": 0},
    )
    async with Chronos(config) as one, Chronos(config) as other:
        users = one.collection("users", db=db_name)
        theirs = other.collection("users", db=db_name)
        await users.create({"n": 0, "pad": PAD}, id="r")
        os.kill(own_weed.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                await users.update("r", {"n": 1, "pad": PAD}, expected_ov=0)
            took = time.monotonic() - started
            assert info.value.retryable and not info.value.outcome_unknown
            assert took < 0.8 + 2.0, took  # the store deadline, plus the withdrawal
            # The lease went with the failed write: another instance is not locked out
            # (its own write fails on the stalled store, typed, not LockTimeoutError).
            assert await held_leases(users) == []
            with pytest.raises(StorageError) as theirs_info:
                await theirs.update("r", {"n": 2, "pad": PAD}, expected_ov=0)
            assert not isinstance(theirs_info.value, LockTimeoutError)
            # Reads of payloads in the store fail within the deadline too.
            started = time.monotonic()
            with pytest.raises(StorageError) as read_info:
                await users.get_latest("r")
            assert read_info.value.retryable and time.monotonic() - started < 2.0
        finally:
            os.kill(own_weed.pid, signal.SIGCONT)
        assert (await theirs.update("r", {"n": 3, "pad": PAD}, expected_ov=0)).ov == 1
        item = await users.get_latest("r")
        assert item is not None and item.data["n"] == 3
        await assert_clean(one, db_name, reconcile=True)


async def test_a_stalled_mongodb_fails_reads_and_writes_within_the_deadline(
    make_config: Any, own_nx: NxServer, db_name: str
) -> None:
    config = make_config(
        "local",
        mongo_uris=[own_nx.uri],
        deadlines={"mongo_ms": 700},
        leases={"lease_ms": 2_000, "wait_ms": 0},
    )
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        await users.create({"n": 0}, id="r")
        os.kill(own_nx.pid, signal.SIGSTOP)
        try:
            for call in (
                lambda: users.get_latest("r"),
                lambda: users.update("r", {"n": 1}, expected_ov=0),
                lambda: users.create({"n": 0}),
                lambda: chronos.admin.verify(db_name),
            ):
                started = time.monotonic()
                with pytest.raises(StorageError) as info:
                    await call()
                took = time.monotonic() - started
                assert info.value.retryable or info.value.outcome_unknown
                assert took < 0.7 * 4 + 1.0, took  # a few bounded steps at most
        finally:
            os.kill(own_nx.pid, signal.SIGCONT)
        # Back: the record is usable again (a grant that landed late expires with its
        # short lease; wait for it rather than assume it was never granted).
        for _ in range(50):
            if not await held_leases(users):
                break
            await asyncio.sleep(0.1)  # an expiry has no event to wait for
        assert (await users.update("r", {"n": 2}, expected_ov=0)).ov == 1
