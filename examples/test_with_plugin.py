"""Testing your own app with the chronos-async pytest plugin: the fixtures do the set-up.

python -m pytest examples/test_with_plugin.py

The plugin comes with chronos-async (entry point ``chronos_async``): ``chronos`` is an open
``Chronos`` on servers started once per session, ``chronos_db`` a database name of this
test only (dropped afterwards). ``tests/testing/test_plugin.py`` runs this file in CI.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from chronos_async import Chronos

# Without asyncio_mode = "auto", pytest-asyncio runs only marked tests.
pytestmark = pytest.mark.asyncio


# -- the "app code" under test --------------------------------------------------------


class Accounts:
    """A tiny service over a chronos collection: open accounts, change emails, look back."""

    def __init__(self, chronos: Chronos, db: str) -> None:
        self._accounts = chronos.collection("accounts", db=db)

    async def open(self, email: str) -> tuple[str, datetime]:
        """Open an account; its id and when it was opened."""
        created = await self._accounts.create({"email": email}, actor="signup", reason="open")
        return created.id, created.at

    async def change_email(self, id: str, email: str, *, by: str) -> datetime:
        """Change the email (a new version); when the change was committed."""
        current = await self._accounts.get_latest(id)
        if current is None:
            raise LookupError(id)
        result = await self._accounts.update(
            id, {**current.data, "email": email}, expected_ov=current.ov, actor=by, reason="email"
        )
        return result.at

    async def email_at(self, id: str, at: datetime) -> str | None:
        """The account's email as it was at ``at`` (``None`` before it was opened)."""
        then = await self._accounts.get_as_of(id, at)
        return None if then is None else str(then.data["email"])

    async def find(self, email: str) -> list[str]:
        """The ids of the accounts with this email."""
        page = await self._accounts.list_by_meta({"email": email})
        return [item.id for item in page.items]


# -- its tests ------------------------------------------------------------------------


@pytest.fixture
def chronos_config_overrides() -> dict[str, Any]:
    """The app's collection map (redefining the plugin's fixture changes the config)."""
    return {"collection_maps": {"accounts": {"indexed_props": ["email"]}}}


@pytest.fixture
def accounts(chronos: Chronos, chronos_db: str) -> Accounts:
    """The service on this test's own database."""
    return Accounts(chronos, chronos_db)


async def test_an_email_change_keeps_the_old_address_in_history(accounts: Accounts) -> None:
    id, opened = await accounts.open("ada@example.com")
    changed = await accounts.change_email(id, "ada@lovelace.example", by="ada")

    assert await accounts.email_at(id, opened) == "ada@example.com"
    assert await accounts.email_at(id, changed) == "ada@lovelace.example"
    assert await accounts.email_at(id, opened - timedelta(days=1)) is None


async def test_accounts_are_found_by_their_current_email(accounts: Accounts) -> None:
    id, _ = await accounts.open("grace@example.com")
    await accounts.change_email(id, "grace@hopper.example", by="grace")

    assert await accounts.find("grace@hopper.example") == [id]
    assert await accounts.find("grace@example.com") == []


async def test_each_test_starts_with_an_empty_database(accounts: Accounts) -> None:
    # The other tests opened accounts too, each in a database of its own.
    assert await accounts.find("ada@example.com") == []
    assert await accounts.find("grace@hopper.example") == []
