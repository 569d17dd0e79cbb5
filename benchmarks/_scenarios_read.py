"""get_latest (inline and S3 payload), get_version and get_as_of (1 vs 1,000 versions).

All reads run at concurrency 1 on the S3 store (local storage when there is no S3 server)
and are compared with the floor's reads of the floor's own records, which were written
the same way.

Targets (issue item 2): get_latest of an inline payload at most 1.2x the floor (a raw
``find_one``, verified and decoded); from S3 at most 1.2x the floor (``find_one`` then
``get_object``); get_as_of on a record with 1,000 versions at most 1.5x get_as_of on a
record with 1 version (the index does the work).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from benchmarks._context import Ctx, Pair, open_pair
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._harness import Op, PeakRss, Variant, interleave, median_ratio
from benchmarks._report import Row, Target, compare

__all__ = ["run_as_of", "run_latest", "run_version"]

_POOL = 20


def _storage(ctx: Ctx) -> Any:
    return ctx.storages[0]


async def _pool(pair: Pair, items: list[dict[str, Any]], count: int) -> tuple[list[str], list[str]]:
    lib_ids = [(await pair.coll.create(make_data(items, n))).id for n in range(count)]
    raw_ids = [await pair.raw.create(make_data(items, n)) for n in range(count)]
    return lib_ids, raw_ids


async def run_latest(ctx: Ctx) -> None:
    """get_latest of 1 KB records (payload inline on the head) and 100 KB ones (a GET).

    On S3 with obstore the 100 KB reads also run against the floor through aioboto3
    (row ``s3 vs boto3``, target: p50 at most 0.8x, issue 11).
    """
    p = ctx.params
    storage = _storage(ctx)
    for size, where in ((1 * KB, "inline"), (100 * KB, storage)):
        items = template(size, ctx.seed)
        async with PeakRss() as peak, open_pair(ctx, storage, f"latest_{where}") as pair:
            lib_ids, raw_ids = await _pool(pair, items, _POOL)
            coll, raw = pair.coll, pair.raw

            async def ours(w: int, seq: int, ids: list[str] = lib_ids, c: Any = coll) -> object:
                return await c.get_latest(ids[seq % len(ids)])

            async def floor(w: int, seq: int, ids: list[str] = raw_ids, r: Any = raw) -> object:
                return await r.get_latest(ids[seq % len(ids)])

            a = Variant("ours", ours, 1, p.read_ops, warmup=10)
            b = Variant("floor", floor, 1, p.read_ops, warmup=10)
            variants = [b, a]
            boto: Variant | None = None
            if pair.raw_boto is not None and where != "inline":
                boto_raw = pair.raw_boto
                boto_ids = [await boto_raw.create(make_data(items, n)) for n in range(_POOL)]

                async def floor_boto(
                    w: int, seq: int, ids: list[str] = boto_ids, r: Any = boto_raw
                ) -> object:
                    return await r.get_latest(ids[seq % len(ids)])

                boto = Variant("floor_boto", floor_boto, 1, p.read_ops, warmup=10)
                variants.insert(1, boto)
            await interleave(variants, p.read_rounds, label=f"get_latest/{where}")
        row = compare("get_latest", where, size_label(size), 1, a.rounds, b.rounds)
        row.peak_rss_mb = peak.peak_mb
        if row.p50_x_floor is not None:
            row.target = Target("p50 <= 1.2x floor", row.p50_x_floor, 1.2, "<=")
        ctx.rows.append(row)
        _progress(row)
        if boto is not None:
            vs = compare(
                "get_latest", f"{where} vs boto3", size_label(size), 1, a.rounds, boto.rounds
            )
            vs.peak_rss_mb = peak.peak_mb
            if vs.p50_x_floor is not None:
                vs.target = Target("p50 <= 0.8x aioboto3 floor", vs.p50_x_floor, 0.8, "<=")
            ctx.rows.append(vs)
            _progress(vs)


async def _lib_history(pair: Pair, items: list[dict[str, Any]], versions: int) -> dict[str, Any]:
    coll = pair.coll
    one = await coll.create(make_data(items, 0))
    many = await coll.create(make_data(items, 1))
    at: list[datetime] = [many.at]
    for n in range(1, versions):
        result = await coll.update(many.id, make_data(items, n + 1), expected_ov=n - 1)
        at.append(result.at)
    return {"one": one.id, "one_at": one.at, "many": many.id, "many_at": at}


async def _raw_history(pair: Pair, items: list[dict[str, Any]], versions: int) -> dict[str, Any]:
    raw = pair.raw
    one = await raw.create(make_data(items, 0))
    many = await raw.create(make_data(items, 1))
    for n in range(1, versions):
        await raw.update(many, make_data(items, n + 1), n - 1)
    # Commit times: each version's successor's ``prev_at``, the head's ``at`` for the last.
    docs = await raw.versions.find({"id": {"$eq": many}}, {"ov": 1, "prev_at": 1}).to_list(None)
    at = [int(d["prev_at"]) for d in sorted(docs, key=lambda d: int(d["ov"]))][1:]
    at.append(int((await raw.heads.find_one({"id": {"$eq": many}}, {"at": 1}) or {})["at"]))
    one_at = int((await raw.heads.find_one({"id": {"$eq": one}}, {"at": 1}) or {})["at"])
    return {"raw_one": one, "raw_one_at": one_at, "raw_many": many, "raw_many_at": at}


def _version_variants(pair: Pair, h: dict[str, Any]) -> list[Variant]:
    """get_version: ``ov=0`` of the 1-version record, a random ``ov`` of the other."""
    coll, raw = pair.coll, pair.raw
    n = len(h["many_at"])

    async def ours_1(w: int, seq: int) -> object:
        return await coll.get_version(h["one"], 0)

    async def ours_n(w: int, seq: int) -> object:
        return await coll.get_version(h["many"], (seq * 7919) % n)

    async def floor_1(w: int, seq: int) -> object:
        return await raw.get_version(h["raw_one"], 0)

    async def floor_n(w: int, seq: int) -> object:
        return await raw.get_version(h["raw_many"], (seq * 7919) % n)

    return _variants(ours_1, ours_n, floor_1, floor_n)


def _as_of_variants(pair: Pair, h: dict[str, Any]) -> list[Variant]:
    """get_as_of: at a random version's commit time; the 1-version record at its creation."""
    coll, raw = pair.coll, pair.raw
    n = len(h["many_at"])

    async def ours_1(w: int, seq: int) -> object:
        return await coll.get_as_of(h["one"], h["one_at"])

    async def ours_n(w: int, seq: int) -> object:
        return await coll.get_as_of(h["many"], h["many_at"][(seq * 7919) % n])

    async def floor_1(w: int, seq: int) -> object:
        return await raw.get_as_of(h["raw_one"], h["raw_one_at"])

    async def floor_n(w: int, seq: int) -> object:
        return await raw.get_as_of(h["raw_many"], h["raw_many_at"][(seq * 7919) % n])

    return _variants(ours_1, ours_n, floor_1, floor_n)


