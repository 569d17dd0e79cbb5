"""LocalStack: start, configure, use, stop (also on errors), persist, refuse re-entry."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

import chronos_async.embedded as embedded
from chronos_async import ConfigError
from chronos_async._procs import S3Credentials, mongo_ping, s3_client
from chronos_async._procs_core import _pid_alive
from chronos_async.embedded import ExecutableNotFoundError, LocalServerError, LocalStack


async def _all_gone(pids: dict[str, int], within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while any(_pid_alive(pid) for pid in pids.values()):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def _s3(stack: LocalStack) -> Any:
    assert stack.s3_endpoint is not None
    assert stack.s3_access_key is not None
    assert stack.s3_secret_key is not None
    creds = S3Credentials(stack.s3_access_key, stack.s3_secret_key)
    return s3_client(stack.s3_endpoint, creds, stack.s3_region)


async def _get(s3: Any, bucket: str, key: str) -> bytes:
    reply = await s3.get_object(Bucket=bucket, Key=key)
    async with reply["Body"] as body:
        data: bytes = await body.read()
    return data


def _grpc_sockets(ports: Iterable[int]) -> list[Path]:
    """The gRPC unix sockets weed made for these HTTP ports (weed leaves them on SIGKILL)."""
    return [s for p in ports for s in Path("/tmp").glob(f"seaweedfs-*-grpc-{p + 10000}.sock")]


def _client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)


async def test_stack_with_s3() -> None:
    async with LocalStack() as stack:
        assert stack.s3_enabled
        assert stack.local_path is None
        assert set(stack.pids) == {"nx-27017", "weed"}
        config = stack.config(collection_maps={"users": {"indexed_props": ["email"]}})
        assert config.resolved_payload_storage == "s3"
        conn = config.spaces_conns[0]
        assert conn.endpoint == stack.s3_endpoint
        assert conn.force_path_style
        assert conn.json_bucket == stack.buckets.json == "chronos-json"
        assert config.collection_map("users").indexed_props == ["email"]
        assert await mongo_ping(stack.mongo_uri)
        async with _s3(stack) as s3:
            await s3.put_object(Bucket=stack.buckets.content, Key="a/b.txt", Body=b"payload")
            assert await _get(s3, stack.buckets.content, "a/b.txt") == b"payload"
        assert stack.s3_secret_key is not None
        assert stack.s3_secret_key not in repr(stack)
        assert stack.s3_secret_key not in repr(config)
        pids, root = stack.pids, stack.data_dir
        weed = stack._weed
        assert weed is not None
        assert _grpc_sockets(weed.ports)
        # SIGKILL at once (no grace): weed cannot remove its sockets, the stop must.
        await weed.stop(grace=0.0)
        assert not weed.running
    assert await _all_gone(pids)
    assert not root.exists()
    assert not _grpc_sockets(weed.ports)
    assert not any(path.exists() for path in weed._cleanup)  # the short socket folder


async def test_stack_without_s3() -> None:
    async with LocalStack(s3=False) as stack:
        assert not stack.s3_enabled
        assert stack.s3_endpoint is None
        assert stack.local_path is not None
        assert stack.local_path.is_dir()
        assert set(stack.pids) == {"nx-27017"}
        config = stack.config(collectionMaps={"users": {"indexedProps": ["email"]}})
        assert config.resolved_payload_storage == "local"
        assert config.local_storage is not None
        assert config.local_storage.base_path == str(stack.local_path)
        assert config.collection_map("users").indexed_props == ["email"]
        assert stack.config(hardDeleteEnabled=True).hard_delete_enabled
        with pytest.raises(ConfigError, match="no_such_key"):
            stack.config(no_such_key=1)
        async with _client(stack.mongo_uri) as client:
            await client.demo.items.insert_one({"_id": "x", "n": 1})
            assert await client.demo.items.find_one({"_id": "x"}) == {"_id": "x", "n": 1}
        pids = stack.pids
    assert await _all_gone(pids)


async def test_stack_stops_when_the_body_raises() -> None:
    pids: dict[str, int] = {}

    async def body() -> None:
        async with LocalStack(s3=False) as stack:
            pids.update(stack.pids)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        await body()
    assert pids
    assert await _all_gone(pids)


async def test_reentry_is_refused() -> None:
    stack = LocalStack(s3=False)
    with pytest.raises(RuntimeError, match="not started"):
        _ = stack.mongo_uri
    async with stack:
        with pytest.raises(RuntimeError, match="only once"):
            async with stack:
                pass
        assert await mongo_ping(stack.mongo_uri)  # the refused entry left it running
    with pytest.raises(RuntimeError, match="only once"):
        async with stack:
            pass


async def test_persistent_data_dir_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    async with LocalStack(data_dir) as stack:
        keys = (stack.s3_access_key, stack.s3_secret_key)
        async with _client(stack.mongo_uri) as client:
            await client.app.things.insert_one({"_id": "kept", "v": 42})
        async with _s3(stack) as s3:
            await s3.put_object(Bucket=stack.buckets.json, Key="kept.json", Body=b'{"v":42}')
    assert (data_dir / "meta").is_dir()
    assert (data_dir / "blobs").is_dir()

    pids: dict[str, int] = {}

    async def second_run() -> None:
        async with LocalStack(data_dir) as again:
            pids.update(again.pids)
            assert (again.s3_access_key, again.s3_secret_key) == keys
            async with _client(again.mongo_uri) as client:
                assert await client.app.things.find_one({"_id": "kept"}) == {"_id": "kept", "v": 42}
            async with _s3(again) as s3:
                assert await _get(s3, again.buckets.json, "kept.json") == b'{"v":42}'
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):  # a raising body still stops weed too
        await second_run()
    assert set(pids) == {"nx-27017", "weed"}
    assert await _all_gone(pids)
    assert data_dir.is_dir()


async def test_one_stack_per_data_dir(tmp_path: Path) -> None:
    async with LocalStack(tmp_path, s3=False):
        with pytest.raises(LocalServerError, match="in use"):
            async with LocalStack(tmp_path, s3=False):
                pass


async def test_missing_weed_falls_back_to_a_local_folder(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_weed(name: str) -> str:
        raise ExecutableNotFoundError(f"cannot find the {name!r} executable (test)")

    monkeypatch.setattr(embedded, "find_executable", no_weed)
    with caplog.at_level(logging.WARNING, logger="chronos_async.embedded"):
        async with LocalStack(s3=True) as stack:
            assert not stack.s3_enabled
            assert stack.local_path is not None
            assert stack.config().resolved_payload_storage == "local"
    assert any("local folder" in r.getMessage() for r in caplog.records)
