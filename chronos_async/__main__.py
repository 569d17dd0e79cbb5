"""The command line: chronos-async, or python -m chronos_async.

Commands (COMMAND --help for each):

  demo                 walk through the basic operations on a local stack
  local-stack          run nx-27017 + SeaweedFS until Ctrl-C or SIGTERM
  health               ping every backend
  verify               check every invariant (exit 1 on violations)
  repair               roll forward versions whose writers died
  reconcile            repair, remove orphan payloads, compact packs (--dry-run)
  history | show | diff | restore | restore-collection   one record, one collection
  totals | recount     read the counters, rebuild them from the version index
  rollup | prune       move old versions into manifests, finish interrupted rollups
  expire | purge       delete history before a time, erase one record (need --yes)
  fallback             inspect and operate the fallback queue
  version              print the library version (also --version)

Every command that talks to the servers takes --config FILE (a ChronosConfig JSON file;
local-stack --write-config FILE writes one) and --json (one JSON document on stdout
instead of tables). Progress bars appear on a terminal only.

Exit status: 0 done; 1 the command's "no" (violations found, no such record or version,
a backend down, records that failed to restore, roll up, prune or expire); 2 usage,
configuration or connection error, an unknown database or collection, or expire/purge
without --yes (message on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from chronos_async._cli_admin import ADMIN_COMMANDS, add_admin_parsers, run_admin
from chronos_async._cli_common import UsageError
from chronos_async._cli_data import DATA_COMMANDS, add_data_parsers, run_data
from chronos_async._cli_fallback import add_fallback_parser, run_fallback
from chronos_async._cli_records import RECORD_COMMANDS, add_record_parsers, run_record

if TYPE_CHECKING:
    from chronos_async import ChronosConfig

__all__ = ["main", "write_config"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chronos-async",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the library version")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="walk through the basic operations on a local stack")
    demo.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    stack = commands.add_parser(
        "local-stack",
        help="run nx-27017 + SeaweedFS until Ctrl-C or SIGTERM",
        description="Run nx-27017 + SeaweedFS until Ctrl-C or SIGTERM, then stop both and "
        "remove their temporary folders. Prints the config (credentials masked); "
        "--write-config also writes the real one for --config.",
    )
    stack.add_argument("--data-dir", default=None, help="persist data here (default: temporary)")
    stack.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    stack.add_argument(
        "--write-config",
        metavar="PATH",
        default=None,
        help="also write the config with its real credentials to PATH (mode 0600)",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, metavar="FILE", help="a ChronosConfig JSON file")
    common.add_argument("--json", action="store_true", help="print one JSON document")
    add_admin_parsers(commands, common)
    add_record_parsers(commands, common)
    add_data_parsers(commands, common)
    add_fallback_parser(commands)
    commands.add_parser("version", help="print the library version")
    return parser


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
    """Run the stack until Ctrl-C or SIGTERM. SIGTERM during start-up cancels the start
    (LocalStack stops what it started); afterwards it ends the wait. Either way the
    servers stop and their temporary folders are removed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stop = asyncio.Event()
    state = {"running": False, "terminated": False}

    def on_sigterm() -> None:
        state["terminated"] = True
        if state["running"]:
            stop.set()
        else:
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await _run_stack(data_dir, s3, config_path, stop, state)
    except asyncio.CancelledError:
        if not state["terminated"]:
            raise
        return 0
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run_stack(
    data_dir: str | None,
    s3: bool,
    config_path: str | None,
    stop: asyncio.Event,
    state: dict[str, bool],
) -> int:
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
        else:
            print(
                "The credentials above are masked: run with --write-config PATH to get a "
                "config file for --config or your app.",
                file=sys.stderr,
            )
        state["running"] = True
        print("Local stack running; press Ctrl-C (or send SIGTERM) to stop.", file=sys.stderr)
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version or args.command == "version":
        from chronos_async import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from chronos_async import ChronosError, NotFoundError

    try:
        if args.command in ADMIN_COMMANDS:
            return asyncio.run(run_admin(args))
        if args.command in RECORD_COMMANDS:
            return asyncio.run(run_record(args))
        if args.command in DATA_COMMANDS:
            return asyncio.run(run_data(args))
        if args.command == "fallback":
            return asyncio.run(run_fallback(args))
        if args.command == "demo":
            from chronos_async._demo import run_demo

            asyncio.run(run_demo(s3=not args.no_s3))
        else:
            return asyncio.run(_local_stack(args.data_dir, not args.no_s3, args.write_config))
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotFoundError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ChronosError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
