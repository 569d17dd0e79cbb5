"""list_by_meta (first and deep page), restore_collection, and the soak (in a child process).

list and restore share one dataset per run: N records (10,000; 1,000 with ``--quick``)
created through the library, 1 KB payloads, 4 in 5 with ``status: "active"``. The floor
reads and restores the *same* collection, so both sides see identical documents.

Targets (issue item 2): a deep page (cursor after 5,000 matches) at most 1.5x the first
page; the soak's peak RSS under 300 MB and no RSS growth beyond 10% between the 10,000th
and the 50,000th create (with ``--quick``: between the 1,000th and the 5,000th).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._context import Ctx, open_pair
from benchmarks._data import KB, make_data, template
from benchmarks._env import COLLECTION
from benchmarks._floor import RawCollection
from benchmarks._harness import PeakRss, RoundStats, Variant, interleave, median_ratio
from benchmarks._report import Row, Target, compare

__all__ = ["run_list", "run_restore", "run_soak"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTIVE = {"status": "active"}
#: The folder holding the ``benchmarks`` package (the soak child runs from there).
_ROOT = Path(__file__).resolve().parent.parent


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


async def _bulk(ctx: Ctx) -> dict[str, Any]:
    """The shared dataset (created on first use, kept until the end of the run)."""
    if "bulk" in ctx.shared:
        bulk: dict[str, Any] = ctx.shared["bulk"]
        return bulk
    count = ctx.params.list_records
    pair = await ctx.stack.enter_async_context(open_pair(ctx, ctx.storages[0], "bulk"))
    items = template(1 * KB, ctx.seed)
    ids: list[str] = []
    began = asyncio.get_running_loop().time()

    async def worker(w: int) -> None:
        for n in range(w, count, 64):
            ids.append((await pair.coll.create(make_data(items, n), actor="seed")).id)

    await asyncio.gather(*(worker(w) for w in range(64)))
    seconds = asyncio.get_running_loop().time() - began
    print(f"  seeded {count:,} records in {seconds:.1f} s ({count / seconds:.0f}/s)", flush=True)
    raw = RawCollection(pair.client[pair.db], COLLECTION, pair.raw.blobs)
    bulk = {"pair": pair, "raw": raw, "ids": sorted(ids), "items": items, "seed_s": seconds}
    ctx.shared["bulk"] = bulk
    return bulk


async def run_list(ctx: Ctx) -> None:
    """A page of 50 active records: the first page and the page after 5,000 matches."""
    p = ctx.params
    async with PeakRss() as peak:
        bulk = await _bulk(ctx)
        coll, raw = bulk["pair"].coll, bulk["raw"]
        cursor: str | None = None
        seen = 0
        last = None
        while seen < p.list_deep:
            page = await coll.list_by_meta(
                _ACTIVE, limit=min(1000, p.list_deep - seen), after=cursor
            )
            seen += len(page.items)
            cursor, last = page.next_cursor, page.items[-1]
        if cursor is None or last is None:
            raise AssertionError(f"fewer than {p.list_deep} active records")
        after = (_us(last.updated_at), f"_/{last.id}")
        deep_lib = await coll.list_by_meta(_ACTIVE, limit=50, after=cursor)
        deep_raw, _ = await raw.list_page("active", 50, after)
        if [i.data for i in deep_lib.items] != deep_raw:
            raise AssertionError("floor and library deep pages differ")

        async def ours_first(w: int, seq: int) -> object:
            return await coll.list_by_meta(_ACTIVE, limit=50)

        async def ours_deep(w: int, seq: int) -> object:
            return await coll.list_by_meta(_ACTIVE, limit=50, after=cursor)

        async def floor_first(w: int, seq: int) -> object:
            return await raw.list_page("active", 50, None)

        async def floor_deep(w: int, seq: int) -> object:
            return await raw.list_page("active", 50, after)

        variants = [
            Variant("floor_first", floor_first, 1, p.list_ops, warmup=3),
            Variant("ours_first", ours_first, 1, p.list_ops, warmup=3),
            Variant("floor_deep", floor_deep, 1, p.list_ops, warmup=3),
            Variant("ours_deep", ours_deep, 1, p.list_ops, warmup=3),
        ]
        await interleave(variants, p.rounds, label="list")
    by = {v.name: v for v in variants}
    n = p.list_records
    first = compare(
        "list_by_meta first page",
        "inline",
        "1 KB",
        1,
        by["ours_first"].rounds,
        by["floor_first"].rounds,
        records=n,
        page=50,
    )
    deep = compare(
        f"list_by_meta after {p.list_deep:,}",
        "inline",
        "1 KB",
        1,
        by["ours_deep"].rounds,
        by["floor_deep"].rounds,
        records=n,
        page=50,
    )
    deep.extra["ours_deep_over_first"] = median_ratio(
        by["ours_deep"].rounds, by["ours_first"].rounds, lambda r: r.p50_ms
    )
    deep.extra["floor_deep_over_first"] = median_ratio(
        by["floor_deep"].rounds, by["floor_first"].rounds, lambda r: r.p50_ms
    )
    deep.target = Target("p50 <= 1.5x first page", deep.extra["ours_deep_over_first"], 1.5, "<=")
    for row in (first, deep):
        row.peak_rss_mb = peak.peak_mb
        row.extra["seed_seconds"] = bulk["seed_s"]
        ctx.rows.append(row)
        _progress(row)


async def _current_cv(raw: RawCollection) -> int:
    doc = await raw.counter.find_one({"_id": "cv/_"})
    return int(doc["value"]) if doc else 0


async def run_restore(ctx: Ctx) -> None:
    """restore_collection to the cv before ``changed`` records were updated (ours vs floor).

    Each round: note the cv, update ``changed`` random records (untimed), restore to the
    noted cv and time it; the floor and we take turns. ops/s is records restored per
    second, p50 the median time of a whole restore.
    """
    p = ctx.params
    rng = ctx.rng("restore")
    ours: list[RoundStats] = []
    floor: list[RoundStats] = []
    scans: list[float] = []
    async with PeakRss() as peak:
        bulk = await _bulk(ctx)
        coll, raw, ids, items = bulk["pair"].coll, bulk["raw"], bulk["ids"], bulk["items"]
        for r in range(p.restore_rounds):
            for side in ("floor", "ours") if r % 2 == 0 else ("ours", "floor"):
                target = await _current_cv(raw)
                chosen = rng.sample(ids, p.restore_changed)
                gate = asyncio.Semaphore(32)

                async def change(item_id: str, n: int, gate: asyncio.Semaphore = gate) -> None:
                    async with gate:
                        await coll.update(item_id, make_data(items, 900_000 + n), expected_ov=None)

                await asyncio.gather(*(change(i, rng.randrange(10**6)) for i in chosen))
                began = asyncio.get_running_loop().time()
                if side == "ours":
                    report = await coll.restore_collection(cv=target, concurrency=8)
                    done = len(report.restored)
                else:
                    done, scan_s = await raw.restore_collection(target, 8)
                    scans.append(scan_s * 1000)
                took = asyncio.get_running_loop().time() - began
                if done != p.restore_changed:
                    raise AssertionError(f"{side} restored {done}, expected {p.restore_changed}")
                (ours if side == "ours" else floor).append(RoundStats([took], took / done))
    row = compare(
        f"restore_collection ({p.restore_changed} changed)",
        ctx.storages[0],
        "1 KB",
        8,
        ours,
        floor,
        records=p.list_records,
        changed=p.restore_changed,
        ops_unit="records restored per second; p50 = one whole restore",
        floor_scan_ms=statistics.median(scans) if scans else None,
    )
    row.peak_rss_mb = peak.peak_mb
    ctx.rows.append(row)
    _progress(row)


async def run_soak(ctx: Ctx) -> None:
    """N creates at concurrency 64 in a fresh child process, sampling its RSS."""
    p = ctx.params
    servers = ctx.servers
    storage = ctx.storages[0]
    db = servers.new_db("soak")
    spec: dict[str, Any] = {
        "config": servers.config_dict(storage, servers.new_prefix()),
        "mongo_uri": servers.mongo_uri,
        "s3": None
        if servers.s3 is None
        else {
            "endpoint": servers.s3.endpoint,
            "access_key": servers.s3.access_key,
            "secret_key": servers.s3.secret_key,
            "region": servers.s3.region,
            "buckets": list(servers.s3.buckets),
        },
        "local_root": str(servers.local_root / servers.new_prefix()),
        "floor_prefix": servers.new_prefix(),
        "db": db,
        "ops": p.soak_ops,
        "floor_ops": p.soak_floor_ops,
        "concurrency": 64,
        "sample_every": p.soak_sample_every,
        "deadline_s": p.soak_deadline_s,
        "seed": ctx.seed,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks._soak",
        cwd=_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate(json.dumps(spec).encode())
    await servers.drop(db)
    if child.returncode != 0:
        raise RuntimeError(f"soak child failed with exit code {child.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    _soak_rows(ctx, storage, result)


def _soak_rows(ctx: Ctx, storage: str, res: dict[str, Any]) -> None:
    ops, conc = res["ops_done"], res["concurrency"]
    lat = RoundStats(res["latencies"], res["wall_s"], res["cpu_s"])
    floor = RoundStats(res["floor_latencies"], res["floor_wall_s"], res["floor_cpu_s"])
    row = compare(
        "soak create",
        storage,
        "1 KB",
        conc,
        [lat],
        [floor],
        requested_ops=res["ops"],
        rss_samples=res["rss_samples"],
        floor_ops=len(res["floor_latencies"]),
        deadline_hit=res["deadline_hit"],
        floor_note="floor runs after the soak, into a fresh collection: informational only",
    )
    row.peak_rss_mb = res["peak_rss_mb"]
    row.target = Target("peak RSS < 300 MB", res["peak_rss_mb"], 300, "<=")
    growth = Row(
        "soak RSS growth",
        storage,
        "1 KB",
        conc,
        ops,
        row.ops_per_s,
        row.p50_ms,
        row.p99_ms,
        peak_rss_mb=res["peak_rss_mb"],
    )
    growth.extra = {k: res[k] for k in ("growth_from", "growth_to", "rss_from_mb", "rss_to_mb")}
    growth.target = Target(
        f"RSS growth {res['growth_from']:,}->{res['growth_to']:,} <= 10%",
        res["growth_pct"],
        10,
        "<=",
    )
    for r in (row, growth):
        r.extra["ops_done"] = ops
        ctx.rows.append(r)
        _progress(r)


def _progress(row: Row) -> None:
    ratio = row.p50_x_floor if row.concurrency == 1 else row.ops_x_floor
    shown = f"{ratio:.2f}" if ratio is not None else "-"
    print(
        f"  {row.scenario:<32} {row.ops_per_s:8.0f} ops/s  p50 {row.p50_ms:8.2f} ms"
        f"  x floor {shown}"
        + (f"  [{row.target.text}: {row.target.measured:.2f}]" if row.target else ""),
        flush=True,
    )
