"""The typed-collection example runs, and mypy --strict sees the types it promises."""

from __future__ import annotations

import asyncio
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = "examples/typed_collection.py"

#: Must type-check: what ``chronos.collection(...)`` and the reads return, statically.
_INFERRED = """
from typing import Any
from pydantic import BaseModel
from typing_extensions import assert_type
from chronos_async import Chronos, Collection, Item, Page


class User(BaseModel):
    email: str


async def inferred(chronos: Chronos) -> None:
    users = chronos.collection("users", db="app", model=User)
    assert_type(users, Collection[User])
    assert_type(await users.get_latest("a"), Item[User] | None)
    assert_type(await users.get_version("a", 0), Item[User] | None)
    assert_type(await users.get_as_of("a", "2026-01-01"), Item[User] | None)
    assert_type(await users.list_by_meta(), Page[User])
    assert_type(await users.lineage("a"), list[Item[User]])
    await users.create(User(email="a@x"))
    await users.update("a", {"email": "a@x"}, expected_ov=0)
    plain = chronos.collection("users", db="app")
    assert_type(plain, Collection[dict[str, Any]])
    assert_type(plain, Collection)
    item = await plain.get_latest("a")
    assert_type(item, Item[dict[str, Any]] | None)
    assert item is not None
    assert_type(item.data["email"], Any)
"""

#: Must not type-check: each line marked ``# error: <code>`` is reported with that code.
_MISUSED = """
from pydantic import BaseModel
from chronos_async import Chronos


class User(BaseModel):
    email: str


class Other(BaseModel):
    name: str


async def misused(chronos: Chronos) -> None:
    users = chronos.collection("users", db="app", model=User)
    item = await users.get_latest("a")
    assert item is not None
    item.data["email"]  # error: index
    await users.create(Other(name="x"))  # error: arg-type
    plain = chronos.collection("users", db="app")
    await plain.create(User(email="a@x"))  # error: arg-type
    chronos.collection("users", db="app", model=dict)  # error: type-var
"""


async def test_typed_collection_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(str(ROOT / EXAMPLE))
    await module["main"]()
    out = capsys.readouterr().out
    assert "read back: ada@example.com 120.50 2026-03-01T09:30:00+00:00" in out
    assert "active: [('ada@example.com', ['vip'])]" in out
    assert "version 0 status: invited" in out
    assert "'credit': '120.50'" in out and "'joined': '2026-03-01T09:30:00Z'" in out
    assert "refused: the data is not a valid Customer: credit:" in out


async def test_mypy_strict_sees_the_types_of_typed_collections(tmp_path: Path) -> None:
    (tmp_path / "typed_inferred.py").write_text(_INFERRED)
    misused = tmp_path / "typed_misused.py"
    misused.write_text(_MISUSED)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--strict",
                "--no-error-summary",
                EXAMPLE,
                str(tmp_path / "typed_inferred.py"),
                str(misused),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    done = await asyncio.to_thread(run)
    assert done.stderr == ""
    reported = set()
    for line in done.stdout.splitlines():
        found = re.match(r"(.+?):(\d+): error: .*\[([a-z-]+)\]$", line)
        if found is None:
            continue  # notes
        path, number, code = found.groups()
        # The example and the inferred types are clean: every error is a misuse.
        assert Path(path).name == misused.name, line
        reported.add((int(number), code))
    expected = {
        (number, line.rsplit("# error: ", 1)[1])
        for number, line in enumerate(_MISUSED.splitlines(), start=1)
        if "# error: " in line
    }
    assert len(expected) == 4
    assert expected <= reported, done.stdout
    assert done.returncode == 1
