"""``python -m benchmarks [--quick] [--only NAME[,NAME]] [--out PATH] [--seed N]``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchmarks import _harness
from benchmarks._context import FULL, QUICK, Ctx
from benchmarks._env import machine_info, open_servers
from benchmarks._report import render_table, write_json
from benchmarks._scenarios_bulk import run_list, run_restore, run_soak
from benchmarks._scenarios_counters import run_counters
from benchmarks._scenarios_fallback import run_fallback
from benchmarks._scenarios_loop import run_loop
from benchmarks._scenarios_packs import run_packs
from benchmarks._scenarios_read import run_as_of, run_latest, run_version
from benchmarks._scenarios_rollup import run_rollup
from benchmarks._scenarios_write import WRITE_OPS, run_writes

Scenario = Callable[[Ctx], Awaitable[None]]


def _writes(op: str) -> Scenario:
    async def run(ctx: Ctx) -> None:
        await run_writes(ctx, [op])

    return run


#: Every scenario by name, in the order a run executes them.
SCENARIOS: dict[str, Scenario] = {
    **{op: _writes(op) for op in WRITE_OPS},
    "packs": run_packs,
    "get_latest": run_latest,
    "get_version": run_version,
    "get_as_of": run_as_of,
    "list": run_list,
    "restore": run_restore,
    "rollup": run_rollup,
    "loop": run_loop,
    "fallback": run_fallback,
    "counters": run_counters,
    "soak": run_soak,
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="chronos-async benchmarks: every figure as a ratio to a raw "
        "pymongo + S3 client floor (obstore, and aioboto3 beside it) measured in the same run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a reduced run (about 3.5 minutes on 2 cores)"
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these scenarios: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON path")
    parser.add_argument("--seed", type=int, default=1, help="seed for generated data")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a cProfile of our side of each comparison into DIR (slows the run)",
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
        args.only = names
    return args


async def run(args: argparse.Namespace) -> int:
    params = QUICK if args.quick else FULL
    selected = args.only or list(SCENARIOS)
    if args.profile is not None:
        _harness.PROFILER = _harness.Profiler(args.profile)
    meta = machine_info()
    began = time.perf_counter()
    async with open_servers() as servers:
        meta["servers"] = servers.origin
        print(
            f"chronos-async benchmarks ({'quick' if args.quick else 'full'} run, "
            f"seed {args.seed}, {servers.origin} servers, {os.cpu_count()} CPUs)",
            flush=True,
        )
        ctx = Ctx(servers, params, args.seed, args.quick, selected=selected)
        async with ctx.stack:
            for name in SCENARIOS:
                if name not in selected:
                    continue
                print(f"[{time.perf_counter() - began:6.1f}s] {name}", flush=True)
                await SCENARIOS[name](ctx)
    meta.update(
        quick=args.quick,
        seed=args.seed,
        scenarios=selected,
        duration_s=time.perf_counter() - began,
        load_avg_end=list(os.getloadavg()),
        profiled=args.profile is not None,
        params=dataclasses.asdict(params),
    )
    print()
    print(render_table(ctx.rows))
    if args.profile is not None:
        print("NOTE: --profile slows our side only: the ratios of this run are not valid.")
    write_json(args.out, meta, ctx.rows)
    print(f"\nwrote {args.out} ({meta['duration_s']:.0f} s)")
    for path in _harness.PROFILER.dump():
        print(f"profile: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
