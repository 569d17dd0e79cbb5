"""Helpers shared by the tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from chronos_async import Collection
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
