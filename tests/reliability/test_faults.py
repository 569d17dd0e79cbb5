"""Fault injection: the invariants hold when writers are cancelled, fail, crash, or lose a server.

What each group proves (figures: the fault-suite section of ``tests/reliability/README.md``):

- cancellation at every checkpoint of every write kind: the write is fully published
  (only possible at ``published``) or leaves nothing at all, and the lease is free again;
- a failure injected at every checkpoint: a typed error, and the same all-or-nothing;
- a lost reply (the server applied a step, the client never heard, or was cancelled while
  waiting): no reader ever meets a version whose payload is gone, and a head write that
  landed is reported as the success it was;
- a writer process SIGKILLed after ``stored`` / ``claimed``: readers never see its work;
  once its lease expires the next writer (or ``admin.repair``) rolls the claim forward;
- the S3 server killed and restarted under running writers, and MongoDB likewise: failed
  writes raise typed errors, no acknowledged write is lost, ``verify`` is clean after
  ``reconcile``.

The server-restart tests start their own (function-scoped) servers and skip when the
suite runs against external servers (``CHRONOS_TEST_*``): those cannot be stopped here.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from chronos_async import (
    Chronos,
    ChronosConfig,
    ChronosError,
    Collection,
    ItemExistsError,
    LockTimeoutError,
    StorageError,
    VersionConflictError,
    WriteResult,
)
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._keys import head_id
from chronos_async._procs import (
    NxServer,
    S3Credentials,
    start_nx,
)
from chronos_async._rollforward import settle_age_us
from chronos_async._scope import now_us
from tests.reliability.servers import kill, own_weed, restart_on_same_ports
from tests.reliability.writer_process import config_json
from tests.support import footprint

BIG = "x" * 20_000  # above the 16 KiB inline limit: reads of such versions need the store
ORIGINAL = {"email": "orig@x", "pad": BIG}


@pytest_asyncio.fixture(loop_scope="session")
async def instance(make_config: Any, payloads: str) -> AsyncIterator[Chronos]:
    """A Chronos whose writers never wait for a lease: a lease left behind fails the test."""
    config = make_config(
        payloads,
        leases={"lease_ms": 30_000, "wait_ms": 0},
        counters={},  # verify also checks the totals against the version index
    )
    async with Chronos(config) as chronos:
        yield chronos


async def assert_clean(chronos: Chronos, db: str, *, reconcile: bool = False) -> None:
    """``verify`` (orphans of any age count) finds nothing, optionally after reconcile."""
    if reconcile:
        await chronos.admin.reconcile(db, grace_seconds=0)
    report = await chronos.admin.verify(db, grace_seconds=0)
    assert report.ok, "\n".join(str(p) for p in report.problems)


async def readable_history(users: Collection, item_id: str) -> list[int]:
    """The published ovs, newest first, after reading every one of them in full.

    A version whose payload is missing or corrupt raises here (IntegrityError).
    """
    ovs = [v.ov async for v in users.history(item_id)]
    for ov in ovs:
        item = await users.get_version(item_id, ov)
        assert item is not None, f"history lists ov={ov} of {item_id} but get_version has none"
    latest = await users.get_latest(item_id, include_deleted=True)
    assert (latest.ov if latest else None) == (ovs[0] if ovs else None)
    return ovs


# -- (a) and (b): cancellation and failures at each checkpoint ---------------------------

#: The checkpoints each kind of write passes, in order (create has no lease to take).
POINTS_BY_OP: dict[str, tuple[str, ...]] = {
    "create": ("stored", "claimed", "published"),
    "update": ("leased", "stored", "claimed", "published"),
    "enrich": ("leased", "stored", "claimed", "published"),
    "delete": ("leased", "stored", "claimed", "published"),
}
CASES = [(op, point) for op, points in POINTS_BY_OP.items() for point in points]
NEW_DATA = {"email": "new@x", "pad": BIG.upper()}


async def _prepare(users: Collection, op: str) -> str:
    """The record the write under test targets (created at ov=0 unless the op is create)."""
    if op == "create":
        return "fresh-record"
    return (await users.create(ORIGINAL, id="the-record")).id


def _write(users: Collection, op: str, item_id: str) -> Awaitable[WriteResult]:
    if op == "create":
        return users.create(NEW_DATA, id=item_id)
    if op == "update":
        return users.update(item_id, NEW_DATA, expected_ov=0)
    if op == "enrich":
        return users.enrich(item_id, {"enriched": True}, function_id="scorer@1")
    return users.delete(item_id, expected_ov=0)


async def _assert_all_or_nothing(
    users: Collection, op: str, item_id: str, before: tuple[int, int, int], *, visible: bool
) -> None:
    """The write is fully published (visible) or left no trace at all (not visible)."""
    heads, versions, blobs = before
    ovs = await readable_history(users, item_id)
    latest = await users.get_latest(item_id, include_deleted=True)
    if not visible:
        if op == "create":
            assert latest is None and ovs == []
            assert await users.get_version(item_id, 0) is None
        else:
            assert latest is not None and latest.ov == 0 and latest.data == ORIGINAL
            assert ovs == [0] and await users.get_version(item_id, 1) is None
        assert await footprint(users) == before
        return
    if op == "create":
        assert latest is not None and latest.ov == 0 and latest.data == NEW_DATA
        assert await footprint(users) == (heads + 1, versions + 1, blobs + 1)
        return
    assert latest is not None and latest.ov == 1 and ovs == [1, 0]
    expected = {
        "update": NEW_DATA,
        "enrich": {**ORIGINAL, "enriched": True},
        "delete": ORIGINAL,
    }[op]
    assert latest.data == expected and latest.deleted == (op == "delete")
    new_blobs = 0 if op == "delete" else 1  # a logical delete reuses the payload
    assert await footprint(users) == (heads, versions + 1, blobs + new_blobs)


async def _next_write_goes_through(
    users: Collection, op: str, item_id: str, *, visible: bool
) -> None:
    """A following write succeeds at once: no lease was left behind (``wait_ms=0``)."""
    if op == "create" and not visible:
        assert (await users.create({"email": "retry@x"}, id=item_id)).ov == 0
        return
    current = 0 if op == "create" or not visible else 1
    if op == "delete" and visible:
        done = await users.restore_object(item_id, ov=0, expected_ov=current)
    else:
        done = await users.update(item_id, {"email": "next@x"}, expected_ov=current)
    assert done.ov == current + 1


async def _until_reached(reached: asyncio.Event, task: asyncio.Task[Any], what: str) -> None:
    waiter = asyncio.ensure_future(reached.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return
    waiter.cancel()
    outcome = "still running" if not task.done() else repr(task.exception() or task.result())
    pytest.fail(f"{what} was never reached ({outcome})")


@pytest.mark.parametrize(("op", "point"), CASES)
async def test_cancel_at_checkpoint(instance: Chronos, db_name: str, op: str, point: str) -> None:
    users = instance.collection("users", db=db_name)
    item_id = await _prepare(users, op)
    before = await footprint(users)
    reached = asyncio.Event()

    async def stall(at: str, info: CheckpointInfo) -> None:
        if at == point and info.id == item_id:
            reached.set()
            await asyncio.Event().wait()  # until the task is cancelled

    with instance.checkpoints.hook(stall):
        task = asyncio.create_task(_write(users, op, item_id))
        await _until_reached(reached, task, f"{point!r} of {op}")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    visible = point == "published"
    await _assert_all_or_nothing(users, op, item_id, before, visible=visible)
    await assert_clean(instance, db_name)  # nothing to reconcile: not even an orphan payload
    await _next_write_goes_through(users, op, item_id, visible=visible)
    await assert_clean(instance, db_name)


@pytest.mark.parametrize(("op", "point"), CASES)
async def test_failure_at_checkpoint(instance: Chronos, db_name: str, op: str, point: str) -> None:
    users = instance.collection("users", db=db_name)
    item_id = await _prepare(users, op)
    before = await footprint(users)

    def fail(at: str, info: CheckpointInfo) -> None:
        if at == point and info.id == item_id:
            raise StorageError(f"injected at {at}", retryable=True)

    with instance.checkpoints.hook(fail), pytest.raises(ChronosError) as raised:
        await _write(users, op, item_id)

    visible = point == "published"
    error = raised.value
    if not visible:
        # Withdrawn cleanly: the caller learns exactly what failed, and that a retry may help.
        assert isinstance(error, StorageError), repr(error)
        assert error.retryable and not error.outcome_unknown and "injected" in str(error)
    await _assert_all_or_nothing(users, op, item_id, before, visible=visible)
    await assert_clean(instance, db_name)
    await _next_write_goes_through(users, op, item_id, visible=visible)
    await assert_clean(instance, db_name)


async def test_every_write_passes_its_checkpoints_in_order(instance: Chronos, db_name: str) -> None:
    users = instance.collection("users", db=db_name)
    await users.create(ORIGINAL, id="the-record")
    seen: list[tuple[str, str, str, int]] = []

    def record(point: str, info: CheckpointInfo) -> None:
        seen.append((info.op, point, info.id, info.ov))

    with instance.checkpoints.hook(record):
        await _write(users, "create", "fresh-record")
        await users.update("the-record", NEW_DATA, expected_ov=0)
        await users.enrich("the-record", {"enriched": True})
        await users.delete("the-record", expected_ov=2)
    expected = [("create", p, "fresh-record", 0) for p in POINTS_BY_OP["create"]]
    for ov, op in enumerate(("update", "enrich", "delete"), start=1):
        expected += [(op, p, "the-record", ov) for p in POINTS_BY_OP[op]]
    assert seen == expected


# -- lost replies: the server applied a step but the writer never heard -------------------

LOST_REPLY_STEPS = [
    ("update", "insert_version"),
    ("update", "move_head"),
    ("create", "insert_head"),
]


@pytest.mark.parametrize("how", ["error", "cancel"])
@pytest.mark.parametrize(("op", "step"), LOST_REPLY_STEPS)
async def test_lost_reply_never_exposes_a_missing_payload(
    instance: Chronos, db_name: str, op: str, step: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MongoDB write that was applied although the writer saw an error (or was cancelled
    while it waited for the reply) must not make the withdrawal remove what is now, or
    will be, published."""
    users = instance.collection("users", db=db_name)
    item_id = await _prepare(users, op)
    repo = users._scope.repo
    original = getattr(repo, step)
    applied = asyncio.Event()
    fired = False

    async def lossy(*args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        result = await original(*args, **kwargs)  # the server applied it ...
        if fired:
            return result
        fired = True
        applied.set()
        if how == "error":  # ... and the connection broke before the reply
            raise StorageError(f"simulated lost reply of {step}", retryable=True)
        await asyncio.Event().wait()  # ... and the writer is cancelled while it waits
        return result

    monkeypatch.setattr(repo, step, lossy)
    task = asyncio.create_task(_write(users, op, item_id))
    await _until_reached(applied, task, f"the {step} of {op}")
    if how == "cancel":
        task.cancel()
    outcome = (await asyncio.gather(task, return_exceptions=True))[0]
    if how == "cancel":
        assert isinstance(outcome, asyncio.CancelledError), repr(outcome)
    elif step == "insert_version":
        assert isinstance(outcome, StorageError), repr(outcome)
    else:
        # The head write landed: the writer finds that out and reports success.
        assert isinstance(outcome, WriteResult), repr(outcome)
        latest = await users.get_latest(item_id)
        assert latest is not None and latest.ov == outcome.ov
    monkeypatch.undo()

    # Whatever the outcome, every reader sees a complete state: all listed versions load.
    await readable_history(users, item_id)
    # The next writer (after the lease) finishes the story; reconcile removes leftovers.
    for _ in range(2):
        try:
            if op == "create" and await users.get_latest(item_id) is None:
                await users.create({"email": "next@x"}, id=item_id)
            else:
                await users.update(item_id, {"email": "next@x"}, expected_ov=None)
            break
        except (VersionConflictError, ItemExistsError):
            continue  # a claim was rolled forward: try again on top of it
    ovs = await readable_history(users, item_id)
    assert ovs == list(range(ovs[0], -1, -1))
    await assert_clean(instance, db_name, reconcile=True)


# -- (c) a writer process killed between two steps ----------------------------------------

WRITER = Path(__file__).with_name("writer_process.py")
CRASH_LEASE_MS = 1500


async def run_doomed_writer(
    tmp_path: Path, config: ChronosConfig, db: str, plan: list[dict[str, Any]]
) -> list[str]:
    """Run ``plan`` in a writer process, wait until every write is at its point, SIGKILL it.

    Returns the lines the process printed.
    """
    (tmp_path / "writer-config.json").write_text(config_json(config))
    (tmp_path / "writer-plan.json").write_text(json.dumps(plan))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        str(tmp_path / "writer-config.json"),
        db,
        "users",
        str(tmp_path / "writer-plan.json"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=Path(__file__).parents[2],
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while sum(line.startswith("AT ") for line in lines) < len(plan):
                raw = await proc.stdout.readline()
                if not raw:
                    break
                lines.append(raw.decode().rstrip())
                if lines[-1].startswith(("DONE", "ERROR")):
                    break
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        rest, _ = await proc.communicate()
    lines += rest.decode().splitlines()
    at = sorted(line for line in lines if line.startswith("AT "))
    expected = sorted(f"AT {step['point']} {step['id']}" for step in plan)
    assert at == expected, "the writer did not stop where planned:\n" + "\n".join(lines)
    assert proc.returncode == -signal.SIGKILL
    return lines


async def _sleep_until_us(deadline_us: int) -> None:
    """Wait for a lease to expire (a real wait: nothing signals an expiry)."""
    await asyncio.sleep(max(0.0, (deadline_us - now_us()) / 1e6) + 0.05)


async def test_writer_killed_between_steps(
    make_config: Any, payloads: str, db_name: str, tmp_path: Path
) -> None:
    config = make_config(
        payloads,
        leases={"lease_ms": CRASH_LEASE_MS, "wait_ms": 0},
        # A creation is adopted once its writer can no longer act on it: three MongoDB
        # deadlines (3 s here) after its claim. Readers wait for a young claim (one the
        # writer may still publish) for at most the commit window: short here.
        deadlines={"mongo_ms": 1000, "commit_ms": 200},
    )
    doomed = {"by": "doomed-writer", "pad": BIG.lower()}
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        for name in ("a-stored", "b-claimed", "c-claimed"):
            await users.create(ORIGINAL, id=name)
        plan = [
            {"op": "update", "id": "a-stored", "point": "stored"},
            {"op": "update", "id": "b-claimed", "point": "claimed"},
            {"op": "update", "id": "c-claimed", "point": "claimed"},
            {"op": "create", "id": "d-create-claimed", "point": "claimed"},
            {"op": "create", "id": "e-create-stored", "point": "stored"},
        ]
        for step in plan:
            step.update(data=doomed, expected_ov=0)
        await run_doomed_writer(tmp_path, config, db_name, plan)
        killed_at = now_us()

        # Readers never see the dead writer's work.
        for name in ("a-stored", "b-claimed", "c-claimed"):
            latest = await users.get_latest(name)
            assert latest is not None and (latest.ov, latest.data) == (0, ORIGINAL), name
            assert await users.get_version(name, 1) is None
            assert await readable_history(users, name) == [0]
        for name in ("d-create-claimed", "e-create-stored"):
            assert await users.get_latest(name) is None
            assert await readable_history(users, name) == []
        # 3 heads; 3 + 3 claimed versions; 3 + 5 payloads (every write stored its own)
        assert await footprint(users) == (3, 6, 8)

        # While the dead writer's lease lives, it is respected: no repair, no takeover.
        lease_exp = {
            name: int((await users._scope.repo.find_head(head_id(None, name)))["lease_exp"])
            for name in ("a-stored", "b-claimed", "c-claimed")
        }
        early = await chronos.admin.repair(db_name)
        if now_us() < min(lease_exp.values()):
            assert (early.rolled_forward, early.adopted_creates) == (0, 0)
        a_done = False
        try:
            await users.update("a-stored", {"by": "tester"}, expected_ov=0)
            a_done = True
        except LockTimeoutError:
            assert now_us() < lease_exp["a-stored"] + 100_000
        else:
            assert now_us() >= lease_exp["a-stored"]

        settled = killed_at + settle_age_us(config, create=True)
        await _sleep_until_us(max([*lease_exp.values(), settled]))

        # "stored": nothing was claimed, the next writer just succeeds.
        if not a_done:
            assert (await users.update("a-stored", {"by": "tester"}, expected_ov=0)).ov == 1
        # "claimed": the next writer rolls the claim forward and gets a conflict.
        with pytest.raises(VersionConflictError) as conflict:
            await users.update("b-claimed", {"by": "tester"}, expected_ov=0)
        assert (conflict.value.expected, conflict.value.actual) == (0, 1)
        b = await users.get_latest("b-claimed")
        assert b is not None and (b.ov, b.data, b.actor) == (1, doomed, "doomed-writer")
        assert (await users.update("b-claimed", {"by": "tester"}, expected_ov=1)).ov == 2
        # An unfinished creation is adopted by the next creator of that id.
        with pytest.raises(ItemExistsError):
            await users.create({"by": "tester"}, id="d-create-claimed")
        d = await users.get_latest("d-create-claimed")
        assert d is not None and (d.ov, d.data) == (0, doomed)
        assert (await users.create({"by": "tester"}, id="e-create-stored")).ov == 0

        # Without another writer, verify names the stuck claim and repair publishes it.
        report = await chronos.admin.verify(db_name, grace_seconds=0)
        kinds = Counter((p.kind, p.id) for p in report.problems)
        assert kinds == Counter(
            {
                ("unpublished_claim", "c-claimed"): 1,
                # the payloads of writers killed after storing (the key names the record)
                ("orphan_payload", "a-stored"): 1,
                ("orphan_payload", "e-create-stored"): 1,
            }
        ), "\n".join(map(str, report.problems))
        repaired = await chronos.admin.repair(db_name)
        assert (repaired.rolled_forward, repaired.adopted_creates) == (1, 0)
        c = await users.get_latest("c-claimed")
        assert c is not None and (c.ov, c.data) == (1, doomed)

        done = await chronos.admin.reconcile(db_name, grace_seconds=0)
        assert done.orphans_removed == 2  # the payloads of the two writes killed at "stored"
        await assert_clean(chronos, db_name)
        for name in ("a-stored", "b-claimed", "c-claimed", "d-create-claimed", "e-create-stored"):
            await readable_history(users, name)
        assert await footprint(users) == (5, 9, 9)


# -- (d) and (e): servers stopped and restarted under running writers ---------------------


@dataclass(frozen=True)
class Outcome:
    """One write of a writer loop: ``started``/``ended`` name the phase at either end."""

    item_id: str
    data: dict[str, Any]
    started: str
    ended: str
    ov: int | None = None  # set when acknowledged
    error: ChronosError | None = None  # set when it failed with a typed error


@dataclass
class Ledger:
    """What the writers saw: acknowledged writes, typed failures, anything else."""

    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    untyped: list[BaseException] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def acked(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is None]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def count(self, ended: str, item_id: str | None = None, *, ok: bool) -> int:
        rows = self.acked if ok else self.failed
        return sum(1 for o in rows if o.ended == ended and item_id in (None, o.item_id))

    async def until(self, what: str, predicate: Callable[[], bool]) -> None:
        """Wait (at most a minute) until ``predicate()`` holds after some write finished."""
        try:
            async with asyncio.timeout(60), self.changed:
                await self.changed.wait_for(predicate)
        except TimeoutError:
            pytest.fail(f"timed out waiting for {what}: {self.summary()}")

    def summary(self) -> str:
        phases = ("before", "outage", "after")
        acked = {p: self.count(p, ok=True) for p in phases}
        failed = {p: self.count(p, ok=False) for p in phases}
        maybe = sum(1 for o in self.failed if getattr(o.error, "outcome_unknown", False))
        conflicts = sum(1 for o in self.failed if isinstance(o.error, VersionConflictError))
        return (
            f"acked {acked}, failed {failed} (by the phase they ended in); "
            f"outcome unknown {maybe}, roll-forward conflicts {conflicts}"
        )


async def write_loop(users: Collection, item_id: str, ledger: Ledger, stop: asyncio.Event) -> None:
    """Update one record until ``stop``; every outcome goes to the ledger."""
    n = 0
    while not stop.is_set():
        n += 1
        # Alternate payloads kept inline on the head with ones that live only in the store.
        data = {"writer": item_id, "n": n, "pad": BIG if n % 2 else "small"}
        started = ledger.phase
        try:
            result = await users.update(item_id, data, expected_ov=None)
        except ChronosError as exc:
            ledger.outcomes.append(Outcome(item_id, data, started, ledger.phase, error=exc))
        except Exception as exc:  # collected, and reported by check_ledger
            ledger.untyped.append(exc)
        else:
            ledger.outcomes.append(Outcome(item_id, data, started, ledger.phase, ov=result.ov))
        async with ledger.changed:
            ledger.changed.notify_all()


async def check_ledger(users: Collection, ledger: Ledger, ids: list[str]) -> None:
    """No untyped error, no failure once the server was back, and every acknowledged write
    is there, readable, at its ``ov``."""
    assert not ledger.untyped, ledger.untyped
    # Once the server is back, writes succeed; the one exception is the first write of a
    # record whose outage-time claim could not be withdrawn: it rolls that claim forward
    # and reports a conflict (typed, and the record is consistent).
    late = [o for o in ledger.failed if o.started == "after"]
    assert all(isinstance(o.error, VersionConflictError) for o in late), late
    assert len(late) == len({o.item_id for o in late}), late
    seen: set[tuple[str, int]] = set()
    for o in ledger.acked:
        assert o.ov is not None and (o.item_id, o.ov) not in seen, f"{o} acknowledged twice"
        seen.add((o.item_id, o.ov))
        item = await users.get_version(o.item_id, o.ov)
        assert item is not None and item.data == o.data, f"lost acknowledged write {o}"
    for item_id in ids:
        ovs = await readable_history(users, item_id)
        assert ovs == list(range(ovs[0], -1, -1))
        assert ovs[0] >= max(o.ov or 0 for o in ledger.acked if o.item_id == item_id)


async def run_outage(
    users: Collection,
    ids: list[str],
    ledger: Ledger,
    *,
    stop_server: Callable[[], Awaitable[None]],
    during_outage: Callable[[], Awaitable[None]],
    restart_server: Callable[[], Awaitable[None]],
) -> None:
    """Writers on ``ids`` run while the server is stopped, then restarted."""
    stop = asyncio.Event()
    writers = [asyncio.create_task(write_loop(users, rid, ledger, stop)) for rid in ids]
    down = False
    try:
        # Every step below has its own bound; this one turns any hang into a traceback
        # that shows where the outage sequence was waiting.
        async with asyncio.timeout(240):
            await ledger.until(
                "writes before the outage", lambda: ledger.count("before", ok=True) > 11
            )
            ledger.phase = "outage"
            down = True
            await stop_server()
            await ledger.until(
                "a failure of every writer during the outage",
                lambda: all(ledger.count("outage", rid, ok=False) >= 1 for rid in ids),
            )
            await during_outage()
            await restart_server()
            down = False
            ledger.phase = "after"
            await ledger.until(
                "writes of every writer after the restart",
                lambda: all(ledger.count("after", rid, ok=True) >= 3 for rid in ids),
            )
    finally:
        stop.set()
        if down:  # failed mid-outage: bring the server back before waiting for the writers
            await restart_server()
        await _settle(writers)


async def _settle(writers: list[asyncio.Task[None]]) -> None:
    """Wait for the writers to stop; one still busy after a minute fails with its stack."""
    _, stuck = await asyncio.wait(writers, timeout=60)
    if stuck:
        stacks = io.StringIO()
        for task in stuck:
            task.print_stack(file=stacks)
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        pytest.fail(f"{len(stuck)} writer(s) still busy a minute after stop:\n{stacks.getvalue()}")
    for task in writers:
        task.result()  # a writer that crashed fails the test


def _external(*names: str) -> bool:
    return any(os.environ.get(name) for name in names)


FAULTS_BUCKETS = ("faults-json", "faults-content", "faults-backups")


@pytest.mark.slow
@pytest.mark.skipif(
    _external("CHRONOS_TEST_S3_ENDPOINT"),
    reason="stops and restarts its S3 server: not possible with CHRONOS_TEST_S3_* (external)",
)
async def test_s3_server_killed_and_restarted(
    make_config: Any, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = S3Credentials("CHRONOSFAULTS", "fault-injection-secret")
    async with own_weed(tmp_path, creds, FAULTS_BUCKETS) as weed:
        config = make_config(
            "s3", leases={"lease_ms": 1000, "wait_ms": 5000}, spaces_conns=[weed.conn()]
        )
        async with Chronos(config) as chronos:
            users = chronos.collection("users", db=db_name)
            ids = [f"w{i}" for i in range(4)]
            for rid in ids:
                await users.create({"writer": rid, "n": 0}, id=rid)
            small = await users.create({"kept": "inline"}, id="small-one")
            big = await users.create({"kept": "in the store", "pad": BIG}, id="big-one")
            ledger = Ledger()

            async def during_outage() -> None:
                # Reads of payloads kept inline on the head need no S3 ...
                item = await users.get_latest(small.id)
                assert item is not None and item.data == {"kept": "inline"}
                # ... the others fail, typed and retryable.
                with pytest.raises(StorageError) as read_error:
                    await users.get_latest(big.id)
                assert read_error.value.retryable

            async def restart() -> None:
                # Same ports, so the running Chronos (its S3 client) simply reconnects.
                await weed.restart(monkeypatch)

            await run_outage(
                users,
                ids,
                ledger,
                stop_server=weed.kill,
                during_outage=during_outage,
                restart_server=restart,
            )
            # Every failure is the outage's: typed, retryable (a refused connection).
            failures = [o.error for o in ledger.failed]
            assert ledger.count("outage", ok=False) >= len(ids)
            assert all(isinstance(e, StorageError) and e.retryable for e in failures), failures
            await check_ledger(users, ledger, ids)
            assert (await users.get_latest(big.id)) is not None
            await assert_clean(chronos, db_name, reconcile=True)
            print(f"S3 outage: {ledger.summary()}")


@pytest.mark.slow
@pytest.mark.skipif(
    _external("CHRONOS_TEST_MONGO_URI"),
    reason="stops and restarts its MongoDB: not possible with CHRONOS_TEST_MONGO_URI (external)",
)
async def test_mongo_unreachable_then_back(
    make_config: Any, db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "nx-data"  # survives the restart

    def start(n: int) -> Awaitable[NxServer]:
        return start_nx(tmp_path / f"nx-{n}", data_dir=data_dir)

    nx = await start(1)
    servers = [nx]
    try:
        config = make_config(
            "local",
            mongo_uris=[nx.uri],
            mongo_client={"server_selection_timeout_ms": 500, "connect_timeout_ms": 500},
            leases={"lease_ms": 500, "wait_ms": 5000},
        )
        async with Chronos(config) as chronos:
            users = chronos.collection("users", db=db_name)
            ids = [f"w{i}" for i in range(4)]
            for rid in ids:
                await users.create({"writer": rid, "n": 0}, id=rid)
            ledger = Ledger()

            async def during_outage() -> None:
                with pytest.raises(StorageError) as read_error:
                    await users.get_latest(ids[0])
                assert read_error.value.retryable

            async def restart() -> None:
                # Same port and data folder: pymongo reconnects by itself.
                restarted = restart_on_same_ports(monkeypatch, [nx.port], lambda: start(2))
                servers.append(await restarted)

            await run_outage(
                users,
                ids,
                ledger,
                stop_server=lambda: kill(nx),
                during_outage=during_outage,
                restart_server=restart,
            )
            assert ledger.count("outage", ok=False) >= len(ids)
            for o in ledger.failed:
                if o.started == "after":
                    continue  # a roll-forward conflict (see check_ledger)
                # Retryable, or (a write that had claimed its version) outcome unknown.
                exc = o.error
                assert isinstance(exc, StorageError) and (exc.retryable or exc.outcome_unknown), o
            await check_ledger(users, ledger, ids)
            await assert_clean(chronos, db_name, reconcile=True)
            print(f"MongoDB outage: {ledger.summary()}")
    finally:
        # Closed above while the server was up again (a client closed while dialing a dead
        # port leaks a socket); now the servers can go.
        for server in servers:
            await kill(server)
