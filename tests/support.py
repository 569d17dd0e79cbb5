"""Helpers shared by the tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from chronos_async import Collection, StorageError
from chronos_async._checkpoints import CheckpointInfo
from chronos_async._keys import collection_prefix


async def footprint(users: Collection) -> tuple[int, int, int]:
    """(heads, versions, payload objects) stored for this handle's collection and tenant.

    Tests compare footprints before and after a refused call to prove nothing was written.
    """
    scope = users._scope
    t = {"t": {"$eq": scope.t}}
    heads = await scope.repo.heads.count_documents(t)
    versions = await scope.repo.versions.count_documents(t)
    prefix = collection_prefix(scope.tenant, scope.db, scope.collection)
    blobs = [info async for info in scope.store.list(prefix)]
    return heads, versions, len(blobs)


def exact_types(value: Any) -> Any:
    """``value`` with every node tagged by its exact type (a tuple reads as a list), so
    two values compare equal only when they hold the same JSON with the same types."""
    if type(value) is dict:
        return ("dict", {k: exact_types(v) for k, v in value.items()})
    if type(value) in (list, tuple):
        return ("list", [exact_types(v) for v in value])
    return (type(value).__name__, value)


async def drop_databases(uri: str, *names: str) -> None:
    """Drop ``names`` on the MongoDB server at ``uri`` (test clean-up)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        for name in names:
            await client.drop_database(name)
    finally:
        await client.close()


class Outage:
    """A checkpoint hook that fails every write at ``stored`` with a retryable error
    while ``down`` (a write through ``chronos.fallback.collection`` then queues)."""

    def __init__(self, message: str = "injected outage") -> None:
        self.down = True
        self.message = message

    async def __call__(self, point: str, info: CheckpointInfo) -> None:
        if self.down and point == "stored":
            raise StorageError(self.message, retryable=True)


def canon(value: Any) -> bytes:
    """Canonical bytes: equal exactly when the values are the same JSON with the same types."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def assert_same(actual: Any, expected: Any) -> None:
    """Equal as Python values and as canonical JSON (so 1 and 1.0, True and 1 differ)."""
    assert canon(actual) == canon(expected)
    assert actual == expected


#: Any JSON scalar the codec accepts (finite floats, signed 64-bit integers).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
