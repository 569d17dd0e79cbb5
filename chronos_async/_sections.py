"""The sections of :class:`~chronos_async.ChronosConfig` (one small frozen model each).

This module holds the infrastructure sections (stores, routing, fallback, idempotency,
write optimization, transactions, logging, leases, limits, deadlines, restore, the
MongoDB client) and re-exports the base :class:`Section` (:mod:`._section_base`) and the
sections about the data (:mod:`._sections_data`: collection maps, retention, rollup,
counter rules, dev shadow), so every section can be imported from here.
The sections that hold credentials (``SpacesConnection``, ``CountersConfig``) live in
:mod:`._config`; the helpers that keep credentials out of output in :mod:`._redact`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from chronos_async._section_base import Section, describe_config_errors
from chronos_async._sections_data import (
    Base64Prop,
    CollectionMap,
    CounterEvent,
    CounterRule,
    CounterRules,
    DevShadowConfig,
    RetentionConfig,
    RollupConfig,
)

__all__ = [
    "Base64Prop",
    "CollectionMap",
    "CounterEvent",
    "CounterRule",
    "CounterRules",
    "DeadlinesConfig",
    "DevShadowConfig",
    "FallbackConfig",
    "IdempotencyConfig",
    "LeaseConfig",
    "LimitsConfig",
    "LocalStorageConfig",
    "LoggingConfig",
    "MongoClientOptions",
    "MongoStorageConfig",
    "RestoreConfig",
    "RetentionConfig",
    "RollupConfig",
    "RoutingConfig",
    "Section",
    "TransactionsConfig",
    "WriteOptimizationConfig",
    "describe_config_errors",
]


class LocalStorageConfig(Section):
    """Payloads in a local folder (one sub-folder per bucket role).

    With several backends they share ``base_path``, unless ``base_paths`` gives each
    backend its own folder (paired with ``mongo_uris`` by position).
    """

    enabled: bool
    base_path: str = Field(min_length=1)
    base_paths: list[Annotated[str, StringConstraints(min_length=1)]] | None = None

    def path_for(self, index: int) -> str:
        """The folder of backend ``index``."""
        return self.base_paths[index] if self.base_paths else self.base_path


class MongoStorageConfig(Section):
    """Payloads kept in MongoDB itself (``payload_storage="mongo"``)."""

    database: str = Field(default="chronos_payloads", min_length=1, max_length=63)
    collection: str = Field(default="payloads", min_length=1, max_length=100)


#: A configured backend id (``routing.backend_ids``).
BackendId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class RoutingConfig(Section):
    """How a request picks its backend among ``mongo_uris``.

    ``choose_key`` is a fallback chain: the first token that has a value is the routing
    key (``tenantId|dbName|collection:objectId`` routes by tenant, else by database).
    """

    hash_algo: Literal["rendezvous", "jump"] = "rendezvous"
    choose_key: str = "tenantId|dbName|collection:objectId"
    #: One id per backend (same order as ``mongo_uris``), used for rendezvous scores
    #: instead of the id derived from hosts, database and bucket: with them, hosts can be
    #: renamed or moved without re-routing anything. 1-64 of ``A-Z a-z 0-9 . _ : -``.
    backend_ids: list[BackendId] | None = None

    @field_validator("choose_key")
    @classmethod
    def _choose_key(cls, value: str) -> str:
        allowed = {"tenantId", "dbName", "collection", "objectId", "collection:objectId"}
        tokens = value.split("|")
        bad = [t for t in tokens if t not in allowed]
        if not value or bad:
            raise ValueError(f"unknown routing tokens {bad}; allowed: {sorted(allowed)}")
        # A record never picks its own backend (listings and collection restores would
        # have to fan out): the chain must end at a token that always has a value first.
        first_always = tokens.index("dbName") if "dbName" in tokens else len(tokens)
        per_record = [t for t in tokens[:first_always] if t.endswith("objectId")]
        if per_record:
            raise ValueError(
                f"routing by record id ({per_record[0]!r} before 'dbName') is not supported: "
                "all records of a collection of a tenant live on one backend; put 'dbName' "
                "before it (e.g. 'tenantId|dbName|collection:objectId')"
            )
        return value


class FallbackConfig(Section):
    """The durable retry queue for writes that failed on a retryable error.

    Writes made through ``chronos.fallback.collection(...)`` that fail on a retryable
    error are stored in ``<database>.<queue_collection>`` (or, when MongoDB itself does
    not answer, in a local journal under ``spool_dir``) and applied by the worker, at
    most ``max_attempts`` times with full-jitter exponential backoff between
    ``base_delay_ms`` and ``max_delay_ms``; then they go to ``dead_letter_collection``.
    """

    enabled: bool = False
    max_attempts: int = Field(default=10, gt=0)
    base_delay_ms: int = Field(default=2000, gt=0)
    max_delay_ms: int = Field(default=60000, gt=0)
    dead_letter_collection: str = Field(default="chronos_fallback_dead", min_length=1)
    queue_collection: str = Field(default="chronos_fallback_ops", min_length=1)
    #: The database of the queue and the dead letters (on every backend).
    database: str = Field(default="chronos_system", min_length=1, max_length=63)
    #: A local folder for a journal of writes queued while MongoDB does not answer.
    spool_dir: str | None = None
    #: Start the worker when the instance opens (else ``start_worker()``).
    auto_start: bool = True
    #: How often an idle worker looks for due operations (it is also woken when this
    #: process queues one).
    poll_ms: int = Field(default=1000, ge=10)
    #: How long a claimed operation is reserved for its worker; a worker that dies
    #: leaves it to another one after this.
    claim_ms: int = Field(default=120_000, ge=1000)
    #: Operations a worker runs at the same time.
    concurrency: int = Field(default=4, ge=1, le=64)
    #: How long a finished operation stays queryable (``wait``, ``status``).
    keep_done_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    #: How long stopping the worker waits for the operations it is running.
    stop_ms: int = Field(default=15_000, ge=0)

    @model_validator(mode="after")
    def _delays(self) -> FallbackConfig:
        if self.max_delay_ms < self.base_delay_ms:
            raise ValueError("max_delay_ms must not be below base_delay_ms")
        if self.dead_letter_collection == self.queue_collection:
            raise ValueError("dead_letter_collection and queue_collection must differ")
        return self


class IdempotencyConfig(Section):
    """How long an idempotency key is remembered (then the same key is a new write)."""

    ttl_seconds: int = Field(default=24 * 3600, gt=0)


class WriteOptimizationConfig(Section):
    """Group commit of small payloads into pack objects (``batch_s3``; every store kind).

    A payload that finds its collection idle (no upload running, no pack forming) is
    sent at once, alone: an idle store adds no wait. Payloads that arrive while an
    upload runs gather in one pack, which goes once its first payload waited
    ``batch_window_ms`` (the most a write waits), or at once at ``batch_max_count``
    payloads or ``batch_max_bytes``. Payloads above ``batch_member_max_bytes`` are
    always stored alone. ``debounce_counters_ms`` paces the counters' flushes (see
    :mod:`chronos_async.counters`). (``allow_shadow_skip`` is accepted for configs of the
    original; it does nothing.)
    """

    batch_s3: bool = False
    batch_window_ms: int = Field(default=25, ge=0)
    batch_max_count: int = Field(default=256, ge=2)
    batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    batch_member_max_bytes: int = Field(default=256 * 1024, ge=1)
    #: How long counter increments gather before a flush (0: flush as soon as the
    #: previous one ends). ``get_totals`` always applies its process's pending ones first.
    debounce_counters_ms: int = Field(default=20, ge=0)
    allow_shadow_skip: bool = False


class TransactionsConfig(Section):
    """Multi-document transactions for the publish step.

    ``enabled=False``: never. ``enabled=True, auto_detect=True`` (default): when the
    deployment is a replica set or sharded cluster. ``enabled=True, auto_detect=False``:
    always (forced; only for deployments known to support them).
    """

    enabled: bool = True
    auto_detect: bool = True


class LoggingConfig(Section):
    """Library logging (stdlib ``logging``, logger name ``chronos_async``)."""

    level: Literal["ERROR", "WARN", "WARNING", "INFO", "DEBUG", "VERBOSE"] = "ERROR"
    #: Log payload bodies at DEBUG level (off by default: payloads may hold personal data).
    log_payloads: bool = False


class LeaseConfig(Section):
    """The per-record write lease that serializes writers across servers."""

    lease_ms: int = Field(default=30_000, ge=100)
    wait_ms: int = Field(default=10_000, ge=0)
    backoff_initial_ms: int = Field(default=5, ge=1)
    backoff_max_ms: int = Field(default=200, ge=1)


class LimitsConfig(Section):
    """Size and shape limits checked before anything is written."""

    max_payload_bytes: int = Field(default=16 * 1024 * 1024 - 64 * 1024, gt=0)
    max_depth: int = Field(default=64, gt=0)
    #: Payloads up to this size are also kept on the head and version documents, so
    #: reads of small records need no object-store GET (0 disables).
    inline_payload_bytes: int = Field(default=16 * 1024, ge=0, le=1024 * 1024)
    max_list_limit: int = Field(default=1000, gt=0)
    #: Payloads this large are hashed, checked and decoded in a worker thread, so the
    #: event loop keeps serving other requests meanwhile.
    offload_bytes: int = Field(default=256 * 1024, ge=0)
    #: Internal retries of enrich (``expected_ov=None``) after a version conflict.
    enrich_retries: int = Field(default=10, ge=0)
    default_list_limit: int = Field(default=50, gt=0)
    max_presign_seconds: int = Field(default=7 * 24 * 3600, gt=0)


class DeadlinesConfig(Section):
    """Upper bounds on waiting, so a stalled server never holds a caller (or a lease) long.

    ``mongo_ms`` bounds every MongoDB operation (pymongo's ``timeoutMS``: server
    selection, connection checkout and the round trip); ``store_ms`` every payload-store
    call (a PUT, a GET, a delete batch, one listing page). A step that exceeds its
    deadline raises a retryable :class:`~chronos_async.StorageError`; a write withdraws
    what it did and frees its lease first.

    ``commit_ms`` bounds the last step of a write: a version claimed at time ``c`` is
    published before ``c + commit_ms / 2`` or not at all (its writer withdraws), and a
    reader that meets a claim younger than ``commit_ms`` waits for its outcome, so
    as-of answers never change afterwards (see the README's guarantees).

    ``close_ms`` is how long :meth:`Chronos.aclose` lets writes in flight finish before
    it cancels them (each cancelled write still withdraws and frees its lease).
    """

    mongo_ms: int = Field(default=10_000, ge=100)
    store_ms: int = Field(default=20_000, ge=100)
    commit_ms: int = Field(default=2_000, ge=50)
    close_ms: int = Field(default=10_000, ge=0)


class RestoreConfig(Section):
    """How ``restore_collection`` works through the records it has to change."""

    concurrency: int = Field(default=8, gt=0, le=256)


class MongoClientOptions(Section):
    """Options of the long-lived ``AsyncMongoClient`` of each backend."""

    max_pool_size: int = Field(default=50, gt=0)
    min_pool_size: int = Field(default=0, ge=0)
    server_selection_timeout_ms: int = Field(default=5_000, gt=0)
    connect_timeout_ms: int = Field(default=5_000, gt=0)
    socket_timeout_ms: int | None = Field(default=30_000, gt=0)
    app_name: str = "chronos-async"

    @model_validator(mode="after")
    def _pool_bounds(self) -> MongoClientOptions:
        if self.min_pool_size > self.max_pool_size:  # pymongo refuses it at start-up
            raise ValueError("min_pool_size must not exceed max_pool_size")
        return self
