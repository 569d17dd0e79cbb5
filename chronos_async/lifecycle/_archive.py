"""Reading and writing manifests, and switching the catalog to them.

Every change of a record's manifest for a period follows one order, so every version
stays reachable at every instant and any step can be interrupted and run again:

1. read the current catalog document (``gen``) and its manifest;
2. write the merged (or, for ``expire``, reduced) manifest under a *new* key (never
   over an object someone may be reading), then read it back and check it;
3. switch the catalog document to it with a compare-and-swap on ``gen`` (insert for a
   new period); if someone else switched it first, drop our object and start over;
4. delete the superseded manifest object.

A crash after 2 leaves an object no catalog document names; a crash after 3 leaves
the superseded one. Both are harmless and removed by ``admin.prune_now``. A reader that
read the catalog just before step 3 and finds the old object gone (step 4) reads the
catalog again (:meth:`Archive.entries`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chronos_async._codec import sha256_hex
from chronos_async._errors import IntegrityError, StorageError
from chronos_async._keys import NO_TENANT, new_write_token
from chronos_async.lifecycle._layout import (
    Entry,
    content_of,
    decode_manifest,
    encode_manifest,
    manifest_key,
    merge_entries,
    spans_of,
)
from chronos_async.meta import RecordRepo
from chronos_async.meta._rollup import RollupCatalog, catalog_id
from chronos_async.storage import BlobMissingError, BlobStore

if TYPE_CHECKING:
    from chronos_async._pack_admin import Place

__all__ = ["Archive", "Switch"]

Doc = dict[str, Any]
#: Compare-and-swap attempts on one catalog document before giving up.
_SWITCH_TRIES = 20
#: Re-reads of the catalog when a manifest vanished under a reader (it was replaced).
_READ_TRIES = 5


class _Decoded:
    """A small LRU of decoded manifests, bounded by the number of entries held."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, str, str], list[Entry]] = OrderedDict()
        self._held = 0

    def get(self, key: tuple[str, str, str]) -> list[Entry] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[str, str, str], entries: list[Entry]) -> None:
        if len(entries) > self.max_entries // 4 or key in self._items:
            return
        self._items[key] = entries
        self._held += len(entries)
        while self._held > self.max_entries:
            _, dropped = self._items.popitem(last=False)
            self._held -= len(dropped)


#: Decoded manifests of this process (by store identity, key and sha256).
_CACHE = _Decoded(max_entries=20_000)


@dataclass(frozen=True, slots=True)
class Switch:
    """What one manifest change did: entries added (merge) or dropped (expire), whether
    an object was written, and the superseded object's key (deleted, or left to prune)."""

    changed: bool
    written: bool = False
    added: int = 0
    dropped: tuple[Entry, ...] = ()
    bytes_written: int = 0


