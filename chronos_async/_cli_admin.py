"""The operator's commands of the command line: ``health``, ``verify``, ``repair``,
``reconcile`` (see :mod:`chronos_async.__main__`)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING

from chronos_async._cli_common import (
    check_target,
    load_config,
    print_json,
    print_table,
    progress_bar,
)

if TYPE_CHECKING:
    from chronos_async import ReconcileReport, VerifyReport

__all__ = ["ADMIN_COMMANDS", "add_admin_parsers", "run_admin"]

#: Kinds of problem that ``reconcile`` fixes (``--dry-run`` lists them).
_FIXABLE = ("unpublished_claim", "versions_without_head", "orphan_payload", "orphan_content")


def add_admin_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """``health``, ``verify``, ``repair`` and ``reconcile``; ``common`` holds ``--config``
    and ``--json``."""
    commands.add_parser(
        "health",
        parents=[common],
        help="ping every backend's MongoDB and payload store; exit 1 if one is down",
        description="Ping every backend's MongoDB and payload store. Exit 1 if one is down.",
    )
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--db", default=None, help="one database (default: all)")
    target.add_argument("--collection", default=None, help="one collection of --db")
    grace = argparse.ArgumentParser(add_help=False)
    grace.add_argument(
        "--grace-seconds",
        type=float,
        default=3600.0,
        metavar="S",
        help="objects younger than this are in flight, not orphans (default 3600)",
    )
    verify = commands.add_parser(
        "verify",
        parents=[common, target, grace],
        help="check every invariant; exit 1 on violations",
        description="Check every invariant, reading only. Exit 0 clean, 1 violations found, "
        "2 usage, configuration or connection error.",
    )
    verify.add_argument("--quick", action="store_true", help="check presence, not hashes")
    commands.add_parser(
        "repair",
        parents=[common, target],
        help="publish versions whose writers died (roll forward)",
        description="Publish versions whose writers died between claim and publication.",
    )
    reconcile = commands.add_parser(
        "reconcile",
        parents=[common, target, grace],
        help="repair, remove orphan payloads, compact packs",
        description="Repair, then remove payloads no version refers to (older than the "
        "grace period) and compact packs. --dry-run lists what would be done.",
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="list what would be done; change nothing"
    )
    reconcile.add_argument(
        "--compact-below",
        type=float,
        default=0.5,
        metavar="R",
        help="compact packs whose live bytes are below this ratio (default 0.5)",
    )


#: The commands :func:`run_admin` runs.
ADMIN_COMMANDS = frozenset({"health", "verify", "repair", "reconcile"})


async def run_admin(args: argparse.Namespace) -> int:
    """Run one admin command; its exit status."""
    from chronos_async import Chronos

    async with Chronos(load_config(args.config)) as chronos:
        if args.command == "health":
            report = await chronos.admin.health()
            if args.json:
                print_json(report)
            else:
                rows = [
                    (
                        b.index,
                        b.store_kind,
                        "ok" if b.mongo_ok else "DOWN",
                        b.mongo_ms,
                        "ok" if b.store_ok else "DOWN",
                        b.store_ms,
                        b.transactions,
                        "; ".join(b.errors),
                    )
                    for b in report.backends
                ]
                print_table(
                    "health",
                    ("backend", "store", "mongo", "mongo ms", "store", "store ms", "txn", "errors"),
                    rows,
                )
            return 0 if report.ok else 1
        await check_target(chronos, args.db, args.collection)
        if args.command == "verify":
            with progress_bar("verifying", quiet=args.json) as advance:
                verified = await chronos.admin.verify(
                    args.db,
                    args.collection,
                    check_payloads=not args.quick,
                    grace_seconds=args.grace_seconds,
                    progress=lambda _collection, done: advance(done, None),
                )
            _show_verify(verified, json=args.json)
            return 0 if verified.ok else 1
        if args.command == "repair":
            _show_reconcile(await chronos.admin.repair(args.db, args.collection), args.json)
            return 0
        if args.dry_run:
            with progress_bar("scanning", quiet=args.json) as advance:
                found = await chronos.admin.verify(
                    args.db,
                    args.collection,
                    check_payloads=False,
                    grace_seconds=args.grace_seconds,
                    progress=lambda _collection, done: advance(done, None),
                )
            _show_plan(found, json=args.json)
            return 0
        with progress_bar("reconciling", quiet=args.json) as advance:
            done = await chronos.admin.reconcile(
                args.db,
                args.collection,
                grace_seconds=args.grace_seconds,
                compact_below=args.compact_below,
                progress=lambda _collection, n: advance(n, None),
            )
        _show_reconcile(done, args.json)
        return 0


def _show_verify(report: VerifyReport, *, json: bool) -> None:
    if json:
        print_json({"ok": report.ok, "counts": report.counts, "problems": report.problems})
        return
    print_table("checked", ("what", "count"), sorted(report.counts.items()))
    for problem in report.problems:  # one line each: whole, for grep
        print(problem)
    print("OK: no violations" if report.ok else f"FAILED: {len(report.problems)} violation(s)")


def _show_plan(report: VerifyReport, *, json: bool) -> None:
    """What ``reconcile`` would do, from a read-only scan."""
    todo = [p for p in report.problems if p.kind in _FIXABLE]
    left = [p for p in report.problems if p.kind not in _FIXABLE]
    dead = report.counts.get("pack_dead_bytes", 0)
    if json:
        print_json({"would_fix": todo, "not_fixable": left, "pack_dead_bytes": dead})
        return
    if todo:
        print(f"reconcile would fix {len(todo)} problem(s) (dry run: nothing changed):")
        for problem in todo:
            print(f"  {problem}")
    else:
        print("nothing to fix (dry run: nothing changed)")
    if dead:
        print(f"packs hold {dead} dead bytes; packs below --compact-below would be rewritten")
    if left:
        print(f"{len(left)} other violation(s) that reconcile does not fix: run verify")


def _show_reconcile(report: ReconcileReport, json: bool) -> None:
    if json:
        print_json(report)
        return
    print_table(
        "done", ("what", "count"), [(f.name, getattr(report, f.name)) for f in fields(report)]
    )
