"""The record commands of the command line: ``history``, ``show``, ``diff``, ``restore``,
``restore-collection`` (see :mod:`chronos_async.__main__`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

import orjson

from chronos_async._cli_common import (
    check_target,
    int_at_least,
    load_config,
    print_json,
    print_table,
    progress_bar,
)

if TYPE_CHECKING:
    from chronos_async import Collection, Item

__all__ = ["RECORD_COMMANDS", "add_record_parsers", "run_record"]

#: The commands :func:`run_record` runs.
RECORD_COMMANDS = frozenset({"history", "show", "diff", "restore", "restore-collection"})


_non_negative = int_at_least(0)


def add_record_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """The record commands; ``common`` holds ``--config`` and ``--json``."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--db", required=True, help="the database")
    where.add_argument("--collection", required=True, help="the collection")
    where.add_argument("--tenant", default=None, help="the tenant (default: none)")
    record = argparse.ArgumentParser(add_help=False, parents=[common, where])
    record.add_argument("id", metavar="ID", help="the record id")
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--actor", default="chronos-async-cli", help="recorded as the actor")
    who.add_argument("--reason", default=None, help="recorded as the reason")

    commands.add_parser(
        "history",
        parents=[record],
        help="every version of a record, newest first; exit 1 if it has none",
        description="Every version of a record, newest first. Exit 1 if it has none.",
    )
    show = commands.add_parser(
        "show",
        parents=[record],
        help="a record now, at a version or at a time; exit 1 if there is none",
        description="A record: the latest version, version --ov N, or its state --at T "
        "(ISO-8601). Deleted records are shown too. Exit 1 if there is none.",
    )
    when = show.add_mutually_exclusive_group()
    when.add_argument("--ov", type=_non_negative, default=None, help="this version")
    when.add_argument("--at", default=None, metavar="T", help="its state at this time")
    diff = commands.add_parser(
        "diff",
        parents=[record],
        help="the JSON Patch from version A to version B",
        description="The RFC 6902 JSON Patch from version A's data to version B's.",
    )
    diff.add_argument("from_ov", metavar="A", type=_non_negative)
    diff.add_argument("to_ov", metavar="B", type=_non_negative)
    restore = commands.add_parser(
        "restore",
        parents=[record, who],
        help="append a version equal to version --ov N or the state --at T",
        description="Append a version whose data is version --ov N's or the record's "
        "state --at T (history keeps everything).",
    )
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--ov", type=_non_negative, default=None)
    target.add_argument("--at", default=None, metavar="T")
    collection = commands.add_parser(
        "restore-collection",
        parents=[common, where, who],
        help="return every record to its state at --cv N or --at T",
        description="Return every record of the collection (and tenant) to its state at "
        "collection version --cv N or time --at T, append-only. Exit 1 if some failed.",
    )
    back = collection.add_mutually_exclusive_group(required=True)
    back.add_argument("--cv", type=_non_negative, default=None)
    back.add_argument("--at", default=None, metavar="T")
    collection.add_argument("--concurrency", type=int, default=None, help="records at a time")


async def run_record(args: argparse.Namespace) -> int:
    """Run one record command; its exit status."""
    from chronos_async import Chronos

    async with Chronos(load_config(args.config)) as chronos:
        await check_target(chronos, args.db, args.collection)
        coll: Collection = chronos.collection(args.collection, db=args.db, tenant=args.tenant)
        if args.command == "history":
            return await _history(coll, args)
        if args.command == "show":
            return await _show(coll, args)
        if args.command == "diff":
            ops = await coll.diff(args.id, args.from_ov, args.to_ov)
            if args.json:
                print_json(ops)
            else:
                for op in ops:
                    print(orjson.dumps(op).decode())
            return 0
        if args.command == "restore":
            result = await coll.restore_object(
                args.id, ov=args.ov, at=args.at, actor=args.actor, reason=args.reason
            )
            if args.json:
                print_json(result)
            else:
                when = result.at.isoformat()
                print(f"restored {args.id}: new version ov={result.ov} cv={result.cv} at {when}")
            return 0
        with progress_bar("restoring", quiet=args.json) as advance:
            report = await coll.restore_collection(
                cv=args.cv,
                at=args.at,
                actor=args.actor,
                reason=args.reason,
                concurrency=args.concurrency,
                progress=lambda done, total: advance(done, total),
            )
        if args.json:
            print_json(report)
        else:
            counts = [
                (name, len(getattr(report, name)))
                for name in ("restored", "deleted", "undeleted", "unchanged", "failed")
            ]
            print_table("restore-collection", ("records", "count"), counts)
            for item_id, why in report.failed:
                print(f"failed: {item_id}: {why}")
        return 1 if report.failed else 0


async def _history(coll: Collection, args: argparse.Namespace) -> int:
    versions = [v async for v in coll.history(args.id)]
    if args.json:
        print_json(versions)
    elif versions:
        print_table(
            f"history of {args.id}",
            ("ov", "cv", "at", "op", "actor", "reason", "size", "function", "restored from"),
            [
                (v.ov, v.cv, v.at, v.op, v.actor, v.reason, v.size, v.function_id, v.restored_from)
                for v in versions
            ],
        )
    else:
        print(f"no record {args.id!r}")
    return 0 if versions else 1


async def _show(coll: Collection, args: argparse.Namespace) -> int:
    item: Item | None
    if args.ov is not None:
        item = await coll.get_version(args.id, args.ov)
    elif args.at is not None:
        item = await coll.get_as_of(args.id, args.at)
    else:
        item = await coll.get_latest(args.id, include_deleted=True)
    if item is None:
        if args.json:
            print_json(None)
        else:
            print(f"no record {args.id!r}" + ("" if args.ov is None else f" at ov={args.ov}"))
        return 1
    if args.json:
        print_json(item)
        return 0
    facts: list[tuple[str, Any]] = [
        (name, getattr(item, name))
        for name in (
            "id",
            "ov",
            "cv",
            "created_at",
            "updated_at",
            "deleted",
            "deleted_at",
            "actor",
            "reason",
            "parent_id",
            "origin_id",
            "function_ids",
        )
    ]
    print_table(None, ("field", "value"), facts)
    data = item.data.model_dump(mode="json") if hasattr(item.data, "model_dump") else item.data
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0