@dataclass(frozen=True, slots=True)
class Archive:
    """The rollup side of one collection on one backend: index, catalog, store."""

    repo: RecordRepo
    catalog: RollupCatalog
    store: BlobStore
    db: str
    collection: str

    @classmethod
    def of(cls, repo: RecordRepo, store: BlobStore) -> Archive:
        """The archive next to ``repo`` (same database and collection)."""
        return cls(repo, RollupCatalog(repo.db, repo.name), store, repo.db.name, repo.name)

    def _tenant(self, t: str) -> str | None:
        return None if t == NO_TENANT else t

    # -- reading -----------------------------------------------------------------------

    async def load(self, cat: Doc, *, fresh: bool = False) -> list[Entry]:
        """The entries of the manifest ``cat`` names, checked against its sha256.

        Raises :class:`BlobMissingError` when the object is gone (the caller re-reads the
        catalog), :class:`IntegrityError` when its bytes do not match. Recently read
        manifests are kept decoded in memory (:data:`_CACHE`): a manifest object never
        changes (every generation has its own key), so a cached one is always right.
        """
        key = str(cat["key"])
        cached = None if fresh else _CACHE.get((self.store.identity, key, str(cat["sha256"])))
        if cached is not None:
            return cached
        entries = await self._load(cat, key)
        _CACHE.put((self.store.identity, key, str(cat["sha256"])), entries)
        return entries

    async def _load(self, cat: Doc, key: str) -> list[Entry]:
        body = await self.store.get(key, role="backups")
        if sha256_hex(body) != cat["sha256"]:
            raise IntegrityError(f"manifest {key} does not match its sha256")
        header, entries = decode_manifest(body, where=key)
        if header.get("id") != cat["id"] or (
            entries and (entries[0].ov, entries[-1].ov) != (cat["first_ov"], cat["last_ov"])
        ):
            raise IntegrityError(f"manifest {key} does not hold what its catalog entry says")
        return entries

    async def entries(self, cat: Doc, *, fresh: bool = False) -> tuple[Doc, list[Entry]] | None:
        """The current catalog document with ``cat``'s ``_id`` and its entries, following
        replacements; ``None`` when the document is gone (expired). ``fresh``: read
        the object even when a decoded copy is cached (verify)."""
        current: Doc | None = cat
        for _ in range(_READ_TRIES):
            if current is None:
                return None
            try:
                return current, await self.load(current, fresh=fresh)
            except BlobMissingError:
                current = await self.catalog.find(str(current["_id"]))
        raise StorageError(f"manifest of {cat['_id']} keeps changing under a reader")

    # -- writing -----------------------------------------------------------------------

    async def _write(self, t: str, item_id: str, period: str, entries: list[Entry]) -> Doc:
        """Steps 2 of the module docs: a new manifest object, read back; its catalog doc."""
        tenant = self._tenant(t)
        key = manifest_key(tenant, self.db, self.collection, item_id, period, new_write_token())
        header = {"tenant": t, "db": self.db, "collection": self.collection, "id": item_id}
        body = encode_manifest({**header, "period": period}, entries)
        sha = sha256_hex(body)
        await self.store.put(key, body, sha256=sha, content_type="application/gzip", role="backups")
        back = await self.store.get(key, role="backups")
        if back != body:
            await self.store.delete([key], role="backups")
            raise IntegrityError(f"manifest {key} did not read back as written")
        return {
            "_id": catalog_id(t, item_id, period),
            "t": t,
            "id": item_id,
            "period": period,
            "key": key,
            "sha256": sha,
            "size": len(body),
            "count": len(entries),
            "first_ov": entries[0].ov,
            "last_ov": entries[-1].ov,
            "first_at": entries[0].at,
            "last_at": entries[-1].at,
            "first_cv": int(entries[0].doc["cv"]),
            "last_cv": int(entries[-1].doc["cv"]),
            "spans": spans_of(entries),
            "content": content_of(entries),
        }

    async def merge(self, t: str, item_id: str, period: str, new: Sequence[Entry]) -> Switch:
        """Add ``new`` to the record's manifest for ``period`` (merged, never blindly
        overwritten); entries already there are left as they are."""
        cid = catalog_id(t, item_id, period)
        for _ in range(_SWITCH_TRIES):
            cat = await self.catalog.find(cid)
            old: list[Entry] = []
            if cat is not None:
                loaded = await self.entries(cat)
                if loaded is None:
                    continue
                cat, old = loaded
            merged = merge_entries(old, new)
            if cat is not None and len(merged) == len(old):
                return Switch(changed=False)
            if not self._contiguous(merged):
                raise IntegrityError(f"rollup of {cid} would leave a gap in its manifest")
            doc = await self._write(t, item_id, period, merged)
            gen = None if cat is None else int(cat.get("gen", 0))
            doc["gen"] = (gen or 0) + 1
            if await self.catalog.put(doc, expected_gen=gen):
                await self._drop(cat)
                return Switch(True, True, len(merged) - len(old), (), int(doc["size"]))
            await self.store.delete([doc["key"]], role="backups")  # lost the race: again
        raise StorageError(f"manifest of {cid} keeps changing (gave up after {_SWITCH_TRIES})")

    async def drop_below(self, cat: Doc, bound: int) -> Switch:
        """Remove the entries with ``ov < bound`` from the manifest ``cat`` names (expire).

        The catalog document goes when nothing is left in it; else it is switched to a
        manifest with the rest. The dropped entries are returned.
        """

        def split(entries: list[Entry]) -> tuple[list[Entry], tuple[Entry, ...]] | None:
            dropped = tuple(e for e in entries if e.ov < bound)
            return ([e for e in entries if e.ov >= bound], dropped) if dropped else None

        return await self._switch(cat, split)

    async def repoint(self, cat: Doc, old_key: str, new_key: str, place: Place) -> Switch:
        """Point the entries of ``cat``'s manifest whose payload is the span
        ``(offset, length)`` of pack ``old_key`` at ``(new_key, place[span])`` (a pack
        rewrite moved them)."""

        def moved(entries: list[Entry]) -> tuple[list[Entry], tuple[Entry, ...]] | None:
            out, changed = [], False
            for e in entries:
                offset, length = e.doc.get("offset"), e.doc.get("length")
                span = (int(offset), int(length)) if offset is not None and length else None
                if e.doc.get("key") == old_key and span is not None and span in place:
                    doc = {**e.doc, "key": new_key, "offset": place[span]}
                    out.append(Entry(e.ov, e.at, doc))
                    changed = True
                else:
                    out.append(e)
            return (out, ()) if changed else None

        return await self._switch(cat, moved)

    async def _switch(
        self,
        cat: Doc,
        change: Callable[[list[Entry]], tuple[list[Entry], tuple[Entry, ...]] | None],
    ) -> Switch:
        """Replace the manifest ``cat`` names by one with ``change(entries)``'s entries
        (``None``: nothing to change), by compare-and-swap on the catalog document; it
        goes when no entry is left. Returns the dropped entries ``change`` reported."""
        cid = str(cat["_id"])
        current: Doc | None = cat
        for _ in range(_SWITCH_TRIES):
            loaded = await self.entries(current) if current is not None else None
            if loaded is None:
                return Switch(changed=False)
            current, entries = loaded
            gen = int(current.get("gen", 0))
            outcome = change(entries)
            if outcome is None:
                return Switch(changed=False)
            keep, dropped = outcome
            if not keep:
                if await self.catalog.remove(cid, expected_gen=gen):
                    await self._drop(current)
                    return Switch(True, False, 0, dropped)
            else:
                doc = await self._write(
                    str(current["t"]), str(current["id"]), current["period"], keep
                )
                doc["gen"] = gen + 1
                if await self.catalog.put(doc, expected_gen=gen):
                    await self._drop(current)
                    return Switch(True, True, 0, dropped, int(doc["size"]))
                await self.store.delete([doc["key"]], role="backups")
            current = await self.catalog.find(cid)
        raise StorageError(f"manifest of {cid} keeps changing (gave up after {_SWITCH_TRIES})")

    async def forget_record(self, t: str, item_id: str) -> int:
        """Remove every manifest of a record and its catalog documents (hard delete of
        the record, after its head and live versions are gone); how many went."""
        removed = 0
        for cat in await self.catalog.for_record(t, item_id):
            if await self.catalog.remove(str(cat["_id"]), expected_gen=int(cat.get("gen", 0))):
                await self.store.delete([str(cat["key"])], role="backups")
                removed += 1
        return removed

    async def _drop(self, cat: Doc | None) -> None:
        """Delete a superseded manifest object (a failure leaves it to prune)."""
        if cat is None:
            return
        # A failure is harmless: prune_now removes objects no catalog document names.
        with contextlib.suppress(StorageError):
            await self.store.delete([str(cat["key"])], role="backups")

    @staticmethod
    def _contiguous(entries: list[Entry]) -> bool:
        return [e.ov for e in entries] == list(range(entries[0].ov, entries[-1].ov + 1))
