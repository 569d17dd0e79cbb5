"""Group commit into packs (``write_optimization.batch_s3``): creates of 1 KB on S3.

Two instances on one database and one S3 server, with the same client, differ only in
``batch_s3``; their rounds alternate. PUT requests are counted twice: by the pack
writer's own figures (:meth:`Chronos.stats`) per round, and by listing what each
instance's key prefix holds at the end (every PUT creates one object: nothing is
overwritten).

Targets (issue 11): 1,000 creates at concurrency 64 need at most 50 PUTs and reach at
least 1.5x the throughput of the unbatched path; at concurrency 1 the p50 latency is at
most 1.1x the unbatched path's (an idle store waits for no window).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from benchmarks._context import Ctx
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import COLLECTION
from benchmarks._floor_blobs import RawObstore
from benchmarks._harness import PeakRss, Variant, interleave
from benchmarks._report import Row, Target, compare
from chronos_async import Chronos, Collection

__all__ = ["run_packs"]

_SIZE = 1 * KB


@dataclass
class _Side:
    chronos: Chronos
    coll: Collection
    objects: RawObstore


@contextlib.asynccontextmanager
async def _side(ctx: Ctx, db: str, *, batch: bool) -> AsyncIterator[_Side]:
    servers = ctx.servers
    assert servers.s3 is not None
    prefix = servers.new_prefix()
    config = servers.config("s3", prefix, write_optimization={"batch_s3": batch})
    async with Chronos(config) as chronos, RawObstore(servers.s3, prefix) as objects:
        yield _Side(chronos, chronos.collection(COLLECTION, db=db), objects)


async def run_packs(ctx: Ctx) -> None:
    """Batched against unbatched creates at concurrency 64 and 1 (S3 only)."""
    if ctx.servers.s3 is None:
        print("  packs: skipped (no S3 server)", flush=True)
        return
    p = ctx.params
    items = template(_SIZE, ctx.seed)
    for conc, ops in ((64, p.pack_ops_c64), (1, p.write_ops_c1)):
        db = ctx.servers.new_db(f"packs_c{conc}")
        try:
            async with (
                PeakRss() as peak,
                _side(ctx, db, batch=True) as on,
                _side(ctx, db, batch=False) as off,
            ):
                rows = await _compare(ctx, on, off, items, conc, ops)
        finally:
            await ctx.servers.drop(db)
        for row in rows:
            row.peak_rss_mb = peak.peak_mb
            ctx.rows.append(row)
            _progress(row)


async def _compare(
    ctx: Ctx, on: _Side, off: _Side, items: list[dict[str, object]], conc: int, ops: int
) -> list[Row]:
    async def batched(w: int, seq: int) -> object:
        return await on.coll.create(make_data(items, seq), actor="bench")

    async def unbatched(w: int, seq: int) -> object:
        return await off.coll.create(make_data(items, seq), actor="bench")

    warmup = 5 if conc == 1 else 2 * conc
    ours = Variant("ours_batched", batched, conc, ops, warmup=warmup)
    base = Variant("unbatched", unbatched, conc, ops, warmup=warmup)
    before = on.chronos.stats().packs
    await interleave([base, ours], ctx.params.pack_rounds, label=f"packs/c{conc}")
    after = on.chronos.stats().packs
    calls_each = warmup + ops * ctx.params.pack_rounds
    on_objects, off_objects = await on.objects.count(), await off.objects.count()
    puts_per_1000 = on_objects / calls_each * 1000
    row = compare(
        "create+packs",
        "s3",
        size_label(_SIZE),
        conc,
        ours.rounds,
        base.rounds,
        puts_per_1000=puts_per_1000,
        unbatched_puts_per_1000=off_objects / calls_each * 1000,
        packs=after.packs - before.packs,
        payloads_per_pack=after.payloads_per_pack,
        alone=after.alone - before.alone,
        puts_saved=after.puts_saved - before.puts_saved,
        # the pack writer's own count of PUTs (the listing above includes the warm-up)
        stats_puts=(after.alone + after.packs) - (before.alone + before.packs),
    )
    rows = [row]
    if conc == 1:
        if row.p50_x_floor is not None:
            row.target = Target("p50 <= 1.1x unbatched", row.p50_x_floor, 1.1, "<=")
        return rows
    if row.ops_x_floor is not None:
        row.target = Target("ops/s >= 1.5x unbatched", row.ops_x_floor, 1.5, ">=")
    puts = compare("PUTs/1000 creates", "s3", size_label(_SIZE), conc, ours.rounds, base.rounds)
    puts.extra.update(row.extra)
    puts.target = Target("PUTs per 1,000 creates <= 50", puts_per_1000, 50, "<=")
    rows.append(puts)
    return rows


def _progress(row: Row) -> None:
    ratio = row.p50_x_floor if row.concurrency == 1 else row.ops_x_floor
    what = "p50" if row.concurrency == 1 else "ops/s"
    shown = f"{ratio:.2f}" if ratio is not None else "-"
    print(
        f"  {row.scenario:<18} c{row.concurrency:<3} {row.ops_per_s:8.0f} ops/s"
        f"  p50 {row.p50_ms:7.2f} ms  {what} x unbatched {shown}"
        f"  PUTs/1000 {row.extra.get('puts_per_1000', float('nan')):.0f}"
        f" (unbatched {row.extra.get('unbatched_puts_per_1000', float('nan')):.0f})",
        flush=True,
    )
