"""``Chronos``: the lifecycle owner. Opens backends on one exit stack, hands out handles."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import pydantic

from chronos_async._activity import Activity
from chronos_async._admin import Admin
from chronos_async._checkpoints import Checkpoints
from chronos_async._collection import Collection
from chronos_async._config import ChronosConfig
from chronos_async._errors import ClosedError, ConfigError
from chronos_async._keys import validate_collection, validate_db, validate_id, validate_tenant
from chronos_async._routing import RouteInfo, backend_id, explain_route, routing_key
from chronos_async._scope import ItemGates, Scope
from chronos_async._typed import check_model
from chronos_async.counters import Counters
from chronos_async.fallback import Fallback
from chronos_async.lifecycle._service import RollupService
from chronos_async.meta import IdemRepo, RecordRepo, open_client, supports_transactions
from chronos_async.storage import BlobStore
from chronos_async.storage._batcher import PackStats, PackWriter
from chronos_async.storage._deadline import DeadlineStore

__all__ = ["Backend", "Chronos", "ChronosStats"]

log = logging.getLogger("chronos_async")
#: The pydantic model of a typed collection.
M = TypeVar("M", bound=pydantic.BaseModel)
_LEVELS = {"VERBOSE": logging.DEBUG, "WARN": logging.WARNING}


@dataclass(frozen=True, slots=True)
class Backend:
    """One MongoDB deployment with its payload store."""

    index: int
    id: str
    client: Any
    store: BlobStore
    transactions: bool
    #: Group commit of payloads into packs (``write_optimization.batch_s3``), or ``None``.
    packs: PackWriter | None = None


@dataclass(frozen=True, slots=True)
class ChronosStats:
    """A snapshot of :meth:`Chronos.stats`."""

    #: Writes started and not finished yet.
    writes_in_flight: int
    #: Payloads stored alone and in packs, packs and their bytes, PUTs saved.
    packs: PackStats


class Chronos:
    """A versioned record store over MongoDB and an object store.

    Use it as an async context manager; it opens one MongoDB client and one payload
    store per backend, probes whether transactions are available, and closes
    everything on exit::

        async with Chronos(config) as chronos:
            users = chronos.collection("users", db="myapp")
            r = await users.create({"name": "Ada"}, actor="admin", reason="import")

    An instance opens once: re-entering it, or using it after it closed, raises
    :class:`ClosedError`.
    """

    def __init__(
        self, config: ChronosConfig | Mapping[str, Any] | str | bytes | os.PathLike[str]
    ) -> None:
        """``config``: a :class:`ChronosConfig`, a dict, JSON text (``str`` or ``bytes``)
        or the path of a JSON config file.

        A ``str`` is JSON text when it starts with ``{`` (after whitespace), else a file
        path: ``Chronos("chronos.json")`` and ``Chronos(Path("chronos.json"))`` both read
        the file (:meth:`ChronosConfig.from_file`). ``bytes`` are always JSON text. A file
        that cannot be read or parsed raises :class:`ConfigError` naming it.
        """
        if isinstance(config, ChronosConfig):
            self.config = config
        elif isinstance(config, os.PathLike):
            self.config = ChronosConfig.from_file(config)
        elif isinstance(config, str) and not config.lstrip().startswith("{"):
            try:
                self.config = ChronosConfig.from_file(config)
            except ConfigError as exc:
                if os.path.exists(config):
                    raise
                raise ConfigError(
                    f"{exc} (Chronos reads a str that does not start with '{{' as the path "
                    "of a config file; pass JSON text as an object, '{...}')"
                ) from None
        elif isinstance(config, (Mapping, str, bytes)):
            self.config = ChronosConfig.load(
                dict(config) if isinstance(config, Mapping) else config
            )
        else:
            raise ConfigError(
                "Chronos takes a ChronosConfig, a dict, JSON text or the path of a JSON "
                f"config file, not {type(config).__name__}"
            )
        buckets: list[str | None] = [c.json_bucket for c in self.config.spaces_conns] or [
            None
        ] * len(self.config.mongo_uris)
        # Configured ids win: an operator can then rename hosts without re-routing.
        self._backend_ids = list(self.config.routing.backend_ids or ()) or [
            backend_id(i, uri, bucket)
            for i, (uri, bucket) in enumerate(zip(self.config.mongo_uris, buckets, strict=True))
        ]
        if len(set(self._backend_ids)) != len(self._backend_ids):
            # Identical ids score identically under rendezvous hashing: one would never win.
            raise ConfigError("two backends have the same MongoDB hosts, database and bucket")
        self._state: Literal["unopened", "opening", "open", "closing", "closed"] = "unopened"
        self._stack = AsyncExitStack()
        self._backends: list[Backend] = []
        self._ready: dict[tuple[object, ...], asyncio.Future[None]] = {}
        self._gates = ItemGates()
        self._activity = Activity()
        self._closing: asyncio.Task[None] | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.admin = Admin(self)
        #: The durable retry queue (``fallback`` config): queued writes, worker, dead letters.
        self.fallback = Fallback(self)
        #: Collection totals and conditional counters (``counters``, ``counter_rules``).
        self.counters = Counters(self)
        #: Hooks at the named points of every write (see :mod:`chronos_async._checkpoints`).
        self.checkpoints = Checkpoints()

    def __repr__(self) -> str:
        return f"<Chronos {self._state}, {len(self.config.mongo_uris)} backend(s)>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Chronos:
        if self._state != "unopened":
            raise ClosedError(f"this Chronos instance is {self._state}; create a new one")
        self._state = "opening"
        level = self.config.logging.level
        log.setLevel(_LEVELS.get(level, getattr(logging, level, logging.ERROR)))
        try:
            for index, uri in enumerate(self.config.mongo_uris):
                self._backends.append(await self._open_backend(index, uri))
            await self.counters.open(self._stack)
            self._state = "open"
            if self.fallback.enabled:
                await self.fallback.open()
            rollup = self.config.rollup
            if rollup.enabled and rollup.auto_schedule:
                # On the stack after the backends: stopped before they close.
                await self._stack.enter_async_context(RollupService(self))
        except BaseException:
            if self.fallback.enabled:
                await self.fallback.close()
            self._state = "closed"
            await self._stack.aclose()
            raise
        return self

    async def _open_backend(self, index: int, uri: str) -> Backend:
        cfg = self.config
        client = await self._stack.enter_async_context(
            open_client(uri, cfg.mongo_client, op_timeout_ms=cfg.deadlines.mongo_ms)
        )
        detected = await supports_transactions(client)
        txn = cfg.transactions.enabled and (detected or not cfg.transactions.auto_detect)
        mode = cfg.resolved_payload_storage
        store: BlobStore
        # Imported here: each store pulls in its own client library (aioboto3 is slow to
        # import), and only the configured one is needed.
        if mode == "s3" and cfg.spaces_conns[index].client == "obstore":
            from chronos_async.storage.s3_obstore import ObstoreBlobStore

            store = ObstoreBlobStore(cfg.spaces_conns[index])
        elif mode == "s3":
            from chronos_async.storage.s3 import S3BlobStore

            store = S3BlobStore(cfg.spaces_conns[index])
        elif mode == "local":
            from chronos_async.storage.local import LocalBlobStore

            assert cfg.local_storage is not None
            store = LocalBlobStore(cfg.local_storage.path_for(index))
        else:
            from chronos_async.storage.mongo import MongoBlobStore

            store = MongoBlobStore(client, cfg.mongo_storage.database, cfg.mongo_storage.collection)
        store = DeadlineStore(store, cfg.deadlines.store_ms / 1000)
        await self._stack.enter_async_context(store)
        await store.ping()
        packs = None
        batching = cfg.write_optimization
        if batching is not None and batching.batch_s3:
            # Entered after the store: closed (its uploads awaited) before the store is.
            packs = await self._stack.enter_async_context(
                PackWriter(
                    store,
                    window_s=batching.batch_window_ms / 1000,
                    max_count=batching.batch_max_count,
                    max_bytes=batching.batch_max_bytes,
                    member_max_bytes=batching.batch_member_max_bytes,
                )
            )
        log.info("backend %d ready (transactions=%s, payloads=%s)", index, txn, mode)
        return Backend(index, self._backend_ids[index], client, store, txn, packs)

    async def aclose(self) -> None:
        """Close every client and store; safe to call more than once (and concurrently).

        New operations are refused from the start. Writes in flight get up to
        ``deadlines.close_ms`` to finish; the rest are cancelled (their callers get
        :class:`ClosedError`) and withdraw what they did, freeing their leases, before the
        clients close.
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        was_open = self._state == "open"
        if was_open and self.fallback.enabled:
            await self.fallback.close()  # before writes are refused: it may be mid-write
        self._state = "closing"
        if was_open:
            deadlines = self.config.deadlines
            await self._activity.drain(
                close_seconds=deadlines.close_ms / 1000,
                cleanup_seconds=4 * deadlines.mongo_ms / 1000,
            )
        self._state = "closed"
        for pending in self._ready.values():
            pending.cancel()
        await self._stack.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def is_open(self) -> bool:
        """True between a successful ``__aenter__`` and ``aclose``."""
        return self._state == "open"

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The open backends, in configuration order."""
        return tuple(self._backends)

    def stats(self) -> ChronosStats:
        """What this instance is doing and has done: writes in flight, and what the pack
        writer (``write_optimization.batch_s3``) stored, summed over every backend.

        Example::

            s = chronos.stats()
            print(s.packs.packs, s.packs.payloads_per_pack, s.packs.puts_saved)
        """
        total = PackStats()
        for backend in self._backends:
            if backend.packs is not None:
                total += backend.packs.stats
        return ChronosStats(writes_in_flight=self._activity.writes_in_flight, packs=total)

    # -- handles -----------------------------------------------------------------------

    def route(
        self, *, db: str, collection: str, tenant: str | None = None, id: str | None = None
    ) -> RouteInfo:
        """Which backend holds ``db.collection`` (of ``tenant``), and why: the routing key
        that ``routing.choose_key`` produced, the hash and, for rendezvous hashing, every
        backend's score. For operators. Records of one collection (and tenant) are never
        spread over backends: a record ``id``, when given, is checked but does not change
        the answer.

        Example::

            info = chronos.route(db="app", collection="users", tenant="acme")
            print(info.index, info.backend_id, info.key, info.score)
        """
        self._check_open()
        if id is not None:
            validate_id(id)
        key = routing_key(
            self.config.routing.choose_key,
            tenant=tenant,
            db=db,
            collection=collection,
            item_id=None,
        )
        return explain_route(key, [b.id for b in self._backends], self.config.routing.hash_algo)

    def backend_for(self, *, db: str, collection: str, tenant: str | None = None) -> Backend:
        """The open backend that holds ``db.collection`` (of ``tenant``)."""
        self._check_open()
        if len(self._backends) == 1:
            return self._backends[0]
        return self._backends[self.route(db=db, collection=collection, tenant=tenant).index]

    @overload
    def collection(
        self, name: str, *, db: str, tenant: str | None = None, model: None = None
    ) -> Collection[dict[str, Any]]: ...

    @overload
    def collection(
        self, name: str, *, db: str, tenant: str | None = None, model: type[M]
    ) -> Collection[M]: ...

    def collection(
        self,
        name: str,
        *,
        db: str,
        tenant: str | None = None,
        model: type[pydantic.BaseModel] | None = None,
    ) -> Collection[Any]:
        """The handle of collection ``name`` in database ``db`` (optionally of ``tenant``).

        Handles are cheap; the collection's indexes are created on its first use.

        With ``model`` (a pydantic model class) the handle is typed: writes take model
        instances (or dicts, validated into one) and store their JSON dump, reads return
        ``Item[model]``. Typed and untyped handles of a collection share its records::

            class User(BaseModel):
                email: str
                joined: datetime

            users = chronos.collection("users", db="myapp", model=User)  # Collection[User]
            r = await users.create(User(email="ada@example.com", joined=now))
            item = await users.get_latest(r.id)  # Item[User] | None
        """
        self._check_open()
        model = check_model(model)
        name = validate_collection(name)
        db = validate_db(db)
        tenant = validate_tenant(tenant) if tenant is not None else None
        backend = self.backend_for(db=db, collection=name, tenant=tenant)
        repo = RecordRepo(backend.client[db], name)
        idem = IdemRepo(backend.client[db], name)
        cmap = self.config.collection_map(name)
        key = (backend.index, db, name)
        scope = Scope(
            db=db,
            collection=name,
            tenant=tenant,
            repo=repo,
            store=backend.store,
            cmap=cmap,
            config=self.config,
            owner=self.owner,
            gates=self._gates,
            ready=self._once(key, lambda: repo.ensure_indexes(cmap.indexed_props)),
            idem=idem,
            idem_ready=self._once((*key, "idem"), idem.ensure_indexes),
            checkpoints=self.checkpoints,
            activity=self._activity,
            store_clients=tuple(
                b.client for b in self._backends if b.store.identity == backend.store.identity
            ),
            packs=backend.packs,
            counting=self.counters.counting(backend, db, name, tenant),
        )
        return Collection(scope, model)

    def _once(
        self, key: tuple[object, ...], make: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """An awaitable that runs ``make()`` once per instance and ``key`` (index creation):
        awaited concurrently it runs once; a failure is retried by the next caller."""

        async def ready() -> None:
            self._check_open()
            pending = self._ready.get(key)
            if (
                pending is not None
                and pending.done()
                and not pending.cancelled()
                and pending.exception() is None
            ):
                return  # the common case: done, nothing to await
            if pending is None:
                pending = asyncio.ensure_future(make())
                self._ready[key] = pending
            try:
                await asyncio.shield(pending)
            except Exception:
                if self._ready.get(key) is pending:
                    del self._ready[key]
                raise

        return ready

    def _check_open(self) -> None:
        if self._state != "open":
            raise ClosedError(f"this Chronos instance is {self._state}; use it inside 'async with'")
