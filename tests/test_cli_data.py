"""``python -m chronos_async totals | recount | rollup | prune | expire | purge``.

Records are written with the library, then each command runs in-process (``main(argv)``
in a worker thread, its output captured) against a config file of the session servers;
text output, ``--json`` output and exit codes are checked, and what the commands change
is checked through the library. ``expire`` and ``purge`` must refuse without ``--yes``
and change nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from chronos_async import Chronos, ChronosConfig
from chronos_async.__main__ import main, write_config
from tests.conftest import MakeConfig

COLLECTION = "users"
RULES = {"rules": [{"name": "activations", "when": {"status": "active"}}]}
MAPS = {
    COLLECTION: {
        "indexed_props": ["status"],
        "version_retention": {"max_versions_in_index": 2},
    }
}

Cli = Any  # the ``cli`` fixture: ``await cli(*args) -> (exit status, stdout, stderr)``


@pytest.fixture
def config(make_config: MakeConfig) -> ChronosConfig:
    return make_config(
        "local",
        collection_maps=MAPS,
        counters={},
        counter_rules=RULES,
        hard_delete_enabled=True,
    )


@pytest.fixture
def config_file(config: ChronosConfig, tmp_path: Path) -> str:
    return str(write_config(config, tmp_path / "chronos.json"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``main(args)`` in a thread (it runs its own event loop): status, out, err."""

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def run_json(cli: Cli, *args: str) -> tuple[int, Any]:
    code, out, err = await cli(*args, "--json")
    assert out, f"no output (exit {code}): {err}"
    return code, orjson.loads(out)


async def test_totals_and_recount(
    cli: Cli, make_config: MakeConfig, config: ChronosConfig, config_file: str, db_name: str
) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        ada = await users.create({"name": "Ada", "status": "new"})
        await users.update(ada.id, {"name": "Ada", "status": "active"}, expected_ov=0)
        await users.create({"name": "Bob", "status": "active"})
    where = ("--config", config_file, "--db", db_name, "--collection", COLLECTION)

    code, totals = await run_json(cli, "totals", *where)
    assert code == 0 and (totals["created"], totals["updated"]) == (2, 1)
    assert totals["rules"] == {"activations": 2} and totals["db"] == db_name
    code, out, _ = await cli("totals", *where)
    assert code == 0 and "activations" in out and "created" in out

    code, report = await run_json(cli, "recount", *where)
    assert code == 0 and report["records"] == 2 and report["versions"] == 3
    assert report["corrected"] == []  # the counters were right
    code, out, _ = await cli("recount", "--config", config_file, "--db", db_name)
    assert code == 0 and "versions" in out

    # Counters off: a clear error, exit 2; an unknown collection: exit 2.
    off = str(write_config(make_config("local"), Path(config_file).with_name("off.json")))
    code, _, err = await cli("totals", "--config", off, "--db", db_name, "--collection", COLLECTION)
    assert code == 2 and "counters are off" in err
    code, _, err = await cli("recount", "--config", off)
    assert code == 2 and "counters are off" in err
    code, _, err = await cli(
        "totals", "--config", config_file, "--db", db_name, "--collection", "x"
    )
    assert code == 2 and "no collection" in err


async def test_rollup_prune_and_expire(
    cli: Cli, config: ChronosConfig, config_file: str, db_name: str
) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        ada = await users.create({"name": "Ada", "n": 0})
        for n in range(1, 5):  # five versions: two stay in the index, three roll up
            await users.update(ada.id, {"name": "Ada", "n": n}, expected_ov=n - 1)
    cut = datetime.now(UTC).isoformat()
    scope = ("--config", config_file, "--db", db_name)
    where = (*scope, "--collection", COLLECTION)

    code, rolled = await run_json(cli, "rollup", *scope)
    assert code == 0 and rolled["versions_rolled"] == 3 and rolled["failed"] == []
    code, out, _ = await cli("rollup", *where)
    assert code == 0 and "versions_rolled" in out  # nothing left to roll up
    code, pruned = await run_json(cli, "prune", *where, "--grace-seconds", "0")
    assert code == 0 and pruned["records_examined"] == 1 and pruned["failed"] == []

    code, out, err = await cli("expire", *where, "--before", cut, "--keep-last", "2")
    assert code == 2 and not out
    assert "expire would delete" in err and "--yes" in err and "newest 2" in err
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        assert len([v async for v in users.history(ada.id)]) == 5  # refused: nothing gone
    code, _, err = await cli("expire", *where, "--before", "yesterday", "--yes")
    assert code == 2 and "ISO-8601" in err

    code, expired = await run_json(
        cli, "expire", *where, "--before", cut, "--keep-last", "2", "--yes"
    )
    assert code == 0 and expired["versions_removed"] == 3 and expired["failed"] == []
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        assert [v.ov async for v in users.history(ada.id)] == [4, 3]
        latest = await users.get_latest(ada.id)
        assert latest is not None and latest.data["n"] == 4


async def test_purge(cli: Cli, config: ChronosConfig, config_file: str, db_name: str) -> None:
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        ada = await users.create({"name": "Ada", "status": "new"})
        bob = await users.create({"name": "Bob", "status": "new"})
    where = ("--config", config_file, "--db", db_name, "--collection", COLLECTION)
    erase = (*where, "--id", ada.id, "--reason", "GDPR request #1", "--actor", "dpo")

    code, out, err = await cli("purge", *erase)
    assert code == 2 and not out and "purge would erase" in err and ada.id in err
    async with Chronos(config) as chronos:
        assert await chronos.collection(COLLECTION, db=db_name).get_latest(ada.id) is not None

    code, report = await run_json(cli, "purge", *erase, "--yes")
    assert code == 0 and report["found"] is True and report["versions"] == 1
    assert report["tombstone"]
    code, out, _ = await cli("purge", *erase, "--yes")  # again: finds nothing, still fine
    assert code == 0 and "no record" in out and "tombstone" in out
    async with Chronos(config) as chronos:
        users = chronos.collection(COLLECTION, db=db_name)
        assert await users.get_latest(ada.id) is None
        assert await users.get_latest(bob.id) is not None
