"""Tenant isolation: a handle for one tenant never sees another tenant's records."""

from __future__ import annotations

import pytest

from chronos_async import Chronos, ItemExistsError, NotFoundError


async def test_tenants_never_see_each_other(chronos: Chronos, db_name: str) -> None:
    a = chronos.collection("users", db=db_name, tenant="tenant-a")
    b = chronos.collection("users", db=db_name, tenant="tenant-b")
    plain = chronos.collection("users", db=db_name)
    ra = await a.create({"email": "a@x", "status": "on"}, id="shared-id")
    rb = await b.create({"email": "b@x", "status": "on"}, id="shared-id")
    assert ra.id == rb.id == "shared-id"
    got_a, got_b = await a.get_latest("shared-id"), await b.get_latest("shared-id")
    assert got_a is not None and got_a.data["email"] == "a@x"
    assert got_b is not None and got_b.data["email"] == "b@x"
    assert await plain.get_latest("shared-id") is None
    assert await plain.get_version("shared-id", 0) is None
    assert await plain.get_as_of("shared-id", "2100-01-01T00:00:00Z") is None
    assert [v async for v in plain.history("shared-id")] == []
    assert [i.data["email"] for i in (await a.list_by_meta({"status": "on"})).items] == ["a@x"]
    assert (await plain.list_by_meta({"status": "on"})).items == ()
    with pytest.raises(NotFoundError):
        await plain.update("shared-id", {"email": "evil@x"}, expected_ov=0)
    with pytest.raises(NotFoundError):
        await plain.delete("shared-id")
    await a.update("shared-id", {"email": "a2@x"}, expected_ov=0)
    still_b = await b.get_latest("shared-id")
    assert still_b is not None and still_b.ov == 0 and still_b.data["email"] == "b@x"
    with pytest.raises(ItemExistsError):
        await a.create({"email": "again@x"}, id="shared-id")


async def test_payload_keys_are_tenant_scoped(chronos: Chronos, db_name: str) -> None:
    a = chronos.collection("users", db=db_name, tenant="acme")
    r = await a.create({"email": "a@x"})
    head = await a._scope.repo.find_head(f"acme/{r.id}")
    assert head is not None and head["key"].startswith(f"acme/{db_name}/users/{r.id}/v0/")


def test_bad_tenant_db_and_collection_names_are_refused(chronos: Chronos) -> None:
    from chronos_async import ValidationError

    for kwargs in (
        {"name": "users", "db": "bad/db"},
        {"name": "users", "db": "x" * 70},
        {"name": "1users", "db": "ok"},
        {"name": "users.sub", "db": "ok"},
        {"name": "users", "db": "ok", "tenant": "_"},
        {"name": "users", "db": "ok", "tenant": "a/b"},
        {"name": "users", "db": "ok", "tenant": ""},
    ):
        name = kwargs.pop("name")
        with pytest.raises(ValidationError):
            chronos.collection(name, **kwargs)  # type: ignore[arg-type]
