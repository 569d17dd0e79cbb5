"""Command line: ``python -m chronos_async demo | local-stack | verify | reconcile | fallback``.

``version`` prints the library version.

``verify`` exits 0 when the store is clean, 1 when it found violations, 2 on a usage or
configuration error (or when a backend cannot be reached).

``local-stack`` prints the stack's config with its credentials masked; ``--write-config
PATH`` also writes the real one (mode 0600) for ``verify --config PATH`` or an app.

``fallback ACTION --config FILE [--json]`` inspects and operates the fallback queue of a
config with ``fallback.enabled``. It never starts the queue's worker (``fallback.auto_start``
is turned off for the command): it changes the queue, it does not drain it.

- ``stats``: operations queued, running, done, dead, spooled; the oldest waiting one's age;
  the waiting ones by operation. Exit 0.
- ``dead-letters [--op OP] [--db DB] [--collection C] [--tenant T] [--limit N]``: the dead
  letters, newest first (at most 50 by default). Exit 0.
- ``retry OP_ID``: queue a dead letter again (attempts reset). Exit 0, or 1 when ``OP_ID``
  is not a dead letter.
- ``cancel OP_ID``: cancel an operation that waits (queued or spooled). Exit 0, or 1 when it
  cannot be cancelled (running, finished, unknown).
- ``status OP_ID``: where one operation stands. Exit 0, or 1 when it is unknown.

Every ``fallback`` action exits 2 on a usage or configuration error (a missing file, the
queue disabled) or when a backend cannot be reached, with the message on stderr. With
``--json`` it prints one JSON document (datetimes in ISO-8601), for exit 0 and 1 alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from chronos_async._cli_fallback import add_fallback_parser, run_fallback

if TYPE_CHECKING:
    from chronos_async import ChronosConfig

__all__ = ["main", "write_config"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chronos_async",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk through the basic operations on a local stack")
    demo.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    stack = commands.add_parser("local-stack", help="run nx-27017 + SeaweedFS until Ctrl-C")
    stack.add_argument("--data-dir", default=None, help="persist data here (default: temporary)")
    stack.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    stack.add_argument(
        "--write-config",
        metavar="PATH",
        default=None,
        help="also write the config with its real credentials to PATH (mode 0600)",
    )
    verify = commands.add_parser("verify", help="check every invariant; exit 1 on violations")
    reconcile = commands.add_parser(
        "reconcile", help="roll stuck versions forward and remove old orphan payloads"
    )
    for sub in (verify, reconcile):
        sub.add_argument("--config", required=True, help="a ChronosConfig JSON file")
        sub.add_argument("--db", default=None, help="one database (default: all)")
        sub.add_argument("--collection", default=None, help="one collection (default: all)")
        sub.add_argument("--grace-seconds", type=float, default=3600.0, help="orphan age limit")
    verify.add_argument("--quick", action="store_true", help="check presence, not hashes")
    add_fallback_parser(commands)
    commands.add_parser("version", help="print the library version")
    return parser


async def _verify(args: argparse.Namespace) -> int:
    from chronos_async import Chronos, ChronosConfig

    async with Chronos(ChronosConfig.from_file(args.config)) as chronos:
        report = await chronos.admin.verify(
            args.db,
            args.collection,
            check_payloads=not args.quick,
            grace_seconds=args.grace_seconds,
        )
    counts = ", ".join(f"{k}={v}" for k, v in sorted(report.counts.items()))
    print(f"checked: {counts}")
    for problem in report.problems:
        print(problem)
    print("OK: no violations" if report.ok else f"FAILED: {len(report.problems)} violation(s)")
    return 0 if report.ok else 1


async def _reconcile(args: argparse.Namespace) -> int:
    from chronos_async import Chronos, ChronosConfig

    async with Chronos(ChronosConfig.from_file(args.config)) as chronos:
        done = await chronos.admin.reconcile(
            args.db, args.collection, grace_seconds=args.grace_seconds
        )
    print(
        f"rolled forward: {done.rolled_forward}, adopted creations: {done.adopted_creates}, "
        f"orphan payloads removed: {done.orphans_removed}"
    )
    return 0


# -- config files -----------------------------------------------------------------------


def write_config(config: ChronosConfig, path: str | Path) -> Path:
    """Write ``config`` with its real credentials to ``path`` as JSON, readable by the owner
    only (mode 0600); returns the path written.

    The file is written next to ``path`` and renamed over it, so a reader never sees it
    half-written, and an existing file (or symlink) at ``path`` is replaced, not followed.
    """
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp creates it 0600
            out.write(config.to_json(reveal_secrets=True) + "\n")
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


async def _local_stack(data_dir: str | None, s3: bool, config_path: str | None) -> int:
    from chronos_async.embedded import LocalStack

    async with LocalStack(data_dir=data_dir, s3=s3) as stack:
        config = stack.config()
        print(config.model_dump_json(by_alias=True, indent=2, exclude_defaults=True), flush=True)
        if config_path is not None:
            try:
                written = write_config(config, config_path)
            except OSError as exc:
                print(f"error: cannot write {config_path}: {exc.strerror}", file=sys.stderr)
                return 2
            print(
                f"Config with credentials written to {written.resolve()} (mode 0600)",
                file=sys.stderr,
            )
        print("Local stack running; press Ctrl-C to stop.", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        from chronos_async import __version__

        print(__version__)
        return 0
    from chronos_async import ChronosError

    try:
        if args.command == "verify":
            return asyncio.run(_verify(args))
        if args.command == "reconcile":
            return asyncio.run(_reconcile(args))
        if args.command == "fallback":
            return asyncio.run(run_fallback(args))
        if args.command == "demo":
            from chronos_async._demo import run_demo

            asyncio.run(run_demo(s3=not args.no_s3))
        else:
            return asyncio.run(_local_stack(args.data_dir, not args.no_s3, args.write_config))
    except KeyboardInterrupt:
        return 130
    except ChronosError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
