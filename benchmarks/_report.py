"""Result rows, target checks, the printed table and ``results/latest.json``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._harness import RoundStats, Summary, median_ratio, summarize

__all__ = ["Row", "Target", "compare", "render_table", "write_json"]


@dataclass
class Target:
    """A target from the issue, checked on the figures of this run."""

    text: str
    measured: float
    limit: float
    #: "<=" (measured must not exceed limit) or ">=".
    op: str

    @property
    def passed(self) -> bool | None:
        if math.isnan(self.measured):
            return None
        return self.measured <= self.limit if self.op == "<=" else self.measured >= self.limit


@dataclass
class Row:
    """One scenario line: ours, the floor, their ratios, and the target if there is one."""

    scenario: str
    storage: str
    payload: str
    concurrency: int
    ops: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    floor_ops_per_s: float | None = None
    floor_p50_ms: float | None = None
    floor_p99_ms: float | None = None
    #: median over rounds of ours / floor (p50 latency: 1.0 is as fast as the floor).
    p50_x_floor: float | None = None
    #: median over rounds of ours / floor (throughput: 1.0 is as fast as the floor).
    ops_x_floor: float | None = None
    rounds: int = 0
    #: client CPU (this process, all threads) per call, median over rounds
    cpu_ms_per_op: float | None = None
    floor_cpu_ms_per_op: float | None = None
    peak_rss_mb: float | None = None
    target: Target | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = (
            None if self.target is None else {**asdict(self.target), "passed": self.target.passed}
        )
        cleaned: dict[str, Any] = _finite(out)
        return cleaned


def compare(
    scenario: str,
    storage: str,
    payload: str,
    concurrency: int,
    ours: Sequence[RoundStats],
    floor: Sequence[RoundStats] | None,
    **extra: Any,
) -> Row:
    """A row from the rounds of our variant and (optionally) its floor."""
    mine: Summary = summarize(ours)
    row = Row(
        scenario=scenario,
        storage=storage,
        payload=payload,
        concurrency=concurrency,
        ops=mine.ops,
        ops_per_s=mine.ops_per_s,
        p50_ms=mine.p50_ms,
        p99_ms=mine.p99_ms,
        rounds=mine.rounds,
        cpu_ms_per_op=mine.cpu_ms_per_op,
        extra=dict(extra),
    )
    if floor:
        base = summarize(floor)
        row.floor_ops_per_s = base.ops_per_s
        row.floor_p50_ms = base.p50_ms
        row.floor_p99_ms = base.p99_ms
        row.floor_cpu_ms_per_op = base.cpu_ms_per_op
        row.p50_x_floor = median_ratio(ours, floor, lambda r: r.p50_ms)
        row.ops_x_floor = median_ratio(ours, floor, lambda r: r.ops_per_s)
        # Every round's ratio, so a reader can see how much the median hides.
        row.extra["rounds_p50_x_floor"] = [
            a.p50_ms / b.p50_ms for a, b in zip(ours, floor, strict=False) if b.p50_ms > 0
        ]
        row.extra["rounds_ops_x_floor"] = [
            a.ops_per_s / b.ops_per_s for a, b in zip(ours, floor, strict=False) if b.ops_per_s > 0
        ]
    return row


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


_HEADERS = (
    "scenario",
    "storage",
    "payload",
    "conc",
    "ops",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "floor p50",
    "floor ops/s",
    "p50 x fl",
    "ops x fl",
    "cpu ms/op (fl)",
    "RSS MB",
    "target",
    "measured",
    "result",
)


def _cpu(row: Row) -> str:
    mine = _num(row.cpu_ms_per_op, 2)
    if row.floor_cpu_ms_per_op is None:
        return mine
    return f"{mine} ({_num(row.floor_cpu_ms_per_op, 2)})"


def _cells(row: Row) -> list[str]:
    target = row.target
    verdict = "-"
    if target is not None:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target.passed]
    return [
        row.scenario,
        row.storage,
        row.payload,
        str(row.concurrency),
        str(row.ops),
        _num(row.ops_per_s, 0),
        _num(row.p50_ms, 2),
        _num(row.p99_ms, 2),
        _num(row.floor_p50_ms, 2),
        _num(row.floor_ops_per_s, 0),
        _num(row.p50_x_floor, 2),
        _num(row.ops_x_floor, 2),
        _cpu(row),
        _num(row.peak_rss_mb, 0),
        target.text if target else "",
        _num(target.measured, 2) if target else "",
        verdict,
    ]


def render_table(rows: Sequence[Row]) -> str:
    """A fixed-width table (one line per row) followed by a pass/fail summary."""
    cells = [list(_HEADERS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_HEADERS))]
    numeric = set(range(3, 14)) | {15}

    def fmt(line: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )

    out = [fmt(cells[0]), "-+-".join("-" * w for w in widths)]
    out += [fmt(line) for line in cells[1:]]
    targets = [r.target for r in rows if r.target is not None]
    passed = sum(1 for t in targets if t.passed)
    failed = sum(1 for t in targets if t.passed is False)
    out.append(f"\ntargets: {passed} passed, {failed} failed, {len(targets)} checked")
    return "\n".join(out)


def write_json(path: Path, meta: dict[str, Any], rows: Sequence[Row]) -> None:
    """The run's facts and every row (NaN written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": _finite(meta), "rows": [r.as_json() for r in rows]}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
