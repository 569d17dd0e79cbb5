"""File operations of the local store: create-only durable writes, reads, deletes.

Worker-thread code (blocking). Every path is a validated key below a role folder whose
real path was resolved when the store opened. Where the platform has ``*at`` system calls
(Linux, macOS, the BSDs) the key is walked one folder at a time from an open descriptor
of its parent, with ``O_NOFOLLOW``: a symbolic link anywhere in the key is refused, and
no path is ever resolved twice, so a link swapped in between two steps cannot redirect a
write. Elsewhere (Windows) paths are checked with ``realpath`` before use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Final

from chronos_async._errors import StorageError

__all__ = ["TMP_MARK", "delete_files", "fsync_dir", "read_file", "write_file"]

#: ``~`` can never appear in a key, so temporary files can never be mistaken for payloads
#: (``list`` skips them and no key can name them).
TMP_MARK: Final = "~"

_AT_CALLS: Final = (
    hasattr(os, "O_NOFOLLOW")
    and hasattr(os, "O_DIRECTORY")
    and {os.open, os.mkdir, os.link, os.unlink, os.stat} <= os.supports_dir_fd
)
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS: Final = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_NEW_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC


def fsync_dir(path: Path) -> None:
    """Make new entries of a folder durable (a no-op on Windows, where NTFS journals them)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _symlink_error(key: str) -> StorageError:
    return StorageError(f"local store: key {key!r} passes through a symbolic link")


def _is_link_at(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_dir_at(name: str, dir_fd: int, key: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        # Linux says ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW, others ELOOP.
        if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_link_at(name, dir_fd):
            raise _symlink_error(key) from None
        raise


def _walk_at(folder: Path, dirs: list[str], key: str, *, create: bool) -> int:
    """An open descriptor of the folder ``dirs`` names below ``folder`` (made if asked).

    Raises ``FileNotFoundError``/``NotADirectoryError`` when it does not exist as a
    folder and ``create`` is false.
    """
    fd = os.open(folder, _DIR_FLAGS)
    try:
        for segment in dirs:
            try:
                child = _open_dir_at(segment, fd, key)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(segment, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile by a concurrent write
                else:
                    os.fsync(fd)  # the new folder's entry must survive a crash too
                child = _open_dir_at(segment, fd, key)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _same_bytes(fd: int, body: bytes) -> bool:
    if os.fstat(fd).st_size != len(body):
        return False
    with open(fd, "rb", closefd=False) as file:
        return file.read() == body


def _exists_error(key: str) -> StorageError:
    return StorageError(
        f"local store: key {key!r} already exists with other bytes; "
        "payload objects are never overwritten"
    )


def write_file(folder: Path, key: str, body: bytes) -> None:
    """Store ``body`` under ``key`` atomically and durably; never replace other bytes.

    The bytes go to a temporary file in the key's folder, which is fsynced and then hard
    linked to the key: the link refuses to replace an existing file, and readers only
    ever see complete bytes. (``os.replace`` would silently overwrite; ``O_EXCL`` on the
    key itself would expose half-written bytes and leave a truncated payload after a
    crash.) The folder is fsynced last. Writing identical bytes again succeeds.
    """
    *dirs, name = key.split("/")
    tmp = f"{name}{TMP_MARK}{secrets.token_hex(6)}.tmp"
    if not _AT_CALLS:
        _write_by_path(folder, dirs, name, tmp, key, body)
        return
    parent = _walk_at(folder, dirs, key, create=True)
    try:
        try:
            fd = os.open(tmp, _NEW_FILE_FLAGS, 0o666, dir_fd=parent)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except FileExistsError:
                existing = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
                try:
                    if not _same_bytes(existing, body):
                        raise _exists_error(key) from None
                finally:
                    os.close(existing)
        finally:
            # Also after a failed write (ENOSPC...): no partial temp file stays behind.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=parent)
        os.fsync(parent)
    finally:
        os.close(parent)


def read_file(folder: Path, key: str, span: tuple[int, int] | None = None) -> bytes | None:
    """The bytes stored under ``key`` (only ``length`` bytes from ``offset`` when ``span``
    is ``(offset, length)``); ``None`` when there is no such file."""
    *dirs, name = key.split("/")
    if not _AT_CALLS:
        return _read_by_path(folder, key, span)
    try:
        parent = _walk_at(folder, dirs, key, create=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP or _is_link_at(name, parent):
                raise _symlink_error(key) from None
            raise
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with open(fd, "rb") as file:
            return _read_span(file, span)
    finally:
        os.close(parent)


def _read_span(file: BinaryIO, span: tuple[int, int] | None) -> bytes:
    if span is None:
        return file.read()
    offset, length = span
    file.seek(offset)
    return file.read(length)


def delete_files(folder: Path, keys: list[str]) -> None:
    """Remove the files of ``keys`` (missing ones are skipped), then fsync their folders."""
    if not _AT_CALLS:
        _delete_by_path(folder, keys)
        return
    for key in keys:
        *dirs, name = key.split("/")
        try:
            parent = _walk_at(folder, dirs, key, create=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            try:
                os.unlink(name, dir_fd=parent)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            os.fsync(parent)
        finally:
            os.close(parent)


# -- without *at system calls (Windows) -------------------------------------------------------


def _check_inside(path: Path, folder: Path, key: str) -> None:
    if not Path(os.path.realpath(path)).is_relative_to(folder):
        raise StorageError(f"local store: key {key!r} resolves outside its folder")


def _write_by_path(
    folder: Path, dirs: list[str], name: str, tmp: str, key: str, body: bytes
) -> None:
    parent = folder
    for segment in dirs:
        above, parent = parent, parent / segment
        try:
            os.mkdir(parent)
        except FileExistsError:
            if parent.is_symlink():
                raise _symlink_error(key) from None
        else:
            fsync_dir(above)
    _check_inside(parent, folder, key)
    try:
        with open(parent / tmp, "xb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(parent / tmp, parent / name)
        except FileExistsError:
            with open(parent / name, "rb") as existing:
                if not _same_bytes(existing.fileno(), body):
                    raise _exists_error(key) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(parent / tmp)
    fsync_dir(parent)


def _read_by_path(folder: Path, key: str, span: tuple[int, int] | None) -> bytes | None:
    path = folder.joinpath(*key.split("/"))
    _check_inside(path, folder, key)
    try:
        with open(path, "rb") as file:
            return _read_span(file, span)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _delete_by_path(folder: Path, keys: list[str]) -> None:
    touched: set[Path] = set()
    for key in keys:
        path = folder.joinpath(*key.split("/"))
        _check_inside(path.parent, folder, key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        touched.add(path.parent)
    for parent in touched:
        fsync_dir(parent)
