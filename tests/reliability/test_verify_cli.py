"""``python -m chronos_async verify``: clean store -> 0, corrupted store -> 1 naming each problem.

A small store is built with the library, then damaged behind its back (payload bytes
overwritten in the store, a payload removed, a head's ``sha256`` changed with a raw
pymongo client). The CLI runs in a subprocess, as an operator would run it; the same
problems must come out of ``admin.verify`` in-process, with the right kinds and ids.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from chronos_async import Chronos, ChronosConfig, Collection
from chronos_async._keys import head_id, version_id
from chronos_async._procs import S3Credentials, s3_client
from tests.reliability.writer_process import config_json

BIG = "y" * 20_000  # not kept inline: its only copy is the stored object
REPO = Path(__file__).parents[2]


async def run_cli(*args: str) -> tuple[int, str]:
    """Run ``python -m chronos_async ARGS``; its exit status and output (both streams)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chronos_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        async with asyncio.timeout(120):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def problem_lines(output: str, kind: str) -> list[str]:
    """The lines of the CLI output that report a problem of ``kind``."""
    return [line for line in output.splitlines() if line.startswith(f"{kind}:")]


async def build_store(users: Collection) -> None:
    """Four records with a few versions each (payloads in the store, not inline)."""
    for name in ("pay-corrupt", "head-corrupt", "payload-gone", "healthy"):
        await users.create({"name": name, "pad": BIG}, id=name)
        await users.update(name, {"name": name, "n": 1, "pad": BIG}, expected_ov=0)
    await users.enrich("healthy", {"tags": ["ok"]})


async def overwrite_payload(chronos: Chronos, storage: str, key: str, body: bytes) -> None:
    """Replace a stored object's bytes without the library (which never overwrites)."""
    if storage == "local":
        local = chronos.config.local_storage
        assert local is not None
        target = Path(local.base_path, "json", *key.split("/"))
        await asyncio.to_thread(target.write_bytes, body)
        return
    conn = chronos.config.spaces_conns[0]
    creds = S3Credentials(conn.access_key.get_secret_value(), conn.secret_key.get_secret_value())
    async with s3_client(conn.endpoint, creds, conn.region) as s3:
        full = f"{conn.key_prefix}/{key}" if conn.key_prefix else key
        await s3.put_object(Bucket=conn.json_bucket, Key=full, Body=body)


@pytest.mark.parametrize("storage", ["local", "s3"])
async def test_verify_cli_exit_codes_and_reports(
    make_config: Any, mongo_uri: str, db_name: str, tmp_path: Path, storage: str
) -> None:
    config: ChronosConfig = make_config(storage)
    config_file = tmp_path / "chronos.json"
    config_file.write_text(config_json(config))
    async with Chronos(config) as chronos:
        users = chronos.collection("users", db=db_name)
        await build_store(users)

        code, out = await run_cli("verify", "--config", str(config_file), "--db", db_name)
        assert code == 0, out
        assert "OK: no violations" in out

        # Damage the store behind the library's back.
        repo = users._scope.repo
        corrupted = await repo.find_version(version_id(None, "pay-corrupt", 1))
        gone = await repo.find_version(version_id(None, "payload-gone", 0))
        assert corrupted is not None and gone is not None
        await overwrite_payload(chronos, storage, corrupted["key"], b'{"tampered":true}')
        await users._scope.store.delete([gone["key"]])
        raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
        try:
            heads = raw[db_name]["users_head"]
            changed = await heads.update_one(
                {"_id": head_id(None, "head-corrupt")}, {"$set": {"sha256": "0" * 64}}
            )
            assert changed.modified_count == 1
        finally:
            await raw.close()

        expected = {
            ("checksum_mismatch", "pay-corrupt", 1),
            ("head_mismatch", "head-corrupt", 1),
            ("missing_payload", "payload-gone", 0),
        }
        report = await chronos.admin.verify(db_name)
        assert not report.ok
        found = {(p.kind, p.id, p.ov) for p in report.problems}
        assert found == expected, "\n".join(map(str, report.problems))
        assert all(p.db == db_name and p.collection == "users" for p in report.problems)

    code, out = await run_cli("verify", "--config", str(config_file), "--db", db_name)
    assert code == 1, out
    for kind, item_id, ov in expected:
        lines = problem_lines(out, kind)
        assert any(f"id={item_id} ov={ov}" in line for line in lines), (kind, out)
    assert "FAILED: 3 violation(s)" in out

    if storage == "local":  # the options and usage errors once are enough
        code, out = await run_cli(
            "verify", "--config", str(config_file), "--db", db_name, "--quick"
        )
        assert code == 1, out  # presence and metadata are still checked ...
        assert problem_lines(out, "head_mismatch") and problem_lines(out, "missing_payload")
        assert not problem_lines(out, "checksum_mismatch")  # ... but no payload is hashed
        code, out = await run_cli(
            "verify", "--config", str(config_file), "--db", db_name, "--collection", "other"
        )
        assert code == 2, out  # a collection that does not exist is a usage error
        assert "no collection 'other'" in out
        code, out = await run_cli("verify", "--config", str(tmp_path / "missing.json"))
        assert code == 2, out
        code, out = await run_cli("verify")
        assert code == 2, out
