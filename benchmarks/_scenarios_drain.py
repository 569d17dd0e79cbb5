"""fallback drain: how fast the queue drains after an outage (see ``_scenarios_fallback``).

Also :func:`instance`, the open Chronos (with its own queue database) both fallback
scenarios use.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from benchmarks._context import Ctx
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import COLLECTION, Storage
from benchmarks._floor import open_mongo
from benchmarks._harness import PeakRss, RoundStats, run_round
from benchmarks._report import Row, compare
from chronos_async import (
    Chronos,
    Collection,
    QueuedCollection,
    QueuedWrite,
    StorageError,
    WriteResult,
)

__all__ = ["instance", "progress_drain", "run_drain"]

DRAIN_CONCURRENCIES = (4, 16)
SIZE = 1 * KB
#: Concurrency of the (untimed) writes that fill the queue during the outage.
_QUEUE_CONCURRENCY = 32
#: How often the end of a drain is polled once its last operation is applied (seconds).
_STATS_POLL_S = 0.01
_DRAIN_TIMEOUT_S = 600


@contextlib.asynccontextmanager
async def instance(
    ctx: Ctx,
    storage: Storage,
    scenario: str,
    fallback: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Chronos, str]]:
    """An open Chronos and a fresh database; with ``fallback``, the queue enabled in a
    fresh ``fallback.database`` of its own; ``extra`` goes into the config as well (top
    level keys). Both databases are dropped at the end, after the instance (and its
    worker) is closed."""
    servers = ctx.servers
    db = servers.new_db(scenario)
    overrides: dict[str, Any] = dict(extra or {})
    queue_db: str | None = None
    if fallback is not None:
        queue_db = servers.new_db(f"{scenario}_q")
        overrides["fallback"] = {"enabled": True, **fallback, "database": queue_db}
    config = servers.config(storage, servers.new_prefix(), **overrides)
    try:
        async with Chronos(config) as chronos:
            yield chronos, db
    finally:
        await servers.drop(db)
        if queue_db is not None:
            await servers.drop(queue_db)


class _Outage:
    """A checkpoint hook failing every write at ``stored`` with a retryable error."""

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, point: str, info: object) -> None:
        if point == "stored":
            self.failed += 1
            raise StorageError("outage (injected by the benchmark)", retryable=True)


async def _queue_in_outage(
    chronos: Chronos, handle: QueuedCollection, items: list[dict[str, Any]], n: int, seq: int
) -> tuple[list[QueuedWrite], float]:
    """``n`` creates, each queued because its first attempt failed; and the seconds
    that took (not part of the drain)."""
    queued: list[QueuedWrite] = []
    outage = _Outage()
    began = time.perf_counter()

    async def writer(w: int) -> None:
        for k in range(w, n, _QUEUE_CONCURRENCY):
            result = await handle.create(make_data(items, seq + k), actor="bench")
            if not isinstance(result, QueuedWrite):
                raise RuntimeError("a create during the outage was applied, not queued")
            queued.append(result)

    with chronos.checkpoints.hook(outage):
        await asyncio.gather(*(writer(w) for w in range(_QUEUE_CONCURRENCY)))
    seconds = time.perf_counter() - began
    if outage.failed != n or len(queued) != n:
        raise RuntimeError(f"expected {n} queued creates, got {len(queued)} ({outage.failed})")
    stats = await chronos.fallback.get_queue_stats()
    if stats.queued != n or chronos.fallback.worker_running:
        raise RuntimeError(f"expected {n} operations waiting and no worker: {stats}")
    return queued, seconds


@dataclass
class _Drain:
    """One timed drain."""

    ops: int
    wall: float
    cpu: float

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall if self.wall > 0 else float("nan")


async def _drain(chronos: Chronos, queued: list[QueuedWrite]) -> tuple[_Drain, list[WriteResult]]:
    """Start the worker; time until ``get_queue_stats()`` shows nothing queued or
    running; stop it. The results of every operation are read afterwards (untimed).

    The wait must not slow the drain: the worker claims operations in the order they
    are due (here, the order they were queued), so the timed part waits for the last
    one queued, then polls the statistics (cheap by then: they list what still waits)
    for the few still running. ``asyncio.gather`` of a ``wait`` per operation would poll
    every operation's status while the drain runs (measured: 2.5-3x slower drains).
    """
    fb = chronos.fallback
    last = max(queued, key=lambda q: q.queued_at)
    gc.collect()
    cpu = time.process_time()
    began = time.perf_counter()
    await fb.start_worker()
    async with asyncio.timeout(_DRAIN_TIMEOUT_S):
        await fb.wait(last.op_id)
        while True:
            stats = await fb.get_queue_stats()
            if stats.queued == stats.running == 0:
                break
            await asyncio.sleep(_STATS_POLL_S)
    drain = _Drain(len(queued), time.perf_counter() - began, time.process_time() - cpu)
    await fb.stop_worker()
    results = [await fb.wait(q.op_id, timeout=10) for q in queued]
    return drain, results


async def _exactly_once(
    ctx: Ctx, chronos: Chronos, db: str, queued: list[QueuedWrite], results: list[WriteResult]
) -> dict[str, Any]:
    """Whether every queued operation was applied once: the queue empty with N done and
    none dead; one version per record (ov 0), carrying its operation's key."""
    stats = await chronos.fallback.get_queue_stats()
    ids = [q.id for q in queued]
    client = open_mongo(ctx.servers.mongo_uri, chronos.config)
    try:
        versions = await (
            client[db][f"{COLLECTION}_ver"]
            .find({"id": {"$in": ids}}, {"id": 1, "ov": 1, "idem": 1})
            .to_list(None)
        )
    finally:
        await client.close()
    per_id: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        per_id.setdefault(str(v["id"]), []).append(v)
    missing = sum(1 for i in ids if i not in per_id)
    duplicated = sum(1 for vs in per_id.values() if len(vs) > 1)
    wrong_key = sum(
        1 for q in queued for v in per_id.get(q.id, []) if v.get("idem") != f"op:{q.op_id}"
    )
    wrong_result = sum(1 for q, r in zip(queued, results, strict=True) if (r.id, r.ov) != (q.id, 0))
    ok = (
        stats.queued == stats.running == stats.dead == 0
        and stats.done == len(queued)
        and len(versions) == len(queued)
        and not (missing or duplicated or wrong_key or wrong_result)
    )
    return {
        "ok": ok,
        "queued": len(queued),
        "versions": len(versions),
        "missing": missing,
        "duplicated": duplicated,
        "wrong_key": wrong_key,
        "wrong_result": wrong_result,
        "done": stats.done,
        "dead": stats.dead,
        "left": stats.queued + stats.running,
    }


