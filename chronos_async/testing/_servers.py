"""The servers a test session runs against, on an event loop of their own.

:meth:`ChronosServers.start` takes :class:`ServerSettings` (what the pytest plugin reads
from its options and environment variables) and makes the missing parts: an embedded
:class:`~chronos_async.embedded.LocalStack` gives nx-27017 when no MongoDB URI is set, and
SeaweedFS when payloads go to S3 and no S3 endpoint is set. Nothing is started for parts
that are configured, and nothing at all when everything is.

The servers live on a private event loop in a daemon thread, not on a test's loop: with
pytest-asyncio a test may run on a loop per function, module or session, and the servers
must outlive all of them. Only plain values (a URI, an endpoint and keys) cross over; each
test opens its own clients on its own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from pymongo import AsyncMongoClient

from chronos_async._config import ChronosConfig
from chronos_async._errors import LocalServerError
from chronos_async._redact import redact_uri

if TYPE_CHECKING:
    from chronos_async.embedded import LocalStack

__all__ = ["EXTERNAL_BUCKETS", "ChronosServers", "PayloadStorage", "S3Endpoint", "ServerSettings"]

T = TypeVar("T")

#: Where test payloads go: a local folder (the default: fastest), S3, or MongoDB itself.
PayloadStorage = Literal["local", "s3", "mongo"]
PAYLOAD_STORAGES: tuple[str, ...] = get_args(PayloadStorage)

#: The buckets used on an external S3 server (created when missing).
EXTERNAL_BUCKETS = ("chronos-test-json", "chronos-test-content", "chronos-test-backups")


@dataclass(frozen=True)
class S3Endpoint:
    """An S3 endpoint with its credentials and the three buckets tests share."""

    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    #: The JSON, content and backups buckets, in that order.
    buckets: tuple[str, str, str] = EXTERNAL_BUCKETS


@dataclass(frozen=True)
class ServerSettings:
    """What to run the tests against: ``None`` parts are started locally when needed.

    ``mongo_uri=None`` starts nx-27017; ``s3=None`` with ``payload_storage="s3"`` starts
    SeaweedFS (``s3`` is ignored for the other storages).
    """

    payload_storage: PayloadStorage = "local"
    mongo_uri: str | None = None
    s3: S3Endpoint | None = None
    start_timeout: float = 60.0


class ChronosServers:
    """The session's MongoDB and payload store; build per-test configs with :meth:`config`.

    Example (what the pytest plugin does for a session)::

        servers = ChronosServers.start(ServerSettings(), workdir=Path("/tmp/run"))
        try:
            config = servers.config(db="t_1", key_prefix="t-1")
            ...
            servers.drop_databases("t_1")
        finally:
            servers.stop()

    ``stack`` is the embedded :class:`~chronos_async.embedded.LocalStack` when one was
    started (``None`` when the configured servers were enough).
    """

    def __init__(self, settings: ServerSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.mongo_uri = ""
        self.s3: S3Endpoint | None = None
        self.stack: LocalStack | None = None
        self._loop = _LoopThread("chronos-test-servers")
        self._exit_stack = AsyncExitStack()
        self._admin: AsyncMongoClient[dict[str, Any]] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        where = "embedded" if self.stack is not None else "external"
        return (
            f"<ChronosServers {where} mongo={redact_uri(self.mongo_uri)} "
            f"payloads={self.payload_storage}>"
        )

    @classmethod
    def start(cls, settings: ServerSettings, workdir: Path) -> ChronosServers:
        """Check the configured servers and start the missing ones; blocks until ready.

        Raises :class:`~chronos_async.ExecutableNotFoundError` when a server must be
        started but its executable is missing (``weed`` has no macOS wheel), and
        :class:`~chronos_async.LocalServerError` when one does not start or a configured
        one does not answer. Nothing is left running after an error.
        """
        if settings.payload_storage not in PAYLOAD_STORAGES:
            raise ValueError(
                f"payload_storage must be one of {PAYLOAD_STORAGES}, "
                f"not {settings.payload_storage!r}"
            )
        servers = cls(settings, workdir)
        try:
            servers._loop.run(servers._start())
        except BaseException:
            servers.stop()
            raise
        return servers

    @property
    def payload_storage(self) -> PayloadStorage:
        """Where the configs built by :meth:`config` put payloads."""
        return self.settings.payload_storage

    def config(self, *, db: str, key_prefix: str, **overrides: Any) -> ChronosConfig:
        """A config on these servers whose storage belongs to one test.

        Payloads go under ``key_prefix`` (S3), into ``<workdir>/payloads/<key_prefix>``
        (local) or into the database ``<db>_p`` (mongo). ``overrides`` (snake_case or
        camelCase) replace top-level keys; a ``fallback`` or ``mongo_storage`` override
        that names no ``database`` gets ``<db>_sys`` or ``<db>_p``, so that no two tests
        share a queue or a payload database. :meth:`drop_databases` removes all three.
        """
        from chronos_async.embedded import _snake_case

        storage = self.payload_storage
        base: dict[str, Any] = {
            "mongo_uris": [self.mongo_uri],
            "payload_storage": storage,
            "mongo_storage": {"database": f"{db}_p"},
        }
        if storage == "s3":
            s3 = self.s3
            assert s3 is not None  # start() guarantees it
            base["spaces_conns"] = [
                {
                    "endpoint": s3.endpoint,
                    "region": s3.region,
                    "access_key": s3.access_key,
                    "secret_key": s3.secret_key,
                    "json_bucket": s3.buckets[0],
                    "content_bucket": s3.buckets[1],
                    "backups_bucket": s3.buckets[2],
                    "force_path_style": True,
                    "key_prefix": key_prefix,
                }
            ]
        elif storage == "local":
            folder = self.workdir / "payloads" / key_prefix
            base["local_storage"] = {"enabled": True, "base_path": str(folder)}
        base.update({_snake_case(key): value for key, value in overrides.items()})
        for key, database in (("fallback", f"{db}_sys"), ("mongo_storage", f"{db}_p")):
            section = base.get(key)
            if isinstance(section, dict) and "database" not in section:
                base[key] = {**section, "database": database}
        return ChronosConfig.model_validate(base)

    @staticmethod
    def databases_of(db: str) -> tuple[str, str, str]:
        """The databases a test's config may use: ``db``, ``<db>_p`` and ``<db>_sys``."""
        return db, f"{db}_p", f"{db}_sys"

    def drop_databases(self, *names: str) -> None:
        """Drop ``names`` on the session's MongoDB (blocks until done)."""
        self._loop.run(self._drop(names))

    def stop(self) -> None:
        """Stop what :meth:`start` started and the private event loop (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._loop.run(self._exit_stack.aclose())
        finally:
            self._loop.close()

    # -- on the private loop -----------------------------------------------------------

    async def _start(self) -> None:
        settings = self.settings
        want_weed = settings.payload_storage == "s3" and settings.s3 is None
        stack: LocalStack | None = None
        if settings.mongo_uri is None or want_weed:
            # Imported here: a session whose servers are all configured never loads them.
            from chronos_async._procs import find_executable
            from chronos_async.embedded import LocalStack

            if want_weed:
                find_executable("weed")  # LocalStack would fall back to a folder instead
            stack = LocalStack(s3=want_weed, start_timeout=settings.start_timeout)
            self.stack = await self._exit_stack.enter_async_context(stack)
        if settings.mongo_uri is not None:
            await _check_mongo(settings.mongo_uri)
            self.mongo_uri = settings.mongo_uri
        else:
            assert stack is not None
            self.mongo_uri = stack.mongo_uri
        if settings.s3 is not None and settings.payload_storage == "s3":
            await _ensure_buckets(settings.s3)
            self.s3 = settings.s3
        elif want_weed:
            assert stack is not None
            endpoint, access_key = stack.s3_endpoint, stack.s3_access_key
            secret_key = stack.s3_secret_key
            assert endpoint is not None
            assert access_key is not None
            assert secret_key is not None
            names = stack.buckets
            self.s3 = S3Endpoint(
                endpoint,
                access_key,
                secret_key,
                stack.s3_region,
                (names.json, names.content, names.backups),
            )
        admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.mongo_uri, serverSelectionTimeoutMS=10_000
        )
        self._exit_stack.push_async_callback(admin.close)
        self._admin = admin

    async def _drop(self, names: tuple[str, ...]) -> None:
        assert self._admin is not None, "the servers are not started"
        for name in names:
            await self._admin.drop_database(name)


async def _check_mongo(uri: str) -> None:
    from chronos_async._procs import mongo_ping

    try:
        await mongo_ping(uri, timeout_ms=10_000)
    except Exception as exc:
        raise LocalServerError(f"MongoDB at {redact_uri(uri)} does not answer: {exc!r}") from exc


async def _ensure_buckets(s3: S3Endpoint) -> None:
    from chronos_async._procs import S3Credentials, s3_client

    try:
        async with s3_client(
            s3.endpoint, S3Credentials(s3.access_key, s3.secret_key), s3.region
        ) as client:
            listed = await client.list_buckets()
            existing = {bucket["Name"] for bucket in listed.get("Buckets", [])}
            for bucket in s3.buckets:
                if bucket in existing:
                    continue
                extra: dict[str, Any] = {}
                if s3.region != "us-east-1":
                    extra["CreateBucketConfiguration"] = {"LocationConstraint": s3.region}
                await client.create_bucket(Bucket=bucket, **extra)
    except Exception as exc:
        raise LocalServerError(f"S3 at {s3.endpoint} does not answer: {exc!r}") from exc


class _LoopThread:
    """An event loop running forever on a daemon thread; :meth:`run` waits for a coroutine.

    The thread lives as long as the servers: on Linux a server is killed when the thread
    that spawned it exits (see :mod:`chronos_async._procs_core`).
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and return its result (or raise its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Finish async generators and the default executor, stop the loop, join."""
        if self._loop.is_closed():
            return
        try:
            self.run(self._loop.shutdown_asyncgens())
            self.run(self._loop.shutdown_default_executor())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
