"""The fallback queue under real outages: every queued write is applied exactly once.

- SeaweedFS killed: 304 writes from 16 coroutines over 50 records all return queued;
  the server comes back on the same ports and the worker (running all along, failing
  and backing off) drains the queue.
- MongoDB killed, with a spool: the writes go to the local journal; MongoDB comes back,
  the worker moves the journal into the queue and drains it.
- Two OS processes draining one queue; a draining process SIGKILLed in the middle.
- An operation failing until it is dead-lettered after ``max_attempts``, then retried.

After each: every operation's result is read back (its marker in exactly the version
its result names), per record the history is gap-free and holds exactly the records'
own writes, and ``admin.verify`` is clean. Counts are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from chronos_async import (
    Chronos,
    ChronosConfig,
    DeadLetterError,
    QueuedCollection,
    QueuedWrite,
    WriteResult,
)
from chronos_async._procs import (
    NxServer,
    S3Credentials,
    start_nx,
)
from tests.reliability.servers import kill, own_weed, restart_on_same_ports
from tests.reliability.test_faults import _external, assert_clean, readable_history
from tests.reliability.writer_process import config_json
from tests.support import Outage

DRAIN = Path(__file__).with_name("drain_process.py")
BUCKETS = ("fallback-json", "fallback-content", "fallback-backups")
RECORDS = [f"r{i:02d}" for i in range(50)]


def fallback_cfg(db_name: str, **extra: Any) -> dict[str, Any]:
    """A fast-retrying queue in this test's own system database."""
    return {
        "enabled": True,
        "database": f"{db_name}_sys",
        "base_delay_ms": 50,
        "max_delay_ms": 500,
        "max_attempts": 1000,
        "poll_ms": 50,
        "concurrency": 8,
        **extra,
    }


async def write_storm(
    orders: QueuedCollection, *, writers: int = 16, per_writer: int = 19
) -> list[tuple[int, WriteResult | QueuedWrite]]:
    """``writers`` coroutines, each making ``per_writer`` writes over the 50 records:
    updates (``expected_ov=None``) and enrich calls, each carrying a unique marker."""

    async def one(w: int) -> list[tuple[int, WriteResult | QueuedWrite]]:
        done = []
        for i in range(per_writer):
            n = w * 1000 + i
            rid = RECORDS[(w * 7 + i * 3) % len(RECORDS)]
            if i % 3 == 2:
                r = await orders.enrich(rid, {"marks": [n]}, function_id="storm@1")
            else:
                r = await orders.update(rid, {"n": n, "pad": "x" * 2000}, expected_ov=None)
            done.append((n, r))
        return done

    results = await asyncio.gather(*(one(w) for w in range(writers)))
    return [pair for batch in results for pair in batch]


async def check_exactly_once(
    chronos: Chronos, db: str, ops: list[tuple[int, QueuedWrite]]
) -> dict[str, int]:
    """Every queued operation applied once, where its result says; nothing else written."""
    plain = chronos.collection("orders", db=db)
    results = await asyncio.gather(*(chronos.fallback.wait(q.op_id, timeout=120) for _, q in ops))
    per_record: Counter[str] = Counter()
    for (n, queued), result in zip(ops, results, strict=True):
        assert result.id == queued.id and result.changed
        item = await plain.get_version(result.id, result.ov)
        assert item is not None
        if queued.op == "enrich":
            assert n in item.data["marks"], (n, item.data)
        else:
            assert item.data["n"] == n, (n, item.data)
        per_record[result.id] += 1
    duplicates = 0
    for rid in RECORDS:
        ovs = await readable_history(plain, rid)
        assert ovs == list(range(ovs[0], -1, -1)), (rid, ovs)
        versions = len(ovs) - 1  # ov=0 is the create
        duplicates += versions - per_record[rid]
    assert duplicates == 0
    stats = await chronos.fallback.get_queue_stats()
    assert stats.queued == stats.running == stats.spooled == stats.dead == 0, stats
    return {
        "queued": len(ops),
        "applied": len(results),
        "dead_lettered": stats.dead,
        "duplicates": duplicates,
        "lost": len(ops) - len(results),
    }