async def run_drain(ctx: Ctx, storage: Storage, conc: int) -> Row:
    """Drains of N queued creates against N plain creates, alternating which goes first."""
    p = ctx.params
    n = p.fallback_drain_ops
    items = template(SIZE, ctx.seed)
    drains: list[_Drain] = []
    floors: list[RoundStats] = []
    checks: list[dict[str, Any]] = []
    queue_s: list[float] = []
    fallback = {
        "auto_start": False,
        "concurrency": conc,
        # due at once: the first retry waits a uniform 0-1 ms
        "base_delay_ms": 1,
        "max_delay_ms": 10,
    }
    seq = 0
    async with PeakRss() as peak:
        for r in range(p.fallback_drain_rounds):
            scenario = f"fb_drain_c{conc}_{r}"
            async with instance(ctx, storage, scenario, fallback) as (chronos, db):
                handle = chronos.fallback.collection(COLLECTION, db=db)
                plain = chronos.collection(COLLECTION, db=db)
                queued, seconds = await _queue_in_outage(chronos, handle, items, n, seq)
                queue_s.append(seconds)
                seq += n

                async def create(w: int, s: int, plain: Collection = plain) -> object:
                    return await plain.create(make_data(items, s), actor="bench")

                for side in ("floor", "drain") if r % 2 == 0 else ("drain", "floor"):
                    if side == "floor":
                        gc.collect()
                        floors.append(await run_round(create, n, conc, start_seq=seq))
                        seq += n
                    else:
                        drain, results = await _drain(chronos, queued)
                        drains.append(drain)
                checks.append(await _exactly_once(ctx, chronos, db, queued, results))
    row = _drain_row(storage, conc, drains, floors, checks, peak.peak_mb)
    # how fast writes were queued while every first attempt failed (concurrency 32)
    row.extra["outage_queued_per_s"] = statistics.median(n / q for q in queue_s)
    return row


def _drain_row(
    storage: Storage,
    conc: int,
    drains: list[_Drain],
    floors: list[RoundStats],
    checks: list[dict[str, Any]],
    peak_mb: float,
) -> Row:
    """The drain row: ops/s of the drains, the plain creates as the floor (no p50: a
    drain is timed as a whole)."""
    floor = compare("fallback drain", storage, size_label(SIZE), conc, floors, None)
    pairs = [d.ops_per_s / f.ops_per_s for d, f in zip(drains, floors, strict=True)]
    row = Row(
        scenario="fallback drain",
        storage=storage,
        payload=size_label(SIZE),
        concurrency=conc,
        ops=sum(d.ops for d in drains),
        ops_per_s=statistics.median(d.ops_per_s for d in drains),
        p50_ms=float("nan"),
        p99_ms=float("nan"),
        floor_ops_per_s=floor.ops_per_s,
        floor_p50_ms=floor.p50_ms,
        floor_p99_ms=floor.p99_ms,
        ops_x_floor=statistics.median(pairs),
        rounds=len(drains),
        cpu_ms_per_op=statistics.median(d.cpu / d.ops * 1000 for d in drains),
        floor_cpu_ms_per_op=floor.cpu_ms_per_op,
        peak_rss_mb=peak_mb,
    )
    row.extra.update(
        floor="plain creates at the same concurrency on the same instance",
        payload_bytes=SIZE,
        fallback_concurrency=conc,
        queued_per_drain=drains[0].ops if drains else 0,
        drain_s=[d.wall for d in drains],
        rounds_ops_x_floor=pairs,
        exactly_once=all(c["ok"] for c in checks),
        checks=checks,
    )
    return row


def progress_drain(row: Row) -> None:
    checks: list[dict[str, Any]] = row.extra["checks"]
    print(
        f"  {row.scenario:<16} {row.storage:<5} c{row.concurrency:<3}"
        f" {row.ops_per_s:6.0f} ops/s drained (plain creates {row.floor_ops_per_s or 0:6.0f}"
        f" ops/s, x {row.ops_x_floor or float('nan'):.2f}), drains "
        + ", ".join(f"{s:.2f} s" for s in row.extra["drain_s"])
        + f"; queued at {row.extra['outage_queued_per_s']:.0f}/s during the outage",
        flush=True,
    )
    for c in checks:
        print(
            f"    exactly-once {'held' if c['ok'] else 'FAILED'}: {c['queued']} queued,"
            f" {c['done']} done, {c['dead']} dead, {c['left']} left;"
            f" {c['versions']} versions, {c['missing']} missing, {c['duplicated']} duplicated,"
            f" {c['wrong_key']} with another key, {c['wrong_result']} other results",
            flush=True,
        )
