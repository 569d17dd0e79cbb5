"""Start and stop the local servers: nx-27017 (MongoDB wire protocol) and SeaweedFS (S3).

Used by :class:`chronos_async.embedded.LocalStack` and by the test fixtures. Each server
runs on free loopback ports with its files in an *instance folder* (output log, pid file,
S3 identities); readiness is a Mongo ``ping`` for nx-27017 and a *signed* S3
``ListBuckets`` for ``weed`` (an unsigned probe gets 403 even when it is ready). The
launch flags are chosen so that two stacks on one machine never meet and the servers
behave like their production counterparts: every port is given explicitly (no default
port that another instance may hold), servers listen on loopback only, SeaweedFS
telemetry is off, buckets follow AWS semantics (``-s3.autoCreateBucket=false``,
``-s3.allowDeleteBucketNotEmpty=false``: a missing or non-empty bucket fails as on S3),
and nx-27017 always gets its own ``--data-dir`` (a folder of this instance, or
``memory``), never a data file shared with another process. The known differences
between nx-27017 and MongoDB are listed in the repository's ``tests/README.md``.

Example::

    server = await start_nx(Path("run/nx"))               # --data-dir memory
    try:
        async with AsyncMongoClient(server.uri) as client:
            ...
    finally:
        await server.stop()

The generic machinery (spawning, port picking, stopping, the atexit fallback, the
``PR_SET_PDEATHSIG`` caveats) lives in :mod:`chronos_async._procs_core`; its names are
re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pymongo import AsyncMongoClient

from chronos_async._procs_core import (
    GRPC_OFFSET,
    INSTALL_HINT,
    ExecutableNotFoundError,
    LocalServerError,
    ManagedProcess,
    find_executable,
    pick_ports,
    spawn,
    start_with_retries,
)

__all__ = [
    "DEFAULT_REGION",
    "INSTALL_HINT",
    "ExecutableNotFoundError",
    "LocalServerError",
    "ManagedProcess",
    "NxServer",
    "S3Credentials",
    "WeedPorts",
    "WeedServer",
    "find_executable",
    "mongo_ping",
    "pick_ports",
    "s3_client",
    "start_nx",
    "start_weed",
    "tcp_open",
]

DEFAULT_REGION = "us-east-1"
_HOST = "127.0.0.1"
# Environment variables `weed mini` reads as defaults for flags we leave unset.
_WEED_ENV_FALLBACKS = ("S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL")


@dataclass(frozen=True)
class S3Credentials:
    """An S3 access key pair (the secret is left out of ``repr``)."""

    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> S3Credentials:
        """A fresh random key pair."""
        return cls("CHRONOS" + secrets.token_hex(7).upper(), secrets.token_urlsafe(30))

    @classmethod
    def load(cls, path: Path) -> S3Credentials | None:
        """The pair saved by :meth:`save`, or ``None`` when the file is missing or invalid."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(str(data["access_key"]), str(data["secret_key"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        """Write the pair as JSON, readable by the owner only."""
        _write_private(path, {"access_key": self.access_key, "secret_key": self.secret_key})


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


class NxServer(ManagedProcess):
    """A running nx-27017; :attr:`uri` is ``mongodb://127.0.0.1:PORT/?directConnection=true``."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        log_path: Path,
        *,
        port: int,
        cleanup: Iterable[Path],
        stop_timeout: float,
    ) -> None:
        super().__init__("nx-27017", process, log_path, cleanup=cleanup, stop_timeout=stop_timeout)
        self.host = _HOST
        self.port = port
        self.uri = f"mongodb://{_HOST}:{port}/?directConnection=true"


class WeedPorts(NamedTuple):
    """The HTTP ports of one ``weed mini``; each gRPC port is the HTTP port + 10000."""

    master: int
    volume: int
    filer: int
    s3: int
    admin: int


class WeedServer(ManagedProcess):
    """A running ``weed mini`` with its S3 endpoint, credentials and pre-created buckets."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        log_path: Path,
        *,
        ports: WeedPorts,
        credentials: S3Credentials,
        region: str,
        buckets: Sequence[str],
        cleanup: Iterable[Path],
        stop_timeout: float,
    ) -> None:
        super().__init__("weed", process, log_path, cleanup=cleanup, stop_timeout=stop_timeout)
        self.host = _HOST
        self.ports = ports
        self.endpoint = f"http://{_HOST}:{ports.s3}"
        self.credentials = credentials
        self.access_key = credentials.access_key
        self.secret_key = credentials.secret_key
        self.region = region
        self.buckets = tuple(buckets)

    def _finish(self) -> None:
        super()._finish()
        # gRPC sockets always go to the temp folder and survive a SIGKILL: remove ours.
        folders = {Path("/tmp"), Path(tempfile.gettempdir())}
        for folder in folders:
            for port in self.ports:
                for sock in folder.glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                    with contextlib.suppress(OSError):
                        sock.unlink()


async def mongo_ping(uri: str, *, timeout_ms: int = 2000) -> bool:
    """Whether the server at ``uri`` answers ``ping`` with ok (a short-lived client)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        reply = await client.admin.command("ping")
    finally:
        await client.close()
    return bool(reply.get("ok"))


def s3_client(endpoint: str, credentials: S3Credentials, region: str = DEFAULT_REGION) -> Any:
    """An aioboto3 S3 client context manager (path-style, no retries) for ``endpoint``."""
    import aioboto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=10,
    )
    return aioboto3.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=region,
        config=config,
    )


