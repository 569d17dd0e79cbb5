"""Concurrency: three ``Chronos`` instances (separate clients, like three servers), 32
coroutines each, read-modify-write the same 10 records.

Every write carries a unique ``actor`` tag, so each version in the store can be traced
back to the one attempt that made it. A ledger records every attempt's outcome:
acknowledged (with the ``ov`` it returned), refused (a typed error raised before its
version was claimed: must leave no trace) or "maybe" (``StorageError.outcome_unknown``:
may or may not have landed). Afterwards, per record:

- ``history`` is exactly ``ov`` n..0, no gaps, no duplicates;
- every acknowledged attempt appears exactly once, at the ``ov`` it was told, with the
  data it wrote; no refused attempt appears; nothing appears that nobody wrote;
- the counter equals the number of acknowledged increments (read-modify-write with
  ``expected_ov`` loses nothing), and every acknowledged enrich's mark is present;
- every instance sees the same head, and ``admin.verify()`` finds no problem.

Sizing: the figures each run reaches are printed (``-s``) and recorded in README.md.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest_asyncio

from chronos_async import (
    Chronos,
    ChronosError,
    Collection,
    ItemDeletedError,
    LockTimeoutError,
    StorageError,
    VersionConflictError,
    VersionInfo,
)
from tests.conftest import MakeConfig

INSTANCES = 3
COROUTINES = 32  # per instance
RECORDS = 10
#: Successful writes per coroutine (96 coroutines in all).
INCREMENTS = 6
MIXED_STEPS = 6
SEED = 20_260_301

COLLECTION = "counters"
MAPS: dict[str, Any] = {COLLECTION: {"indexed_props": ["counter"]}}


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledged write: what it was told (``ov``) and what it wrote."""

    id: str
    ov: int
    op: str
    counter: int | None = None
    restored_from: int | None = None


@dataclass(slots=True)
class Ledger:
    """Every write attempt's outcome, keyed by its unique actor tag."""

    acked: dict[str, Ack] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    #: tag -> op of the writes whose outcome is unknown
    maybe: dict[str, str] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)

    def ack(self, tag: str, ack: Ack) -> None:
        assert tag not in self.acked, f"tag {tag} acknowledged twice"
        self.acked[tag] = ack
        self.outcomes[f"acked_{ack.op}"] += 1

    def failed(self, tag: str, op: str, exc: ChronosError) -> None:
        """Book a typed failure; ``outcome_unknown`` makes it a "maybe"."""
        if isinstance(exc, StorageError) and exc.outcome_unknown:
            self.maybe[tag] = op
            self.outcomes["maybe"] += 1
        else:
            self.refused.add(tag)
            self.outcomes[type(exc).__name__] += 1


@pytest_asyncio.fixture(loop_scope="session")
async def fleet(make_config: MakeConfig, db_name: str) -> AsyncIterator[list[Collection]]:
    """The same collection through three independently opened instances."""
    async with AsyncExitStack() as stack:
        handles = []
        for _ in range(INSTANCES):
            config = make_config("s3", collection_maps=MAPS)
            chronos = await stack.enter_async_context(Chronos(config))
            handles.append(chronos.collection(COLLECTION, db=db_name))
        yield handles


async def _seed_records(coll: Collection) -> list[str]:
    ids = [f"rec-{n:02d}" for n in range(RECORDS)]
    for item_id in ids:
        await coll.create({"counter": 0, "writer": "seed", "marks": {}}, id=item_id, actor="seed")
    return ids


async def _backoff(rng: random.Random, attempt: int) -> None:
    # Jittered, capped: a retry loop under contention, not a wait for an event.
    await asyncio.sleep(rng.random() * min(0.002 * 2**attempt, 0.05))


async def _retrying(
    ledger: Ledger,
    rng: random.Random,
    base_tag: str,
    op: str,
    step: Callable[[str], Awaitable[bool]],
) -> None:
    """Run ``step(tag)`` with a fresh tag per attempt until it reports success.

    ``step`` returns False when it found nothing to do yet (e.g. the record is deleted
    and being restored). Typed, retryable outcomes are booked and retried; a "maybe"
    is booked and also retried (the increment is then counted only if acknowledged).
    """
    for attempt in range(10_000):
        tag = f"{base_tag}a{attempt}"
        try:
            if await step(tag):
                return
        except (VersionConflictError, ItemDeletedError, LockTimeoutError) as exc:
            ledger.failed(tag, op, exc)
        except StorageError as exc:
            ledger.failed(tag, op, exc)
            if not (exc.retryable or exc.outcome_unknown):
                raise
        await _backoff(rng, min(attempt, 5))
    raise AssertionError(f"{base_tag} never succeeded")


