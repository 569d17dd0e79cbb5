"""Transactions: detected once at start-up and reported; writes never depend on them.

Against nx-27017 (a standalone server whose transactions are not isolated) auto-detect
must say "no". The publish step uses no transaction whatever the setting (a transaction
would hide the version claim that as-of readers wait for), so forcing them on changes
nothing about how writes behave.
"""

from __future__ import annotations

from typing import Any

import pytest

from chronos_async import Chronos, ItemDeletedError, ItemExistsError, VersionConflictError
from chronos_async.meta import supports_transactions


async def test_auto_detect_matches_the_deployment(make_config: Any) -> None:
    async with Chronos(make_config("local")) as chronos:
        backend = chronos.backends[0]
        assert backend.transactions == await supports_transactions(backend.client)


async def test_disabled_means_never(make_config: Any) -> None:
    async with Chronos(make_config("local", transactions={"enabled": False})) as chronos:
        assert chronos.backends[0].transactions is False


async def test_writes_behave_the_same_with_transactions_forced_on(
    make_config: Any, db_name: str
) -> None:
    config = make_config("local", transactions={"enabled": True, "auto_detect": False})
    async with Chronos(config) as chronos:
        assert chronos.backends[0].transactions is True
        users = chronos.collection("users", db=db_name)
        r = await users.create({"email": "a@x"}, id="t1")
        with pytest.raises(ItemExistsError):
            await users.create({"email": "b@x"}, id="t1")
        r1 = await users.update(r.id, {"email": "b@x"}, expected_ov=0)
        with pytest.raises(VersionConflictError):
            await users.update(r.id, {"email": "c@x"}, expected_ov=0)
        await users.delete(r.id, expected_ov=r1.ov)
        with pytest.raises(ItemDeletedError):
            await users.update(r.id, {"email": "d@x"}, expected_ov=2)
        assert [v.op async for v in users.history(r.id)] == ["delete", "update", "create"]
        first = await users.get_version(r.id, 0)
        assert first is not None and first.data == {"email": "a@x"}
