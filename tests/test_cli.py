"""The operator's command line, run in subprocesses as an operator runs it: ``health``,
``verify``, ``repair``, ``reconcile [--dry-run]``, ``history``, ``show``, ``diff``,
``restore``, ``restore-collection``, ``--version``, and ``local-stack`` stopped by SIGTERM.

Records are written with the library, then every command runs against a config file of
the same servers; text output, ``--json`` output and exit codes are checked, and what
the commands change is checked through the library.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos_async import Chronos, ChronosConfig, __version__
from chronos_async.__main__ import write_config
from chronos_async._keys import payload_key
from tests.conftest import MakeConfig
from tests.test_cli_fallback import run_cli

COLLECTION = "users"


def exists(path: Path) -> bool:
    """Whether ``path`` exists (a blocking call kept out of the async tests)."""
    return path.exists()


def plant_orphan(path: Path, *, age_seconds: float) -> None:
    """An object at ``path`` (a payload key in the local store), last written long ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{}")
    old = time.time() - age_seconds
    os.utime(path, (old, old))


async def run_json(*args: str) -> tuple[int, Any]:
    """Run a command with ``--json``: its exit status and parsed stdout."""
    code, out, err = await run_cli(*args, "--json")
    assert out, f"no output (exit {code}): {err}"
    return code, orjson.loads(out)


@pytest.fixture
def config(make_config: MakeConfig) -> ChronosConfig:
    return make_config("local", collection_maps={COLLECTION: {"indexed_props": ["status"]}})


@pytest.fixture
def config_file(config: ChronosConfig, tmp_path: Path) -> str:
    return str(write_config(config, tmp_path / "chronos.json"))


async def test_version_and_help() -> None:
    for args in (("--version",), ("version",)):
        code, out, _ = await run_cli(*args)
        assert (code, out.strip()) == (0, __version__)
    code, out, _ = await run_cli("--help")
    assert code == 0 and "``" not in out and "restore-collection" in out
    code, _, _ = await run_cli()
    assert code == 2


async def test_record_commands_show_history_diff_and_restore(
    config: ChronosConfig, config_file: str, db_name: str
) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        first = await users.create({"name": "Ada", "status": "new"}, actor="signup")
        second = await users.update(
            first.id, {"name": "Ada", "status": "active"}, expected_ov=0, actor="ada", reason="ok"
        )
        other = await users.create({"name": "Bob", "status": "new"})
    where = ("--config", config_file, "--db", db_name, "--collection", COLLECTION)

    code, out, _ = await run_cli("history", first.id, *where)
    assert code == 0 and "update" in out and "create" in out and "ada" in out
    code, versions = await run_json("history", first.id, *where)
    assert code == 0 and [v["ov"] for v in versions] == [1, 0]
    assert versions[0]["actor"] == "ada" and versions[0]["reason"] == "ok"
    code, out, _ = await run_cli("history", "nosuchid", *where)
    assert code == 1 and "no record" in out

    code, latest = await run_json("show", first.id, *where)
    assert code == 0 and latest["ov"] == 1 and latest["data"] == {"name": "Ada", "status": "active"}
    code, old = await run_json("show", first.id, "--ov", "0", *where)
    assert code == 0 and old["data"]["status"] == "new"
    code, then = await run_json("show", first.id, "--at", first.at.isoformat(), *where)
    assert code == 0 and then["ov"] == 0
    code, out, _ = await run_cli("show", first.id, *where)
    assert code == 0 and '"status": "active"' in out and "created_at" in out
    code, out, _ = await run_cli("show", first.id, "--ov", "9", *where)
    assert code == 1 and "no record" in out
    code, _, err = await run_cli("show", first.id, "--ov", "-1", *where)
    assert code == 2 and "integer >= 0" in err
    code, _, err = await run_cli("show", first.id, "--at", "not-a-date", *where)
    assert code == 2 and "ValidationError" in err

    code, ops = await run_json("diff", first.id, "0", "1", *where)
    assert code == 0 and ops == [{"op": "replace", "path": "/status", "value": "active"}]
    code, _, err = await run_cli("diff", first.id, "0", "7", *where)
    assert code == 1 and "NotFoundError" in err

    code, restored = await run_json("restore", first.id, "--ov", "0", *where, "--reason", "undo")
    assert code == 0 and restored["ov"] == 2
    code, _, err = await run_cli("restore", first.id, *where)
    assert code == 2 and "--ov" in err  # one of --ov / --at is required

    code, report = await run_json("restore-collection", "--cv", str(second.cv), *where)
    assert code == 0 and report["restored"] == [first.id] and report["deleted"] == [other.id]
    code, out, _ = await run_cli("restore-collection", "--cv", str(second.cv), *where)
    assert code == 0 and "unchanged" in out

    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        now = await users.get_latest(first.id)
        assert now is not None and now.data["status"] == "active" and now.ov == 3
        assert await users.get_latest(other.id) is None  # created after the target