async def _increment(coll: Collection, item_id: str, tag: str, ledger: Ledger) -> bool:
    item = await coll.get_latest(item_id)
    if item is None:  # deleted, and its deleter is restoring it
        return False
    counter = int(item.data["counter"]) + 1
    data = {**item.data, "counter": counter, "writer": tag}
    r = await coll.update(item_id, data, expected_ov=item.ov, actor=tag)
    assert r.changed
    ledger.ack(tag, Ack(item_id, r.ov, "update", counter=counter))
    return True


async def _enrich(coll: Collection, item_id: str, tag: str, ledger: Ledger) -> bool:
    r = await coll.enrich(item_id, {"marks": {tag: True}}, actor=tag, function_id="marker@1")
    assert r.changed
    ledger.ack(tag, Ack(item_id, r.ov, "enrich"))
    return True


async def _delete_and_restore(
    coll: Collection, item_id: str, tag: str, ledger: Ledger, rng: random.Random
) -> bool:
    item = await coll.get_latest(item_id)
    if item is None:
        return False
    try:
        deleted_ov = (await coll.delete(item_id, expected_ov=item.ov, actor=tag)).ov
        ledger.ack(tag, Ack(item_id, deleted_ov, "delete"))
    except StorageError as exc:
        if not exc.outcome_unknown:
            raise
        # It may have landed: if so, this coroutine still owes the restore.
        ledger.failed(tag, "delete", exc)
        head = await coll.get_latest(item_id, include_deleted=True)
        if head is None or head.actor != tag:
            return True
        deleted_ov = head.ov

    # Only a restore can change a deleted record, and only this coroutine restores it.
    async def restore(rtag: str) -> bool:
        r = await coll.restore_object(
            item_id, ov=deleted_ov - 1, expected_ov=deleted_ov, actor=rtag
        )
        ledger.ack(rtag, Ack(item_id, r.ov, "restore", restored_from=deleted_ov - 1))
        return True

    await _retrying(ledger, rng, f"{tag}R", "restore", restore)
    return True


async def _step(
    coll: Collection, item_id: str, base: str, roll: float, ledger: Ledger, rng: random.Random
) -> None:
    """One successful write (60% increment, 30% enrich, 10% delete then restore)."""
    if roll < 0.6:
        step = partial(_increment, coll, item_id, ledger=ledger)
        await _retrying(ledger, rng, base + "U", "update", step)
    elif roll < 0.9:
        step = partial(_enrich, coll, item_id, ledger=ledger)
        await _retrying(ledger, rng, base + "E", "enrich", step)
    else:
        step = partial(_delete_and_restore, coll, item_id, ledger=ledger, rng=rng)
        await _retrying(ledger, rng, base + "D", "delete", step)


async def _run_fleet(
    handles: list[Collection],
    ids: list[str],
    ledger: Ledger,
    *,
    steps: int,
    mixed: bool,
) -> None:
    async def worker(instance: int, n: int) -> None:
        coll = handles[instance]
        rng = random.Random(SEED * 1000 + instance * COROUTINES + n)
        for k in range(steps):
            item_id = rng.choice(ids)
            roll = rng.random() if mixed else 0.0
            await _step(coll, item_id, f"i{instance}c{n}k{k}", roll, ledger, rng)

    async with asyncio.TaskGroup() as group:
        for instance in range(INSTANCES):
            for n in range(COROUTINES):
                group.create_task(worker(instance, n))


