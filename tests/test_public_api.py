"""The public surface: exactly these names, each documented."""

from __future__ import annotations

import inspect

import chronos_async

EXPECTED = {
    "QueuedWrite",
    "QueuedOperationError",
    "QueuedCollection",
    "QueueStats",
    "OperationPendingError",
    "OperationCancelledError",
    "FallbackOp",
    "Fallback",
    "DeadLetterError",
    "Admin",
    "Backend",
    "BackendHealth",
    "Chronos",
    "ChronosConfig",
    "ChronosError",
    "ChronosStats",
    "PackStats",
    "ClosedError",
    "Collection",
    "ConfigError",
    "ContentMode",
    "ContentStream",
    "CounterDrift",
    "Counters",
    "ExecutableNotFoundError",
    "ExpireReport",
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
    "Page",
    "Problem",
    "PruneReport",
    "PurgeReport",
    "ReconcileReport",
    "RecountReport",
    "RestoreInterruptedError",
    "RestoreReport",
    "RollupReport",
    "RouteInfo",
    "SpacesConnection",
    "Totals",
    "StorageError",
    "ValidationError",
    "VersionConflictError",
    "VerifyReport",
    "VersionInfo",
    "WriteResult",
    "__version__",
}


def test_all_is_pinned() -> None:
    assert set(chronos_async.__all__) == EXPECTED
    assert sorted(chronos_async.__all__) == chronos_async.__all__


def test_every_public_name_is_exported_and_documented() -> None:
    for name in chronos_async.__all__:
        value = getattr(chronos_async, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("chronos_async."), name
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_public_methods_are_documented() -> None:
    for cls in (chronos_async.Chronos, chronos_async.Collection, chronos_async.Admin):
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or not callable(member):
                continue
            assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"


def test_error_tree() -> None:
    errors = chronos_async
    for name in (
        "ConfigError",
        "ValidationError",
        "NotFoundError",
        "VersionConflictError",
        "ItemExistsError",
        "ItemDeletedError",
        "LockTimeoutError",
        "StorageError",
        "IntegrityError",
        "ModelValidationError",
        "ClosedError",
        "LocalServerError",
        "ExecutableNotFoundError",
    ):
        assert issubclass(getattr(errors, name), errors.ChronosError), name
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.ModelValidationError, errors.ValidationError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.LockTimeoutError, TimeoutError)
    assert issubclass(errors.StorageError, OSError)
    assert issubclass(errors.ItemExistsError, errors.VersionConflictError)
    conflict = errors.VersionConflictError(3, 4, id="x")
    assert (conflict.expected, conflict.actual) == (3, 4)
    assert errors.StorageError("boom", retryable=True).retryable is True


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("chronos_async").joinpath("py.typed").is_file()
