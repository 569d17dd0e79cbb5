"""The floor's payload stores: S3 through aioboto3 or obstore, and a local folder.

Each mirrors what the library's store sends and writes (``chronos_async/storage/s3.py``,
``s3_obstore.py`` and ``local.py``) with nothing around it: no key validation, no error
translation.
"""

from __future__ import annotations

import os
import secrets
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import obstore
from obstore.store import S3Store

from benchmarks._env import S3Endpoint

__all__ = ["RawBlobs", "RawLocal", "RawObstore", "RawS3"]


class RawBlobs(Protocol):
    """Create-only payload storage, opened and closed with ``async with``."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def put(self, key: str, body: bytes, sha256: str) -> None: ...

    async def get(self, key: str, *, size: int | None = None) -> bytes:
        """The object's bytes; ``size``, when known, lets a client read it as a range."""
        ...


class RawS3:
    """aioboto3 with the library's S3 client settings (``S3BlobStore`` defaults).

    PUT: ``put_object`` with ``IfNoneMatch="*"`` (never overwrite) and the sha256 in the
    metadata; GET: ``get_object`` and read the body.
    """

    def __init__(self, s3: S3Endpoint, prefix: str) -> None:
        self._s3 = s3
        self._prefix = prefix.strip("/") + "/"
        self._bucket = s3.buckets[0]
        self._client: Any = None
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> RawS3:
        import aioboto3
        from aiobotocore.config import AioConfig

        config = AioConfig(
            region_name=self._s3.region,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=30,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = aioboto3.Session(
            aws_access_key_id=self._s3.access_key,
            aws_secret_access_key=self._s3.secret_key,
            region_name=self._s3.region,
        )
        self._client = await self._stack.enter_async_context(
            session.client("s3", endpoint_url=self._s3.endpoint, config=config)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def put(self, key: str, body: bytes, sha256: str) -> None:
        await self._client.put_object(
            Bucket=self._bucket,
            Key=self._prefix + key,
            Body=body,
            ContentType="application/json",
            Metadata={"sha256": sha256},
            IfNoneMatch="*",
        )

    async def get(self, key: str, *, size: int | None = None) -> bytes:
        response = await self._client.get_object(Bucket=self._bucket, Key=self._prefix + key)
        async with response["Body"] as stream:
            data: bytes = await stream.read()
            return data


class RawObstore:
    """obstore with the library's client settings (``ObstoreBlobStore`` defaults).

    PUT: ``put_async`` with ``mode="create"`` (``If-None-Match: *``) and the sha256 as
    an attribute (user metadata); GET: ``get_range_async`` of ``[0, size)`` when the size
    is known, else ``get_async`` and read the body.
    """

    def __init__(self, s3: S3Endpoint, prefix: str) -> None:
        self._prefix = prefix.strip("/") + "/"
        self._store = S3Store(
            s3.buckets[0],
            endpoint=s3.endpoint,
            region=s3.region,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            virtual_hosted_style_request=False,
            conditional_put="etag",
            client_options={
                "allow_http": s3.endpoint.startswith("http://"),
                "connect_timeout": timedelta(seconds=5),
                "read_timeout": timedelta(seconds=30),
                "timeout": timedelta(seconds=300),
            },
            retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=300)},
        )

    async def __aenter__(self) -> RawObstore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def put(self, key: str, body: bytes, sha256: str) -> None:
        await obstore.put_async(
            self._store,
            self._prefix + key,
            body,
            mode="create",
            attributes={"Content-Type": "application/json", "sha256": sha256},
        )

    async def get(self, key: str, *, size: int | None = None) -> bytes:
        path = self._prefix + key
        if size:  # one call (as the library reads payloads of known size)
            data = await obstore.get_range_async(self._store, path, start=0, length=size)
            return data.to_bytes()
        result = await obstore.get_async(self._store, path)
        return (await result.bytes_async()).to_bytes()

    async def count(self) -> int:
        """How many objects are stored under the prefix (one LIST per 1,000)."""
        total = 0
        async for chunk in obstore.list(self._store, self._prefix.rstrip("/")):
            total += len(chunk)
        return total


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RawLocal:
    """A folder, with the durable create-only write the library's local store performs.

    PUT (one worker-thread hop, the same anyio pool the library uses): create missing
    folders (fsync the parent of each new one), write a temporary file and fsync it,
    ``os.link`` it to the key (fails if the key exists: never overwrite), unlink the
    temporary name, fsync the folder. GET: read the file in a worker thread.
    """

    def __init__(self, root: Path) -> None:
        self._root = root / "json"
        self._root.mkdir(parents=True, exist_ok=True)

    async def __aenter__(self) -> RawLocal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _put_sync(self, key: str, body: bytes) -> None:
        *dirs, name = key.split("/")
        parent = str(self._root)
        for segment in dirs:
            child = os.path.join(parent, segment)
            try:
                os.mkdir(child)
            except FileExistsError:
                pass
            else:
                _fsync_dir(parent)
            parent = child
        final = os.path.join(parent, name)
        tmp = f"{final}~{secrets.token_hex(6)}.tmp"
        with open(tmp, "xb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, final)
        finally:
            os.unlink(tmp)
        _fsync_dir(parent)

    def _get_sync(self, key: str) -> bytes:
        with open(os.path.join(self._root, *key.split("/")), "rb") as file:
            return file.read()

    async def put(self, key: str, body: bytes, sha256: str) -> None:
        await anyio.to_thread.run_sync(self._put_sync, key, body)

    async def get(self, key: str, *, size: int | None = None) -> bytes:
        return await anyio.to_thread.run_sync(self._get_sync, key)
