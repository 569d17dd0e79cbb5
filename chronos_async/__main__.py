"""Command line: ``python -m chronos_async demo | local-stack | version``."""

from __future__ import annotations

import argparse
import asyncio
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chronos_async", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk through the basic operations on a local stack")
    demo.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    stack = commands.add_parser("local-stack", help="run nx-27017 + SeaweedFS until Ctrl-C")
    stack.add_argument("--data-dir", default=None, help="persist data here (default: temporary)")
    stack.add_argument("--no-s3", action="store_true", help="keep payloads in a local folder")
    commands.add_parser("version", help="print the library version")
    return parser


async def _local_stack(data_dir: str | None, s3: bool) -> None:
    from chronos_async.embedded import LocalStack

    async with LocalStack(data_dir=data_dir, s3=s3) as stack:
        print(stack.config().model_dump_json(by_alias=True, indent=2, exclude_defaults=True))
        print("Local stack running; press Ctrl-C to stop.", file=sys.stderr, flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        from chronos_async import __version__

        print(__version__)
        return 0
    try:
        if args.command == "demo":
            from chronos_async._demo import run_demo

            asyncio.run(run_demo(s3=not args.no_s3))
        else:
            asyncio.run(_local_stack(args.data_dir, not args.no_s3))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
