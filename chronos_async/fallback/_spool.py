"""The local journal of writes queued while MongoDB does not answer (``fallback.spool_dir``).

SQLite in WAL mode with ``synchronous=FULL``: an append returns only once the operation
is on disk (the write-ahead log is fsynced at each commit), a crash never leaves half a
record, and several processes may share the folder (SQLite locks the file). Compared
with an append-only file of our own, it needs no framing, checksums or compaction, and
removing an operation once it reached MongoDB is one statement. Every call runs in a
worker thread with its own connection, so the event loop never waits on the disk.

The journal only holds operations until MongoDB answers again: the worker then moves
each one into the MongoDB queue (insert by op id, so a move repeated after a crash is
harmless) and deletes it here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import orjson

from chronos_async._errors import StorageError

__all__ = ["Spool"]

Doc = dict[str, Any]
T = TypeVar("T")
_FILE = "chronos-fallback-spool.sqlite3"


class Spool:
    """Operations waiting for MongoDB, in ``<folder>/chronos-fallback-spool.sqlite3``."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / _FILE
        self._opened = False

    def __repr__(self) -> str:
        return f"Spool({str(self.path)!r})"

    async def open(self) -> None:
        """Create the folder and the journal if needed (WAL mode is kept by the file).

        Reading a journal that was never opened finds it empty.
        """

        def create() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS ops ("
                    " op_id TEXT PRIMARY KEY, doc BLOB NOT NULL, created_us INTEGER NOT NULL)"
                )

        if not self._opened:
            await self._run(create, "open")
            self._opened = True

    def _connect(self) -> sqlite3.Connection:
        # Autocommit: each statement is its own transaction, committed (and fsynced)
        # before it returns.
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        # A removed operation's bytes are overwritten, not left in free pages (purge).
        db.execute("PRAGMA secure_delete=ON")
        return db

    async def _run(self, call: Callable[[], T], what: str) -> T:
        try:
            return await anyio.to_thread.run_sync(call)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"fallback spool ({self.path}): {what} failed: {type(exc).__name__}: {exc}",
                retryable=isinstance(exc, sqlite3.OperationalError),
            ) from exc

    async def append(self, doc: Doc) -> None:
        """Store an operation durably (fsynced before this returns)."""
        body = orjson.dumps(doc)

        def insert() -> None:
            with closing(self._connect()) as db:
                db.execute(
                    "INSERT OR IGNORE INTO ops (op_id, doc, created_us) VALUES (?, ?, ?)",
                    (doc["_id"], body, int(doc["created_us"])),
                )

        await self._run(insert, "append")

    async def pending(self, limit: int = 100) -> list[Doc]:
        """The oldest ``limit`` operations of the journal."""

        def select() -> list[Doc]:
            if not self.path.exists():
                return []
            with closing(self._connect()) as db:
                rows = db.execute(
                    "SELECT doc FROM ops ORDER BY created_us LIMIT ?", (limit,)
                ).fetchall()
            return [orjson.loads(row[0]) for row in rows]

        return await self._run(select, "read")

    async def get(self, op_id: str) -> Doc | None:
        """One operation of the journal, or ``None``."""

        def select() -> Doc | None:
            if not self.path.exists():
                return None
            with closing(self._connect()) as db:
                row = db.execute("SELECT doc FROM ops WHERE op_id = ?", (op_id,)).fetchone()
            return None if row is None else orjson.loads(row[0])

        return await self._run(select, "read")

    async def which(self, op_ids: list[str]) -> set[str]:
        """The ones of ``op_ids`` that are in the journal."""

        def select() -> set[str]:
            if not self.path.exists() or not op_ids:
                return set()
            marks = ",".join("?" * len(op_ids))
            with closing(self._connect()) as db:
                rows = db.execute(f"SELECT op_id FROM ops WHERE op_id IN ({marks})", op_ids)
                return {str(row[0]) for row in rows.fetchall()}

        return await self._run(select, "read")

    async def remove(self, op_id: str) -> bool:
        """Delete an operation (it reached MongoDB, or was cancelled)."""

        def delete() -> bool:
            if not self.path.exists():
                return False
            with closing(self._connect()) as db:
                return db.execute("DELETE FROM ops WHERE op_id = ?", (op_id,)).rowcount == 1

        return await self._run(delete, "remove")

    async def forget(self, match: Callable[[Doc], bool]) -> int:
        """Delete every operation ``match`` accepts, leaving none of its bytes in the
        journal's files (freed pages are zeroed, the write-ahead log is truncated);
        how many went. For a purge of the record they write."""

        def delete() -> int:
            if not self.path.exists():
                return 0
            with closing(self._connect()) as db:
                rows = db.execute("SELECT op_id, doc FROM ops").fetchall()
                doomed = [str(op_id) for op_id, body in rows if match(orjson.loads(body))]
                for op_id in doomed:
                    db.execute("DELETE FROM ops WHERE op_id = ?", (op_id,))
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                return len(doomed)

        return await self._run(delete, "purge")

    async def count(self) -> int:
        """How many operations wait in the journal."""

        def select() -> int:
            if not self.path.exists():
                return 0
            with closing(self._connect()) as db:
                return int(db.execute("SELECT COUNT(*) FROM ops").fetchone()[0])

        return await self._run(select, "count")
