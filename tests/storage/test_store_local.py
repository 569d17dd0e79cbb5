"""LocalBlobStore: path safety, atomic writes, error mapping (no server needed)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from chronos_async import StorageError, ValidationError
from chronos_async.storage import BlobMissingError, LocalBlobStore, _files
from chronos_async.storage.local import _storage_error


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# Tests may block the loop briefly: these helpers keep the assertions short.
def snapshot(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "base"


@pytest.fixture(params=["at-calls", "paths"])
async def local(
    request: pytest.FixtureRequest, base: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LocalBlobStore]:
    """The store walking keys with ``*at`` calls (POSIX), and with checked paths (Windows)."""
    if request.param == "paths":
        monkeypatch.setattr(_files, "_AT_CALLS", False)
    async with LocalBlobStore(base) as store:
        yield store


async def test_layout_is_base_role_key(local: LocalBlobStore, base: Path) -> None:
    await local.put("t/db/c/1/v0/ab.json", b"{}", sha256=sha(b"{}"), role="content")
    assert read(base / "content" / "t/db/c/1/v0/ab.json") == b"{}"
    assert names(base) == ["backups", "content", "json"]


async def test_no_temp_files_remain(local: LocalBlobStore, base: Path) -> None:
    await local.put("a/b.json", b"1", sha256=sha(b"1"))
    with pytest.raises(StorageError):
        await local.put("a/b.json", b"2", sha256=sha(b"2"))
    assert names(base / "json" / "a") == ["b.json"]


@pytest.mark.parametrize(
    "key", ["../x", "../../outside.json", "/etc/passwd", "a//b", "a/./b", "a/../../x", "..\\x"]
)
async def test_traversal_attempts_write_nothing(
    local: LocalBlobStore, tmp_path: Path, key: str
) -> None:
    before = snapshot(tmp_path)
    with pytest.raises(ValidationError):
        await local.put(key, b"evil", sha256=sha(b"evil"))
    assert snapshot(tmp_path) == before


async def test_symlink_escape_is_refused(local: LocalBlobStore, base: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_bytes(b"not yours")
    (base / "json" / "evil").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    with pytest.raises(StorageError):
        await local.put("evil/new.json", b"data", sha256=sha(b"data"))
    with pytest.raises(StorageError):
        await local.put("evil/deeper/new.json", b"data", sha256=sha(b"data"))
    with pytest.raises(StorageError):
        await local.get("evil/x.json")
    with pytest.raises(StorageError):
        await local.delete(["evil/x.json"])
    assert [i async for i in local.list("evil/")] == []
    assert snapshot(outside) == before
    assert read(outside / "x.json") == b"not yours"


async def test_symlinked_file_pointing_outside_is_not_read(
    local: LocalBlobStore, base: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    (base / "json" / "link.json").symlink_to(secret)
    with pytest.raises(StorageError) as info:
        await local.get("link.json")
    assert not isinstance(info.value, BlobMissingError)
    assert [i.key async for i in local.list("")] == []


async def test_list_skips_temp_and_foreign_files(local: LocalBlobStore, base: Path) -> None:
    await local.put("l/a.json", b"a", sha256=sha(b"a"))
    (base / "json" / "l" / "a.json~0badc0de.tmp").write_bytes(b"half")
    (base / "json" / "l" / "with space.json").write_bytes(b"foreign")
    assert [i.key async for i in local.list("l/")] == ["l/a.json"]


async def test_key_and_folder_clash_is_a_storage_error(local: LocalBlobStore) -> None:
    await local.put("clash", b"file", sha256=sha(b"file"))
    with pytest.raises(StorageError) as info:
        await local.put("clash/inner.json", b"x", sha256=sha(b"x"))
    assert info.value.retryable is False
    with pytest.raises(BlobMissingError):
        await local.get("clash/inner.json")
    await local.put("dir/inner.json", b"x", sha256=sha(b"x"))
    with pytest.raises(BlobMissingError):
        await local.get("dir")


async def test_presign_is_a_file_uri(local: LocalBlobStore) -> None:
    await local.put("u/a.json", b"uri", sha256=sha(b"uri"))
    uri = await local.presign_get("u/a.json", ttl_seconds=1)
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    assert read(Path(url2pathname(parsed.path))) == b"uri"


async def test_ping_fails_when_the_folder_is_gone(base: Path) -> None:
    async with LocalBlobStore(base) as store:
        await store.ping()
        shutil.rmtree(base)
        with pytest.raises(StorageError) as info:
            await store.ping()
        assert info.value.retryable is False
        with pytest.raises(StorageError):
            await store.put("a.json", b"x", sha256=sha(b"x"))


async def test_open_fails_cleanly_on_a_file_as_base(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = LocalBlobStore(tmp_path / "file")
    with pytest.raises(StorageError):
        await store.__aenter__()
    # A failed open leaves the store closed, not half-open.
    with pytest.raises(Exception, match="not open"):
        await store.ping()


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(errno.ENOSPC, True), (errno.EIO, True), (errno.EACCES, False), (errno.EROFS, False)],
)
def test_os_errors_map_to_storage_errors(code: int, retryable: bool) -> None:
    error = _storage_error(OSError(code, os.strerror(code)), "put", "json", "a.json")
    assert error.retryable is retryable
    assert errno.errorcode[code] in str(error)
    assert "'a.json'" in str(error)


async def test_failed_write_leaves_no_trace(
    local: LocalBlobStore, base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    await local.put("w/keep.json", b"k", sha256=sha(b"k"))
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageError) as info:
        await local.put("w/lost.json", b"x", sha256=sha(b"x"))
    monkeypatch.undo()
    assert info.value.retryable is True
    assert "ENOSPC" in str(info.value)
    assert names(base / "json" / "w") == ["keep.json"]
