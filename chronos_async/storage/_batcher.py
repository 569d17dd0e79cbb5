"""Group commit of small payloads into pack objects (``write_optimization.batch_s3``).

Per collection of one payload store, at most one upload runs at a time (SlateDB's
flush and a database's group commit are the models):

- a payload that arrives while **no upload runs** is sent at once, alone, under its own
  key, exactly as without batching: no latency is added when the store is idle;
- payloads that arrive **while an upload runs** (or while a pack is forming) gather in
  the next pack (:mod:`._packs`), which goes when its first payload has waited
  ``batch_window_ms``, or at once when it holds ``batch_max_count`` payloads or
  ``batch_max_bytes`` bytes. It does not wait for the upload in flight: uploads of one
  collection may overlap. (Sending the next pack as soon as the previous upload ends,
  the classic leader/follower group commit, was measured first: an S3 PUT is short
  next to the MongoDB round trips of a write, so packs held about 6 payloads at
  concurrency 64 and saved too few requests to matter.);
- payloads above ``batch_member_max_bytes`` are always stored alone.

Every ``put`` returns only once the object holding its payload is durably stored (the
write then claims and publishes its version as usual), with the payload's location:
its own key, or the pack key with offset and length. If the upload fails, every payload
in it gets the error, before any of them was claimed: nothing of those writes exists.
Uploads are tasks of the :class:`PackWriter`, which waits for them when it closes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from chronos_async._codec import sha256_hex
from chronos_async.storage._packs import build_pack, new_pack_key
from chronos_async.storage._protocol import BlobStore

__all__ = ["Location", "PackStats", "PackWriter"]

log = logging.getLogger("chronos_async.packs")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a payload is stored: its own object, or a member of a pack."""

    key: str
    offset: int | None = None
    length: int | None = None

    @property
    def packed(self) -> bool:
        """Whether the payload is a member of a pack."""
        return self.offset is not None


@dataclass(slots=True)
class PackStats:
    """What the pack writer did since the instance opened."""

    #: Payloads stored alone (idle store, or above the member limit) and in packs.
    alone: int = 0
    packed: int = 0
    #: Pack objects written, and their bytes (payloads and trailers).
    packs: int = 0
    pack_bytes: int = 0

    def __iadd__(self, other: PackStats) -> PackStats:
        self.alone += other.alone
        self.packed += other.packed
        self.packs += other.packs
        self.pack_bytes += other.pack_bytes
        return self

    @property
    def puts_saved(self) -> int:
        """PUT requests saved: one per packed payload, less one per pack."""
        return self.packed - self.packs

    @property
    def payloads_per_pack(self) -> float:
        """The average number of payloads in a pack (0 before the first)."""
        return self.packed / self.packs if self.packs else 0.0


@dataclass(slots=True)
class _Entry:
    vid: str
    key: str
    body: bytes
    sha256: str
    done: asyncio.Future[Location]


@dataclass(slots=True)
class _Batch:
    entries: list[_Entry] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class _Lane:
    """The uploads of one collection (tenant, database, name)."""

    def __init__(self, writer: PackWriter, tenant: str | None, db: str, collection: str) -> None:
        self.writer = writer
        self.where = (tenant, db, collection)
        self.running = 0
        self.pending: _Batch | None = None


class PackWriter:
    """Group commit of small payloads of one store into pack objects."""

    def __init__(
        self,
        store: BlobStore,
        *,
        window_s: float,
        max_count: int,
        max_bytes: int,
        member_max_bytes: int,
    ) -> None:
        self.store = store
        self._window_s = window_s
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._member_max = member_max_bytes
        self._lanes: dict[tuple[str | None, str, str], _Lane] = {}
        self._uploads: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stats = PackStats()

    async def __aenter__(self) -> PackWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Send what waits, and wait for every upload in flight.

        Called once the instance's writes are drained: a payload still waiting belongs to
        a write that was cancelled, but it is sent anyway (the pack's other members may
        be waited for), so no upload can start after the store closes.
        """
        self._closed = True
        while self._uploads or any(lane.pending for lane in self._lanes.values()):
            for lane in self._lanes.values():
                if lane.pending is not None:
                    self._flush(lane, lane.pending)
            await asyncio.gather(*list(self._uploads), return_exceptions=True)

    async def put(
        self,
        *,
        tenant: str | None,
        db: str,
        collection: str,
        vid: str,
        key: str,
        body: bytes,
        sha256: str,
    ) -> Location:
        """Store one payload (alone under ``key``, or in a pack); where it is."""
        if len(body) > self._member_max or self._closed:
            await self.store.put(key, body, sha256=sha256)
            self.stats.alone += 1
            return Location(key)
        where = (tenant, db, collection)
        lane = self._lanes.get(where)
        if lane is None:
            lane = self._lanes[where] = _Lane(self, *where)
        if lane.running == 0 and lane.pending is None:
            lane.running += 1
            try:
                await self.store.put(key, body, sha256=sha256)
            finally:
                lane.running -= 1
            self.stats.alone += 1
            return Location(key)
        done: asyncio.Future[Location] = asyncio.get_running_loop().create_future()
        batch = lane.pending
        if batch is None:
            batch = lane.pending = _Batch()
            batch.timer = asyncio.get_running_loop().call_later(
                self._window_s, self._flush, lane, batch
            )
        batch.entries.append(_Entry(vid, key, body, sha256, done))
        batch.size += len(body)
        if len(batch.entries) >= self._max_count or batch.size >= self._max_bytes:
            self._flush(lane, batch)
        # Shielded: a cancelled writer must not cancel what its pack-mates wait for.
        return await asyncio.shield(done)

    def _flush(self, lane: _Lane, batch: _Batch) -> None:
        """Send ``batch`` now (if it is still the lane's pending one)."""
        if lane.pending is not batch:
            return
        lane.pending = None
        if batch.timer is not None:
            batch.timer.cancel()
        lane.running += 1
        task = asyncio.create_task(self._upload(lane, batch), name="chronos-pack-upload")
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _upload(self, lane: _Lane, batch: _Batch) -> None:
        entries = batch.entries
        try:
            if len(entries) == 1:
                [one] = entries
                await self.store.put(one.key, one.body, sha256=one.sha256)
                self.stats.alone += 1
                outcome = [Location(one.key)]
            else:
                body, members = build_pack([(e.vid, e.body, e.sha256) for e in entries])
                pack_key = new_pack_key(*lane.where)
                await self.store.put(
                    pack_key, body, sha256=sha256_hex(body), content_type="application/octet-stream"
                )
                self.stats.packs += 1
                self.stats.packed += len(entries)
                self.stats.pack_bytes += len(body)
                outcome = [Location(pack_key, m.offset, m.length) for m in members]
        except BaseException as exc:
            for entry in entries:
                if not entry.done.done():
                    entry.done.set_exception(exc)
                    entry.done.exception()  # retrieved: a writer that left does not warn
            if not isinstance(exc, Exception):
                raise
        else:
            for entry, location in zip(entries, outcome, strict=True):
                if not entry.done.done():
                    entry.done.set_result(location)
        finally:
            lane.running -= 1
