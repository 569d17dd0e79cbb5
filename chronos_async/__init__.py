"""chronos-async: versioned, time-travel persistence for asyncio services."""

from chronos_async._config import ChronosConfig, SpacesConnection
from chronos_async._errors import (
    ChronosError,
    ClosedError,
    ConfigError,
    IntegrityError,
    ItemDeletedError,
    ItemExistsError,
    LockTimeoutError,
    NotFoundError,
    StorageError,
    ValidationError,
    VersionConflictError,
)

__all__ = [
    "ChronosConfig",
    "ChronosError",
    "ClosedError",
    "ConfigError",
    "IntegrityError",
    "ItemDeletedError",
    "ItemExistsError",
    "LockTimeoutError",
    "NotFoundError",
    "SpacesConnection",
    "StorageError",
    "ValidationError",
    "VersionConflictError",
]
