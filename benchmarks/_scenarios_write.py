"""create, update and enrich: 1 KB and 100 KB payloads, concurrency 1 and 32, S3 and local.

Each combination gets a fresh database with our collection and the floor's. For update
and enrich every worker owns one record on each side (created before the rounds), so
workers never wait for one another's lease and both sides do the same work.

Targets (issue item 2): at concurrency 1 our p50 latency is at most 1.25x the floor's;
at concurrency 32 our throughput is at least 0.85x the floor's.
"""

from __future__ import annotations

from typing import Any

from benchmarks._context import Ctx, Pair, open_pair
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import Storage
from benchmarks._harness import Op, PeakRss, Variant, interleave
from benchmarks._report import Row, Target, compare

__all__ = ["WRITE_OPS", "run_writes"]

WRITE_OPS = ("create", "update", "enrich")
SIZES = (1 * KB, 100 * KB)
CONCURRENCIES = (1, 32)
FUNCTION_ID = "scorer@v1"


async def _owned_records(
    pair: Pair, items: list[dict[str, Any]], count: int
) -> tuple[list[str], list[int], list[str], list[int]]:
    """``count`` records per side to update or enrich (ids and current ov)."""
    lib_ids: list[str] = []
    raw_ids: list[str] = []
    for w in range(count):
        result = await pair.coll.create(make_data(items, 10_000_000 + w), actor="bench")
        lib_ids.append(result.id)
        raw_ids.append(await pair.raw.create(make_data(items, 10_000_000 + w)))
    return lib_ids, [0] * count, raw_ids, [0] * count


async def _ops(pair: Pair, op: str, items: list[dict[str, Any]], conc: int) -> tuple[Op, Op]:
    """Our operation and the floor's, for ``op``."""
    coll, raw = pair.coll, pair.raw
    if op == "create":

        async def lib_create(w: int, seq: int) -> object:
            return await coll.create(make_data(items, seq), actor="bench", reason="benchmark")

        async def raw_create(w: int, seq: int) -> object:
            return await raw.create(make_data(items, seq))

        return lib_create, raw_create

    lib_ids, lib_ov, raw_ids, raw_ov = await _owned_records(pair, items, conc)
    if op == "update":

        async def lib_update(w: int, seq: int) -> object:
            result = await coll.update(
                lib_ids[w], make_data(items, seq), expected_ov=lib_ov[w], actor="bench"
            )
            lib_ov[w] = result.ov
            return result

        async def raw_update(w: int, seq: int) -> object:
            raw_ov[w] = await raw.update(raw_ids[w], make_data(items, seq), raw_ov[w])
            return raw_ov[w]

        return lib_update, raw_update

    async def lib_enrich(w: int, seq: int) -> object:
        patch = {"enrichment": {"score": seq, "model": "m1"}}
        return await coll.enrich(lib_ids[w], patch, function_id=FUNCTION_ID, actor="bench")

    async def raw_enrich(w: int, seq: int) -> object:
        patch = {"enrichment": {"score": seq, "model": "m1"}}
        return await raw.enrich(raw_ids[w], patch, FUNCTION_ID)

    return lib_enrich, raw_enrich


async def run_write(ctx: Ctx, op: str, storage: Storage, size: int, conc: int) -> Row:
    """One combination: interleaved rounds of ours and the floor; one table row."""
    p = ctx.params
    items = template(size, ctx.seed)
    ops = p.write_ops_c1 if conc == 1 else p.write_ops_c32
    name = f"{op}/{storage}/{size_label(size)}/c{conc}"
    async with PeakRss() as peak, open_pair(ctx, storage, name) as pair:
        lib_op, raw_op = await _ops(pair, op, items, conc)
        warmup = 5 if conc == 1 else 2 * conc
        ours = Variant("ours", lib_op, conc, ops, warmup=warmup)
        floor = Variant("floor", raw_op, conc, ops, warmup=warmup)
        await interleave([floor, ours], p.rounds, label=name)
    row = compare(op, storage, size_label(size), conc, ours.rounds, floor.rounds)
    row.peak_rss_mb = peak.peak_mb
    row.extra["payload_bytes"] = size
    if conc == 1 and row.p50_x_floor is not None:
        row.target = Target("p50 <= 1.25x floor", row.p50_x_floor, 1.25, "<=")
    elif row.ops_x_floor is not None:
        row.target = Target("ops/s >= 0.85x floor", row.ops_x_floor, 0.85, ">=")
    return row


async def run_writes(ctx: Ctx, ops: list[str]) -> None:
    """Every requested write operation over sizes, concurrencies and stores."""
    for op in ops:
        for storage in ctx.storages:
            for size in SIZES:
                for conc in CONCURRENCIES:
                    row = await run_write(ctx, op, storage, size, conc)
                    ctx.rows.append(row)
                    _progress(row)


def _progress(row: Row) -> None:
    ratio = row.p50_x_floor if row.concurrency == 1 else row.ops_x_floor
    what = "p50" if row.concurrency == 1 else "ops/s"
    shown = f"{ratio:.2f}" if ratio is not None else "-"
    print(
        f"  {row.scenario:<8} {row.storage:<5} {row.payload:>6} c{row.concurrency:<3}"
        f" {row.ops_per_s:8.0f} ops/s  p50 {row.p50_ms:7.2f} ms  {what} x floor {shown}",
        flush=True,
    )
