"""create, update and enrich: 1 KB and 100 KB payloads, concurrency 1 and 32, S3 and local.

Each combination gets a fresh database with our collection and the floor's. For update
and enrich every worker owns one record on each side (created before the rounds), so
workers never wait for one another's lease and both sides do the same work.

Targets (issue item 2): at concurrency 1 our p50 latency is at most 1.25x the floor's;
at concurrency 32 our throughput is at least 0.85x the floor's. On S3 the floor uses the
library's own client (obstore by default); a second row, storage ``s3 vs boto3``,
compares the same rounds of ours with the floor through aioboto3, and create and update
at concurrency 32 must reach at least 2x its throughput (issue 11).
"""

from __future__ import annotations

from typing import Any

from benchmarks._context import Ctx, Pair, open_pair
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import Storage
from benchmarks._floor import RawCollection
from benchmarks._harness import Op, PeakRss, Variant, interleave
from benchmarks._report import Row, Target, compare

__all__ = ["WRITE_OPS", "run_writes"]

WRITE_OPS = ("create", "update", "enrich")
SIZES = (1 * KB, 100 * KB)
CONCURRENCIES = (1, 32)
FUNCTION_ID = "scorer@v1"


async def _lib_op(pair: Pair, op: str, items: list[dict[str, Any]], conc: int) -> Op:
    """Our ``op``; update and enrich work on one record per worker, created here."""
    coll = pair.coll
    if op == "create":

        async def lib_create(w: int, seq: int) -> object:
            return await coll.create(make_data(items, seq), actor="bench", reason="benchmark")

        return lib_create
    ids = [
        (await coll.create(make_data(items, 10_000_000 + w), actor="bench")).id for w in range(conc)
    ]
    ovs = [0] * conc
    if op == "update":

        async def lib_update(w: int, seq: int) -> object:
            result = await coll.update(
                ids[w], make_data(items, seq), expected_ov=ovs[w], actor="bench"
            )
            ovs[w] = result.ov
            return result

        return lib_update

    async def lib_enrich(w: int, seq: int) -> object:
        patch = {"enrichment": {"score": seq, "model": "m1"}}
        return await coll.enrich(ids[w], patch, function_id=FUNCTION_ID, actor="bench")

    return lib_enrich


async def _raw_op(raw: RawCollection, op: str, items: list[dict[str, Any]], conc: int) -> Op:
    """The floor's ``op`` on ``raw``, set up as :func:`_lib_op` sets up ours."""
    if op == "create":

        async def raw_create(w: int, seq: int) -> object:
            return await raw.create(make_data(items, seq))

        return raw_create
    ids = [await raw.create(make_data(items, 10_000_000 + w)) for w in range(conc)]
    ovs = [0] * conc
    if op == "update":

        async def raw_update(w: int, seq: int) -> object:
            ovs[w] = await raw.update(ids[w], make_data(items, seq), ovs[w])
            return ovs[w]

        return raw_update

    async def raw_enrich(w: int, seq: int) -> object:
        patch = {"enrichment": {"score": seq, "model": "m1"}}
        return await raw.enrich(ids[w], patch, FUNCTION_ID)

    return raw_enrich


async def run_write(ctx: Ctx, op: str, storage: Storage, size: int, conc: int) -> list[Row]:
    """One combination: interleaved rounds of ours and the floor(s); one row per floor."""
    p = ctx.params
    items = template(size, ctx.seed)
    ops = p.write_ops_c1 if conc == 1 else p.write_ops_c32
    name = f"{op}/{storage}/{size_label(size)}/c{conc}"
    async with PeakRss() as peak, open_pair(ctx, storage, name) as pair:
        lib_op = await _lib_op(pair, op, items, conc)
        raw_op = await _raw_op(pair.raw, op, items, conc)
        warmup = 5 if conc == 1 else 2 * conc
        ours = Variant("ours", lib_op, conc, ops, warmup=warmup)
        floor = Variant("floor", raw_op, conc, ops, warmup=warmup)
        variants = [floor, ours]
        boto: Variant | None = None
        if pair.raw_boto is not None:
            boto_op = await _raw_op(pair.raw_boto, op, items, conc)
            boto = Variant("floor_boto", boto_op, conc, ops, warmup=warmup)
            variants.insert(1, boto)
        await interleave(variants, p.rounds, label=name)
    row = compare(op, storage, size_label(size), conc, ours.rounds, floor.rounds)
    row.peak_rss_mb = peak.peak_mb
    row.extra["payload_bytes"] = size
    if conc == 1 and row.p50_x_floor is not None:
        row.target = Target("p50 <= 1.25x floor", row.p50_x_floor, 1.25, "<=")
    elif row.ops_x_floor is not None:
        row.target = Target("ops/s >= 0.85x floor", row.ops_x_floor, 0.85, ">=")
    rows = [row]
    if boto is not None:
        vs = compare(op, f"{storage} vs boto3", size_label(size), conc, ours.rounds, boto.rounds)
        vs.peak_rss_mb = peak.peak_mb
        vs.extra["payload_bytes"] = size
        if conc > 1 and op in ("create", "update") and vs.ops_x_floor is not None:
            vs.target = Target("ops/s >= 2x aioboto3 floor", vs.ops_x_floor, 2.0, ">=")
        rows.append(vs)
    return rows


async def run_writes(ctx: Ctx, ops: list[str]) -> None:
    """Every requested write operation over sizes, concurrencies and stores."""
    for op in ops:
        for storage in ctx.storages:
            for size in SIZES:
                for conc in CONCURRENCIES:
                    for row in await run_write(ctx, op, storage, size, conc):
                        ctx.rows.append(row)
                        _progress(row)


def _progress(row: Row) -> None:
    ratio = row.p50_x_floor if row.concurrency == 1 else row.ops_x_floor
    what = "p50" if row.concurrency == 1 else "ops/s"
    shown = f"{ratio:.2f}" if ratio is not None else "-"
    print(
        f"  {row.scenario:<8} {row.storage:<11} {row.payload:>6} c{row.concurrency:<3}"
        f" {row.ops_per_s:8.0f} ops/s  p50 {row.p50_ms:7.2f} ms  {what} x floor {shown}",
        flush=True,
    )
