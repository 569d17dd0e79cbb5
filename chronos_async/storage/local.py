"""Payloads in a local folder: ``<base>/<role>/<key>``, written atomically, never overwritten.

Meant for development, the embedded stack where SeaweedFS is missing (macOS), and single
machine deployments. The folder must only be writable by trusted processes: keys are
validated and every path is checked to resolve inside the role folder, but a process that
can write into the folder can change payloads anyway (reads still verify sha256).
"""

from __future__ import annotations

import builtins
import errno
import functools
import os
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

import anyio.to_thread

from chronos_async._errors import StorageError, ValidationError
from chronos_async.storage._common import (
    Lifecycle,
    check_key,
    check_prefix,
    check_span,
    is_valid_key,
)
from chronos_async.storage._files import TMP_MARK, delete_files, read_file, write_file
from chronos_async.storage._protocol import BlobInfo, BlobMissingError, Role

__all__ = ["LocalBlobStore"]

_T = TypeVar("_T")
_ROLES: Final[tuple[Role, ...]] = ("json", "content", "backups")

# errno values after which the same call can succeed later without any change to the
# request: a full disk or quota is freed by an operator, descriptor/memory exhaustion and
# EAGAIN/EBUSY/EINTR pass, ETIMEDOUT/ESTALE come from network filesystems. EIO is
# included on purpose: on network and FUSE mounts it is usually transient, and on a dying
# disk the fallback queue's bounded attempts still end in the dead-letter queue. Every
# other errno (EACCES, EROFS, ENOTDIR, ENAMETOOLONG, ...) needs a human: not retryable.
_RETRYABLE_ERRNOS: Final = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC", "EDQUOT", "EAGAIN", "EBUSY", "EINTR", "ETIMEDOUT", "ESTALE",
        "EIO", "EMFILE", "ENFILE", "ENOMEM",
    )
    if hasattr(errno, name)
)  # fmt: skip


def _storage_error(exc: OSError, op: str, role: Role | None, key: str | None) -> StorageError:
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    where = f" of {key!r}" if key is not None else ""
    store = f" in the {role} store" if role is not None else ""
    return StorageError(
        f"local store: {op}{where}{store} failed: {code} ({exc.strerror or exc})",
        retryable=exc.errno in _RETRYABLE_ERRNOS,
    )


