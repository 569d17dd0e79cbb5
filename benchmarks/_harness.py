"""Timing, interleaved rounds, percentiles, memory and event-loop lag (no I/O of its own).

The unit of measurement is a *round*: ``ops`` calls of one operation spread over
``concurrency`` workers. The variants of a comparison (ours and the floor, or "1 version"
and "1,000 versions") run round after round in a rotating order (A B, B A, A B, ...), so
slow drift of the machine (another test suite starting, CPU frequency, a compaction in
the server) hits every variant alike. Each variant's figures are medians over rounds and
each ratio is the median of the per-round ratios, which is what makes a ratio hold on a
noisy machine where absolute numbers do not.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PROFILER",
    "LoopLag",
    "Op",
    "PeakRss",
    "Profiler",
    "RoundStats",
    "Summary",
    "Variant",
    "interleave",
    "median_ratio",
    "percentile",
    "rss_mb",
    "run_round",
    "summarize",
]

#: ``op(worker, seq)``: one operation; ``worker`` is 0..concurrency-1 (a worker can own
#: records no other worker touches), ``seq`` numbers every call of a variant, across its
#: rounds, uniquely (use it to make each call's data different).
Op = Callable[[int, int], Awaitable[object]]


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(slots=True)
class RoundStats:
    """One round: every call's latency (seconds), the round's wall and process CPU time."""

    latencies: list[float]
    wall: float
    #: CPU seconds this process (all its threads) used during the round.
    cpu: float = float("nan")

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall if self.wall > 0 else float("nan")

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def cpu_ms_per_op(self) -> float:
        return self.cpu / self.ops * 1000 if self.ops else float("nan")


async def run_round(op: Op, ops: int, concurrency: int, *, start_seq: int = 0) -> RoundStats:
    """Run ``ops`` calls of ``op`` on ``concurrency`` workers; every call is timed.

    Calls are dealt to workers in turn (worker ``w`` makes calls ``w, w+c, w+2c, ...``
    counted from ``start_seq``), so each worker makes the same number of calls.
    """
    workers = max(1, min(concurrency, ops))
    latencies: list[float] = []

    async def worker(w: int) -> None:
        for seq in range(start_seq + w, start_seq + ops, workers):
            began = time.perf_counter()
            await op(w, seq)
            latencies.append(time.perf_counter() - began)

    cpu = time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return RoundStats(latencies, time.perf_counter() - began, time.process_time() - cpu)


@dataclass(slots=True)
class Variant:
    """One side of a comparison: a name, the operation and how to drive it."""

    name: str
    op: Op
    concurrency: int
    ops: int
    #: Calls made before the first round (filling connection pools, caches); untimed.
    warmup: int = 0
    rounds: list[RoundStats] = field(default_factory=list)
    next_seq: int = 0


class Profiler:
    """Optional cProfile of our side (``--profile DIR``): one profile per variant label.

    Only the rounds of variants whose name starts with ``ours`` are profiled, so the
    profile shows where the library spends its time and not the floor's.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._profiles: dict[str, cProfile.Profile] = {}

    def wants(self, variant: str) -> bool:
        return self.folder is not None and variant.startswith("ours")

    def profile(self, label: str) -> cProfile.Profile:
        return self._profiles.setdefault(label, cProfile.Profile())

    def dump(self) -> list[Path]:
        written: list[Path] = []
        if self.folder is None:
            return written
        self.folder.mkdir(parents=True, exist_ok=True)
        for label, prof in self._profiles.items():
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
            path = self.folder / f"{safe}.prof"
            prof.dump_stats(path)
            written.append(path)
        return written


#: The profiler used by :func:`interleave` (the runner replaces it for ``--profile``).
PROFILER = Profiler(None)


async def interleave(variants: Sequence[Variant], rounds: int, *, label: str = "") -> None:
    """Warm every variant up, then run ``rounds`` rounds of each in a rotating order.

    Results accumulate in each ``variant.rounds``. A full garbage collection runs before
    every round so one variant does not pay for the other's garbage.
    """
    for v in variants:
        if v.warmup:
            await run_round(v.op, v.warmup, v.concurrency, start_seq=v.next_seq)
            v.next_seq += v.warmup
    order = list(variants)
    for r in range(rounds):
        shift = r % len(order)
        for v in order[shift:] + order[:shift]:
            gc.collect()
            tag = f"{label}/{v.name}" if label else v.name
            profile = PROFILER.profile(tag) if PROFILER.wants(v.name) else None
            if profile is not None:
                profile.enable()
            try:
                stats = await run_round(v.op, v.ops, v.concurrency, start_seq=v.next_seq)
            finally:
                if profile is not None:
                    profile.disable()
            v.next_seq += v.ops
            v.rounds.append(stats)


@dataclass(frozen=True, slots=True)
class Summary:
    """One variant over all its rounds."""

    ops: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    rounds: int
    cpu_ms_per_op: float


def summarize(rounds: Sequence[RoundStats]) -> Summary:
    """Median ops/s and p50 over rounds; p99 over every call of every round."""
    pooled = [x for r in rounds for x in r.latencies]
    return Summary(
        ops=len(pooled),
        ops_per_s=statistics.median(r.ops_per_s for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=percentile(pooled, 99) * 1000,
        rounds=len(rounds),
        cpu_ms_per_op=statistics.median(r.cpu_ms_per_op for r in rounds),
    )


def median_ratio(
    a: Sequence[RoundStats], b: Sequence[RoundStats], metric: Callable[[RoundStats], float]
) -> float:
    """The median over rounds of ``metric(a_round) / metric(b_round)`` (paired by round)."""
    pairs = [metric(x) / metric(y) for x, y in zip(a, b, strict=False) if metric(y) > 0]
    return statistics.median(pairs) if pairs else float("nan")


# -- memory -------------------------------------------------------------------------------


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """The current resident set size in MB (VmRSS); NaN where /proc is missing."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


class PeakRss:
    """The peak RSS while a block runs (MB).

    Linux keeps the peak in VmHWM; writing ``5`` to ``/proc/self/clear_refs`` resets it to
    the current RSS, so the peak of one scenario does not include earlier ones. Where
    that is refused, a sampler task reads VmRSS every 20 ms instead.
    """

    def __init__(self) -> None:
        self.peak_mb = float("nan")
        self._sampler: asyncio.Task[None] | None = None
        self._sampled = 0.0

    async def __aenter__(self) -> PeakRss:
        try:
            _reset_peak()
        except OSError:
            self._sampler = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            self._sampled = max(self._sampled, rss_mb())
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self.peak_mb = max(self._sampled, rss_mb())
        else:
            kb = _status_kb("VmHWM")
            self.peak_mb = kb / 1024 if kb is not None else float("nan")


# -- event loop -----------------------------------------------------------------------------


class LoopLag:
    """How late the event loop wakes a 1 ms timer: a direct view of loop blocking.

    Every lateness sample (seconds) is kept while the block runs.
    """

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.period
            await asyncio.sleep(self.period)
            self.samples.append(max(0.0, loop.time() - due))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000

    def max_ms(self) -> float:
        return max(self.samples, default=float("nan")) * 1000
