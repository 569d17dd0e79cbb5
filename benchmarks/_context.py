"""What every scenario gets: the servers, the sizes of this run, a seed, and lib/floor pairs."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient

from benchmarks._env import COLLECTION, Servers, Storage
from benchmarks._floor import RawCollection, open_mongo
from benchmarks._floor_blobs import RawBlobs, RawLocal, RawObstore, RawS3
from benchmarks._report import Row
from chronos_async import Chronos, ChronosConfig, Collection

__all__ = ["FULL", "QUICK", "Ctx", "Pair", "Params", "open_pair"]


@dataclass(frozen=True)
class Params:
    """How much work each scenario does (``--quick`` or the full run)."""

    rounds: int
    #: calls per round and variant at concurrency 1 / 32
    write_ops_c1: int
    write_ops_c32: int
    read_ops: int
    read_rounds: int
    history_versions: int
    list_records: int
    list_deep: int
    list_ops: int
    restore_rounds: int
    restore_changed: int
    soak_ops: int
    soak_floor_ops: int
    soak_sample_every: int
    soak_deadline_s: float
    loop_reads: int
    loop_rounds: int
    #: fallback: rounds and calls per round of the on/off comparison (concurrency 1 / 32)
    fallback_rounds: int
    fallback_ops_c1: int
    fallback_ops_c32: int
    #: fallback: operations queued per drain, and drains per worker concurrency
    fallback_drain_ops: int
    fallback_drain_rounds: int
    #: counters: rounds and calls per round of the on/off comparison (concurrency 1 / 32)
    counters_rounds: int
    counters_ops_c1: int
    counters_ops_c32: int
    #: counters: records written before timing get_totals, and calls per round
    counters_totals_records: int
    counters_totals_ops: int
    #: packs: rounds, and creates per round at concurrency 64 (the issue's 1,000)
    pack_rounds: int
    pack_ops_c64: int


QUICK = Params(
    rounds=4,
    write_ops_c1=24,
    write_ops_c32=128,
    read_ops=40,
    read_rounds=8,
    history_versions=1000,
    list_records=1000,
    list_deep=500,
    list_ops=30,
    restore_rounds=2,
    restore_changed=100,
    soak_ops=5000,
    soak_floor_ops=1000,
    soak_sample_every=250,
    soak_deadline_s=60,
    loop_reads=60,
    loop_rounds=2,
    # the on/off ratio is judged against 1.05x: many short rounds (an A/A run of this
    # comparison with 6 rounds spread 0.96-1.07 on a loaded 2-core machine)
    fallback_rounds=12,
    fallback_ops_c1=40,
    fallback_ops_c32=128,
    fallback_drain_ops=500,
    fallback_drain_rounds=2,
    counters_rounds=8,
    counters_ops_c1=30,
    counters_ops_c32=128,
    counters_totals_records=300,
    counters_totals_ops=40,
    pack_rounds=3,
    pack_ops_c64=1000,
)

FULL = Params(
    rounds=7,
    write_ops_c1=60,
    write_ops_c32=320,
    read_ops=100,
    read_rounds=15,
    history_versions=1000,
    list_records=10_000,
    list_deep=5000,
    # a page over 10,000 records on nx-27017 takes ~0.2 s (both sides scan)
    list_ops=10,
    restore_rounds=3,
    restore_changed=100,
    soak_ops=50_000,
    soak_floor_ops=5000,
    soak_sample_every=1000,
    soak_deadline_s=480,
    loop_reads=150,
    loop_rounds=3,
    fallback_rounds=15,
    fallback_ops_c1=80,
    fallback_ops_c32=320,
    fallback_drain_ops=2000,
    fallback_drain_rounds=3,
    counters_rounds=15,
    counters_ops_c1=80,
    counters_ops_c32=320,
    counters_totals_records=500,
    counters_totals_ops=100,
    pack_rounds=5,
    pack_ops_c64=1000,
)


@dataclass
class Ctx:
    """The run: servers, parameters, seed, collected rows, shared datasets."""

    servers: Servers
    params: Params
    seed: int
    quick: bool
    #: the scenario names this run executes
    selected: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    #: datasets shared by scenarios (e.g. the list/restore records)
    shared: dict[str, Any] = field(default_factory=dict)
    #: closed at the end of the run: what shared datasets keep open
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    def rng(self, name: str) -> random.Random:
        """A random generator for one scenario (same seed, same choices)."""
        return random.Random(f"{self.seed}:{name}")

    @property
    def storages(self) -> list[Storage]:
        """The payload stores this run can exercise (S3 only when a server is there)."""
        return ["s3", "local"] if self.servers.s3 is not None else ["local"]


@dataclass
class Pair:
    """The library and the floor on one scenario database, side by side."""

    db: str
    storage: Storage
    config: ChronosConfig
    chronos: Chronos
    coll: Collection
    #: The floor with the library's own S3 client (obstore by default), or a local folder.
    raw: RawCollection
    client: AsyncMongoClient[dict[str, Any]]
    #: On S3 with obstore: the same floor through aioboto3 (the original's client), so
    #: that rows can report the library against both clients' raw cost.
    raw_boto: RawCollection | None = None


@contextlib.asynccontextmanager
async def open_pair(
    ctx: Ctx, storage: Storage, scenario: str, **overrides: Any
) -> AsyncIterator[Pair]:
    """A fresh database with our collection and the floor's, on the same servers.

    The library writes payloads under one key prefix (or folder), each floor under
    another; ``overrides`` go into the library's config. The database is dropped at the end.
    """
    servers = ctx.servers
    db = servers.new_db(scenario)
    config = servers.config(storage, servers.new_prefix(), **overrides)
    try:
        async with contextlib.AsyncExitStack() as stack:
            chronos = await stack.enter_async_context(Chronos(config))
            client = open_mongo(servers.mongo_uri, config)
            stack.push_async_callback(client.close)

            async def floor(name: str, blobs: RawBlobs) -> RawCollection:
                await stack.enter_async_context(blobs)
                raw = RawCollection(
                    client[db],
                    name,
                    blobs,
                    inline_limit=config.limits.inline_payload_bytes,
                    lease_ms=config.leases.lease_ms,
                )
                await raw.ensure_indexes()
                return raw

            raw_boto = None
            if storage == "s3":
                assert servers.s3 is not None
                s3 = servers.s3
                boto = await floor("floor_boto", RawS3(s3, servers.new_prefix()))
                if config.spaces_conns[0].client == "obstore":
                    raw = await floor("floor", RawObstore(s3, servers.new_prefix()))
                    raw_boto = boto
                else:
                    raw = boto
            else:
                raw = await floor("floor", RawLocal(servers.local_root / servers.new_prefix()))
            coll = chronos.collection(COLLECTION, db=db)
            yield Pair(db, storage, config, chronos, coll, raw, client, raw_boto)
    finally:
        await servers.drop(db)
