"""Typed collections: pydantic models in (JSON-mode dump), validated models out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field

from chronos_async import (
    Chronos,
    Collection,
    IntegrityError,
    Item,
    ModelValidationError,
    ValidationError,
)
from chronos_async._keys import head_id


class Address(BaseModel):
    city: str
    zip: str


class User(BaseModel):
    email: str
    status: Literal["invited", "active"] = "invited"
    balance: Decimal
    joined: datetime
    account: UUID
    address: Address
    tags: list[str] = []


class UserV2(User):
    """``User`` once a required field was added: records written before do not fit."""

    plan: str


def _ada() -> User:
    return User(
        email="ada@example.com",
        balance=Decimal("1234.50"),
        joined=datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        account=uuid4(),
        address=Address(city="London", zip="NW1"),
        tags=["early", "beta"],
    )


@pytest.fixture
def typed(chronos: Chronos, db_name: str) -> Collection[User]:
    """The ``users`` collection of this test, typed with :class:`User`."""
    return chronos.collection("users", db=db_name, model=User)


async def test_model_round_trips_decimal_datetime_uuid_nested_and_list(
    typed: Collection[User], users: Collection
) -> None:
    ada = _ada()
    r = await typed.create(ada, actor="signup", reason="new")
    item = await typed.get_latest(r.id)
    assert item is not None and isinstance(item.data, User)
    assert item.data == ada
    assert str(item.data.balance) == "1234.50"  # exact, not a float
    assert item.data.joined.utcoffset() == timedelta(hours=2)
    assert isinstance(item.data.account, UUID) and item.data.account == ada.account
    assert item.data.address == Address(city="London", zip="NW1")
    assert item.data.tags == ["early", "beta"]
    # What is stored is pydantic's JSON-mode dump, readable by an untyped handle.
    raw = await users.get_latest(r.id)
    assert raw is not None
    assert raw.data == {
        "email": "ada@example.com",
        "status": "invited",
        "balance": "1234.50",
        "joined": "2026-03-01T09:30:15.123456+02:00",
        "account": str(ada.account),
        "address": {"city": "London", "zip": "NW1"},
        "tags": ["early", "beta"],
    }
    assert raw.data == ada.model_dump(mode="json")


async def test_dict_input_is_validated_into_the_model_and_stored_as_its_dump(
    typed: Collection[User], users: Collection
) -> None:
    ada = _ada()
    from_model = await typed.create(ada)
    as_dict = {
        "email": "ada@example.com",
        "balance": "1234.50",
        "joined": datetime(2026, 3, 1, 7, 30, 15, 123456, tzinfo=UTC).astimezone(
            timezone(timedelta(hours=2))
        ),
        "account": str(ada.account),
        "address": {"city": "London", "zip": "NW1"},
        "tags": ["early", "beta"],
        "ignored": "not a field of User",
    }
    from_dict = await typed.create(as_dict)
    a, b = await users.get_latest(from_model.id), await users.get_latest(from_dict.id)
    assert a is not None and b is not None and a.data == b.data  # same stored data
    item = await typed.get_latest(from_dict.id)
    assert item is not None and item.data == ada

    r = await typed.update(from_dict.id, {**as_dict, "status": "active"}, expected_ov=0)
    assert r.ov == 1
    updated = await typed.get_latest(r.id)
    assert updated is not None and updated.data.status == "active"


async def test_data_the_model_refuses_is_not_written(
    typed: Collection[User], users: Collection
) -> None:
    bad = {**_ada().model_dump(), "balance": "a secret value", "status": "gone"}
    with pytest.raises(ModelValidationError) as caught:
        await typed.create(bad, id="refused")
    error = caught.value
    assert isinstance(error, ValidationError) and error.model is User
    assert {e["loc"] for e in error.errors} == {("balance",), ("status",)}
    assert all("input" not in e for e in error.errors)
    assert "balance" in str(error) and "a secret value" not in str(error)
    assert await users.get_latest("refused") is None

    r = await typed.create(_ada())
    with pytest.raises(ModelValidationError):
        await typed.update(r.id, {"email": "no-rest@example.com"}, expected_ov=0)
    with pytest.raises(ModelValidationError):
        await typed.update(r.id, Address(city="a", zip="b"), expected_ov=0)  # type: ignore[arg-type]
    latest = await typed.get_latest(r.id)
    assert latest is not None and latest.ov == 0


async def test_a_subclass_instance_is_stored_as_the_collections_model(
    typed: Collection[User], users: Collection
) -> None:
    """As pydantic dumps a field declared ``User``: the subclass's own fields are left out."""
    r = await typed.create(UserV2(**_ada().model_dump(), plan="pro"))
    raw = await users.get_latest(r.id)
    assert raw is not None and "plan" not in raw.data
    item = await typed.get_latest(r.id)
    assert item is not None and type(item.data) is User


