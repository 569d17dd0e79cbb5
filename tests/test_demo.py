"""The demo and the examples run end to end on the embedded stack and leave nothing behind."""

from __future__ import annotations

import asyncio
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from chronos_async._demo import run_demo

ROOT = Path(__file__).resolve().parents[1]


async def test_demo_walks_through_every_step_with_local_payloads() -> None:
    lines: list[str] = []
    await run_demo(s3=False, say=lines.append)
    text = "\n".join(lines)
    for step in (
        "1. create",
        "2. update",
        "3. read",
        "4. read it as of",
        "5. list",
        "6. delete",
        "7. its history",
    ):
        assert step in text
    assert "a stale writer is refused" in text
    assert "updates are refused" in text
    assert "ov=2 delete" in text and "ov=0 create" in text


async def test_quickstart_example_runs() -> None:
    module = runpy.run_path(str(ROOT / "examples" / "quickstart.py"))
    await module["main"]()


@pytest.mark.slow
async def test_batched_writes_example_packs_its_payloads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    module = runpy.run_path(str(ROOT / "examples" / "batched_writes.py"))
    await module["main"]()
    out = capsys.readouterr().out
    assert "read back: {'kind': 'click'" in out and "presigned URL: True" in out
    assert "1000 payloads:" in out and " in 0 packs" not in out


@pytest.mark.slow
async def test_readme_demo_command_exits_zero_and_stops_its_servers() -> None:
    """``python -m chronos_async demo`` (SeaweedFS payloads) as the README runs it."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chronos_async", "demo"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    before = await asyncio.to_thread(_server_pids)
    done = await asyncio.to_thread(run)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "7. its history" in done.stdout and "Local stack stopped" in done.stdout
    assert await asyncio.to_thread(_server_pids) <= before


def _server_pids() -> set[int]:
    """PIDs of every nx-27017 and weed process on the machine."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return {
        int(line.split(None, 1)[0])
        for line in ps.stdout.splitlines()[1:]
        if "nx-27017" in line or "nx_27017" in line or "/weed " in line
    }
