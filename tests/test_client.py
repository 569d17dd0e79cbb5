"""Chronos lifecycle: open once, close idempotently, clean up after a failed start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from chronos_async import Chronos, ClosedError, ConfigError, StorageError


async def test_open_use_close_and_refuse_reuse(make_config: Any, db_name: str) -> None:
    chronos = Chronos(make_config("local"))
    assert not chronos.is_open
    with pytest.raises(ClosedError):
        chronos.collection("users", db=db_name)
    async with chronos:
        assert chronos.is_open
        with pytest.raises(ClosedError):
            async with chronos:
                pass
        users = chronos.collection("users", db=db_name)
        await users.create({"email": "a@x"})
    assert not chronos.is_open
    await chronos.aclose()  # idempotent
    with pytest.raises(ClosedError):
        await users.get_latest("anything")
    with pytest.raises(ClosedError):
        async with chronos:
            pass


async def test_dict_and_json_configs_are_accepted(make_config: Any) -> None:
    config = make_config("local")
    as_dict = config.to_dict(reveal_secrets=True)
    async with Chronos(as_dict) as chronos:
        assert chronos.is_open
    with pytest.raises(ConfigError):
        Chronos({"mongoUris": ["mongodb://x"], "nonsense": True})
    with pytest.raises(ConfigError):
        Chronos(42)  # type: ignore[arg-type]


async def test_a_config_file_path_is_read_as_str_or_path(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "chronos.json"
    path.write_text(make_config("local").to_json(reveal_secrets=True))
    monkeypatch.chdir(tmp_path)
    for given in ("chronos.json", str(path), path):
        async with Chronos(given) as chronos:
            assert chronos.config.resolved_payload_storage == "local"
    # JSON text is still JSON text; a missing file is a ConfigError that says how a str is read.
    assert Chronos(path.read_text()).config == Chronos(path).config
    with pytest.raises(ConfigError, match=r"cannot read config file 'missing\.json'.*path"):
        Chronos("missing.json")
    with pytest.raises(ConfigError, match="cannot read config file"):
        Chronos(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match=r"'bad\.json' is not valid JSON"):
        Chronos("bad.json")


async def test_unreachable_mongo_fails_fast_with_retryable_error(make_config: Any) -> None:
    # A listener that accepts and never answers: the driver times out waiting for "hello".
    # (A refused port would do too, but pymongo leaks a socket when a client is closed
    # while its monitor is still dialing one; see tests/README.md.)
    held: list[asyncio.StreamWriter] = []

    async def mute(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = make_config(
        "local",
        mongo_uris=[f"mongodb://127.0.0.1:{port}/?directConnection=true"],
        mongo_client={"server_selection_timeout_ms": 300, "connect_timeout_ms": 300},
    )
    chronos = Chronos(config)
    try:
        with pytest.raises(StorageError) as info:
            async with chronos:
                pass
        assert info.value.retryable
        assert not chronos.is_open
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_failed_store_start_closes_what_was_opened(make_config: Any) -> None:
    config = make_config("s3")
    conn = config.spaces_conns[0].model_copy(update={"json_bucket": "no-such-bucket-here"})
    broken = config.model_copy(update={"spaces_conns": [conn]})
    chronos = Chronos(broken)
    with pytest.raises(StorageError):
        async with chronos:
            pass
    assert not chronos.is_open
    with pytest.raises(ClosedError):
        async with chronos:
            pass


async def test_repr_shows_no_secrets(make_config: Any) -> None:
    config = make_config("s3")
    secret = config.spaces_conns[0].secret_key.get_secret_value()
    chronos = Chronos(config)
    assert secret not in repr(chronos) and secret not in repr(config)
