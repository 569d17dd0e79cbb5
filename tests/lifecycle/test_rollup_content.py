"""Rolled-up versions and their content objects (``base64_props``).

The catalog documents list the content keys of the versions in their manifests, so
reconcile keeps exactly those (and still removes true orphans of the record), and
verify checks them like the live versions' content.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from chronos_async import Chronos
from chronos_async._content import content_key
from chronos_async._keys import item_prefix
from tests.conftest import MakeConfig

CONFIG: dict[str, Any] = {
    "retention": {"enabled": True, "ver": {"enabled": True, "max_versions": 2}},
    "collection_maps": {"mail": {"base64_props": {"avatar": {"content_type": "image/png"}}}},
}


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def test_rolled_up_content_is_kept_checked_and_orphans_go(
    make_config: MakeConfig, db_name: str
) -> None:
    async with Chronos(make_config("local", **CONFIG)) as chronos:
        mail = chronos.collection("mail", db=db_name)
        bodies = [f"picture {i}".encode() for i in range(6)]
        r = await mail.create({"n": 0, "avatar": b64(bodies[0])})
        for i in range(1, 6):
            r = await mail.update(r.id, {"n": i, "avatar": b64(bodies[i])}, expected_ov=i - 1)
        report = await chronos.admin.rollup_now(db=db_name, collection="mail")
        assert report.versions_rolled == 4
        scope = mail._scope
        prefix = item_prefix(None, db_name, "mail", r.id)
        keys = [content_key(prefix, sha(body), "image/png") for body in bodies]
        cats = await scope.repo.db["mail_rollup"].find({}).to_list(None)
        assert sorted(k for cat in cats for k in cat["content"]) == sorted(keys[:4])

        # A true orphan of the same record (a withdrawn write's upload).
        stray = b"never published"
        orphan = content_key(prefix, sha(stray), "image/png")
        await scope.store.put(
            orphan, stray, sha256=sha(stray), content_type="image/png", role="content"
        )
        fixed = await chronos.admin.reconcile(db_name, grace_seconds=0)
        assert fixed.content_removed == 1
        stored = {i.key async for i in scope.store.list(prefix, role="content")}
        assert stored == set(keys)
        for ov in range(6):
            item = await mail.get_version(r.id, ov)
            assert item is not None and item.data["avatar"] == b64(bodies[ov])
        assert (await chronos.admin.verify(db_name, grace_seconds=0)).ok

        # A rolled-up version's content object vanishes: verify says so.
        await scope.store.delete([keys[1]], role="content")
        found = await chronos.admin.verify(db_name, check_payloads=False)
        assert [(p.kind, p.id, p.ov) for p in found.problems] == [("missing_content", r.id, 1)]
        # ... and with check_payloads, different bytes under a rolled-up key too.
        await scope.store.put(
            keys[1],
            b"PICTURE 1",
            sha256=sha(b"PICTURE 1"),
            content_type="image/png",
            role="content",
        )
        found = await chronos.admin.verify(db_name)
        assert [(p.kind, p.ov) for p in found.problems] == [("checksum_mismatch", 1)]


async def test_catalog_without_content_list_keeps_all_content(
    make_config: MakeConfig, db_name: str
) -> None:
    async with Chronos(make_config("local", **CONFIG)) as chronos:
        mail = chronos.collection("mail", db=db_name)
        r = await mail.create({"n": 0, "avatar": b64(b"a")})
        for i in range(1, 4):
            r = await mail.update(r.id, {"n": i, "avatar": b64(bytes([i]))}, expected_ov=i - 1)
        await chronos.admin.rollup_now(db=db_name, collection="mail")
        scope = mail._scope
        # A catalog document written before the content list was kept: unknown.
        await scope.repo.db["mail_rollup"].update_many({}, {"$unset": {"content": ""}})
        stray = b"stray"
        orphan = content_key(item_prefix(None, db_name, "mail", r.id), sha(stray), "image/png")
        await scope.store.put(
            orphan, stray, sha256=sha(stray), content_type="image/png", role="content"
        )
        fixed = await chronos.admin.reconcile(db_name, grace_seconds=0)
        assert fixed.content_removed == 0
        assert await scope.store.get(orphan, role="content") == stray
