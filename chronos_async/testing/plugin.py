"""pytest plugin for testing applications that use chronos-async.

Registered through the ``pytest11`` entry point ``chronos_async`` (``-p chronos_async``
loads it explicitly, ``-p no:chronos_async`` disables it). Loading it starts nothing and
imports no server code: the servers start the first time a test asks for a fixture that
needs them, once per session, and stop when the session ends. Async fixtures need
pytest-asyncio (``asyncio_mode`` ``strict`` or ``auto``); the servers come with
``pip install "chronos-async[embedded]"``.

Example::

    async def test_rename(chronos, chronos_db):
        users = chronos.collection("users", db=chronos_db)
        created = await users.create({"name": "Ada"}, actor="test", reason="setup")
        await users.update(created.id, {"name": "Ada L."}, expected_ov=created.ov)
        latest = await users.get_latest(created.id)
        assert latest is not None and latest.data == {"name": "Ada L."}

Fixtures (all names start with ``chronos``, so they do not clash with an application's
own fixtures):

``chronos`` (function)
    An open :class:`~chronos_async.Chronos` on ``chronos_config``, closed after the test.
    It is opened on the event loop the test runs on: the ``loop_scope`` of the test's
    ``asyncio`` marker, else the ``asyncio_default_test_loop_scope`` option. An async
    fixture of yours that uses it must run on that same loop.
``chronos_db`` (function)
    A database name unique to the test (``t_<hex>``). After the test it is dropped, with
    ``<name>_p`` and ``<name>_sys`` (payloads in MongoDB, fallback queue).
``chronos_key_prefix`` (function)
    A payload key prefix unique to the test (``t-<hex>``): the S3 key prefix, or the
    sub-folder of the session's payload folder. Objects left behind in an external S3
    bucket are not deleted.
``chronos_config`` (function)
    The :class:`~chronos_async.ChronosConfig` of ``chronos``: the session's servers, the
    test's prefix and databases, plus ``chronos_config_overrides``.
``chronos_config_overrides`` (function)
    ``{}``. Redefine it (in a ``conftest.py``, a module or a class) to change top-level
    config keys, e.g. ``{"collection_maps": {"users": {"indexed_props": ["email"]}}}``.
``chronos_servers`` (session)
    The :class:`~chronos_async.testing.ChronosServers`: ``mongo_uri``, ``s3`` and, when
    something was started, ``stack`` (the :class:`~chronos_async.embedded.LocalStack`).
``chronos_on_<scope>_loop`` (function)
    What ``chronos`` returns, opened on the ``<scope>`` event loop (``function``,
    ``class``, ``module``, ``package``, ``session``); request ``chronos`` instead.

Options (command line, else ini file, else environment variable):

``--chronos-payload-storage`` / ``chronos_payload_storage``
    ``local`` (default: a folder, fastest), ``s3`` (SeaweedFS, or the server below) or
    ``mongo`` (payloads in MongoDB).
``--chronos-mongo-uri`` / ``chronos_mongo_uri`` / ``$CHRONOS_TEST_MONGO_URI``
    Use this MongoDB instead of starting nx-27017.
``--chronos-s3-endpoint`` / ``chronos_s3_endpoint`` / ``$CHRONOS_TEST_S3_ENDPOINT``
    With ``s3`` payloads, use this server instead of starting SeaweedFS. Its keys are read
    from ``$CHRONOS_TEST_S3_ACCESS_KEY`` and ``$CHRONOS_TEST_S3_SECRET_KEY`` only (never
    from files or the command line); the buckets ``chronos-test-json``,
    ``chronos-test-content`` and ``chronos-test-backups`` are created when missing.
``--chronos-s3-region`` / ``chronos_s3_region`` / ``$CHRONOS_TEST_S3_REGION``
    The external S3 server's region (default ``us-east-1``).

The environment variables are the ones chronos-async's own test suite reads. The library
itself reads none: this plugin is test tooling, and it reads them only when a test asks
for the servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, cast, get_args

import pytest

from chronos_async import Chronos, ChronosConfig, LocalServerError
from chronos_async.testing._servers import (
    PAYLOAD_STORAGES,
    ChronosServers,
    PayloadStorage,
    S3Endpoint,
    ServerSettings,
)

try:
    import pytest_asyncio
except ImportError:  # chronos-async installs this plugin even without its test extra
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

_LoopScope = Literal["function", "class", "module", "package", "session"]
_LOOP_SCOPES: tuple[_LoopScope, ...] = get_args(_LoopScope)

_ENV_MONGO = "CHRONOS_TEST_MONGO_URI"
_ENV_S3 = (
    "CHRONOS_TEST_S3_ENDPOINT",
    "CHRONOS_TEST_S3_ACCESS_KEY",
    "CHRONOS_TEST_S3_SECRET_KEY",
)
_ENV_S3_REGION = "CHRONOS_TEST_S3_REGION"


# -- options ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--chronos-*`` options and ``chronos_*`` ini keys."""
    group = parser.getgroup("chronos", "chronos-async test servers (chronos_async.testing)")
    group.addoption(
        "--chronos-payload-storage",
        dest="chronos_payload_storage",
        choices=PAYLOAD_STORAGES,
        default=None,
        help="where test payloads go: local (default), s3 or mongo",
    )
    group.addoption(
        "--chronos-mongo-uri",
        dest="chronos_mongo_uri",
        metavar="URI",
        default=None,
        help=f"MongoDB to test against instead of nx-27017 (else ${_ENV_MONGO})",
    )
    group.addoption(
        "--chronos-s3-endpoint",
        dest="chronos_s3_endpoint",
        metavar="URL",
        default=None,
        help=f"S3 server for s3 payloads instead of SeaweedFS (else ${_ENV_S3[0]})",
    )
    group.addoption(
        "--chronos-s3-region",
        dest="chronos_s3_region",
        metavar="REGION",
        default=None,
        help=f"the S3 server's region (else ${_ENV_S3_REGION}, else us-east-1)",
    )
    parser.addini(
        "chronos_payload_storage", "chronos fixtures: local (default), s3 or mongo", default=""
    )
    parser.addini("chronos_mongo_uri", "chronos fixtures: MongoDB URI to test against", default="")
    parser.addini("chronos_s3_endpoint", "chronos fixtures: S3 endpoint URL", default="")
    parser.addini("chronos_s3_region", "chronos fixtures: S3 region", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Reject an unknown ``chronos_payload_storage`` early (reads the option, starts nothing)."""
    storage = _option(config, "chronos_payload_storage")
    if storage is not None and storage not in PAYLOAD_STORAGES:
        raise pytest.UsageError(
            f"chronos_payload_storage must be one of {', '.join(PAYLOAD_STORAGES)}, not {storage!r}"
        )


def _option(config: pytest.Config, name: str, env: str | None = None) -> str | None:
    """The command-line value of ``name``, else its ini value, else ``$env``; or ``None``."""
    value = config.getoption(name) or config.getini(name)
    if not value and env is not None:
        value = os.environ.get(env, "")
    return str(value) if value else None


def _settings_from(config: pytest.Config) -> ServerSettings:
    """The :class:`ServerSettings` the options and environment variables describe.

    Fails the requesting test when only some of the external S3 settings are given.
    """
    storage = cast(PayloadStorage, _option(config, "chronos_payload_storage") or "local")
    mongo_uri = _option(config, "chronos_mongo_uri", _ENV_MONGO)
    s3: S3Endpoint | None = None
    if storage == "s3":
        endpoint = _option(config, "chronos_s3_endpoint", _ENV_S3[0])
        access_key = os.environ.get(_ENV_S3[1], "")
        secret_key = os.environ.get(_ENV_S3[2], "")
        given = (endpoint, access_key, secret_key)
        if any(given):
            if not all(given):
                missing = [n for n, v in zip(_ENV_S3, given, strict=True) if not v]
                pytest.fail(
                    f"chronos fixtures: an external S3 server needs an endpoint and both "
                    f"keys; missing: {', '.join(missing)}",
                    pytrace=False,
                )
            assert endpoint is not None
            region = _option(config, "chronos_s3_region", _ENV_S3_REGION) or "us-east-1"
            s3 = S3Endpoint(endpoint.rstrip("/"), access_key, secret_key, region)
    return ServerSettings(payload_storage=storage, mongo_uri=mongo_uri, s3=s3)


# -- session servers -------------------------------------------------------------------


@pytest.fixture(scope="session")
def chronos_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChronosServers]:
    """The session's MongoDB and payload store, started on first use, stopped at the end."""
    settings = _settings_from(request.config)
    try:
        servers = ChronosServers.start(settings, tmp_path_factory.mktemp("chronos"))
    except LocalServerError as exc:
        pytest.fail(f"chronos fixtures: the test servers are not available: {exc}", pytrace=False)
    try:
        yield servers
    finally:
        servers.stop()


# -- per-test isolation ----------------------------------------------------------------


@pytest.fixture
def chronos_db(chronos_servers: ChronosServers) -> Iterator[str]:
    """A database name unique to this test; it, ``<name>_p`` and ``<name>_sys`` are
    dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    chronos_servers.drop_databases(*chronos_servers.databases_of(name))


@pytest.fixture
def chronos_key_prefix() -> str:
    """A payload key prefix unique to this test (``t-<hex>``)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def chronos_config_overrides() -> dict[str, Any]:
    """Top-level config keys for ``chronos_config``: none; redefine this fixture to set some.

    Example (in a ``conftest.py``, a test module or a class)::

        @pytest.fixture
        def chronos_config_overrides():
            return {"collection_maps": {"users": {"indexed_props": ["email"]}}}
    """
    return {}


@pytest.fixture
def chronos_config(
    chronos_servers: ChronosServers,
    chronos_db: str,
    chronos_key_prefix: str,
    chronos_config_overrides: dict[str, Any],
) -> ChronosConfig:
    """The test's config: the session servers, its own prefix and databases, the overrides."""
    return chronos_servers.config(
        db=chronos_db, key_prefix=chronos_key_prefix, **chronos_config_overrides
    )


# -- an open Chronos on the test's event loop ------------------------------------------


@pytest.fixture
def chronos(request: pytest.FixtureRequest) -> Chronos:
    """An open :class:`~chronos_async.Chronos` on ``chronos_config``, on the test's loop."""
    if not _HAVE_PYTEST_ASYNCIO:
        pytest.fail(
            "the chronos fixture needs pytest-asyncio: pip install pytest-asyncio",
            pytrace=False,
        )
    instance: Chronos = request.getfixturevalue(f"chronos_on_{_test_loop_scope(request)}_loop")
    return instance


def _test_loop_scope(request: pytest.FixtureRequest) -> _LoopScope:
    """The scope of the event loop pytest-asyncio runs the requesting test on."""
    scope: Any = None
    marker = request.node.get_closest_marker("asyncio")
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    if not scope:
        try:
            scope = request.config.getini("asyncio_default_test_loop_scope")
        except ValueError:  # a pytest-asyncio without that option: function loops
            scope = None
    scope = scope or "function"
    if scope not in _LOOP_SCOPES:
        pytest.fail(f"chronos: unknown event loop scope {scope!r}", pytrace=False)
    return cast(_LoopScope, scope)


def _chronos_on_loop(loop_scope: _LoopScope) -> Any:
    """The ``chronos_on_<loop_scope>_loop`` fixture."""

    async def open_chronos(chronos_config: ChronosConfig) -> AsyncIterator[Chronos]:
        async with Chronos(chronos_config) as instance:
            yield instance

    open_chronos.__doc__ = (
        f"An open Chronos on ``chronos_config``, on the {loop_scope}-scoped event loop "
        "(request ``chronos``: it picks the loop of the test)."
    )
    name = f"chronos_on_{loop_scope}_loop"
    return pytest_asyncio.fixture(open_chronos, loop_scope=loop_scope, name=name)


if _HAVE_PYTEST_ASYNCIO:
    # One fixture per loop scope, since pytest-asyncio fixes a fixture's loop when it is
    # declared; ``chronos`` picks the one matching the test at setup time.
    chronos_on_function_loop = _chronos_on_loop("function")
    chronos_on_class_loop = _chronos_on_loop("class")
    chronos_on_module_loop = _chronos_on_loop("module")
    chronos_on_package_loop = _chronos_on_loop("package")
    chronos_on_session_loop = _chronos_on_loop("session")