async def start_nx(
    instance_dir: Path,
    *,
    data_dir: Path | None = None,
    start_timeout: float = 30.0,
    attempts: int = 3,
    stop_timeout: float = 5.0,
) -> NxServer:
    """Start nx-27017 on a free loopback port and wait until it answers ``ping``.

    ``data_dir=None`` keeps every database in memory (``--data-dir memory``); a folder
    keeps one SQLite file per database there. The output, pid file and nx-27017's own log
    go to ``instance_dir``. Raises :class:`ExecutableNotFoundError` or
    :class:`LocalServerError` (with the log tail).
    """
    exe = find_executable("nx-27017")
    out_log = instance_dir / "nx-27017.out"
    own_log = instance_dir / "nx-27017.log"  # nx-27017 appends to it forever: start afresh
    pid_file = instance_dir / "nx-27017.pid"  # also makes a 2nd nx on this folder refuse
    _prepare(make=[instance_dir, data_dir], remove=[out_log, own_log])

    async def launch() -> NxServer:
        port = pick_ports(1, host=_HOST)[0]
        argv = [exe, "--host", _HOST, "-p", str(port)]
        argv += ["--data-dir", str(data_dir) if data_dir is not None else "memory"]
        argv += ["--pid-file", str(pid_file), "--log-file", str(own_log)]
        process = await spawn(argv, out_log, cwd=instance_dir)
        return NxServer(process, out_log, port=port, cleanup=[pid_file], stop_timeout=stop_timeout)

    async def ready(server: NxServer) -> bool:
        return await tcp_open(server.host, server.port) and await mongo_ping(server.uri)

    return await start_with_retries(
        "nx-27017", launch, ready, deadline=start_timeout, attempts=attempts
    )


async def start_weed(
    instance_dir: Path,
    *,
    data_dir: Path | None = None,
    buckets: Sequence[str] = (),
    credentials: S3Credentials | None = None,
    region: str = DEFAULT_REGION,
    start_timeout: float = 30.0,
    attempts: int = 3,
    stop_timeout: float = 5.0,
) -> WeedServer:
    """Start ``weed mini`` (all on loopback) and wait until a signed ListBuckets works.

    ``data_dir`` defaults to ``instance_dir/weed-data``; ``buckets`` are created at
    start-up when missing (readiness waits for them); ``credentials`` default to a fresh
    random pair, the only identity the server accepts. Raises :class:`ExecutableNotFoundError` or
    :class:`LocalServerError` (with the log tail).
    """
    exe = find_executable("weed")
    data_dir = data_dir if data_dir is not None else instance_dir / "weed-data"
    out_log = instance_dir / "weed.out"
    _prepare(make=[instance_dir, data_dir], remove=[out_log])
    creds = credentials if credentials is not None else S3Credentials.generate()
    identities = instance_dir / "weed-s3.json"
    _write_private(identities, _identities(creds))
    env = {k: v for k, v in os.environ.items() if k not in _WEED_ENV_FALLBACKS}

    async def launch() -> WeedServer:
        ports = WeedPorts(*pick_ports(5, with_grpc=True, host=_HOST))
        sockets = _short_temp_dir("chronos-weed-")  # unix socket paths must stay short
        argv = [exe, f"-logdir={sockets}", "mini", f"-dir={data_dir}"]
        argv += _weed_flags(ports, sockets, identities)
        if buckets:
            argv.append("-bucket=" + ",".join(buckets))
        try:
            process = await spawn(argv, out_log, cwd=instance_dir, env=env)
        except BaseException:
            shutil.rmtree(sockets, ignore_errors=True)
            raise
        return WeedServer(
            process,
            out_log,
            ports=ports,
            credentials=creds,
            region=region,
            buckets=buckets,
            cleanup=[sockets],
            stop_timeout=stop_timeout,
        )

    async with contextlib.AsyncExitStack() as clients:
        opened: dict[str, Any] = {}

        async def ready(server: WeedServer) -> bool:
            if not await tcp_open(server.host, server.ports.s3):
                return False
            if server.endpoint not in opened:  # one client per attempt, not per probe
                client_cm = s3_client(server.endpoint, creds, region)
                opened[server.endpoint] = await clients.enter_async_context(client_cm)
            reply = await opened[server.endpoint].list_buckets()
            return set(buckets) <= {b["Name"] for b in reply.get("Buckets", [])}

        return await start_with_retries(
            "weed", launch, ready, deadline=start_timeout, attempts=attempts
        )


def _prepare(make: Iterable[Path | None], remove: Iterable[Path]) -> None:
    for folder in make:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    for path in remove:
        path.unlink(missing_ok=True)


def _identities(creds: S3Credentials) -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "chronos",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _weed_flags(ports: WeedPorts, sockets: Path, identities: Path) -> list[str]:
    return [
        f"-ip={_HOST}",
        f"-ip.bind={_HOST}",
        f"-master.port={ports.master}",
        f"-volume.port={ports.volume}",
        f"-filer.port={ports.filer}",
        f"-s3.port={ports.s3}",
        f"-admin.port={ports.admin}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.config={identities}",
        f"-s3.localSocket={sockets / 's3.sock'}",
        f"-filer.localSocket={sockets / 'filer.sock'}",
        # Every bucket takes volumes and growing one stalls writes for ~1 s: 64 MB volumes
        # filled every ~2 s under benchmark load. Volumes are not preallocated, so a
        # larger limit costs no disk; volume.max is explicit because its default is
        # free disk / volume size.
        "-master.volumeSizeLimitMB=512",
        "-volume.max=1000",
        "-volume.preStopSeconds=0",
        "-s3.allowDeleteBucketNotEmpty=false",
        "-s3.autoCreateBucket=false",
    ]


async def tcp_open(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds (closed again at once)."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _short_temp_dir(prefix: str) -> Path:
    """A new folder with a short path (unix socket paths must stay under ~100 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
