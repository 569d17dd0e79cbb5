"""The ``fallback`` command group of the command line (see :mod:`chronos_async.__main__`)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, get_args

import orjson

from chronos_async._cli_common import int_at_least, without_worker
from chronos_async._models import Operation

if TYPE_CHECKING:
    from chronos_async import ChronosConfig, Fallback, FallbackOp

__all__ = ["add_fallback_parser", "run_fallback"]


def add_fallback_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``fallback`` command group: one sub-command per queue action."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, metavar="FILE", help="a ChronosConfig JSON file")
    common.add_argument("--json", action="store_true", help="print one JSON document")
    group = commands.add_parser(
        "fallback",
        help="inspect and operate the fallback queue (never starts its worker)",
        description="Inspect and operate the fallback queue; its worker is never started.",
        epilog="exit status: 0 done (or found); 1 no such dead letter (retry), not "
        "cancellable (cancel), unknown operation (status); 2 usage, configuration or "
        "backend error",
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("stats", parents=[common], help="counts of the queue")
    dead = actions.add_parser(
        "dead-letters",
        parents=[common],
        help="list dead letters, newest first",
        description="List dead letters, newest first.",
    )
    dead.add_argument("--op", choices=get_args(Operation), default=None, help="one operation")
    dead.add_argument("--db", default=None, help="one database")
    dead.add_argument("--collection", default=None, help="one collection")
    dead.add_argument("--tenant", default=None, help="one tenant")
    dead.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N (default 50)"
    )
    for name, text in (
        ("retry", "queue a dead letter again; exit 1 if there is no such dead letter"),
        ("cancel", "cancel a waiting operation; exit 1 if it cannot be cancelled"),
        ("status", "show one operation; exit 1 if it is unknown"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text)
        action.add_argument("op_id", metavar="OP_ID", help="the operation id (op_...)")


_positive_int = int_at_least(1)


def _without_worker(config: ChronosConfig) -> ChronosConfig:
    """:func:`~chronos_async._cli_common.without_worker`, validated again: the command
    line inspects and changes the queue, and a CLI process draining it would be a surprise.

    Raises :class:`~chronos_async.ConfigError` when the fallback queue is disabled.
    """
    from chronos_async import ConfigError

    section = config.fallback
    if section is None or not section.enabled:
        raise ConfigError("the fallback queue is disabled in this config (set fallback.enabled)")
    return without_worker(config)


def _emit(document: object) -> None:
    """Print one JSON document (dataclasses as objects, datetimes in ISO-8601)."""
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def _table(rows: Sequence[Sequence[object]]) -> str:
    """Rows as left-aligned columns (the last one is not padded)."""
    cells = [[" ".join(str(cell).split()) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines = (
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in cells
    )
    return "\n".join(line.rstrip() for line in lines)


def _where(op: FallbackOp) -> str:
    return f"{op.db}.{op.collection}"


def _describe_op(op: FallbackOp) -> str:
    """One operation as ``key  value`` lines."""
    result = op.result
    return _table(
        [
            ("op id", op.op_id),
            ("state", op.state),
            ("op", op.op),
            ("collection", _where(op)),
            ("tenant", op.tenant or "-"),
            ("record id", op.id),
            ("attempts", op.attempts),
            ("created at", op.created_at.isoformat()),
            ("next at", op.next_at.isoformat() if op.next_at is not None else "-"),
            ("last error", op.last_error or "-"),
            ("reason", op.reason or "-"),
            (
                "result",
                "-"
                if result is None
                else f"ov={result.ov} cv={result.cv} at={result.at.isoformat()}"
                + ("" if result.changed else " (unchanged)"),
            ),
        ]
    )


async def _fallback_stats(queue: Fallback, args: argparse.Namespace) -> int:
    stats = await queue.get_queue_stats()
    if args.json:
        _emit(stats)
        return 0
    by_op = ", ".join(f"{op}={n}" for op, n in sorted(stats.by_op.items())) or "-"
    print(
        _table(
            [
                ("queued", stats.queued),
                ("running", stats.running),
                ("done", stats.done),
                ("cancelled", stats.cancelled),
                ("dead", stats.dead),
                ("spooled", stats.spooled),
                ("oldest waiting", f"{stats.oldest_waiting_s:.1f} s"),
                ("waiting by op", by_op),
            ]
        )
    )
    return 0


def _dead_letter_filter(args: argparse.Namespace) -> dict[str, str]:
    """The ``get_dead_letter_ops`` filter of the options given (``op``, ``db``, ...)."""
    chosen = {"op": args.op, "db": args.db, "collection": args.collection, "tenant": args.tenant}
    return {key: value for key, value in chosen.items() if value is not None}


async def _fallback_dead_letters(queue: Fallback, args: argparse.Namespace) -> int:
    found = await queue.get_dead_letter_ops(_dead_letter_filter(args), args.limit)
    if args.json:
        _emit({"dead_letters": found})
        return 0
    if not found:
        print("no dead letters")
        return 0
    header = ("OP ID", "OP", "COLLECTION", "TENANT", "RECORD ID", "ATTEMPTS", "REASON")
    rows = [
        (d.op_id, d.op, _where(d), d.tenant or "-", d.id, d.attempts, d.reason or "-")
        for d in found
    ]
    print(_table([header, *rows]))
    print(f"{len(found)} dead letter(s)")
    return 0


async def _after_change(queue: Fallback, op_id: str) -> tuple[FallbackOp | None, str]:
    """Where ``op_id`` stands after ``retry`` or ``cancel``, and that as a reason.

    Only informative: when a backend does not answer now, the change's own outcome (and
    exit status) still stands, and the operation is reported as ``None``.
    """
    from chronos_async import StorageError

    try:
        current = await queue.status(op_id)
    except StorageError as exc:
        return None, f"its state is unknown ({exc})"
    return current, "unknown operation" if current is None else f"it is {current.state}"


async def _fallback_retry(queue: Fallback, args: argparse.Namespace) -> int:
    retried = await queue.retry_dead_letter(args.op_id)
    current, why = await _after_change(queue, args.op_id)
    if args.json:
        _emit({"op_id": args.op_id, "retried": retried, "operation": current})
    elif retried:
        print(f"{args.op_id} queued again (attempts reset); the next worker to run applies it")
    else:
        print(f"{args.op_id} is not a dead letter: {why}")
    return 0 if retried else 1


async def _fallback_cancel(queue: Fallback, args: argparse.Namespace) -> int:
    cancelled = await queue.cancel_op(args.op_id)
    current, why = await _after_change(queue, args.op_id)
    if args.json:
        _emit({"op_id": args.op_id, "cancelled": cancelled, "operation": current})
    elif cancelled:
        print(f"{args.op_id} cancelled")
    else:
        print(f"{args.op_id} not cancelled: {why}")
    return 0 if cancelled else 1


async def _fallback_status(queue: Fallback, args: argparse.Namespace) -> int:
    current = await queue.status(args.op_id)
    if args.json:
        _emit({"op_id": args.op_id, "operation": current})
    else:
        print(f"{args.op_id}: unknown operation" if current is None else _describe_op(current))
    return 1 if current is None else 0


_FALLBACK_ACTIONS: dict[str, Callable[[Fallback, argparse.Namespace], Awaitable[int]]] = {
    "stats": _fallback_stats,
    "dead-letters": _fallback_dead_letters,
    "retry": _fallback_retry,
    "cancel": _fallback_cancel,
    "status": _fallback_status,
}


async def run_fallback(args: argparse.Namespace) -> int:
    from chronos_async import Chronos, ChronosConfig

    config = _without_worker(ChronosConfig.from_file(args.config))
    async with Chronos(config) as chronos:
        return await _FALLBACK_ACTIONS[args.action](chronos.fallback, args)
