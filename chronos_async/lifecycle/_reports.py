"""What the lifecycle operations did (immutable reports with counts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chronos_async._models import Summable

__all__ = ["ExpireReport", "LifecycleProgress", "PruneReport", "PurgeReport", "RollupReport"]

#: ``progress(done, total)``: called after each record (may be a coroutine function).
LifecycleProgress = Callable[[int, int], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class RollupReport(Summable):
    """What ``admin.rollup_now`` did.

    ``versions_rolled``: versions moved from the live index into manifests;
    ``manifests_written``: manifest objects written (a merge into an existing period
    writes a new generation); ``index_entries_removed``: version documents deleted
    from ``<coll>_ver`` (each is in a manifest first); ``failed``: ``(where, reason)``.
    """

    collections: int = 0
    records_examined: int = 0
    records_rolled: int = 0
    versions_rolled: int = 0
    manifests_written: int = 0
    manifest_bytes: int = 0
    index_entries_removed: int = 0
    failed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PruneReport(Summable):
    """What ``admin.prune_now`` did: finished interrupted rollups (index entries that
    their manifests already hold), and removed manifest objects no catalog entry names
    (left by an interrupted merge). It never removes history."""

    collections: int = 0
    records_examined: int = 0
    index_entries_removed: int = 0
    stale_manifests_removed: int = 0
    failed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ExpireReport(Summable):
    """What ``admin.expire`` removed for good.

    ``versions_removed``: versions deleted from history; ``payloads_removed``: payload
    objects deleted (no remaining version referred to them); ``packs_removed`` /
    ``packs_rewritten``: packs deleted whole / rewritten without the dead members;
    ``bytes_removed``: payload and pack bytes freed in the store; ``packs_kept``:
    packs still holding a removed payload because a rolled-up version of another record
    or period uses them (freed when those go).
    """

    collections: int = 0
    records_examined: int = 0
    records_changed: int = 0
    versions_removed: int = 0
    payloads_removed: int = 0
    packs_removed: int = 0
    packs_rewritten: int = 0
    packs_kept: int = 0
    bytes_removed: int = 0
    manifests_removed: int = 0
    failed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What ``admin.purge`` removed.

    ``found``: the record had a head (a purge of an absent record still sweeps what
    may be left of it). ``versions``: live and rolled-up versions; ``objects``: payload,
    copy, content and manifest objects; ``packs``: packs rewritten without its bytes;
    ``queued``: fallback operations (queued or dead); ``idempotency_keys``,
    ``unique_entries``: its reservations and unique-set entries; ``tombstone``: the
    ``_id`` of the tombstone in ``<collection>_purged``.
    """

    tombstone: str
    found: bool
    versions: int = 0
    objects: int = 0
    packs: int = 0
    queued: int = 0
    idempotency_keys: int = 0
    unique_entries: int = 0
