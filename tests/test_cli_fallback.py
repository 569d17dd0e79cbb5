"""``python -m chronos_async fallback stats | dead-letters | retry | cancel | status``.

A queue is filled with the library (an injected outage at the ``stored`` checkpoint makes
writes queue; ``max_attempts=1`` turns one into a dead letter), then the CLI runs in
subprocesses, as an operator would run it, against a config file whose
``fallback.auto_start`` is on: the CLI must still never start the worker. Its exit codes
and output (text and ``--json``) are checked, and its changes are checked through the
library: ``retry`` revives, ``cancel`` cancels, and nothing queued is ever applied.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from chronos_async import (
    Chronos,
    ChronosConfig,
    ConfigError,
    DeadLetterError,
    QueuedWrite,
    WriteResult,
)
from chronos_async.__main__ import _parser, main
from chronos_async._cli_fallback import _dead_letter_filter, _without_worker
from chronos_async.fallback._service import _DEAD_FILTERS
from tests.conftest import MakeConfig
from tests.support import Outage, drop_databases

REPO = Path(__file__).parents[1]


async def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``python -m chronos_async ARGS``: its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chronos_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def fields(text: str) -> dict[str, str]:
    """The ``key  value`` lines of a text report as a dict."""
    pairs = (re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.splitlines())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


@pytest_asyncio.fixture(loop_scope="session")
async def sys_db(mongo_uri: str, db_name: str) -> AsyncIterator[str]:
    """The queue's database for this test (``fallback.database``), dropped afterwards."""
    name = f"{db_name}_sys"
    yield name
    await drop_databases(mongo_uri, name)