async def test_unknown_database_or_collection_is_an_error(
    config: ChronosConfig, config_file: str, db_name: str
) -> None:
    async with Chronos(config) as chronos:
        await chronos.collection(COLLECTION, db=db_name).create({"status": "new"})
    code, _, err = await run_cli("verify", "--config", config_file, "--db", f"{db_name}_nope")
    assert code == 2 and "no database" in err
    args = ("--config", config_file, "--db", db_name, "--collection", "nope")
    code, _, err = await run_cli("verify", *args)
    assert code == 2 and "no collection 'nope'" in err
    code, _, err = await run_cli("history", "x", *args)
    assert code == 2 and "no collection" in err
    code, _, err = await run_cli("verify", "--config", config_file, "--collection", COLLECTION)
    assert code == 2 and "--collection needs --db" in err


async def test_health_verify_repair_and_reconcile(
    config: ChronosConfig, config_file: str, db_name: str
) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        record = await users.create({"name": "Ada", "status": "new"})
    base = ("--config", config_file)
    scope = (*base, "--db", db_name)

    code, out, _ = await run_cli("health", *base)
    assert code == 0 and "ok" in out
    code, health = await run_json("health", *base)
    assert code == 0 and health["ok"] is True and len(health["backends"]) == 1

    code, out, _ = await run_cli("verify", *scope)
    assert code == 0 and "OK: no violations" in out
    code, report = await run_json("verify", *scope)
    assert code == 0 and report["ok"] is True and report["counts"]["heads"] == 1

    # An orphan payload: a payload key of this collection that no version refers to.
    assert config.local_storage is not None
    key = payload_key(None, db_name, COLLECTION, record.id, 7, "0" * 16)
    orphan = Path(config.local_storage.base_path, "json", *key.split("/"))
    plant_orphan(orphan, age_seconds=7200)

    code, report = await run_json("verify", *scope)
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["orphan_payload"]
    assert report["problems"][0]["id"] == record.id and report["problems"][0]["ov"] == 7
    code, out, _ = await run_cli("verify", *scope)
    assert code == 1 and "FAILED: 1 violation(s)" in out and record.id in out

    code, plan = await run_json("reconcile", *scope, "--dry-run")
    assert code == 0 and [p["kind"] for p in plan["would_fix"]] == ["orphan_payload"]
    code, out, _ = await run_cli("reconcile", *scope, "--dry-run")
    assert code == 0 and "dry run" in out and "orphan_payload" in out
    assert exists(orphan)  # a dry run changes nothing

    code, done = await run_json("repair", *scope)
    assert code == 0 and done["rolled_forward"] == 0 and exists(orphan)
    code, done = await run_json("reconcile", *scope)
    assert code == 0 and done["orphans_removed"] == 1 and not exists(orphan)
    code, out, _ = await run_cli("reconcile", *scope)
    assert code == 0 and "orphans_removed" in out
    code, _, _ = await run_cli("verify", *scope)
    assert code == 0


async def test_local_stack_stops_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chronos_async",
        "local-stack",
        "--no-s3",
        "--write-config",
        str(tmp_path / "chronos.json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            async for line in proc.stderr:
                if b"Local stack running" in line:
                    break
        config = ChronosConfig.from_file(tmp_path / "chronos.json")
        assert config.local_storage is not None
        payloads = Path(config.local_storage.base_path)
        assert exists(payloads)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
    assert not exists(payloads)  # the temporary folders went with the stack
