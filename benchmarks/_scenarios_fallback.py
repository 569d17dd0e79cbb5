"""fallback: what ``fallback.enabled`` costs a healthy write, and how fast a queue drains.

Two kinds of rows (issue 10), both on 1 KB records in the run's payload store (S3 when
there is a server, as in the write scenarios):

- ``fallback create`` / ``fallback update`` at concurrency 1 and 32: writes made through
  ``chronos.fallback.collection(...)`` on an instance whose queue is enabled and whose
  worker runs (``auto_start``), against the same writes through a plain
  ``chronos.collection(...)`` on an instance with the queue disabled, in alternating
  rounds. **The floor columns of these rows are that fallback-off run**, not the raw
  floor (as ``get_as_of (1,000 v)`` is judged against ``get_as_of (1 v)``). The servers
  are healthy, so nothing is queued: the difference is the handle's wrapper (an op id,
  the fingerprint of the arguments, the key recorded on the version with
  ``key_use="record"``: no extra round trip) and an idle worker polling the queue every
  ``fallback.poll_ms``. Targets: at concurrency 1 p50 at most 1.05x off; at concurrency
  32 throughput at least 0.95x off (both ratios are in every row).
- ``fallback drain`` at ``fallback.concurrency`` 4 (the default) and 16: with the worker
  stopped, N creates (2,000; 500 with ``--quick``) are made while a checkpoint hook fails
  every attempt at ``stored`` with a retryable :class:`StorageError`, so each returns a
  :class:`QueuedWrite`. The hook is removed (delays are 1-10 ms, so every operation is
  due at once), the worker is started and the drain is timed until
  ``get_queue_stats()`` shows nothing queued or running (see :func:`_drain` for why it
  does not ``gather`` a ``wait`` per operation). Its floor: N plain creates at the same
  concurrency on the same instance, in alternating order; the ratio is informational
  (no target). Every drain is checked and the check printed: each queued operation
  applied exactly once (one version per record, carrying the operation's key), none
  dead, the queue empty.

Each comparison (and each drain) uses a fresh database and a fresh
``fallback.database``, both dropped afterwards; every instance is closed, which stops
its worker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks._context import Ctx
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import COLLECTION, Storage
from benchmarks._harness import Op, PeakRss, Variant, interleave
from benchmarks._report import Row, Target, compare
from benchmarks._scenarios_drain import (
    DRAIN_CONCURRENCIES,
    instance,
    progress_drain,
    run_drain,
)
from chronos_async import (
    Collection,
    QueuedCollection,
    QueuedWrite,
    WriteResult,
)

__all__ = ["run_fallback"]

OVERHEAD_OPS = ("create", "update")
CONCURRENCIES = (1, 32)
SIZE = 1 * KB


def _applied(result: WriteResult | QueuedWrite) -> WriteResult:
    """The result of a write made while the servers are healthy (never queued)."""
    if isinstance(result, QueuedWrite):
        raise RuntimeError(f"a write was queued with the servers healthy: {result.reason}")
    return result


# -- the write path with the queue on and off ---------------------------------------------


async def _overhead_ops(
    op: str, on: QueuedCollection, off: Collection, items: list[dict[str, Any]], conc: int
) -> tuple[Op, Op]:
    """The fallback-on and fallback-off operation for ``op`` (same arguments)."""
    if op == "create":

        async def on_create(w: int, seq: int) -> object:
            data = make_data(items, seq)
            return _applied(await on.create(data, actor="bench", reason="benchmark"))

        async def off_create(w: int, seq: int) -> object:
            return await off.create(make_data(items, seq), actor="bench", reason="benchmark")

        return on_create, off_create

    # update: every worker owns one record on each side, so no worker waits for a lease
    on_ids: list[str] = []
    off_ids: list[str] = []
    for w in range(conc):
        on_ids.append((await on.plain.create(make_data(items, 10_000_000 + w))).id)
        off_ids.append((await off.create(make_data(items, 10_000_000 + w))).id)
    on_ov, off_ov = [0] * conc, [0] * conc

    async def on_update(w: int, seq: int) -> object:
        data = make_data(items, seq)
        result = _applied(await on.update(on_ids[w], data, expected_ov=on_ov[w], actor="bench"))
        on_ov[w] = result.ov
        return result

    async def off_update(w: int, seq: int) -> object:
        data = make_data(items, seq)
        result = await off.update(off_ids[w], data, expected_ov=off_ov[w], actor="bench")
        off_ov[w] = result.ov
        return result

    return on_update, off_update


async def _run_overhead(ctx: Ctx, op: str, storage: Storage, conc: int) -> Row:
    """One row: interleaved rounds of fallback-on and fallback-off writes."""
    p = ctx.params
    items = template(SIZE, ctx.seed)
    ops = p.fallback_ops_c1 if conc == 1 else p.fallback_ops_c32
    name = f"fallback_{op}/{storage}/c{conc}"
    fallback_on = {"auto_start": True}
    async with (
        PeakRss() as peak,
        instance(ctx, storage, f"fb_on_{op}_c{conc}", fallback_on) as (on_chronos, on_db),
        instance(ctx, storage, f"fb_off_{op}_c{conc}", None) as (off_chronos, off_db),
    ):
        fb = on_chronos.fallback
        on = fb.collection(COLLECTION, db=on_db)
        off = off_chronos.collection(COLLECTION, db=off_db)
        on_op, off_op = await _overhead_ops(op, on, off, items, conc)
        warmup = 5 if conc == 1 else 2 * conc
        ours = Variant("ours", on_op, conc, ops, warmup=warmup)
        floor = Variant("off", off_op, conc, ops, warmup=warmup)
        await interleave([floor, ours], p.fallback_rounds, label=name)
        running = fb.worker_running
        stats = await fb.get_queue_stats()
    row = compare(f"fallback {op}", storage, size_label(SIZE), conc, ours.rounds, floor.rounds)
    row.peak_rss_mb = peak.peak_mb
    row.extra.update(
        floor="the same writes on a Chronos without fallback (library, not the raw floor)",
        payload_bytes=SIZE,
        poll_ms=fb.config.poll_ms,
        worker_running=running,
        queued_after=stats.queued + stats.running + stats.done + stats.dead,
    )
    if running is not True or row.extra["queued_after"]:
        raise RuntimeError(f"{name}: worker running={running}, queue {stats}")
    if conc == 1 and row.p50_x_floor is not None:
        row.target = Target("p50 <= 1.05x off", row.p50_x_floor, 1.05, "<=")
    elif row.ops_x_floor is not None:
        row.target = Target("ops/s >= 0.95x off", row.ops_x_floor, 0.95, ">=")
    return row


# -- the scenario ----------------------------------------------------------------------------


async def run_fallback(ctx: Ctx) -> None:
    """The on/off comparison (create, update; concurrency 1, 32), then the drains."""
    storage = ctx.storages[0]
    for op in OVERHEAD_OPS:
        for conc in CONCURRENCIES:
            row = await _run_overhead(ctx, op, storage, conc)
            ctx.rows.append(row)
            _progress(row)
    for conc in DRAIN_CONCURRENCIES:
        row = await run_drain(ctx, storage, conc)
        ctx.rows.append(row)
        progress_drain(row)
    # Every instance was closed (which stops its worker): no worker task may be left.
    left = [t for t in asyncio.all_tasks() if t.get_name() == "chronos-fallback-worker"]
    if left:
        raise RuntimeError(f"{len(left)} fallback worker task(s) still running")
    print("  every instance closed, no fallback worker left running", flush=True)


def _progress(row: Row) -> None:
    def shown(x: float | None) -> str:
        return f"{x:.3f}" if x is not None else "-"

    print(
        f"  {row.scenario:<16} {row.storage:<5} c{row.concurrency:<3}"
        f" p50 {row.p50_ms:6.2f} ms (off {row.floor_p50_ms or float('nan'):6.2f})"
        f" {row.ops_per_s:6.0f} ops/s (off {row.floor_ops_per_s or float('nan'):6.0f})"
        f"  on/off: p50 {shown(row.p50_x_floor)} ops/s {shown(row.ops_x_floor)}",
        flush=True,
    )
