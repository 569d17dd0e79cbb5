"""Retention and rollup: what a rolled-up version costs to read, and how fast rollup runs.

One record gets ``history_versions`` versions (1 KB), then ``admin.rollup_now`` with
``max_versions=50`` moves all but the newest 50 into manifests (timed: the rollup
throughput row, versions per second). Then ``get_as_of`` at the commit time of a random
rolled-up version is compared with ``get_as_of`` at the commit time of a random live
version of the same record (the row's "floor" is the live read here, not raw pymongo:
the ratio is what the manifest fallback costs). No target: slower is expected (one
catalog query plus one manifest GET and decompression per read).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from benchmarks._context import Ctx, open_pair
from benchmarks._data import KB, make_data, template
from benchmarks._harness import PeakRss, Variant, interleave
from benchmarks._report import Row, compare

__all__ = ["run_rollup"]

_KEEP = 50


async def run_rollup(ctx: Ctx) -> None:
    """The rollup throughput row and the rolled-up vs live ``get_as_of`` row."""
    p = ctx.params
    storage = ctx.storages[0]
    items = template(1 * KB, ctx.seed)
    retention = {"enabled": True, "ver": {"enabled": True, "max_versions": _KEEP}}
    async with (
        PeakRss() as peak,
        open_pair(ctx, storage, "rollup", retention=retention) as pair,
    ):
        coll = pair.coll
        first = await coll.create(make_data(items, 0))
        at: list[datetime] = [first.at]
        for n in range(1, p.history_versions):
            result = await coll.update(first.id, make_data(items, n), expected_ov=n - 1)
            at.append(result.at)
        began = time.perf_counter()
        report = await pair.chronos.admin.rollup_now(db=pair.db)
        seconds = time.perf_counter() - began
        rolled = report.versions_rolled
        live_from = len(at) - _KEEP
        rng = ctx.rng("rollup")
        picks_rolled = [rng.randrange(0, live_from) for _ in range(4096)]
        picks_live = [rng.randrange(live_from, len(at)) for _ in range(4096)]

        async def ours_rolled(w: int, seq: int) -> Any:
            return await coll.get_as_of(first.id, at[picks_rolled[seq % 4096]])

        async def ours_live(w: int, seq: int) -> Any:
            return await coll.get_as_of(first.id, at[picks_live[seq % 4096]])

        a = Variant("ours_rolled", ours_rolled, 1, p.read_ops, warmup=10)
        b = Variant("ours_live", ours_live, 1, p.read_ops, warmup=10)
        await interleave([b, a], p.read_rounds, label="get_as_of rolled-up")
    per_version_ms = seconds * 1000 / max(rolled, 1)
    throughput = Row(
        scenario="rollup",
        storage=storage,
        payload="1 KB",
        concurrency=1,
        ops=rolled,
        ops_per_s=rolled / seconds if seconds > 0 else float("nan"),
        p50_ms=per_version_ms,
        p99_ms=per_version_ms,
        rounds=1,
        peak_rss_mb=peak.peak_mb,
        extra={
            "unit": "versions rolled up per second (p50_ms: ms per version)",
            "versions_rolled": rolled,
            "manifests_written": report.manifests_written,
            "manifest_bytes": report.manifest_bytes,
            "seconds": seconds,
        },
    )
    row = compare("get_as_of rolled-up", storage, "1 KB", 1, a.rounds, b.rounds)
    row.peak_rss_mb = peak.peak_mb
    row.extra["floor_is"] = "get_as_of on a live version of the same record"
    row.extra["versions"] = p.history_versions
    ctx.rows += [throughput, row]
    print(
        f"  rollup                 {storage:<6} {throughput.ops_per_s:8.0f} versions/s"
        f" ({rolled} versions, {report.manifests_written} manifests)",
        flush=True,
    )
    ratio = f"{row.p50_x_floor:.2f}" if row.p50_x_floor is not None else "-"
    print(
        f"  get_as_of rolled-up    {storage:<6} p50 {row.p50_ms:6.2f} ms"
        f" (live {row.floor_p50_ms or float('nan'):6.2f})  x live {ratio}",
        flush=True,
    )
