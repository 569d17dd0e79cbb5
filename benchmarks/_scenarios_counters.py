"""counters: what counting costs a write, how fast ``get_totals`` reads, and that it counts.

Counting is on when the config has a ``counters`` section or any ``counter_rules``; the
"on" instances here have both (:data:`COUNTERS_ON`): an ``events`` rule and a ``gauge``
over the indexed prop ``status`` (the benchmark collection's ``collection_maps`` index it,
see ``_env.INDEXED_PROPS``) and a ``gauge`` over the payload field ``n``. The records
are the 1 KB records of ``_data.make_data`` with ``status`` ("active"/"idle" alternating
by seq) and ``n`` (``seq % 12``) set, so each rule matches about half the writes.

Rows, on 1 KB records in the run's payload store (S3 when there is a server):

- ``counters create`` / ``counters update`` at concurrency 1 and 32: the same writes on
  an instance with counting on and on one without, in alternating rounds. **The floor
  columns of these rows are that counters-off run**, not the raw floor. A write stamps
  its contribution on the version it claims (no extra round trip) and hands it to the
  instance's tally when it publishes; a background flusher applies the merged
  increments (group commit), so no write waits for the counters. For update, each
  worker owns one record on each side, so no worker waits for a lease. Targets: at
  concurrency 32 throughput at least 0.9x off; at concurrency 1 p50 at most 1.1x off.
- ``counters get_totals`` at concurrency 1 and 8: ``chronos.counters.get_totals(...)``
  on a collection of a few hundred records, against a raw pymongo ``find_one`` of the
  same ``cnt_total`` document through the instance's own client. Informational (no
  target); ``get_totals`` also applies the instance's pending increments first (none
  here) and checks the counters' indexes once per instance.

Every "on" instance is checked after its rounds, and the scenario fails when a count
is wrong: ``created``, ``updated``, the ``events`` rule and both gauges must equal what
the benchmark itself wrote (warmup calls and the update rows' initial records included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks._context import Ctx
from benchmarks._data import KB, make_data, size_label, template
from benchmarks._env import COLLECTION, Storage
from benchmarks._harness import Op, PeakRss, Variant, interleave, run_round
from benchmarks._report import Row, Target, compare
from benchmarks._scenarios_drain import instance
from chronos_async import Chronos, Collection, WriteResult

__all__ = ["COUNTERS_ON", "run_counters"]

WRITE_OPS = ("create", "update")
CONCURRENCIES = (1, 32)
TOTALS_CONCURRENCIES = (1, 8)
SIZE = 1 * KB
#: The config keys that turn counting on (the "off" instances have neither).
COUNTERS_ON: dict[str, Any] = {
    "counters": {},
    "counter_rules": {
        "rules": [
            {"name": "active_events", "on": ["CREATE", "UPDATE"], "when": {"status": "active"}},
            {"name": "active", "kind": "gauge", "when": {"status": "active"}},
            {"name": "big", "kind": "gauge", "scope": "payload", "when": {"n": {"$gt": 5}}},
        ]
    },
}
#: Concurrency of the (untimed) creates that fill the collection of the get_totals rows.
_FILL_CONCURRENCY = 32


def _data(items: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    """Record ``seq``: ``status`` alternates active/idle, ``n > 5`` for half the values."""
    data = make_data(items, seq)
    data["status"] = "active" if seq % 2 == 0 else "idle"
    data["n"] = seq % 12
    return data


@dataclass
class _Expected:
    """What the counters must say, from the writes the benchmark made (one side)."""

    created: int = 0
    updated: int = 0
    active_events: int = 0
    #: record id -> (status, n) of its latest version
    state: dict[str, tuple[str, int]] = field(default_factory=dict)

    def wrote(self, op: str, result: WriteResult, data: dict[str, Any]) -> None:
        if op == "create":
            self.created += 1
        else:
            self.updated += 1
        if data["status"] == "active":
            self.active_events += 1
        self.state[result.id] = (data["status"], data["n"])

    def fields(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "active_events": self.active_events,
            "active": sum(1 for s, _ in self.state.values() if s == "active"),
            "big": sum(1 for _, n in self.state.values() if n > 5),
        }


async def _check(chronos: Chronos, db: str, expected: _Expected, name: str) -> dict[str, Any]:
    """The totals of the "on" side against what was written; raises when they differ."""
    totals = await chronos.counters.get_totals(db=db, collection=COLLECTION)
    want = expected.fields()
    got = {
        "created": totals.created,
        "updated": totals.updated,
        "active_events": totals.rules.get("active_events", -1),
        "active": totals.gauges.get("active", -1),
        "big": totals.gauges.get("big", -1),
    }
    if got != want or totals.deleted or totals.restored or totals.enriched:
        raise RuntimeError(f"{name}: counters wrong: got {got}, expected {want} ({totals})")
    tally = chronos.counters._tally  # the flusher's own count of applied increments
    return {"ok": True, **got, "flushes": tally.applied if tally is not None else None}


def _require_counting(on: Chronos, off: Chronos) -> None:
    """Counting on one side only, with ``status`` an indexed prop on both."""
    if not on.counters.enabled or off.counters.enabled:
        raise RuntimeError(
            f"counting on={on.counters.enabled} off={off.counters.enabled}: expected True/False"
        )
    for chronos in (on, off):
        cmap = chronos.config.collection_maps.get(COLLECTION)
        if cmap is None or "status" not in cmap.indexed_props:
            raise RuntimeError(f"'status' is not an indexed prop of {COLLECTION!r}")


# -- the write path with counting on and off -------------------------------------------------


async def _write_op(
    op: str,
    coll: Collection[dict[str, Any]],
    items: list[dict[str, Any]],
    conc: int,
    expected: _Expected,
) -> Op:
    """The ``op`` of one side (both sides run the same code and the same data)."""
    if op == "create":

        async def create(w: int, seq: int) -> object:
            data = _data(items, seq)
            result = await coll.create(data, actor="bench", reason="benchmark")
            expected.wrote("create", result, data)
            return result

        return create

    # update: every worker owns one record, so no worker waits for a lease
    ids: list[str] = []
    ovs: list[int] = []
    for w in range(conc):
        data = _data(items, 10_000_000 + w)
        result = await coll.create(data, actor="bench")
        expected.wrote("create", result, data)
        ids.append(result.id)
        ovs.append(result.ov)

    async def update(w: int, seq: int) -> object:
        data = _data(items, seq)
        result = await coll.update(ids[w], data, expected_ov=ovs[w], actor="bench")
        ovs[w] = result.ov
        expected.wrote("update", result, data)
        return result

    return update


async def _run_writes(ctx: Ctx, op: str, storage: Storage, conc: int) -> Row:
    """One row: interleaved rounds of writes with counting on and off."""
    p = ctx.params
    items = template(SIZE, ctx.seed)
    ops = p.counters_ops_c1 if conc == 1 else p.counters_ops_c32
    name = f"counters_{op}/{storage}/c{conc}"
    on_expected, off_expected = _Expected(), _Expected()
    async with (
        PeakRss() as peak,
        instance(ctx, storage, f"cnt_on_{op}_c{conc}", None, COUNTERS_ON) as (on_chronos, on_db),
        instance(ctx, storage, f"cnt_off_{op}_c{conc}", None) as (off_chronos, off_db),
    ):
        _require_counting(on_chronos, off_chronos)
        on = on_chronos.collection(COLLECTION, db=on_db)
        off = off_chronos.collection(COLLECTION, db=off_db)
        on_op = await _write_op(op, on, items, conc, on_expected)
        off_op = await _write_op(op, off, items, conc, off_expected)
        warmup = 5 if conc == 1 else 2 * conc
        ours = Variant("ours", on_op, conc, ops, warmup=warmup)
        floor = Variant("off", off_op, conc, ops, warmup=warmup)
        await interleave([floor, ours], p.counters_rounds, label=name)
        check = await _check(on_chronos, on_db, on_expected, name)
    row = compare(f"counters {op}", storage, size_label(SIZE), conc, ours.rounds, floor.rounds)
    row.peak_rss_mb = peak.peak_mb
    writes = on_expected.created + on_expected.updated
    row.extra.update(
        floor="the same writes on a Chronos with counting off (library, not the raw floor)",
        payload_bytes=SIZE,
        rules=len(COUNTERS_ON["counter_rules"]["rules"]),
        counters_check=check,
        writes_per_flush=writes / check["flushes"] if check["flushes"] else None,
    )
    if conc == 1 and row.p50_x_floor is not None:
        row.target = Target("p50 <= 1.1x off", row.p50_x_floor, 1.1, "<=")
    elif row.ops_x_floor is not None:
        row.target = Target("ops/s >= 0.9x off", row.ops_x_floor, 0.9, ">=")
    return row


# -- reading the totals ------------------------------------------------------------------------


async def _run_totals(ctx: Ctx, storage: Storage) -> list[Row]:
    """``get_totals`` against a raw ``find_one`` of the same totals document."""
    p = ctx.params
    items = template(SIZE, ctx.seed)
    expected = _Expected()
    rows: list[Row] = []
    async with (
        PeakRss() as peak,
        instance(ctx, storage, "cnt_totals", None, COUNTERS_ON) as (chronos, db),
    ):
        coll = chronos.collection(COLLECTION, db=db)
        fill = await _write_op("create", coll, items, _FILL_CONCURRENCY, expected)
        n = p.counters_totals_records
        await run_round(fill, n, _FILL_CONCURRENCY)  # untimed
        check = await _check(chronos, db, expected, "counters get_totals")
        # the raw floor: the same document through the instance's own client
        raw = chronos.backends[0].client[db]["cnt_total"]
        key = f"_|{db}|{COLLECTION}"  # counters._counting.totals_key, no tenant
        doc = await raw.find_one({"_id": key})
        if doc is None or doc.get("created") != expected.created:
            raise RuntimeError(f"counters get_totals: raw cnt_total[{key!r}] is {doc}")

        async def get_totals(w: int, seq: int) -> object:
            return await chronos.counters.get_totals(db=db, collection=COLLECTION)

        async def find_one(w: int, seq: int) -> object:
            return await raw.find_one({"_id": key})

        for conc in TOTALS_CONCURRENCIES:
            ops = p.counters_totals_ops * conc
            ours = Variant("ours", get_totals, conc, ops, warmup=2 * conc)
            floor = Variant("floor", find_one, conc, ops, warmup=2 * conc)
            await interleave([floor, ours], p.counters_rounds, label=f"counters_totals/c{conc}")
            row = compare("counters get_totals", storage, "-", conc, ours.rounds, floor.rounds)
            row.extra.update(
                floor="a raw pymongo find_one of the same cnt_total document (same client)",
                records=n,
                counters_check=check,
            )
            rows.append(row)
    for row in rows:
        row.peak_rss_mb = peak.peak_mb
    return rows


# -- the scenario ----------------------------------------------------------------------------


async def run_counters(ctx: Ctx) -> None:
    """The on/off comparison (create, update; concurrency 1, 32), then ``get_totals``."""
    storage = ctx.storages[0]
    for op in WRITE_OPS:
        for conc in CONCURRENCIES:
            row = await _run_writes(ctx, op, storage, conc)
            ctx.rows.append(row)
            _progress(row)
    for row in await _run_totals(ctx, storage):
        ctx.rows.append(row)
        _progress(row)


def _progress(row: Row) -> None:
    def shown(x: float | None) -> str:
        return f"{x:.3f}" if x is not None else "-"

    side = "off" if row.scenario != "counters get_totals" else "raw"
    check = row.extra["counters_check"]
    print(
        f"  {row.scenario:<19} {row.storage:<5} c{row.concurrency:<3}"
        f" p50 {row.p50_ms:6.2f} ms ({side} {row.floor_p50_ms or float('nan'):6.2f})"
        f" {row.ops_per_s:6.0f} ops/s ({side} {row.floor_ops_per_s or float('nan'):6.0f})"
        f"  x {side}: p50 {shown(row.p50_x_floor)} ops/s {shown(row.ops_x_floor)}"
        f"  | counts held: created {check['created']}, updated {check['updated']},"
        f" active_events {check['active_events']}, gauges {check['active']}/{check['big']}",
        flush=True,
    )
