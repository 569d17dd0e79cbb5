"""A seeded random schedule of reads and writes with injected faults, checked against a
model of what must be true.

The schedule (which operation, on which record, with which arguments and which fault)
is drawn from one seed: ``CHRONOS_TEST_SEED`` (an integer, or ``random``), else
:data:`DEFAULT_SEED`. A failure names the seed; rerun with
``CHRONOS_TEST_SEED=<seed> pytest tests/reliability/test_randomized.py``. (Workers run
concurrently, so the interleaving differs between runs; the schedule does not.)

Faults come from a checkpoint hook on both instances: ~10% of writes raise
``StorageError("injected", retryable=True)`` at a random point of the pipeline, ~3% are
cancelled while stalled at one. Each write carries a unique ``actor`` tag, and its
outcome is booked as:

- acknowledged: it returned a ``WriteResult`` (must be in history exactly once, at that
  ``ov``; a ``changed=False`` result must not be in history at all);
- absent: it raised a typed error before its version was claimed, or its claim was
  withdrawn (it must never appear);
- published: a fault at ``published`` (raised or cancelled there): the head had
  already moved, so the caller saw an error, yet the write must be in history exactly
  once (a published version is never taken back);
- maybe: ``StorageError.outcome_unknown`` or a cancellation at ``claimed`` (at most
  once).

During the run every read is checked where the answer is determined: a version once
seen never changes, ``get_latest`` is never older than the newest acknowledged write,
``get_as_of(ack.at)`` is exactly the acknowledged version, history is contiguous, list
results match their filter. At the end every record's whole history is replayed from
the writes' inputs (create/update data, enrich patches, delete, restore targets),
``admin.reconcile`` runs and ``admin.verify`` must be clean.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from chronos_async import (
    Chronos,
    ChronosError,
    Collection,
    Item,
    StorageError,
    VersionInfo,
    WriteResult,
)
from tests.conftest import MakeConfig

DEFAULT_SEED = 20_260_301
OPERATIONS = 2000
WORKERS = 6
INSTANCES = 2
INITIAL = [f"r{n:02d}" for n in range(20)]
LATE = [f"n{n}" for n in range(4)]  # created (or not) during the run
IDS = INITIAL + LATE
FAULT_RATE = 0.10
CANCEL_RATE = 0.03
POINTS = ("leased", "stored", "claimed", "published")
GROUPS = 3
COLLECTION = "things"
MAPS: dict[str, Any] = {COLLECTION: {"indexed_props": ["group", "n", "tags[]"]}}
#: Counters on: verify then also checks that the totals equal the version index
#: (no write counted twice or lost by a fault, a cancellation or a roll-forward).
RULES: dict[str, Any] = {
    "rules": [
        {"name": "group_0", "kind": "gauge", "when": {"group": 0}},
        {"name": "big_n", "on": ["UPDATE", "ENRICH"], "when": {"n": {"$gte": 5}}},
    ]
}
#: Payloads bigger than the inline threshold (16 KiB) go through the object store.
PAD = "p" * 20_000

WRITE_KINDS = ("create", "update", "enrich", "delete", "restore")
KINDS = {
    "update": 24,
    "enrich": 14,
    "delete": 4,
    "restore": 8,
    "create": 3,
    "get_latest": 12,
    "get_version": 10,
    "get_as_of": 10,
    "list_by_meta": 6,
    "history": 9,
}


def _seed() -> int:
    raw = os.environ.get("CHRONOS_TEST_SEED", "").strip()
    if not raw:
        return DEFAULT_SEED
    if raw == "random":
        return random.SystemRandom().randrange(2**32)
    return int(raw)


def _group(item_id: str) -> int:
    return sum(map(ord, item_id)) % GROUPS


# -- faults ----------------------------------------------------------------------------


@dataclass(slots=True)
class Fault:
    """What to do to one write, at the first time it reaches ``point``."""

    point: str
    action: str  # "raise" | "cancel"
    fired: bool = False
    reached: asyncio.Event = field(default_factory=asyncio.Event)


#: The fault planned for the write running in this context (set around its task).
_FAULT: contextvars.ContextVar[Fault | None] = contextvars.ContextVar("fault", default=None)


async def _hook(point: str, info: Any) -> None:
    fault = _FAULT.get()
    if fault is None or fault.fired or point != fault.point:
        return
    fault.fired = True
    if fault.action == "raise":
        raise StorageError(f"injected at {point}", retryable=True)
    fault.reached.set()
    await asyncio.Event().wait()  # stalled here until the worker cancels the write


# -- the model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    """What a version is: who wrote it, its data, whether it is a deletion."""

    actor: str | None
    data: dict[str, Any]
    deleted: bool


@dataclass(slots=True)
class Write:
    """One write attempt: its inputs and its booked outcome."""

    tag: str
    kind: str
    id: str
    data: dict[str, Any] | None = None  # create / update
    patches: list[dict[str, Any]] | None = None  # enrich
    function_id: str | None = None
    target_ov: int | None = None  # restore (by ov, or the ov that was current at `at`)
    outcome: str = "pending"  # acked | noop | absent | published | maybe
    result: WriteResult | None = None
    error: str | None = None


@dataclass(slots=True)
class Model:
    facts: dict[tuple[str, int], Fact] = field(default_factory=dict)
    #: the newest acknowledged ov per record (-1: no record yet)
    floor: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IDS, -1))
    #: the newest ov any read or write saw (a guess for expected_ov)
    seen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IDS, -1))
    acks: dict[str, list[WriteResult]] = field(default_factory=lambda: {i: [] for i in IDS})
    writes: dict[str, Write] = field(default_factory=dict)
    #: (id, ov) of acknowledged deletions
    deletions: set[tuple[str, int]] = field(default_factory=set)
    stats: Counter[str] = field(default_factory=Counter)

    def learn(self, item_id: str, ov: int, fact: Fact) -> None:
        """Record a version's content; a version seen twice must not have changed."""
        key = (item_id, ov)
        known = self.facts.setdefault(key, fact)
        assert known == fact, f"{item_id} ov={ov} changed: was {known}, now {fact}"
        self.seen[item_id] = max(self.seen[item_id], ov)

    def is_deleted(self, item_id: str, ov: int) -> bool:
        """Whether version ``ov`` is known to be a deletion."""
        fact = self.facts.get((item_id, ov))
        return (item_id, ov) in self.deletions or (fact is not None and fact.deleted)

    def observe(self, item: Item) -> None:
        self.learn(item.id, item.ov, Fact(item.actor, item.data, item.deleted))

    def acknowledge(self, write: Write, result: WriteResult) -> None:
        assert result.id == write.id
        write.result = result
        if not result.changed:
            write.outcome = "noop"
            return
        write.outcome = "acked"
        assert write.kind != "create" or result.ov == 0
        self.floor[write.id] = max(self.floor[write.id], result.ov)
        self.seen[write.id] = max(self.seen[write.id], result.ov)
        self.acks[write.id].append(result)
        if write.kind == "delete":
            self.deletions.add((write.id, result.ov))
        if write.data is not None:
            self.learn(write.id, result.ov, Fact(write.tag, write.data, False))