class LocalBlobStore:
    """A :class:`~chronos_async.storage.BlobStore` over a local folder.

    Layout: ``<base_path>/<role>/<key>``, one file per object. Writes go to a temporary
    file in the target folder, are fsynced, and appear under their key only once complete
    (a hard link, which refuses to replace an existing file); the folder is fsynced too, so
    an acknowledged put survives a crash. The sha256 is not stored: metadata lives in
    MongoDB, and readers verify the bytes against it.

    Every file operation runs in a worker thread (one thread hop per call), never on the
    event loop. Example::

        async with LocalBlobStore("./chronos-data") as store:
            await store.put("t/db/users/42/v0/ab12.json", body, sha256=digest)
    """

    kind = "local"

    def __init__(self, base_path: str | Path) -> None:
        self._base = Path(base_path)
        self._root = self._base
        self._roles: dict[Role, Path] = {}
        self._life = Lifecycle("local blob store")

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self._base)!r})"

    @property
    def identity(self) -> str:
        """``local:<real path of the json folder>`` (before opening: its absolute path).

        Every spelling of one folder (relative, through a symbolic link) gives one identity
        once the store is open: the path is resolved when the store opens.
        """
        json_folder = self._roles.get("json")
        if json_folder is None:
            json_folder = Path(os.path.abspath(self._base / "json"))
        return f"local:{json_folder}"

    async def __aenter__(self) -> LocalBlobStore:
        """Create the base and role folders (if needed) and resolve their real paths."""
        self._life.opening()
        try:
            self._root, self._roles = await self._run(self._open_sync, "open", None, None)
        except BaseException:
            self._life.closing()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store (nothing is held open; closing twice is fine)."""
        self._life.closing()

    # -- the protocol ---------------------------------------------------------------------

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        sha256: str,
        content_type: str = "application/json",
        role: Role = "json",
    ) -> None:
        """Store ``body`` under ``key`` atomically; never replaces an existing object.

        Putting the same bytes under the same key again succeeds (a retried write);
        different bytes raise :class:`~chronos_async.StorageError` ("already exists").
        ``sha256`` and ``content_type`` are not stored by this backend.
        """
        folder = self._folder(role)
        check_key(key)
        await self._run(functools.partial(write_file, folder, key, body), "put", role, key)

    async def get(self, key: str, *, role: Role = "json") -> bytes:
        """The bytes stored under ``key`` (:class:`BlobMissingError` if there are none)."""
        folder = self._folder(role)
        check_key(key)
        found = await self._run(functools.partial(read_file, folder, key), "get", role, key)
        if found is None:
            raise BlobMissingError(role, key)
        return found

    async def get_range(self, key: str, *, offset: int, length: int, role: Role = "json") -> bytes:
        """``length`` bytes of ``key`` from ``offset`` (:class:`BlobMissingError` if none)."""
        folder = self._folder(role)
        check_key(key)
        check_span(offset, length)
        found = await self._run(
            functools.partial(read_file, folder, key, (offset, length)), "get", role, key
        )
        if found is None:
            raise BlobMissingError(role, key)
        return found

    async def delete(self, keys: builtins.list[str], *, role: Role = "json") -> None:
        """Remove ``keys``; missing keys are ignored. Emptied folders are kept."""
        folder = self._folder(role)
        for key in keys:
            check_key(key)
        if keys:
            await self._run(functools.partial(delete_files, folder, keys), "delete", role, None)

    async def list(self, prefix: str, *, role: Role = "json") -> AsyncIterator[BlobInfo]:
        """Every object whose key starts with ``prefix``, in key order.

        The folder is scanned in one worker-thread call and the result is held in memory,
        so listing a very large prefix costs memory in proportion to the number of keys.
        """
        folder = self._folder(role)
        check_prefix(prefix)
        found = await self._run(
            functools.partial(self._list_sync, folder, prefix), "list", role, prefix
        )
        for info in found:
            yield info

    async def presign_get(self, key: str, *, ttl_seconds: int, role: Role = "json") -> str:
        """A ``file://`` URI of the object (no I/O; the object may not exist).

        ``ttl_seconds`` is ignored: a local file has no expiring credentials. The URI is
        only useful to processes on the same machine that can read the folder.
        """
        folder = self._folder(role)
        check_key(key)
        return folder.joinpath(*key.split("/")).as_uri()

    async def ping(self) -> None:
        """Check that the base folder exists and a file can be created in it."""
        self._life.check()
        await self._run(self._ping_sync, "ping", None, None)

    # -- worker-thread code -----------------------------------------------------------------

    def _open_sync(self) -> tuple[Path, dict[Role, Path]]:
        self._base.mkdir(parents=True, exist_ok=True)
        root = self._base.resolve(strict=True)
        roles: dict[Role, Path] = {}
        for role in _ROLES:
            (root / role).mkdir(exist_ok=True)
            roles[role] = (root / role).resolve(strict=True)
        return root, roles

    @staticmethod
    def _list_sync(folder: Path, prefix: str) -> builtins.list[BlobInfo]:
        # Start in the deepest folder the prefix names completely; the partial last segment
        # only filters. Symbolic links are neither followed nor listed.
        complete = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = folder.joinpath(*complete.split("/")) if complete else folder
        inside = Path(os.path.realpath(start)).is_relative_to(folder)
        if not start.is_dir() or start.is_symlink() or not inside:
            return []
        found: builtins.list[BlobInfo] = []
        pending = [(start, f"{complete}/" if complete else "")]
        while pending:
            directory, rel = pending.pop()
            with os.scandir(directory) as entries:
                for entry in entries:
                    key = rel + entry.name
                    if TMP_MARK in entry.name:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        sub = key + "/"
                        if sub.startswith(prefix) or prefix.startswith(sub):
                            pending.append((Path(entry.path), sub))
                    elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                        if not is_valid_key(key):
                            continue
                        st = entry.stat(follow_symlinks=False)
                        found.append(
                            BlobInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
                        )
        found.sort(key=lambda info: info.key)
        return found

    def _ping_sync(self) -> None:
        probe = self._root / f".ping{TMP_MARK}{secrets.token_hex(6)}"
        with open(probe, "xb") as file:
            file.write(b"ping")
        os.unlink(probe)

    # -- helpers ------------------------------------------------------------------------------

    def _folder(self, role: Role) -> Path:
        self._life.check()
        try:
            return self._roles[role]
        except KeyError:
            raise ValidationError(f"unknown store role {role!r}") from None

    @staticmethod
    async def _run(func: Callable[[], _T], op: str, role: Role | None, key: str | None) -> _T:
        try:
            return await anyio.to_thread.run_sync(func)
        except StorageError:
            raise
        except OSError as exc:
            raise _storage_error(exc, op, role, key) from exc