def _variants(ours_1: Op, ours_n: Op, floor_1: Op, floor_n: Op) -> list[Variant]:
    return [
        Variant("floor_1", floor_1, 1, 0),
        Variant("ours_1", ours_1, 1, 0),
        Variant("floor_n", floor_n, 1, 0),
        Variant("ours_n", ours_n, 1, 0),
    ]


_BUILDERS = {"get_version": _version_variants, "get_as_of": _as_of_variants}


async def run_history_reads(ctx: Ctx, whats: list[str]) -> None:
    """get_version and/or get_as_of on one pair of 1- and N-version records per side."""
    p = ctx.params
    items = template(1 * KB, ctx.seed)
    async with PeakRss() as peak, open_pair(ctx, _storage(ctx), "history") as pair:
        lib, raw = await asyncio.gather(
            _lib_history(pair, items, p.history_versions),
            _raw_history(pair, items, p.history_versions),
        )
        h = {**lib, **raw}
        done: dict[str, list[Variant]] = {}
        for what in whats:
            variants = done[what] = _BUILDERS[what](pair, h)
            for v in variants:
                v.ops, v.warmup = p.read_ops, 10
            await interleave(variants, p.read_rounds, label=what)
    for what, variants in done.items():
        _history_rows(ctx, what, variants, peak.peak_mb)


def _history_rows(ctx: Ctx, what: str, variants: list[Variant], peak_mb: float) -> None:
    by = {v.name: v for v in variants}
    n = ctx.params.history_versions
    one = compare(f"{what} (1 v)", "inline", "1 KB", 1, by["ours_1"].rounds, by["floor_1"].rounds)
    many = compare(
        f"{what} ({n:,} v)", "inline", "1 KB", 1, by["ours_n"].rounds, by["floor_n"].rounds
    )
    one.extra["versions"] = 1
    many.extra["versions"] = n
    many.extra["ours_n_over_ours_1"] = median_ratio(
        by["ours_n"].rounds, by["ours_1"].rounds, lambda r: r.p50_ms
    )
    many.extra["floor_n_over_floor_1"] = median_ratio(
        by["floor_n"].rounds, by["floor_1"].rounds, lambda r: r.p50_ms
    )
    for row in (one, many):
        row.peak_rss_mb = peak_mb
    if what == "get_as_of":
        many.target = Target(
            f"p50 <= 1.5x {what} (1 v)", many.extra["ours_n_over_ours_1"], 1.5, "<="
        )
    ctx.rows += [one, many]
    _progress(one)
    _progress(many)


async def run_version(ctx: Ctx) -> None:
    """get_version (and get_as_of too when it is selected: they share the histories)."""
    whats = ["get_version"] + (["get_as_of"] if "get_as_of" in ctx.selected else [])
    await run_history_reads(ctx, whats)
    ctx.shared["history_done"] = whats


async def run_as_of(ctx: Ctx) -> None:
    """get_as_of (already done by :func:`run_version` when both are selected)."""
    if "get_as_of" not in ctx.shared.get("history_done", []):
        await run_history_reads(ctx, ["get_as_of"])


def _progress(row: Row) -> None:
    ratio = f"{row.p50_x_floor:.2f}" if row.p50_x_floor is not None else "-"
    print(
        f"  {row.scenario:<22} {row.storage:<6} p50 {row.p50_ms:6.2f} ms"
        f" (floor {row.floor_p50_ms or float('nan'):6.2f})  x floor {ratio}",
        flush=True,
    )
