"""GDPR purge: not one byte of the record left, in MongoDB or the store, and nothing
of anyone else's lost.

The record carries a marker string in an indexed prop, its data, an externalized
attachment (stored decoded, with a text rendition) and its idempotency key; it has live
and rolled-up versions whose payloads sit in packs shared with another record, a copy
made for a presigned URL, a queued fallback write and a unique-set entry. After the
purge the test reads back every byte: each file under the local store's folder, and
every document of every collection of the databases involved (through the wire: the
test server keeps its data in memory), and finds the marker nowhere.
"""

from __future__ import annotations

import asyncio
import base64
import runpy
import uuid
from pathlib import Path
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient

from chronos_async import Chronos, QueuedWrite, ValidationError
from tests.conftest import MakeConfig
from tests.support import Outage


def _config(make_config: MakeConfig, db_name: str, storage: str, spool: Path) -> Any:
    return make_config(
        storage,
        hard_delete_enabled=True,
        collection_maps={
            "users": {
                "indexed_props": ["email"],
                "base64_props": {"avatar": {"content_type": "text/plain"}},
                "version_retention": {"max_versions_in_index": 2},
            }
        },
        counter_rules={"rules": [{"name": "emails", "when": {}, "count_unique": "email"}]},
        write_optimization={"batch_s3": True, "batch_window_ms": 5},
        fallback={
            "enabled": True,
            "auto_start": False,
            "database": f"{db_name}_sys",
            "spool_dir": str(spool),
        },
    )


