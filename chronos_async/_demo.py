"""The walk-through behind ``python -m chronos_async demo``: no services needed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chronos_async._client import Chronos
from chronos_async._errors import ItemDeletedError, VersionConflictError

__all__ = ["run_demo"]


async def run_demo(*, s3: bool = True, say: Callable[[str], Any] = print) -> None:
    """Start a local stack, walk through every basic operation, print what happens."""
    from chronos_async.embedded import LocalStack

    say(
        "Starting a local stack (nx-27017 for metadata, "
        + ("SeaweedFS" if s3 else "a folder")
        + " for payloads)..."
    )
    async with LocalStack(s3=s3) as stack:
        where = "SeaweedFS S3" if stack.s3_enabled else f"local folder {stack.local_path}"
        say(f"  metadata: {stack.mongo_uri}   payloads: {where}")
        config = stack.config(collection_maps={"users": {"indexed_props": ["email", "status"]}})
        async with Chronos(config) as chronos:
            await _walk(chronos, say)
    say("Local stack stopped. Done.")


async def _walk(chronos: Chronos, say: Callable[[str], Any]) -> None:
    users = chronos.collection("users", db="demo")

    say("\n1. create a record")
    r0 = await users.create(
        {"email": "ada@example.com", "status": "invited", "name": "Ada"},
        actor="signup-service",
        reason="invitation sent",
    )
    say(f"   id={r0.id} ov={r0.ov} cv={r0.cv} at={r0.at.isoformat()}")

    say("\n2. update it (full replacement, optimistic lock on ov)")
    r1 = await users.update(
        r0.id,
        {"email": "ada@example.com", "status": "active", "name": "Ada Lovelace"},
        expected_ov=r0.ov,
        actor="ada",
        reason="accepted invitation",
    )
    say(f"   ov={r1.ov} cv={r1.cv}")
    try:
        await users.update(
            r0.id, {"email": "x@example.com"}, expected_ov=r0.ov, actor="stale-client"
        )
    except VersionConflictError as exc:
        say(f"   a stale writer is refused: {exc}")

    say("\n3. read the latest version, and version 0")
    latest = await users.get_latest(r0.id)
    first = await users.get_version(r0.id, 0)
    assert latest is not None
    assert first is not None
    say(f"   latest  ov={latest.ov}: {latest.data}")
    say(f"   version ov={first.ov}: {first.data}  (by {first.actor}: {first.reason})")

    say("\n4. read it as of a past moment")
    past = await users.get_as_of(r0.id, r0.at.isoformat())
    before = await users.get_as_of(r0.id, r0.at - timedelta(seconds=1))
    assert past is not None
    say(f"   as of {r0.at.isoformat()}: ov={past.ov} status={past.data['status']!r}")
    say(f"   one second before creation: {before!r}")

    say("\n5. list by indexed metadata")
    await users.create(
        {"email": "grace@example.com", "status": "active", "name": "Grace"}, actor="import"
    )
    await users.create(
        {"email": "alan@example.com", "status": "invited", "name": "Alan"}, actor="import"
    )
    page = await users.list_by_meta({"status": "active"}, sort={"email": 1}, limit=10)
    for item in page.items:
        say(f"   {item.data['email']:<20} ov={item.ov}")

    say("\n6. delete it (logical: history is kept)")
    r2 = await users.delete(r0.id, expected_ov=r1.ov, actor="admin", reason="account closed")
    gone = await users.get_latest(r0.id)
    say(f"   ov={r2.ov}; get_latest now returns {gone!r}")
    try:
        await users.update(r0.id, {"email": "ada@example.com"}, expected_ov=r2.ov)
    except ItemDeletedError as exc:
        say(f"   updates are refused: {exc}")

    say("\n7. its history, newest first")
    async for v in users.history(r0.id):
        say(f"   ov={v.ov} {v.op:<7} {v.at.isoformat()} by {v.actor}: {v.reason}")
