"""The fallback queue in one process: queue on a retryable failure, apply once, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from chronos_async import (
    Chronos,
    ConfigError,
    DeadLetterError,
    LockLostError,
    LockTimeoutError,
    NotFoundError,
    OperationCancelledError,
    OperationPendingError,
    QueuedWrite,
    StorageError,
    ValidationError,
    VersionConflictError,
    WriteResult,
)
from chronos_async.fallback._ops import is_worth_retrying, retry_delay_s
from tests.support import Outage


@pytest_asyncio.fixture(loop_scope="session")
async def queued(make_config: Any, db_name: str) -> AsyncIterator[Chronos]:
    config = make_config(
        "local",
        fallback={
            "enabled": True,
            "auto_start": False,
            "base_delay_ms": 10,
            "max_delay_ms": 50,
            "max_attempts": 3,
            "poll_ms": 20,
            "database": f"{db_name}_sys",
        },
    )
    async with Chronos(config) as chronos:
        yield chronos


async def test_a_failed_write_is_queued_and_applied_once(queued: Chronos, db_name: str) -> None:
    orders = queued.fallback.collection("orders", db=db_name)
    outage = Outage()
    with queued.checkpoints.hook(outage):
        first = await orders.create({"total": 1})
        assert isinstance(first, QueuedWrite) and first.queued and not first.spooled
    stats = await queued.fallback.get_queue_stats()
    assert stats.queued >= 1 and stats.by_op.get("create") == 1
    assert await orders.plain.get_latest(first.id) is None  # not visible until applied
    outage.down = False
    await queued.fallback.start_worker()
    result = await queued.fallback.wait(first.op_id, timeout=10)
    assert result.id == first.id and result.ov == 0
    item = await orders.plain.get_latest(first.id)
    assert item is not None and item.data == {"total": 1}
    assert [v.ov async for v in orders.plain.history(first.id)] == [0]
    assert (await queued.fallback.status(first.op_id)).state == "done"  # type: ignore[union-attr]


async def test_final_errors_are_never_queued(queued: Chronos, db_name: str) -> None:
    orders = queued.fallback.collection("orders", db=db_name)
    r = await orders.create({"total": 1})
    assert isinstance(r, WriteResult)
    with pytest.raises(VersionConflictError):
        await orders.update(r.id, {"total": 2}, expected_ov=5)
    with pytest.raises(ValidationError):
        await orders.create({"bad": float("nan")})
    with pytest.raises(NotFoundError):
        await orders.update("nobody", {"total": 2}, expected_ov=None)
    assert (await queued.fallback.get_queue_stats()).queued == 0


async def test_a_stale_queued_update_goes_to_the_dead_letters(
    queued: Chronos, db_name: str
) -> None:
    orders = queued.fallback.collection("orders", db=db_name)
    r = await orders.create({"total": 1})
    assert isinstance(r, WriteResult)
    outage = Outage()
    with queued.checkpoints.hook(outage):
        late = await orders.update(r.id, {"total": 2}, expected_ov=0)
    assert isinstance(late, QueuedWrite)
    await orders.plain.update(r.id, {"total": 3}, expected_ov=0)  # someone else moved on
    await queued.fallback.start_worker()
    with pytest.raises(DeadLetterError, match="VersionConflictError") as info:
        await queued.fallback.wait(late.op_id, timeout=10)
    assert info.value.op_id == late.op_id
    dead = await queued.fallback.get_dead_letter_ops({"op": "update"})
    assert [d.op_id for d in dead] == [late.op_id] and dead[0].state == "dead"
    latest = await orders.plain.get_latest(r.id)
    assert latest is not None and latest.data == {"total": 3}  # never applied over it


async def test_attempts_are_bounded_and_a_dead_letter_can_be_retried(
    queued: Chronos, db_name: str
) -> None:
    orders = queued.fallback.collection("orders", db=db_name)
    outage = Outage()
    with queued.checkpoints.hook(outage):
        op = await orders.create({"total": 7})
        assert isinstance(op, QueuedWrite)
        await queued.fallback.start_worker()
        with pytest.raises(DeadLetterError, match="gave up after 3 attempts"):
            await queued.fallback.wait(op.op_id, timeout=10)
    assert await queued.fallback.retry_dead_letter(op.op_id)
    result = await queued.fallback.wait(op.op_id, timeout=10)
    assert result.id == op.id
    assert [v.ov async for v in orders.plain.history(op.id)] == [0]
    assert not await queued.fallback.retry_dead_letter(op.op_id)


async def test_cancel_and_wait_timeouts(queued: Chronos, db_name: str) -> None:
    orders = queued.fallback.collection("orders", db=db_name)
    with queued.checkpoints.hook(Outage()):
        op = await orders.create({"total": 1})
    assert isinstance(op, QueuedWrite)
    with pytest.raises(OperationPendingError):
        await queued.fallback.wait(op.op_id, timeout=0.05)
    assert await queued.fallback.cancel_op(op.op_id)
    with pytest.raises(OperationCancelledError):
        await queued.fallback.wait(op.op_id, timeout=1)
    assert not await queued.fallback.cancel_op(op.op_id)
    with pytest.raises(NotFoundError):
        await queued.fallback.wait("op_nothing", timeout=1)


async def test_the_queue_needs_the_config(make_config: Any) -> None:
    async with Chronos(make_config("local")) as chronos:
        assert not chronos.fallback.enabled
        with pytest.raises(ConfigError):
            chronos.fallback.collection("orders", db="x")
        with pytest.raises(ConfigError):
            await chronos.fallback.get_queue_stats()


def test_retry_classification_and_delays() -> None:
    assert is_worth_retrying(StorageError("x", retryable=True))
    assert is_worth_retrying(StorageError("x", outcome_unknown=True))
    assert not is_worth_retrying(StorageError("x"))
    assert not is_worth_retrying(VersionConflictError(1, 2))
    assert not is_worth_retrying(LockLostError("r"))
    assert is_worth_retrying(LockTimeoutError("r", 10))
    assert not is_worth_retrying(ValueError("x"))
    for attempt in range(1, 30):
        delay = retry_delay_s(attempt, base_ms=100, max_ms=5000)
        assert 0 <= delay <= min(5.0, 0.1 * 2 ** (attempt - 1))


@pytest.mark.parametrize("op", ["create", "update", "enrich"])
async def test_two_attempts_of_one_operation_at_once_apply_it_once(
    make_config: Any, db_name: str, op: str
) -> None:
    """If a claim expires while its worker still runs (a stall), another worker runs the
    same operation at the same time: the replay under the record's lease (or, for a
    create, the shared record id) still applies it once."""
    config = make_config(
        "local",
        fallback={"enabled": True, "auto_start": False, "database": f"{db_name}_sys"},
    )
    async with Chronos(config) as one, Chronos(config) as two:
        orders = one.fallback.collection("orders", db=db_name)
        base = await orders.plain.create({"total": 0, "tags": []})
        with one.checkpoints.hook(Outage()):
            if op == "create":
                queued = await orders.create({"total": 1})
            elif op == "update":
                queued = await orders.update(base.id, {"total": 2}, expected_ov=0)
            else:
                queued = await orders.enrich(base.id, {"tags": ["x"]})
        assert isinstance(queued, QueuedWrite)
        await one.fallback.start_worker()
        await two.fallback.start_worker()
        await one.fallback.stop_worker()
        await two.fallback.stop_worker()
        [queue] = one.fallback.queues
        doc = await queue.ops.find_one({"_id": queued.op_id})
        assert doc is not None
        workers = [one.fallback._worker, two.fallback._worker]
        assert all(w is not None for w in workers)
        outcomes = await asyncio.gather(
            *(w._apply(doc) for w in workers if w is not None), return_exceptions=True
        )
        results = [r for r in outcomes if isinstance(r, WriteResult)]
        # One may have met the other's claim before it was published: "not settled yet"
        # (retryable: the worker would try again later).
        others = [r for r in outcomes if not isinstance(r, WriteResult)]
        assert all(isinstance(e, StorageError) and e.retryable for e in others), others
        assert results and all(r == results[0] for r in results)
        history = [v.ov async for v in orders.plain.history(queued.id)]
        assert history == ([0] if op == "create" else [1, 0])
