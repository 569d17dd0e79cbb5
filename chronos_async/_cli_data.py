"""The data commands of the command line: ``totals``, ``recount``, ``rollup``, ``prune``,
``expire`` and ``purge`` (see :mod:`chronos_async.__main__`).

``expire`` and ``purge`` delete history for good: without ``--yes`` they only say what
they would do and exit 2, before connecting to anything.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from chronos_async._cli_common import (
    UsageError,
    check_target,
    int_at_least,
    load_config,
    print_json,
    print_table,
    progress_bar,
)

if TYPE_CHECKING:
    from chronos_async import Chronos

__all__ = ["DATA_COMMANDS", "add_data_parsers", "run_data"]

#: The commands :func:`run_data` runs.
DATA_COMMANDS = frozenset({"totals", "recount", "rollup", "prune", "expire", "purge"})


def add_data_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The data commands; ``common`` holds ``--config`` and ``--json``."""
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--db", default=None, help="one database (default: all)")
    target.add_argument("--collection", default=None, help="one collection of --db")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--db", required=True, help="the database")
    where.add_argument("--collection", required=True, help="the collection")
    yes = argparse.ArgumentParser(add_help=False)
    yes.add_argument("--yes", action="store_true", help="really delete (it cannot be undone)")

    totals = commands.add_parser(
        "totals",
        parents=[common, where],
        help="the counters of a collection (needs counters in the config)",
        description="The counters of a collection: event counts, rules, gauges and unique "
        "values. Exit 2 if the config has no 'counters' section or 'counter_rules'.",
    )
    totals.add_argument("--tenant", default=None, help="the tenant (default: none)")
    commands.add_parser(
        "recount",
        parents=[common, target],
        help="rebuild the counters from the version index; list what it corrected",
        description="Rebuild the counters from the version index and the heads, under the "
        "rules in force now, and list the fields it corrected. Run it with no writes to "
        "the collection in flight.",
    )
    commands.add_parser(
        "rollup",
        parents=[common, target],
        help="move versions beyond the retention rule into manifests; exit 1 on failures",
        description="Move the versions beyond each collection's version_retention rule "
        "from the live index into manifests (history keeps them). Exit 1 if some failed.",
    )
    prune = commands.add_parser(
        "prune",
        parents=[common, target],
        help="finish interrupted rollups, remove stale manifests; exit 1 on failures",
        description="Finish interrupted rollups and remove manifest objects no catalog "
        "entry names (older than the grace period). Never removes history.",
    )
    prune.add_argument(
        "--grace-seconds",
        type=float,
        default=600.0,
        metavar="S",
        help="manifests younger than this are in flight, not stale (default 600)",
    )
    expire = commands.add_parser(
        "expire",
        parents=[common, where, yes],
        help="delete history before a time, for good (needs --yes)",
        description="Delete, for good, the versions committed before --before (all but "
        "the newest --keep-last of each record; never the current one) and the payloads "
        "no remaining version needs. Without --yes: say so and exit 2.",
    )
    expire.add_argument("--before", required=True, metavar="T", help="ISO-8601, with offset")
    expire.add_argument(
        "--keep-last",
        type=int_at_least(1),
        default=1,
        metavar="N",
        help="versions of each record always kept (default 1)",
    )
    purge = commands.add_parser(
        "purge",
        parents=[common, where, yes],
        help="erase one record everywhere, for good, leaving a tombstone (needs --yes)",
        description="Erase record --id everywhere (head, versions, payloads, content, "
        "packs, queued writes, keys) for good, leaving a tombstone with who, when and why. "
        "Needs hard_delete_enabled in the config. Without --yes: say so and exit 2.",
    )
    purge.add_argument("--id", required=True, help="the record id")
    purge.add_argument("--tenant", default=None, help="the tenant (default: none)")
    purge.add_argument("--reason", required=True, help="kept on the tombstone")
    purge.add_argument("--actor", default="chronos-async-cli", help="kept on the tombstone")