# -- the schedule ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    index: int
    kind: str
    id: str
    rng_seed: str
    fault: Fault | None


def _schedule(seed: int) -> list[list[Op]]:
    rng = random.Random(seed)
    kinds, weights = zip(*KINDS.items(), strict=True)
    plans: list[list[Op]] = [[] for _ in range(WORKERS)]
    for index in range(OPERATIONS):
        kind = rng.choices(kinds, weights)[0]
        item_id = rng.choice(LATE if kind == "create" and rng.random() < 0.8 else IDS)
        fault = None
        if kind in WRITE_KINDS:
            roll = rng.random()
            if roll < FAULT_RATE:
                fault = Fault(rng.choice(POINTS), "raise")
            elif roll < FAULT_RATE + CANCEL_RATE:
                fault = Fault(rng.choice(POINTS), "cancel")
        plans[index % WORKERS].append(Op(index, kind, item_id, f"{seed}/{index}", fault))
    return plans


# -- running it ------------------------------------------------------------------------

#: The outcome of a write cancelled while stalled at a point.
_AFTER_FAULT = {
    "leased": "absent",
    "stored": "absent",
    "claimed": "maybe",
    "published": "published",
}


class Run:
    def __init__(self, handles: list[Collection], model: Model) -> None:
        self.handles = handles
        self.model = model

    async def worker(self, number: int, plan: list[Op]) -> None:
        coll = self.handles[number % len(self.handles)]
        for op in plan:
            rng = random.Random(op.rng_seed)
            try:
                if op.kind in WRITE_KINDS:
                    await self.write(coll, op, rng)
                else:
                    await getattr(self, op.kind)(coll, op, rng)
            except AssertionError as exc:
                raise AssertionError(f"op #{op.index} {op.kind} {op.id}: {exc}") from exc
            self.model.stats[f"op_{op.kind}"] += 1

    # -- writes ------------------------------------------------------------------------

    def _prepare(
        self, coll: Collection, op: Op, rng: random.Random
    ) -> tuple[Write, Callable[[], Awaitable[WriteResult]]]:
        m = self.model
        tag = f"w{op.index}"
        item_id = op.id
        write = Write(tag, op.kind, item_id)
        guess = m.seen[item_id]
        expected = guess if rng.random() < 0.6 and guess >= 0 else None
        if op.kind in ("create", "update"):
            data: dict[str, Any] = {"group": _group(item_id), "n": rng.randrange(100), "w": tag}
            if rng.random() < 0.15:
                data["pad"] = PAD
            if rng.random() < 0.3:
                data["tags"] = rng.sample(["a", "b", "c", "d"], k=rng.randrange(1, 3))
            write.data = data
            if op.kind == "create":
                return write, lambda: coll.create(data, id=item_id, actor=tag)
            return write, lambda: coll.update(item_id, data, expected_ov=expected, actor=tag)
        if op.kind == "enrich":
            patches: list[dict[str, Any]] = [{"e": {tag: rng.randrange(1000)}}]
            if rng.random() < 0.4:
                patches.append({"tags": [rng.choice("abcdef")], "n": rng.randrange(100)})
            fid = f"fn{rng.randrange(3)}"
            write.patches, write.function_id = patches, fid
            exp = expected if rng.random() < 0.3 else None
            arg: Any = patches if len(patches) > 1 else patches[0]
            return write, lambda: coll.enrich(
                item_id, arg, function_id=fid, actor=tag, expected_ov=exp
            )
        if op.kind == "delete":
            return write, lambda: coll.delete(item_id, expected_ov=expected, actor=tag)
        # restore: to an acknowledged version (mostly a live one, so deleted records come
        # back), by ov or by its commit time
        acks = list(m.acks[item_id])
        live = [a for a in acks if not m.is_deleted(item_id, a.ov)]
        if live and rng.random() < 0.8:
            acks = live
        if acks and rng.random() < 0.5:
            target = rng.choice(acks)
            write.target_ov = target.ov
            return write, lambda: coll.restore_object(item_id, at=target.at, actor=tag)
        ov = rng.choice(acks).ov if acks else rng.randrange(max(m.floor[item_id], 0) + 1)
        write.target_ov = ov
        return write, lambda: coll.restore_object(item_id, ov=ov, actor=tag)

    async def write(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        write, call = self._prepare(coll, op, rng)
        m.writes[write.tag] = write
        fault = op.fault
        token = _FAULT.set(fault)
        try:
            task = asyncio.ensure_future(call())  # the task copies the context: its fault
        finally:
            _FAULT.reset(token)
        if fault is not None and fault.action == "cancel":
            waiter = asyncio.ensure_future(fault.reached.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            if not task.done():
                task.cancel()
        await asyncio.wait({task})
        fired = fault is not None and fault.fired
        if fired:
            assert fault is not None
            m.stats[f"fault_{fault.action}_{fault.point}"] += 1
        if task.cancelled():
            assert fault is not None and fired
            write.outcome = _AFTER_FAULT[fault.point]
            m.stats["cancelled"] += 1
            m.stats[f"write_{write.outcome}"] += 1
            return
        exc = task.exception()
        if exc is None:
            m.acknowledge(write, task.result())
            m.stats[f"write_{write.outcome}"] += 1
            return
        if not isinstance(exc, ChronosError):
            raise AssertionError(f"untyped error {exc!r}") from exc
        write.error = f"{type(exc).__name__}: {exc}"
        if fired and fault is not None and fault.point == "published":
            write.outcome = "published"
        elif isinstance(exc, StorageError) and exc.outcome_unknown:
            write.outcome = "maybe"
        else:
            if isinstance(exc, StorageError):
                # only our own injected faults may fail a write here
                assert fired, f"unexpected {write.error}"
            write.outcome = "absent"
        m.stats[f"error_{type(exc).__name__}"] += 1
        m.stats[f"write_{write.outcome}"] += 1

    # -- reads -------------------------------------------------------------------------

    async def get_latest(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        floor = m.floor[op.id]
        include_deleted = rng.random() < 0.7
        item = await coll.get_latest(op.id, include_deleted=include_deleted)
        if item is None:
            assert floor < 0 or not include_deleted, f"record vanished (floor ov={floor})"
            return
        assert item.ov >= floor, f"latest ov={item.ov} is older than acknowledged ov={floor}"
        assert include_deleted or not item.deleted
        m.observe(item)

    async def get_version(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        floor = m.floor[op.id]
        ov = rng.randrange(floor + 3)
        item = await coll.get_version(op.id, ov)
        if item is None:
            assert ov > floor, f"acknowledged ov={ov} not found (floor {floor})"
            return
        assert item.ov == ov
        m.observe(item)

    async def get_as_of(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        acks = m.acks[op.id]
        if not acks:
            item = await coll.get_as_of(op.id, datetime.now(UTC), include_deleted=True)
            if item is not None:
                m.observe(item)
            return
        if acks[0].ov == 0 and rng.random() < 0.1:
            before = acks[0].at - timedelta(microseconds=1)
            assert await coll.get_as_of(op.id, before, include_deleted=True) is None
            return
        target = rng.choice(acks)
        at: Any = target.at.isoformat() if rng.random() < 0.5 else target.at
        item = await coll.get_as_of(op.id, at, include_deleted=True)
        assert item is not None and item.ov == target.ov, (target, item)
        m.observe(item)

    async def history(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        floor = m.floor[op.id]
        versions = [v async for v in coll.history(op.id)]
        ovs = [v.ov for v in versions]
        if floor >= 0:
            assert ovs and ovs[0] >= floor, f"history {ovs[:3]} behind ov={floor}"
        if ovs:
            assert ovs == list(range(ovs[0], -1, -1)), f"history not contiguous: {ovs}"
        for v in versions:
            fact = m.facts.get((op.id, v.ov))
            if fact is not None:
                assert (fact.actor, fact.deleted) == (v.actor, v.deleted), (fact, v)

    async def list_by_meta(self, coll: Collection, op: Op, rng: random.Random) -> None:
        m = self.model
        group = rng.randrange(GROUPS)
        low = rng.randrange(100)
        tag = rng.choice("abcd")
        filters: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
            ({"group": group}, lambda d: d["group"] == group),
            ({"n": {"$gte": low}}, lambda d: d["n"] >= low),
            ({"tags": tag}, lambda d: tag in d.get("tags", [])),
            (
                {"$or": [{"group": group}, {"n": {"$lt": low}}]},
                lambda d: d["group"] == group or d["n"] < low,
            ),
        ]
        query, matches = rng.choice(filters)
        limit = rng.randrange(1, 9)
        seen: list[str] = []
        after = None
        for _ in range(len(IDS) + 2):
            page = await coll.list_by_meta(query, limit=limit, after=after, sort={"id": 1})
            assert len(page.items) <= limit
            for item in page.items:
                assert not item.deleted and matches(item.data), (query, item.data)
                assert item.id not in seen, f"{item.id} listed twice"
                seen.append(item.id)
                m.observe(item)
            after = page.next_cursor
            if after is None:
                break
        assert after is None, "pagination did not end"
        assert seen == sorted(seen)


# -- the end state ---------------------------------------------------------------------


def _merge(base: Any, patch: Any) -> Any:
    """The documented enrich rules, written out independently of the library."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(out[key], value) if key in out else value
        return out
    if isinstance(base, list) and isinstance(patch, list):
        return base + [x for x in patch if x not in base]
    return patch


async def _check_end_state(handles: list[Collection], model: Model) -> Counter[str]:
    coll = handles[0]
    figures: Counter[str] = Counter()
    by_tag = model.writes
    cvs: list[int] = []
    in_history: set[str | None] = set()
    for item_id in IDS:
        history: list[VersionInfo] = [v async for v in coll.history(item_id)][::-1]
        if not history:
            acked = [w for w in by_tag.values() if w.id == item_id and w.outcome == "acked"]
            assert not acked, f"{item_id} has no history but acknowledged writes {acked}"
            continue
        assert [v.ov for v in history] == list(range(len(history))), item_id
        items = await asyncio.gather(*(coll.get_version(item_id, v.ov) for v in history))
        data: list[dict[str, Any]] = []
        for v, item in zip(history, items, strict=True):
            assert item is not None
            model.observe(item)
            data.append(item.data)
            assert v.actor is not None
            write = by_tag.get(v.actor)
            if v.actor.startswith("init"):
                assert v.ov == 0 and v.op == "create"
                continue
            assert write is not None, f"{item_id} ov={v.ov}: unknown writer {v.actor}"
            assert write.outcome in ("acked", "published", "maybe"), (
                f"{item_id} ov={v.ov} was written by {write.tag}, booked {write.outcome} "
                f"({write.error})"
            )
            assert write.kind == v.op, (write, v)
            if write.outcome == "acked":
                assert write.result is not None and write.result.ov == v.ov, (write, v)
                assert write.result.cv == v.cv and write.result.at == v.at
            figures[f"landed_{write.outcome}"] += 1
            # replay: what this version's data must be, from its write's inputs
            previous = data[v.ov - 1] if v.ov > 0 else None
            if write.kind in ("create", "update"):
                expected, deleted = write.data, False
            elif write.kind == "enrich":
                assert previous is not None and write.patches is not None
                expected, deleted = previous, False
                for patch in write.patches:
                    expected = _merge(expected, patch)
                assert v.function_id == write.function_id
            elif write.kind == "delete":
                expected, deleted = previous, True
            else:
                assert v.restored_from is not None
                if write.target_ov is not None and write.outcome == "acked":
                    assert v.restored_from == write.target_ov, (write, v)
                expected = data[v.restored_from]
                deleted = history[v.restored_from].deleted
            assert item.data == expected, f"{item_id} ov={v.ov} ({write.kind}) data differs"
            assert v.deleted == deleted
        actors = Counter(v.actor for v in history)
        assert max(actors.values()) == 1, f"{item_id}: a write landed twice {actors}"
        for a, b in itertools.pairwise(history):
            assert a.cv < b.cv and a.at < b.at, (a, b)
        cvs.extend(v.cv for v in history)
        figures["versions"] += len(history)
        latest = await asyncio.gather(
            *(h.get_latest(item_id, include_deleted=True) for h in handles)
        )
        assert {(i.ov, i.cv) for i in latest if i is not None} == {(history[-1].ov, history[-1].cv)}
        in_history.update(actors)
    assert len(cvs) == len(set(cvs)), "two versions share a cv"
    for write in by_tag.values():
        # present exactly once (checked per record above) or never
        must_land = write.outcome in ("acked", "published")
        assert (write.tag in in_history) == must_land or write.outcome == "maybe", (
            f"{write.tag} ({write.kind} of {write.id}, {write.outcome}, {write.error}) "
            f"{'is missing' if must_land else 'left a trace'}"
        )
        figures[f"checked_{write.outcome}"] += 1
    return figures


@contextmanager
def _hooked(instances: list[Chronos]) -> Iterator[None]:
    """The fault hook on every instance, for the duration of the block."""
    with ExitStack() as stack:
        for chronos in instances:
            stack.enter_context(chronos.checkpoints.hook(_hook))
        yield


@pytest_asyncio.fixture(loop_scope="session")
async def instances(make_config: MakeConfig) -> AsyncIterator[list[Chronos]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                Chronos(make_config("s3", collection_maps=MAPS, counter_rules=RULES))
            )
            for _ in range(INSTANCES)
        ]


async def test_random_schedule_with_faults(instances: list[Chronos], db_name: str) -> None:
    seed = _seed()
    try:
        figures = await _run(instances, db_name, seed)
    except AssertionError as exc:
        pytest.fail(f"seed={seed} (rerun: CHRONOS_TEST_SEED={seed}): {exc}")
    print(f"\nrandomized seed={seed}: {dict(sorted(figures.items()))}")


async def _run(instances: list[Chronos], db_name: str, seed: int) -> Counter[str]:
    handles = [c.collection(COLLECTION, db=db_name) for c in instances]
    model = Model()
    for item_id in INITIAL:
        data = {"group": _group(item_id), "n": 0, "w": "init"}
        r = await handles[0].create(data, id=item_id, actor=f"init-{item_id}")
        model.learn(item_id, 0, Fact(f"init-{item_id}", data, False))
        model.floor[item_id] = model.seen[item_id] = 0
        model.acks[item_id].append(r)
    run = Run(handles, model)
    with _hooked(instances):
        try:
            async with asyncio.TaskGroup() as group:
                for number, plan in enumerate(_schedule(seed)):
                    group.create_task(run.worker(number, plan))
        except* AssertionError as errors:
            raise errors.exceptions[0] from None
    figures = await _check_end_state(handles, model)
    admin = instances[0].admin
    for chronos in instances:  # every instance's pending counter increments applied
        await chronos.counters.flush()
    await admin.reconcile(db=db_name, grace_seconds=0)
    report = await admin.verify(db=db_name, grace_seconds=0)
    assert report.ok, "\n".join(map(str, report.problems))
    figures.update(model.stats)
    figures["operations"] = sum(n for k, n in model.stats.items() if k.startswith("op_"))
    figures["faults_injected"] = sum(n for k, n in model.stats.items() if k.startswith("fault_"))
    figures["violations"] = len(report.problems)
    assert figures["operations"] == OPERATIONS
    return figures
