"""Counters stay exact: 16 writers x 200 random writes over 50 records whose ``status``
flips, across two instances; then the same with a writer process SIGKILLed midway, whose
lost increments ``recount`` restores. Every total is compared with a count computed
from the raw version index and heads (``flipping.truth``)."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from chronos_async import Chronos, ChronosConfig
from tests.conftest import MakeConfig
from tests.counters.flipping import MAP, RULES, as_fields, random_write, truth
from tests.reliability.writer_process import config_json

WRITER = Path(__file__).with_name("counting_writer.py")
ROOT = Path(__file__).parents[2]


def _config(make_config: MakeConfig, **extra: Any) -> ChronosConfig:
    return make_config(
        "mongo",
        collection_maps=MAP,
        counter_rules=RULES,
        leases={"lease_ms": 1000, "wait_ms": 5000},
        **extra,
    )


async def _writers(chronos: Chronos, db: str, n: int, writes: int, seed: int) -> Counter[str]:
    users = chronos.collection("users", db=db)
    outcomes: Counter[str] = Counter()

    async def one(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        for _ in range(writes):
            outcomes[await random_write(users, rng)] += 1

    await asyncio.gather(*(one(k) for k in range(n)))
    return outcomes


async def test_16_writers_on_two_instances_count_exactly(
    make_config: MakeConfig, db_name: str, mongo_uri: str, report: Any
) -> None:
    config = _config(make_config)
    async with Chronos(config) as a, Chronos(config) as b:
        outcomes = sum(
            await asyncio.gather(
                _writers(a, db_name, 8, 200, seed=1), _writers(b, db_name, 8, 200, seed=2)
            ),
            Counter(),
        )
        await b.counters.flush()
        totals = await a.counters.get_totals(db=db_name, collection="users")
        expected, kinds = await truth(mongo_uri, db_name)
        assert as_fields(totals) == expected
        assert totals.unique == {"kinds": kinds}
        assert expected["g_on_now"] > 0 and expected["r_flips"] > 0 and expected["deleted"] > 0
        verify = await a.admin.verify(db=db_name)
        assert verify.ok, verify.problems[:5]
        assert verify.counts["counter_drift"] == 0
    report(
        f"counters exact: 3200 writes by 16 writers on 2 instances ({dict(outcomes)}); "
        f"totals == version index: {expected}"
    )


async def test_a_killed_writer_loses_increments_that_recount_restores(
    make_config: MakeConfig, db_name: str, mongo_uri: str, tmp_path: Path, report: Any
) -> None:
    config = _config(make_config)
    doomed = _config(make_config, write_optimization={"debounce_counters_ms": 600_000})
    path = tmp_path / "doomed.json"
    path.write_text(config_json(doomed))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        str(path),
        db_name,
        "7",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    try:
        async with Chronos(config) as chronos:

            async def kill_after(n: int) -> int:
                while True:
                    line = (await stdout.readline()).decode()
                    assert line, "the writer process exited early"
                    if line.startswith("WROTE") and int(line.split()[1]) >= n:
                        proc.send_signal(signal.SIGKILL)
                        return n

            killed_after, _ = await asyncio.gather(
                kill_after(150), _writers(chronos, db_name, 8, 100, seed=3)
            )
            await asyncio.wait_for(proc.wait(), 10)
            # Its claims and leases expire; writers and repair publish what it left.
            await _writers(chronos, db_name, 4, 25, seed=4)
            problems: list[Any] = []
            for _ in range(40):
                await chronos.admin.repair(db=db_name)
                report_ = await chronos.admin.verify(db=db_name)
                problems = [p for p in report_.problems if p.kind != "counter_drift"]
                if not problems:
                    break
                await asyncio.sleep(0.25)  # claims settle by age: there is no event to await
            assert not problems, problems[:5]
            drift = [p for p in report_.problems if p.kind == "counter_drift"]
            assert drift, "the killed writer's increments were never applied: drift expected"
            fixed = await chronos.admin.recount(db=db_name)
            assert fixed.corrected
            totals = await chronos.counters.get_totals(db=db_name, collection="users")
            expected, kinds = await truth(mongo_uri, db_name)
            assert as_fields(totals) == expected
            assert totals.unique == {"kinds": kinds}
            assert (await chronos.admin.verify(db=db_name)).ok
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
    report(
        f"counters after a SIGKILLed writer ({killed_after}+ writes, increments unapplied): "
        f"{len(drift)} drifting fields found by verify, {len(fixed.corrected)} corrected by "
        "recount; totals == version index"
    )