async def test_every_read_returns_model_instances(typed: Collection[User]) -> None:
    ada = _ada()
    parent = await typed.create(ada)
    r = await typed.update(parent.id, ada.model_copy(update={"status": "active"}), expected_ov=0)
    child = await typed.create(ada.model_copy(update={"email": "kid@x"}), parent_id=r.id)

    def check(item: Item[User] | None, status: str) -> None:
        assert item is not None and isinstance(item.data, User)
        assert item.data.status == status and item.data.account == ada.account

    check(await typed.get_latest(r.id), "active")
    check(await typed.get_version(r.id, 0), "invited")
    check(await typed.get_version(r.id, 1), "active")
    check(await typed.get_as_of(r.id, r.at), "active")
    check(await typed.get_as_of(r.id, parent.at.isoformat()), "invited")
    page = await typed.list_by_meta({"status": "active"})
    assert [i.id for i in page.items] == [r.id]
    check(page.items[0], "active")
    (ancestor,) = await typed.lineage(child.id)
    assert ancestor.id == r.id
    check(ancestor, "active")

    deleted = await typed.delete(r.id)
    assert await typed.get_latest(r.id) is None
    check(await typed.get_latest(r.id, include_deleted=True), "active")
    everything = await typed.list_by_meta({"status": "active"}, include_deleted=True)
    check(everything.items[0], "active")
    restored = await typed.restore_object(r.id, ov=0, expected_ov=deleted.ov)
    check(await typed.get_latest(restored.id), "invited")
    assert await typed.get_latest("missing") is None


async def test_enrich_takes_a_dict_patch_and_refuses_a_result_the_model_refuses(
    typed: Collection[User],
) -> None:
    r = await typed.create(_ada())
    e = await typed.enrich(r.id, {"tags": ["vip"], "status": "active"}, function_id="f@1")
    item = await typed.get_latest(r.id)
    assert item is not None and item.ov == e.ov == 1
    assert item.data.tags == ["early", "beta", "vip"] and item.data.status == "active"

    with pytest.raises(ModelValidationError) as caught:
        await typed.enrich(r.id, {"balance": "lots"})
    assert caught.value.id == r.id and caught.value.ov is None
    with pytest.raises(ModelValidationError):
        await typed.enrich(r.id, {"address": {"city": None}}, expected_ov=1)
    after = await typed.get_latest(r.id)
    assert after is not None and after.ov == 1  # nothing was written


async def test_a_stored_version_that_no_longer_validates_raises_on_read(
    chronos: Chronos, db_name: str, typed: Collection[User], users: Collection
) -> None:
    # Written by an untyped handle: fine for it, not a User.
    loose = await users.create({"email": "loose@x", "status": "active", "balance": "n/a"})
    for read in (
        typed.get_latest(loose.id),
        typed.get_version(loose.id, 0),
        typed.get_as_of(loose.id, loose.at),
        typed.list_by_meta({"email": "loose@x"}),
    ):
        with pytest.raises(ModelValidationError) as caught:
            await read
        error = caught.value
        assert (error.id, error.ov, error.model) == (loose.id, 0, User)
        assert ("balance",) in {e["loc"] for e in error.errors}
        assert "n/a" not in str(error) and loose.id in str(error)
    item = await users.get_latest(loose.id)  # the untyped handle still reads it
    assert item is not None and item.data["balance"] == "n/a"

    # Written as a User, read by a model that grew a required field.
    r = await typed.create(_ada())
    v2 = chronos.collection("users", db=db_name, model=UserV2)
    with pytest.raises(ModelValidationError, match=r"plan: Field required"):
        await v2.get_latest(r.id)
    # A migration through the typed handle makes it readable again.
    migrated = UserV2(**_ada().model_dump(), plan="free")
    await v2.update(r.id, migrated, expected_ov=0)
    again = await v2.get_latest(r.id)
    assert again is not None and again.data.plan == "free"