async def create_records(chronos: Chronos, db: str) -> None:
    plain = chronos.collection("orders", db=db)
    await asyncio.gather(*(plain.create({"n": -1, "marks": []}, id=rid) for rid in RECORDS))


def queued_only(
    pairs: list[tuple[int, WriteResult | QueuedWrite]],
) -> list[tuple[int, QueuedWrite]]:
    out = []
    for n, r in pairs:
        assert isinstance(r, QueuedWrite), f"write {n} was applied during the outage: {r}"
        out.append((n, r))
    return out


@pytest.mark.slow
@pytest.mark.skipif(
    _external("CHRONOS_TEST_S3_ENDPOINT"),
    reason="stops its S3 server: not possible with CHRONOS_TEST_S3_* (external)",
)
async def test_s3_killed_writes_queue_and_drain_exactly_once(
    make_config: Any,
    db_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
) -> None:
    creds = S3Credentials("CHRONOSFALLBACK", "fallback-outage-secret")
    async with own_weed(tmp_path, creds, BUCKETS) as weed:
        config = make_config(
            "s3",
            spaces_conns=[weed.conn()],
            deadlines={"store_ms": 2000},
            fallback=fallback_cfg(db_name),
        )
        async with Chronos(config) as chronos:
            await create_records(chronos, db_name)
            orders = chronos.fallback.collection("orders", db=db_name)
            await weed.kill()
            started = asyncio.get_running_loop().time()
            ops = queued_only(await write_storm(orders))
            queued_in = asyncio.get_running_loop().time() - started
            await weed.restart(monkeypatch)
            began = asyncio.get_running_loop().time()
            counts = await check_exactly_once(chronos, db_name, ops)
            drained_in = asyncio.get_running_loop().time() - began
            await assert_clean(chronos, db_name, reconcile=True)
            report(
                f"fallback, S3 killed: {counts} (queued in {queued_in:.1f} s; drained in "
                f"{drained_in:.1f} s, {len(ops) / drained_in:.0f} ops/s)"
            )


@pytest.mark.slow
@pytest.mark.skipif(
    _external("CHRONOS_TEST_MONGO_URI"),
    reason="stops its MongoDB: not possible with CHRONOS_TEST_MONGO_URI (external)",
)
async def test_mongo_killed_writes_spool_and_drain_exactly_once(
    make_config: Any,
    db_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
) -> None:
    data_dir = tmp_path / "nx-data"

    def start(n: int) -> Awaitable[NxServer]:
        return start_nx(tmp_path / f"nx-{n}", data_dir=data_dir)

    nx = await start(1)
    servers = [nx]
    try:
        config = make_config(
            "local",
            mongo_uris=[nx.uri],
            mongo_client={"server_selection_timeout_ms": 300, "connect_timeout_ms": 300},
            deadlines={"mongo_ms": 1000},
            fallback=fallback_cfg(db_name, spool_dir=str(tmp_path / "spool")),
        )
        async with Chronos(config) as chronos:
            await create_records(chronos, db_name)
            orders = chronos.fallback.collection("orders", db=db_name)
            await kill(nx)
            ops = queued_only(await write_storm(orders, writers=16, per_writer=19))
            assert all(q.spooled for _, q in ops)
            assert chronos.fallback.spool is not None
            assert await chronos.fallback.spool.count() == len(ops)
            servers.append(await restart_on_same_ports(monkeypatch, [nx.port], lambda: start(2)))
            began = asyncio.get_running_loop().time()
            counts = await check_exactly_once(chronos, db_name, ops)
            drained_in = asyncio.get_running_loop().time() - began
            assert await chronos.fallback.spool.count() == 0
            await assert_clean(chronos, db_name, reconcile=True)
            report(f"fallback, MongoDB killed, spool: {counts} (drained in {drained_in:.1f} s)")
    finally:
        for server in servers:
            await kill(server)


async def queue_without_worker(
    config: ChronosConfig, db: str, n_writers: int = 16, per_writer: int = 13
) -> list[tuple[int, QueuedWrite]]:
    """Queue writes with no worker running (their first attempts fail)."""
    held = ChronosConfig.load(
        {
            **config.to_dict(reveal_secrets=True),
            "fallback": {**fallback_cfg(db), "autoStart": False},
        }
    )
    async with Chronos(held) as chronos:
        await create_records(chronos, db)
        orders = chronos.fallback.collection("orders", db=db)
        with chronos.checkpoints.hook(Outage()):
            return queued_only(await write_storm(orders, writers=n_writers, per_writer=per_writer))


