"""MongoDB repositories: heads, versions, counters; the only package importing pymongo."""

from chronos_async.meta._connect import open_client
from chronos_async.meta._errors import DuplicateKeyError, is_retryable, mongo_errors
from chronos_async.meta._idem import IdemRepo
from chronos_async.meta._records import HEAD_LIGHT, RecordRepo, Session
from chronos_async.meta._topology import supports_transactions
from chronos_async.meta._totals import TotalsRepo, UniqueFact

__all__ = [
    "HEAD_LIGHT",
    "DuplicateKeyError",
    "IdemRepo",
    "RecordRepo",
    "Session",
    "TotalsRepo",
    "UniqueFact",
    "is_retryable",
    "mongo_errors",
    "open_client",
    "supports_transactions",
]