async def test_integrity_errors_are_still_integrity_errors(typed: Collection[User]) -> None:
    """A corrupt payload is not a model problem: the checksum check comes first."""
    r = await typed.create(_ada())
    await typed._scope.repo.heads.update_one(
        {"_id": head_id(None, r.id)}, {"$set": {"inline": '{"email":"evil@x"}'}}
    )
    with pytest.raises(IntegrityError):
        await typed.get_latest(r.id)


async def test_typed_reads_take_no_projection(typed: Collection[User]) -> None:
    r = await typed.create(_ada())
    with pytest.raises(ValidationError, match="projection"):
        await typed.get_latest(r.id, projection=["email"])
    with pytest.raises(ValidationError, match="projection"):
        await typed.get_version(r.id, 0, projection=["email"])
    with pytest.raises(ValidationError, match="projection"):
        await typed.get_as_of(r.id, r.at, projection=["email"])
    with pytest.raises(ValidationError, match="projection"):
        await typed.list_by_meta(projection=["email"])


class Profile(BaseModel):
    """A strict model with an alias and a computed field: the dump must read back."""

    model_config = ConfigDict(strict=True, extra="forbid")
    display_name: str = Field(alias="displayName")
    seen: datetime
    ref: UUID
    amount: Decimal

    @computed_field  # type: ignore[prop-decorator]
    @property
    def shout(self) -> str:
        return self.display_name.upper()


async def test_strict_aliased_models_round_trip(chronos: Chronos, db_name: str) -> None:
    profiles = chronos.collection("profiles", db=db_name, model=Profile)
    profile = Profile(
        displayName="Ada", seen=datetime(2026, 1, 2, tzinfo=UTC), ref=uuid4(), amount=Decimal(2)
    )
    r = await profiles.create(profile)
    item = await profiles.get_latest(r.id)
    assert item is not None and item.data == profile
    raw = await chronos.collection("profiles", db=db_name).get_latest(r.id)
    assert raw is not None
    assert set(raw.data) == {"displayName", "seen", "ref", "amount"}  # alias, no computed


async def test_untyped_collection_is_unchanged(chronos: Chronos, users: Collection) -> None:
    assert users.model is None
    assert repr(users) == f"<Collection {users.db}.users>"
    r = await users.create({"email": "a@x", "status": "active", "n": 1})
    item = await users.get_latest(r.id, projection=["email"])
    assert item is not None and item.data == {"email": "a@x"}
    page = await users.list_by_meta({"status": "active"})
    assert type(page.items[0].data) is dict and page.items[0].data["n"] == 1
    # No model conversion: what the codec refuses is refused as before.
    with pytest.raises(ValidationError) as caught:
        await users.create({"email": "b@x", "amount": Decimal(1)})
    assert not isinstance(caught.value, ModelValidationError)
    typed = chronos.collection("users", db=users.db, model=User)
    assert typed.model is User and repr(typed) == f"<Collection {users.db}.users, model=User>"


async def test_model_must_be_a_pydantic_model_class(chronos: Chronos, db_name: str) -> None:
    bads: tuple[object, ...] = (dict, _ada(), "User")
    for bad in bads:
        with pytest.raises(ValidationError, match="BaseModel"):
            chronos.collection("users", db=db_name, model=bad)  # type: ignore[call-overload]