async def start_drainer(config_path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(DRAIN),
        str(config_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
    )


async def read_until(proc: asyncio.subprocess.Process, done: Callable[[str], bool]) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                break
            lines.append(raw.decode().rstrip())
            if done(lines[-1]):
                break
    return lines


@pytest.mark.slow
async def test_two_processes_drain_one_queue_and_one_is_killed(
    make_config: Any, db_name: str, tmp_path: Path, report: Callable[[str], None]
) -> None:
    """Two OS processes drain the queue together; one is SIGKILLed mid-drain. Its claimed
    operations are taken over once their claims expire; none is lost or applied twice."""
    config = make_config("local", fallback={**fallback_cfg(db_name), "claim_ms": 1500})
    ops = await queue_without_worker(config, db_name)
    path = tmp_path / "drain-config.json"
    path.write_text(config_json(config))
    doomed, survivor = await start_drainer(path), await start_drainer(path)
    try:
        # The first one dies after it applied a few operations.
        early = await read_until(
            doomed, lambda line: line.startswith("APPLIED") and int(line.split()[1]) >= 15
        )
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        lines = await read_until(survivor, lambda line: line.startswith("IDLE"))
        assert lines and lines[-1].startswith("IDLE"), lines[-5:]
        applied_by_survivor = int(lines[-1].split()[1])
    finally:
        for proc in (doomed, survivor):
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.communicate()
    assert doomed.returncode == -signal.SIGKILL
    async with Chronos(config) as chronos:
        counts = await check_exactly_once(chronos, db_name, ops)
        await assert_clean(chronos, db_name, reconcile=True)
    killed_applied = int([x for x in early if x.startswith("APPLIED")][-1].split()[1])
    assert applied_by_survivor > 0 and killed_applied >= 15
    report(
        f"fallback, two processes, one SIGKILLed: {counts}; the killed one had applied "
        f"{killed_applied}, the survivor {applied_by_survivor}"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    _external("CHRONOS_TEST_S3_ENDPOINT"),
    reason="stops its S3 server: not possible with CHRONOS_TEST_S3_* (external)",
)
async def test_a_write_failing_for_good_is_dead_lettered_then_retried(
    make_config: Any,
    db_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: Callable[[str], None],
) -> None:
    creds = S3Credentials("CHRONOSDEAD", "dead-letter-secret")
    async with own_weed(tmp_path, creds, BUCKETS) as weed:
        config = make_config(
            "s3",
            spaces_conns=[weed.conn()],
            # A killed server refuses connections at once; a restarted one may take a
            # second or two to accept its first writes (it grows a volume).
            deadlines={"store_ms": 5000},
            fallback=fallback_cfg(db_name, max_attempts=3, base_delay_ms=200, max_delay_ms=400),
        )
        async with Chronos(config) as chronos:
            orders = chronos.fallback.collection("orders", db=db_name)
            await weed.kill()
            queued = await orders.create({"n": 1, "pad": "x" * 40_000})
            assert isinstance(queued, QueuedWrite)
            with pytest.raises(DeadLetterError, match="gave up after 3 attempts") as info:
                await chronos.fallback.wait(queued.op_id, timeout=60)
            assert "StorageError" in info.value.reason
            [dead] = await chronos.fallback.get_dead_letter_ops()
            assert (dead.op_id, dead.attempts) == (queued.op_id, 3)
            await weed.restart(monkeypatch)
            assert await chronos.fallback.retry_dead_letter(queued.op_id)
            result = await chronos.fallback.wait(queued.op_id, timeout=60)
            assert result.id == queued.id and result.ov == 0
            assert await readable_history(orders.plain, queued.id) == [0]
            assert (await chronos.fallback.get_queue_stats()).dead == 0
            report(
                "fallback, S3 killed for good: 1 queued, dead-lettered after 3 attempts; "
                "retried once the server was back: applied 1, duplicates 0"
            )