async def _check_store(handles: list[Collection], ids: list[str], ledger: Ledger) -> dict[str, int]:
    """Check every record against the ledger; returns figures for the report."""
    coll = handles[0]
    by_record: dict[str, list[tuple[str, Ack]]] = {item_id: [] for item_id in ids}
    for tag, ack in ledger.acked.items():
        by_record[ack.id].append((tag, ack))
    versions_seen = 0
    maybe_landed = 0
    for item_id in ids:
        history: list[VersionInfo] = [v async for v in coll.history(item_id)]
        ovs = [v.ov for v in history]
        n = ovs[0]
        assert ovs == list(range(n, -1, -1)), f"{item_id}: ovs {ovs}"
        versions_seen += len(history)
        by_ov = {v.ov: v for v in history}
        actors = Counter(v.actor for v in history)
        assert by_ov[0].actor == "seed"
        for v in history[:-1]:
            assert v.actor in ledger.acked or v.actor in ledger.maybe, (
                f"{item_id} ov={v.ov} written by {v.actor!r}, which was never acknowledged"
            )
            assert v.actor not in ledger.refused, f"refused write {v.actor} is in {item_id}"
            maybe_landed += v.actor in ledger.maybe
        # versions whose data is checked below: read concurrently, exactly as stored
        items = await asyncio.gather(*(coll.get_version(item_id, ov) for ov in range(n + 1)))
        data_by_ov = {}
        for ov, item in enumerate(items):
            assert item is not None and item.ov == ov, (item_id, ov)
            data_by_ov[ov] = item.data
        updates = enrich_marks = 0
        for tag, ack in by_record[item_id]:
            assert actors[tag] == 1, f"{tag} appears {actors[tag]} times in {item_id}"
            version = by_ov[ack.ov]
            assert version.actor == tag, f"{item_id} ov={ack.ov}: {version.actor} != {tag}"
            assert version.op == ack.op, (tag, version.op, ack.op)
            data = data_by_ov[ack.ov]
            if ack.op == "update":
                updates += 1
                assert data["counter"] == ack.counter and data["writer"] == tag
            elif ack.op == "enrich":
                enrich_marks += 1
                assert data["marks"].get(tag) is True
                assert version.function_id == "marker@1"
            elif ack.op == "delete":
                assert version.deleted and data == data_by_ov[ack.ov - 1]
            else:
                assert not version.deleted and version.restored_from == ack.restored_from
                assert data == data_by_ov[ack.ov - 2]
        final = data_by_ov[n]
        landed = [ledger.maybe[v.actor] for v in history if v.actor in ledger.maybe]
        extra_updates = landed.count("update")
        assert final["counter"] == updates + extra_updates, (item_id, final["counter"], updates)
        acked_marks = {t for t, a in by_record[item_id] if a.op == "enrich"}
        assert acked_marks <= set(final["marks"]), acked_marks - set(final["marks"])
        assert set(final["marks"]) <= acked_marks | set(ledger.maybe)
        assert len(final["marks"]) >= enrich_marks
        assert not by_ov[n].deleted
        # every instance sees the same head (acknowledged means visible everywhere)
        latest = await asyncio.gather(*(h.get_latest(item_id) for h in handles))
        assert {(i.ov, i.cv) for i in latest if i is not None} == {(n, by_ov[n].cv)}
    return {"versions": versions_seen, "maybe_landed": maybe_landed}


async def _verify_clean(chronos: Chronos, db_name: str) -> None:
    report = await chronos.admin.verify(db=db_name)
    assert report.ok, "\n".join(map(str, report.problems))
    assert report.counts.get("versions", 0) > 0


@pytest_asyncio.fixture(loop_scope="session")
async def admin(make_config: MakeConfig) -> AsyncIterator[Chronos]:
    """A fourth instance, only for ``admin.verify`` (a fresh client sees what is stored)."""
    async with Chronos(make_config("s3", collection_maps=MAPS)) as chronos:
        yield chronos


async def test_read_modify_write_loses_nothing(
    fleet: list[Collection], admin: Chronos, db_name: str
) -> None:
    ids = await _seed_records(fleet[0])
    ledger = Ledger()
    await _run_fleet(fleet, ids, ledger, steps=INCREMENTS, mixed=False)
    figures = await _check_store(fleet, ids, ledger)
    await _verify_clean(admin, db_name)
    acked = len(ledger.acked)
    assert acked == INSTANCES * COROUTINES * INCREMENTS
    assert figures["versions"] == RECORDS + acked + figures["maybe_landed"]
    for item_id in ids:
        latest = await fleet[1].get_latest(item_id)
        assert latest is not None
        # counter == ov: each version is exactly one increment of the one before
        assert latest.data["counter"] == latest.ov
    print(f"\nrmw: {acked} acknowledged, outcomes {dict(ledger.outcomes)}, {figures}")


async def test_mixed_writers_lose_nothing(
    fleet: list[Collection], admin: Chronos, db_name: str
) -> None:
    ids = await _seed_records(fleet[0])
    ledger = Ledger()
    await _run_fleet(fleet, ids, ledger, steps=MIXED_STEPS, mixed=True)
    figures = await _check_store(fleet, ids, ledger)
    await _verify_clean(admin, db_name)
    ops = Counter(a.op for a in ledger.acked.values())
    assert ops["enrich"] > 0 and ops["delete"] > 0 and ops["restore"] == ops["delete"]
    assert figures["versions"] == RECORDS + len(ledger.acked) + figures["maybe_landed"]
    print(f"\nmixed: {dict(ops)}, outcomes {dict(ledger.outcomes)}, {figures}")