def _refuse_without_yes(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` saying what ``expire`` or ``purge`` would delete."""
    if args.yes:
        return
    where = f"{args.db}.{args.collection}"
    if args.command == "expire":
        from chronos_async._read import parse_at

        parse_at(args.before)  # a bad time is reported as such, not as a missing --yes
        plan = (
            f"expire would delete, for good, the versions of {where} committed before "
            f"{args.before} (keeping the newest {args.keep_last} of each record) and the "
            "payloads no remaining version needs"
        )
    else:
        tenant = "" if args.tenant is None else f" of tenant {args.tenant!r}"
        plan = (
            f"purge would erase record {args.id!r}{tenant} from {where} for good: its "
            "head, every version, payloads, content, queued writes and keys"
        )
    raise UsageError(f"{plan}. Nothing was changed: add --yes to do it")


async def run_data(args: argparse.Namespace) -> int:
    """Run one data command; its exit status."""
    from chronos_async import Chronos

    if args.command in ("expire", "purge"):
        _refuse_without_yes(args)
    async with Chronos(load_config(args.config)) as chronos:
        await check_target(chronos, args.db, args.collection)
        if args.command == "totals":
            return await _totals(chronos, args)
        if args.command == "recount":
            counted = await chronos.admin.recount(args.db, args.collection)
            if args.json:
                print_json(counted)
                return 0
            _show_counts("recount", counted)
            for d in counted.corrected:  # one line each: whole, for grep
                tenant = "" if d.tenant is None else f" (tenant {d.tenant})"
                print(
                    f"corrected {d.db}.{d.collection}{tenant} {d.field}: {d.stored} -> {d.expected}"
                )
            return 0
        if args.command == "purge":
            purged = await chronos.admin.purge(
                db=args.db,
                collection=args.collection,
                id=args.id,
                tenant=args.tenant,
                reason=args.reason,
                actor=args.actor,
            )
            if args.json:
                print_json(purged)
                return 0
            _show_counts("purge", purged)
            print(
                f"purged {args.id!r}" if purged.found else f"no record {args.id!r}; leftovers swept"
            )
            print(f"tombstone: {purged.tombstone}")
            return 0
        report: Any
        with progress_bar(f"{args.command}: records", quiet=args.json) as advance:
            if args.command == "rollup":
                report = await chronos.admin.rollup_now(args.db, args.collection, progress=advance)
            elif args.command == "prune":
                report = await chronos.admin.prune_now(
                    args.db, args.collection, grace_seconds=args.grace_seconds, progress=advance
                )
            else:
                report = await chronos.admin.expire(
                    args.db,
                    args.collection,
                    before=args.before,
                    keep_last=args.keep_last,
                    progress=advance,
                )
        if args.json:
            print_json(report)
        else:
            _show_counts(args.command, report)
            for where, why in report.failed:
                print(f"failed: {where}: {why}")
        return 1 if report.failed else 0


async def _totals(chronos: Chronos, args: argparse.Namespace) -> int:
    totals = await chronos.counters.get_totals(
        db=args.db, collection=args.collection, tenant=args.tenant
    )
    if args.json:
        print_json(totals)
        return 0
    title = f"totals of {args.db}.{args.collection}"
    if args.tenant is not None:
        title += f" (tenant {args.tenant})"
    rows: list[tuple[str, Any]] = sorted(totals.as_dict().items())
    rows.append(("reset_at", totals.reset_at))
    print_table(title, ("counter", "value"), rows)
    return 0


def _show_counts(title: str, report: Any) -> None:
    """The report's counts as a ``what | count`` table (lists are shown by length)."""
    rows = []
    for f in fields(report):
        if f.name == "tombstone":
            continue
        value = getattr(report, f.name)
        rows.append((f.name, len(value) if isinstance(value, tuple) else value))
    print_table(title, ("what", "count"), rows)