async def _mongo_bytes(uri: str, databases: list[str]) -> bytes:
    """Every document of every collection of ``databases``, as BSON."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        out = bytearray()
        for name in databases:
            for coll in await client[name].list_collection_names():
                async for doc in client[name][coll].find({}):
                    out += bson.encode(doc)
        return bytes(out)
    finally:
        await client.close()


async def _store_bytes(chronos: Chronos, storage: str, root: Path, spool: Path) -> bytes:
    """Every object of the test's store, read through its API (each role), and for a
    local store every file under its folder as well."""
    store = chronos.backends[0].store
    out = bytearray()
    for role in ("json", "content", "backups"):
        async for info in store.list("", role=role):  # type: ignore[arg-type]
            out += await store.get(info.key, role=role)  # type: ignore[arg-type]
    out += await asyncio.to_thread(_folder_bytes, spool)  # the fallback journal's files
    if storage == "local":
        out += await asyncio.to_thread(_folder_bytes, root)
    return bytes(out)


def _folder_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _traces(marker: str) -> list[bytes]:
    raw = marker.encode()
    return [raw, base64.b64encode(raw * 40)[:40], raw.hex().encode()]


@pytest.mark.parametrize("storage", ["local", "s3"])
async def test_purge_leaves_no_byte_of_the_record(
    make_config: MakeConfig, db_name: str, mongo_uri: str, tmp_path: Path, storage: str
) -> None:
    marker = f"MARK{uuid.uuid4().hex}"
    avatar = base64.b64encode(marker.encode() * 40).decode()
    spool = tmp_path / "spool"
    async with Chronos(_config(make_config, db_name, storage, spool)) as chronos:
        users = chronos.collection("users", db=db_name)
        victim = await users.create(
            {"email": f"{marker}@example.org", "name": marker, "avatar": avatar}
        )
        other = await users.create({"email": "keep@example.org", "name": "Keep", "n": 0})
        for n in range(1, 6):  # concurrent writes of both records share packs
            await asyncio.gather(
                users.update(
                    victim.id,
                    {"email": f"{marker}@example.org", "name": f"{marker}-{n}", "avatar": avatar},
                    expected_ov=None,
                    # a keyed version stays in the index: the last one, which stays anyway
                    idempotency_key=f"edit-{marker}" if n == 5 else None,
                ),
                users.update(other.id, {"email": "keep@example.org", "n": n}, expected_ov=None),
            )
        rolled = await chronos.admin.rollup_now(db=db_name)
        assert rolled.versions_rolled == 8  # both records keep 2 versions in the index
        shown = await users.get_latest(victim.id, content="ref", presign=True)
        assert shown is not None and shown.urls  # a presign copy of a packed payload
        queued_users = chronos.fallback.collection("users", db=db_name)
        with chronos.checkpoints.hook(Outage()):
            queued = await queued_users.update(
                victim.id, {"email": f"{marker}@example.org", "name": marker}, expected_ov=None
            )
        assert isinstance(queued, QueuedWrite)
        # A write journaled on this host while MongoDB did not answer (as the queue does).
        assert chronos.fallback.spool is not None
        await chronos.fallback.spool.open()
        await chronos.fallback.spool.append(
            {
                "_id": f"spooled-{victim.id}",
                "created_us": 1,
                "op": "update",
                "db": db_name,
                "collection": "users",
                "tenant": None,
                "args": {"id": victim.id, "data": {"name": marker}},
            }
        )
        before_purge = (await users.get_latest(other.id)).updated_at  # type: ignore[union-attr]
        assert (await chronos.counters.get_totals(db=db_name, collection="users")).unique == {
            "emails": 2
        }
        haystack = await _store_bytes(
            chronos, storage, tmp_path / "payloads", spool
        ) + await _mongo_bytes(mongo_uri, [db_name, f"{db_name}_sys"])
        assert all(trace in haystack for trace in _traces(marker)[:1])  # the probe works

        report = await chronos.admin.purge(
            db=db_name, collection="users", id=victim.id, reason="GDPR request 42", actor="dpo"
        )
        assert report.found and report.versions == 6 and report.queued == 2
        assert report.idempotency_keys == 1 and report.unique_entries == 1
        assert report.objects > 0

        haystack = await _store_bytes(
            chronos, storage, tmp_path / "payloads", spool
        ) + await _mongo_bytes(mongo_uri, [db_name, f"{db_name}_sys"])
        for trace in _traces(marker):
            assert trace not in haystack, trace
        assert victim.id.encode() not in haystack  # the tombstone keeps a hash only

        # Everyone else's data is intact, rolled-up versions included; verify is clean.
        for ov in range(6):
            item = await users.get_version(other.id, ov=ov)
            assert item is not None and item.data["n"] == ov
        report_ = await chronos.admin.verify(db=db_name)
        assert report_.ok, report_.problems[:5]
        totals = await chronos.counters.get_totals(db=db_name, collection="users")
        assert totals.unique == {"emails": 1} and totals.created == 2

        # No way back: reads, history and a collection restore to before the purge.
        assert await users.get_latest(victim.id) is None
        restored = await users.restore_collection(at=before_purge)
        assert victim.id not in restored.restored + restored.undeleted
        assert await users.get_latest(victim.id) is None
        tomb = await users._scope.repo.db["users_purged"].find_one({"_id": report.tombstone})
        assert tomb is not None and tomb["state"] == "done"
        assert (tomb["reason"], tomb["actor"], tomb["versions"]) == ("GDPR request 42", "dpo", 6)

        again = await chronos.admin.purge(
            db=db_name, collection="users", id=victim.id, reason="GDPR request 42"
        )
        assert not again.found and again.tombstone == report.tombstone


async def test_purge_needs_hard_delete_and_a_reason(make_config: MakeConfig, db_name: str) -> None:
    async with Chronos(make_config("local")) as chronos:
        with pytest.raises(ValidationError, match="hard_delete_enabled"):
            await chronos.admin.purge(db=db_name, collection="users", id="x", reason="r")
    async with Chronos(make_config("local", hard_delete_enabled=True)) as chronos:
        with pytest.raises(ValidationError, match="reason"):
            await chronos.admin.purge(db=db_name, collection="users", id="x", reason="")
        with pytest.raises(ValidationError):
            await chronos.admin.purge(db=db_name, collection="users", id="../x", reason="r")


EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "counters_and_lifecycle.py")


async def test_the_counters_and_lifecycle_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(EXAMPLE)
    await module["main"](s3=False)
    out = capsys.readouterr().out
    assert "created 2, updated 4, paying now 2, countries 2" in out
    assert "rolled up 3 versions" in out
    assert "Ada's plan when she signed up: free" in out
    assert "paying now 1, verify ok: True" in out
