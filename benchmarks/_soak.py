"""The soak, run in a child process so its RSS is the library's alone.

Reads a JSON spec on stdin (written by ``_scenarios_bulk.run_soak``), makes ``ops``
creates of 1 KB records at concurrency ``concurrency`` through the library, sampling the
RSS every ``sample_every`` creates, then ``floor_ops`` raw creates (the floor, for the
throughput ratio; after the peak RSS was read, so it does not count there). Stops
issuing creates at ``deadline_s`` and reports how many it made. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._data import KB, make_data, template
from benchmarks._env import COLLECTION, S3Endpoint
from benchmarks._floor import RawCollection, open_mongo
from benchmarks._floor_blobs import RawBlobs, RawLocal, RawS3
from benchmarks._harness import _status_kb, rss_mb
from chronos_async import Chronos, ChronosConfig


async def _drive(op: Any, ops: int, conc: int, deadline: float, on_done: Any) -> list[float]:
    latencies: list[float] = []
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < ops and time.monotonic() < deadline:
            n = issued
            issued += 1
            began = time.perf_counter()
            await op(n)
            latencies.append(time.perf_counter() - began)
            on_done(len(latencies))

    await asyncio.gather(*(worker() for _ in range(conc)))
    return latencies


async def soak(spec: dict[str, Any]) -> dict[str, Any]:
    config = ChronosConfig.model_validate(spec["config"])
    items = template(1 * KB, spec["seed"])
    ops, conc, every = spec["ops"], spec["concurrency"], spec["sample_every"]
    samples: list[tuple[int, float]] = [(0, rss_mb())]

    def sample(done: int) -> None:
        if done % every == 0:
            samples.append((done, rss_mb()))
            if done % (every * 10) == 0:
                print(f"  soak: {done:,} creates, RSS {samples[-1][1]:.0f} MB", file=sys.stderr)

    async with Chronos(config) as chronos:
        coll = chronos.collection(COLLECTION, db=spec["db"])

        async def create(n: int) -> None:
            await coll.create(make_data(items, n), actor="soak")

        gc.collect()
        cpu = time.process_time()
        began = time.perf_counter()
        deadline = time.monotonic() + spec["deadline_s"]
        latencies = await _drive(create, ops, conc, deadline, sample)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu
    peak = (_status_kb("VmHWM") or 0) / 1024
    done = len(latencies)
    floor_cpu = time.process_time()
    floor_lat, floor_wall = await _floor(spec, config, items, min(spec["floor_ops"], done))
    floor_cpu = time.process_time() - floor_cpu
    # Growth between 20% and 100% of the requested creates (10,000 -> 50,000 in full).
    frm = ops // 5
    to = max(n for n, _ in samples)
    at = dict(samples)
    rss_from = at.get(frm, float("nan"))
    rss_to = at[to]
    return {
        "ops": ops,
        "ops_done": done,
        "concurrency": conc,
        "deadline_hit": done < ops,
        "wall_s": wall,
        "cpu_s": cpu,
        "floor_cpu_s": floor_cpu,
        "latencies": latencies,
        "floor_latencies": floor_lat,
        "floor_wall_s": floor_wall,
        "peak_rss_mb": peak,
        "rss_samples": samples,
        "growth_from": frm,
        "growth_to": to,
        "rss_from_mb": rss_from,
        "rss_to_mb": rss_to,
        "growth_pct": (rss_to - rss_from) / rss_from * 100,
    }


async def _floor(
    spec: dict[str, Any], config: ChronosConfig, items: list[dict[str, Any]], ops: int
) -> tuple[list[float], float]:
    """``ops`` raw creates at the same concurrency (the floor)."""
    async with contextlib.AsyncExitStack() as stack:
        client = open_mongo(spec["mongo_uri"], config)
        stack.push_async_callback(client.close)
        blobs: RawBlobs
        if config.resolved_payload_storage == "s3":
            s3 = spec["s3"]
            endpoint = S3Endpoint(
                s3["endpoint"],
                s3["access_key"],
                s3["secret_key"],
                s3["region"],
                tuple(s3["buckets"]),
            )
            blobs = await stack.enter_async_context(RawS3(endpoint, spec["floor_prefix"]))
        else:
            blobs = RawLocal(Path(spec["local_root"]))
        raw = RawCollection(client[spec["db"]], "floor", blobs)
        await raw.ensure_indexes()

        async def create(n: int) -> None:
            await raw.create(make_data(items, n))

        began = time.perf_counter()
        latencies = await _drive(create, ops, spec["concurrency"], float("inf"), lambda _: None)
        return latencies, time.perf_counter() - began


def main() -> None:
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(soak(spec))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