async def test_fallback_commands_inspect_and_change_the_queue_without_a_worker(
    make_config: MakeConfig, db_name: str, sys_db: str, tmp_path: Path
) -> None:
    settings = {
        "enabled": True,
        "max_attempts": 1,
        "base_delay_ms": 10,
        "max_delay_ms": 20,
        "poll_ms": 20,
        "database": sys_db,
    }
    # The file keeps auto_start on (the default): the CLI has to turn it off itself, or
    # its worker would apply the queued writes (the outage is only in this process).
    path = tmp_path / "chronos.json"
    path.write_text(make_config("local", fallback=settings).to_json(reveal_secrets=True))
    cfg = str(path)

    config = make_config("local", fallback={**settings, "auto_start": False})
    async with Chronos(config) as chronos:
        queue = chronos.fallback
        orders = queue.collection("orders", db=db_name)
        base = await orders.plain.create({"total": 0})
        with chronos.checkpoints.hook(Outage("outage")):
            dead = await orders.create({"total": 1})
            assert isinstance(dead, QueuedWrite)
            await queue.start_worker()
            with pytest.raises(DeadLetterError, match="gave up after 1 attempt;"):
                await queue.wait(dead.op_id, timeout=10)
            await queue.stop_worker()
            pending = await orders.create({"total": 2})
            later = await orders.update(base.id, {"total": 3}, expected_ov=0)
        assert isinstance(pending, QueuedWrite) and isinstance(later, QueuedWrite)

        # Read-only commands, side by side.
        stats, stats_json, letters, letters_json, status, unknown = await asyncio.gather(
            run_cli("fallback", "stats", "--config", cfg),
            run_cli("fallback", "stats", "--config", cfg, "--json"),
            run_cli("fallback", "dead-letters", "--config", cfg),
            run_cli(
                *("fallback", "dead-letters", "--config", cfg, "--json", "--op", "create"),
                *("--db", db_name, "--collection", "orders", "--limit", "5"),
            ),
            run_cli("fallback", "status", dead.op_id, "--config", cfg),
            run_cli("fallback", "status", "op_nothing", "--config", cfg, "--json"),
        )
        for rc, _, err in (stats, stats_json, letters, letters_json, status):
            assert (rc, err) == (0, "")

        shown = fields(stats[1])
        assert [shown[k] for k in ("queued", "running", "dead", "spooled")] == ["2", "0", "1", "0"]
        assert shown["waiting by op"] == "create=1, update=1"
        assert re.fullmatch(r"\d+\.\d s", shown["oldest waiting"])
        counts = orjson.loads(stats_json[1])
        assert {k: counts[k] for k in ("queued", "running", "dead", "spooled")} == {
            "queued": 2,
            "running": 0,
            "dead": 1,
            "spooled": 0,
        }
        assert counts["by_op"] == {"create": 1, "update": 1}
        assert counts["oldest_waiting_s"] >= 0

        header, row, total = letters[1].splitlines()
        columns = ["OP ID", "OP", "COLLECTION", "TENANT", "RECORD ID", "ATTEMPTS", "REASON"]
        assert re.split(r"\s{2,}", header) == columns
        assert row.split()[:6] == [dead.op_id, "create", f"{db_name}.orders", "-", dead.id, "1"]
        assert row.endswith("gave up after 1 attempt; last: StorageError: outage")
        assert total == "1 dead letter(s)"
        [letter] = orjson.loads(letters_json[1])["dead_letters"]
        expected = {"op_id": dead.op_id, "state": "dead", "op": "create", "id": dead.id}
        assert {k: letter[k] for k in expected} == expected
        assert letter["attempts"] == 1
        assert (letter["db"], letter["collection"], letter["tenant"]) == (db_name, "orders", None)
        assert letter["reason"].startswith("gave up after 1 attempt;")
        assert datetime.fromisoformat(letter["created_at"]).tzinfo is not None
        described = fields(status[1])
        assert [described[k] for k in ("op id", "state", "record id")] == [
            dead.op_id,
            "dead",
            dead.id,
        ]
        assert described["last error"] == "StorageError: outage"
        assert unknown[0] == 1
        assert orjson.loads(unknown[1]) == {"op_id": "op_nothing", "operation": None}

        # Changes (each on its own operation), then the same ones again: refused.
        retried, cancelled = await asyncio.gather(
            run_cli("fallback", "retry", dead.op_id, "--config", cfg, "--json"),
            run_cli("fallback", "cancel", pending.op_id, "--config", cfg),
        )
        assert retried[0] == 0
        revived = orjson.loads(retried[1])
        assert revived["retried"] is True
        assert (revived["operation"]["state"], revived["operation"]["attempts"]) == ("queued", 0)
        assert cancelled == (0, f"{pending.op_id} cancelled\n", "")
        again_retry, again_cancel = await asyncio.gather(
            run_cli("fallback", "retry", dead.op_id, "--config", cfg),
            run_cli("fallback", "cancel", pending.op_id, "--config", cfg, "--json"),
        )
        assert again_retry == (1, f"{dead.op_id} is not a dead letter: it is queued\n", "")
        assert again_cancel[0] == 1
        refused = orjson.loads(again_cancel[1])
        assert (refused["cancelled"], refused["operation"]["state"]) == (False, "cancelled")

        # What the CLI changed, seen by the library; and no worker ever claimed anything.
        revived_op = await queue.status(dead.op_id)
        assert revived_op is not None
        assert (revived_op.state, revived_op.attempts) == ("queued", 0)
        cancelled_op = await queue.status(pending.op_id)
        assert cancelled_op is not None and cancelled_op.state == "cancelled"
        untouched = await queue.status(later.op_id)
        assert untouched is not None
        assert (untouched.state, untouched.attempts) == ("queued", 0)
        assert await queue.get_dead_letter_ops() == []
        assert await orders.plain.get_latest(dead.id) is None
        latest = await orders.plain.get_latest(base.id)
        assert latest is not None and latest.data == {"total": 0}

        # The revived dead letter is really due again: a worker here applies it.
        await queue.start_worker()
        result = await queue.wait(dead.op_id, timeout=10)
        assert isinstance(result, WriteResult) and result.id == dead.id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_fallback_errors_exit_2_with_a_message_on_stderr(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    disabled = tmp_path / "disabled.json"
    disabled.write_text(make_config("local").to_json(reveal_secrets=True))
    unreachable = tmp_path / "unreachable.json"
    away = make_config(
        "local",
        mongo_uris=[f"mongodb://127.0.0.1:{_free_port()}/"],
        mongo_client={"server_selection_timeout_ms": 500},
        fallback={"enabled": True},
    )
    unreachable.write_text(away.to_json(reveal_secrets=True))
    off, missing, down = await asyncio.gather(
        run_cli("fallback", "stats", "--config", str(disabled), "--json"),
        run_cli("fallback", "retry", "op_x", "--config", str(tmp_path / "none.json")),
        run_cli("fallback", "dead-letters", "--config", str(unreachable), "--json"),
    )
    assert off[:2] == (2, "") and "fallback queue is disabled" in off[2]
    assert missing[:2] == (2, "") and "cannot read config file" in missing[2]
    assert down[:2] == (2, "") and "error: StorageError" in down[2]


def _s3_config(**fallback: Any) -> ChronosConfig:
    return ChronosConfig.load(
        {
            "mongo_uris": ["mongodb://u:secret-pw@127.0.0.1:1/"],
            "spaces_conns": [
                {
                    "endpoint": "http://127.0.0.1:2",
                    "access_key": "AK",
                    "secret_key": "secret-sk",
                    "json_bucket": "j-bucket",
                    "content_bucket": "c-bucket",
                    "backups_bucket": "b-bucket",
                }
            ],
            "fallback": fallback,
        }
    )


def test_the_cli_config_keeps_everything_but_the_worker() -> None:
    config = _s3_config(enabled=True, max_attempts=3, database="ops")
    assert config.fallback is not None and config.fallback.auto_start
    quiet = _without_worker(config)
    assert quiet.fallback is not None and not quiet.fallback.auto_start
    # Everything else, credentials included, is unchanged.
    assert quiet.model_copy(update={"fallback": config.fallback}) == config
    assert quiet.spaces_conns[0].secret_key.get_secret_value() == "secret-sk"
    assert quiet.mongo_uris == ["mongodb://u:secret-pw@127.0.0.1:1/"]
    with pytest.raises(ConfigError, match="disabled"):
        _without_worker(_s3_config(enabled=False))
    with pytest.raises(ConfigError, match="disabled"):
        _without_worker(
            ChronosConfig.load(
                {"mongo_uris": ["mongodb://127.0.0.1:1/"], "payload_storage": "mongo"}
            )
        )


def test_dead_letter_options_make_the_library_filter() -> None:
    args = _parser().parse_args(
        [
            *("fallback", "dead-letters", "--config", "c.json", "--op", "update"),
            *("--db", "shop", "--collection", "orders", "--tenant", "acme"),
        ]
    )
    chosen = _dead_letter_filter(args)
    assert chosen == {"op": "update", "db": "shop", "collection": "orders", "tenant": "acme"}
    # The library ignores keys it does not know: every key must be one it filters on.
    assert set(chosen) == set(_DEAD_FILTERS)
    assert args.limit == 50
    assert (
        _dead_letter_filter(_parser().parse_args(["fallback", "dead-letters", "--config", "c"]))
        == {}
    )


def test_fallback_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["fallback", "dead-letters", "--config", "c.json", "--limit", "0"],
        ["fallback", "dead-letters", "--config", "c.json", "--op", "upsert"],
        ["fallback", "retry", "--config", "c.json"],
        ["fallback", "stats"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2, argv
    assert "expected a positive integer" in capsys.readouterr().err
