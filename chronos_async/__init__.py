"""chronos-async: versioned, time-travel persistence for asyncio services.

Every write creates an immutable version of a record (``ov``) and advances its
collection's version (``cv``); metadata lives in MongoDB, payloads in S3-compatible
storage (or a local folder, or MongoDB itself)::

    from chronos_async import Chronos, ChronosConfig

    async with Chronos(ChronosConfig.from_file("chronos.json")) as chronos:
        users = chronos.collection("users", db="myapp")
        r = await users.create({"email": "ada@example.com"}, actor="signup", reason="new")
"""

from chronos_async._admin import Admin, BackendHealth, HealthReport
from chronos_async._client import Backend, Chronos, ChronosStats
from chronos_async._collection import Collection
from chronos_async._config import ChronosConfig, SpacesConnection
from chronos_async._content_io import ContentMode, ContentStream
from chronos_async._errors import (
    ChronosError,
    ClosedError,
    ConfigError,
    DeadLetterError,
    ExecutableNotFoundError,
    IntegrityError,
    ItemDeletedError,
    ItemExistsError,
    LocalServerError,
    LockLostError,
    LockTimeoutError,
    ModelValidationError,
    NotFoundError,
    OperationCancelledError,
    OperationPendingError,
    QueuedOperationError,
    RestoreInterruptedError,
    StorageError,
    ValidationError,
    VersionConflictError,
)
from chronos_async._models import Item, Operation, Page, VersionInfo, WriteResult
from chronos_async._reconcile import ReconcileReport
from chronos_async._restore import RestoreReport
from chronos_async._routing import RouteInfo
from chronos_async._verify import Problem, VerifyReport
from chronos_async.counters import CounterDrift, Counters, RecountReport, Totals
from chronos_async.fallback import Fallback, FallbackOp, QueuedCollection, QueuedWrite, QueueStats
from chronos_async.lifecycle import ExpireReport, PruneReport, PurgeReport, RollupReport
from chronos_async.storage._batcher import PackStats

__version__ = "0.1.0"

__all__ = [
    "Admin",
    "Backend",
    "BackendHealth",
    "Chronos",
    "ChronosConfig",
    "ChronosError",
    "ChronosStats",
    "ClosedError",
    "Collection",
    "ConfigError",
    "ContentMode",
    "ContentStream",
    "CounterDrift",
    "Counters",
    "DeadLetterError",
    "ExecutableNotFoundError",
    "ExpireReport",
    "Fallback",
    "FallbackOp",
    "HealthReport",
    "IntegrityError",
    "Item",
    "ItemDeletedError",
    "ItemExistsError",
    "LocalServerError",
    "LockLostError",
    "LockTimeoutError",
    "ModelValidationError",
    "NotFoundError",
    "Operation",
    "OperationCancelledError",
    "OperationPendingError",
    "PackStats",
    "Page",
    "Problem",
    "PruneReport",
    "PurgeReport",
    "QueueStats",
    "QueuedCollection",
    "QueuedOperationError",
    "QueuedWrite",
    "ReconcileReport",
    "RecountReport",
    "RestoreInterruptedError",
    "RestoreReport",
    "RollupReport",
    "RouteInfo",
    "SpacesConnection",
    "StorageError",
    "Totals",
    "ValidationError",
    "VerifyReport",
    "VersionConflictError",
    "VersionInfo",
    "WriteResult",
    "__version__",
]
