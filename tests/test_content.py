"""Content externalization (``base64_props``) against the embedded servers.

Round trip of a 5 MB attachment, text renditions, dedupe across versions (no
re-upload), presigned downloads, streaming, strict validation that writes nothing,
indexed props without base64, verify and reconcile of content objects, hard delete.
"""

from __future__ import annotations

import base64
import hashlib
import os
import runpy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from chronos_async import (
    Chronos,
    Collection,
    IntegrityError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from chronos_async._content import content_key, content_prefix
from chronos_async._keys import collection_prefix, item_prefix
from tests.support import footprint

MAPS = {
    "mail": {
        "indexed_props": ["subject", "avatar"],
        "base64_props": {
            "avatar": {"content_type": "image/png"},
            "body": {"content_type": "text/plain"},
            "attachments[].data": {"content_type": "application/pdf"},
            "notes": {"content_type": "application/x-note", "preferred_text": True},
        },
    }
}
BIG = os.urandom(5 * 1024 * 1024)
EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "attachments.py")
BODY = b"Dear Ann,\nthe report is attached.\n"


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def message(subject: str = "report") -> dict[str, Any]:
    return {
        "subject": subject,
        "avatar": b64(b"\x89PNG tiny"),
        "body": b64(BODY),
        "attachments": [{"name": "q3.pdf", "data": b64(BIG)}, {"name": "empty", "data": b64(b"")}],
    }


@pytest.fixture(params=["s3", "local"])
async def chronos(request: Any, make_config: Any) -> AsyncIterator[Chronos]:
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    config = make_config(request.param, collection_maps=MAPS, hard_delete_enabled=True)
    async with Chronos(config) as opened:
        yield opened


@pytest.fixture
def mail(chronos: Chronos, db_name: str) -> Collection:
    return chronos.collection("mail", db=db_name)


class Uploads:
    """Counts the content puts of a store (the test wraps its ``put``)."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: list[str] = []
        put = store.put

        async def counting(key: str, body: bytes, **kwargs: Any) -> None:
            if kwargs.get("role") == "content":
                self.keys.append(key)
            await put(key, body, **kwargs)

        monkeypatch.setattr(store, "put", counting)


async def content_objects(coll: Collection) -> dict[str, int]:
    scope = coll._scope
    prefix = collection_prefix(scope.tenant, scope.db, scope.collection)
    return {info.key: info.size async for info in scope.store.list(prefix, role="content")}


async def test_round_trip_dedupe_and_restore(
    mail: Collection, chronos: Chronos, db_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = Uploads(mail._scope.store, monkeypatch)
    data = message()
    r = await mail.create(data, actor="ann")
    # avatar, body + its text rendition, the 5 MB PDF, the empty attachment
    assert len(uploads.keys) == 5
    stored = await content_objects(mail)
    assert sorted(stored.values()) == sorted(
        [0, len(b"\x89PNG tiny"), len(BODY), len(BODY), len(BIG)]
    )

    item = await mail.get_latest(r.id)
    assert item is not None and item.data == data  # as written

    ref = await mail.get_latest(r.id, content="ref")
    assert ref is not None
    pdf = ref.data["attachments"][0]["data"]["content_ref"]
    prefix = item_prefix(None, db_name, "mail", r.id)
    assert pdf == {
        "key": content_key(prefix, sha(BIG), "application/pdf"),
        "size": len(BIG),
        "sha256": sha(BIG),
        "content_type": "application/pdf",
    }
    body = ref.data["body"]["content_ref"]
    assert body["text"]["content_type"] == "text/plain; charset=utf-8"
    assert body["text"]["size"] == len(BODY)

    # A version that keeps its content uploads nothing and adds no object.
    uploads.keys.clear()
    r1 = await mail.update(r.id, message("report, v2"), expected_ov=r.ov)
    r2 = await mail.enrich(r.id, {"labels": ["work"]}, expected_ov=r1.ov)
    assert uploads.keys == [] and await content_objects(mail) == stored
    # Writing the reference form back (other fields changed) keeps the content too.
    back = dict(ref.data, subject="from refs")
    r3 = await mail.update(r.id, back, expected_ov=r2.ov)
    assert uploads.keys == [] and await content_objects(mail) == stored
    latest = await mail.get_latest(r.id)
    assert latest is not None and latest.data == dict(data, subject="from refs")

    # A changed attachment uploads exactly one new object; older versions still read.
    changed = message("v4")
    changed["attachments"][1]["data"] = b64(b"now with text")
    r4 = await mail.update(r.id, changed, expected_ov=r3.ov)
    assert len(uploads.keys) == 1 and len(await content_objects(mail)) == len(stored) + 1
    old = await mail.get_version(r.id, 0)
    assert old is not None and old.data == data

    # Restore copies the target's payload (its references): nothing is uploaded.
    uploads.keys.clear()
    await mail.restore_object(r.id, ov=0, actor="ann", reason="undo")
    assert uploads.keys == []
    restored = await mail.get_latest(r.id)
    assert restored is not None and restored.data == data and restored.ov == r4.ov + 1

    as_of = await mail.get_as_of(r.id, r4.at, content="ref")
    assert as_of is not None and as_of.ov == r4.ov
    assert "content_ref" in as_of.data["avatar"]
    page = await mail.list_by_meta({"subject": "v4"}, include_deleted=True)
    assert page.items == ()
    page = await mail.list_by_meta({"subject": "report"}, content="ref")
    assert [i.id for i in page.items] == [r.id] and "content_ref" in page.items[0].data["body"]
    report = await chronos.admin.verify(db_name)
    assert report.ok, report.problems
    assert report.counts["content_objects"] == len(stored) + 1
    assert report.counts["content_hashed"] == len(stored) + 1


async def test_enrich_merges_into_the_written_data(mail: Collection) -> None:
    r = await mail.create({"subject": "s", "attachments": [{"name": "a", "data": b64(b"one")}]})
    # Arrays union element by element on the data as written: the same attachment
    # sent again is not added twice; a new one is.
    patch = {"attachments": [{"name": "a", "data": b64(b"one")}, {"name": "b", "data": b64(b"2")}]}
    await mail.enrich(r.id, patch)
    item = await mail.get_latest(r.id)
    assert item is not None
    assert item.data["attachments"] == patch["attachments"]
    with pytest.raises(ValidationError, match="avatar"):
        await mail.enrich(r.id, {"avatar": "not base64!"})
    assert (await mail.get_latest(r.id)).ov == 1  # type: ignore[union-attr]


async def test_presigned_download(make_config: Any, s3_server: Any, db_name: str) -> None:
    async with Chronos(make_config("s3", collection_maps=MAPS)) as chronos:
        mail = chronos.collection("mail", db=db_name)
        r = await mail.create(message())
        item = await mail.get_latest(r.id, presign=True, ttl_seconds=120)
        assert item is not None
        pdf = item.data["attachments"][0]["data"]["content_ref"]
        assert item.urls["content:attachments[0].data"] == pdf["url"]
        async with httpx.AsyncClient(timeout=30) as http:
            got = await http.get(pdf["url"])
            assert got.status_code == 200 and got.content == BIG
            assert got.headers["content-type"] == "application/pdf"
            text = await http.get(item.urls["text:body"])
            assert text.status_code == 200 and text.content == BODY
            assert text.headers["content-type"] == "text/plain; charset=utf-8"
        again = await mail.get_version(r.id, 0, presign=True, ttl_seconds=60)
        assert again is not None and "url" in again.data["avatar"]["content_ref"]


@pytest.mark.parametrize("storage", ["local", "mongo", "s3"])
async def test_open_content_streams(
    make_config: Any, db_name: str, storage: str, request: Any
) -> None:
    if storage == "s3":
        request.getfixturevalue("s3_server")
    async with Chronos(make_config(storage, collection_maps=MAPS)) as chronos:
        mail = chronos.collection("mail", db=db_name)
        body = os.urandom(1024 * 1024 + 17)
        r = await mail.create(
            {"subject": "s", "attachments": [{"data": b64(body)}], "body": b64(BODY)}
        )
        stream = await mail.open_content(r.id, "attachments[0].data", chunk_size=256 * 1024)
        assert (stream.size, stream.sha256, stream.content_type) == (
            len(body),
            sha(body),
            "application/pdf",
        )
        chunks = [chunk async for chunk in stream]
        assert len(chunks) == 5 and b"".join(chunks) == body
        text = await mail.open_content(r.id, "body", text=True)
        assert await text.read() == BODY
        r1 = await mail.update(r.id, {"subject": "none"}, expected_ov=0)
        with pytest.raises(NotFoundError):
            await mail.open_content(r.id, "attachments[0].data")
        old = await mail.open_content(r.id, "attachments[0].data", ov=0)
        assert await old.read() == body
        with pytest.raises(NotFoundError):
            await mail.open_content(r.id, "avatar", ov=r1.ov)
        with pytest.raises(NotFoundError):
            await mail.open_content(r.id, "avatar", ov=9)
        with pytest.raises(ValidationError):
            await mail.open_content(r.id, "attachments[x]", ov=0)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("aGVsbG8", "avatar"),  # no padding
        ("aGVs\nbG8=", "avatar"),  # whitespace
        ("-_-_", "avatar"),  # URL-safe alphabet
        ("QR==", "avatar"),  # stray bits: decodes, does not round-trip
        (42, "avatar"),
    ],
)
async def test_strict_base64_writes_nothing(mail: Collection, value: Any, path: str) -> None:
    before = await footprint(mail)
    with pytest.raises(ValidationError, match=path) as caught:
        await mail.create({"subject": "x", "avatar": value, "body": b64(BODY)})
    assert str(value) not in str(caught.value) or value == 42
    with pytest.raises(ValidationError, match=r"attachments\[1\]\.data"):
        await mail.create({"attachments": [{"data": b64(b"ok")}, {"data": "bad"}]})
    assert await footprint(mail) == before
    assert await content_objects(mail) == {}


async def test_indexed_props_never_hold_base64(
    mail: Collection, mongo_uri: str, db_name: str
) -> None:
    avatar = os.urandom(3000)
    r = await mail.create({"subject": "hi", "avatar": b64(avatar)})
    await mail.update(r.id, {"subject": "hi", "avatar": b64(avatar), "x": 1}, expected_ov=0)
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_uri)
    try:
        head = await client[db_name]["mail_head"].find_one({})
        versions = [v async for v in client[db_name]["mail_ver"].find({})]
    finally:
        await client.close()
    assert head is not None and head["meta"]["avatar"] == sha(avatar)
    for doc in [head, *versions]:
        assert b64(avatar)[:200] not in repr(doc)
    page = await mail.list_by_meta({"avatar": sha(avatar)})
    assert [i.id for i in page.items] == [r.id]


async def test_verify_finds_missing_content_and_reconcile_removes_unused(
    mail: Collection, chronos: Chronos, db_name: str
) -> None:
    r = await mail.create({"subject": "a", "avatar": b64(b"pic"), "body": b64(BODY)})
    store = mail._scope.store
    prefix = item_prefix(None, db_name, "mail", r.id)
    # An object no version refers to (a withdrawn write's upload), under the record.
    stray = content_key(prefix, sha(b"stray"), "image/png")
    await store.put(stray, b"stray", sha256=sha(b"stray"), content_type="image/png", role="content")
    young = await chronos.admin.verify(db_name)
    assert young.ok and young.counts["in_flight_content"] == 1
    found = await chronos.admin.verify(db_name, grace_seconds=0)
    assert [(p.kind, p.id) for p in found.problems] == [("orphan_content", r.id)]
    fixed = await chronos.admin.reconcile(db_name, grace_seconds=0)
    assert fixed.content_removed == 1
    assert stray not in await content_objects(mail)
    assert (await chronos.admin.verify(db_name, grace_seconds=0)).ok

    # A referenced object that vanished: verify says so, reads refuse.
    avatar = content_key(prefix, sha(b"pic"), "image/png")
    await store.delete([avatar], role="content")
    report = await chronos.admin.verify(db_name)
    assert [(p.kind, p.id, p.ov) for p in report.problems] == [("missing_content", r.id, 0)]
    with pytest.raises(IntegrityError, match="missing"):
        await mail.get_latest(r.id)
    ref = await mail.get_latest(r.id, content="ref")  # references need no object
    assert ref is not None
    # Different bytes under the key: the size (or the sha256) does not match.
    await store.put(avatar, b"PIC!", sha256=sha(b"PIC!"), content_type="image/png", role="content")
    report = await chronos.admin.verify(db_name)
    assert [p.kind for p in report.problems] == ["checksum_mismatch"]
    with pytest.raises(IntegrityError, match="sha256"):
        await mail.get_latest(r.id)


async def test_hard_delete_removes_the_records_content(
    mail: Collection, chronos: Chronos, db_name: str
) -> None:
    keep = await mail.create({"subject": "keep", "avatar": b64(b"same")})
    gone = await mail.create({"subject": "gone", "avatar": b64(b"same"), "body": b64(BODY)})
    await mail.update(gone.id, {"subject": "gone", "avatar": b64(b"other")}, expected_ov=0)
    before = await content_objects(mail)
    gone_prefix = content_prefix(item_prefix(None, db_name, "mail", gone.id))
    assert sum(key.startswith(gone_prefix) for key in before) == 4
    await mail.delete(gone.id, hard=True)
    after = await content_objects(mail)
    assert not any(key.startswith(gone_prefix) for key in after)
    assert len(after) == len(before) - 4
    item = await mail.get_latest(keep.id)
    assert item is not None and item.data["avatar"] == b64(b"same")
    assert (await chronos.admin.verify(db_name, grace_seconds=0)).ok


async def test_retries_and_no_ops_upload_nothing_twice(
    mail: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = Uploads(mail._scope.store, monkeypatch)
    data = {"subject": "k", "avatar": b64(b"face"), "body": b64(BODY)}
    # The id is chosen per attempt, the key's fingerprint is the same for every attempt.
    first = await mail.create(data, idempotency_key="k-1")
    again = await mail.create(data, idempotency_key="k-1")
    assert again.id == first.id and again.ov == 0 and len(uploads.keys) == 3
    same = await mail.update(first.id, dict(data), expected_ov=0)
    assert same.changed is False and same.ov == 0 and len(uploads.keys) == 3


async def test_the_attachments_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    module = runpy.run_path(EXAMPLE)
    await module["main"](s3=False)
    out = capsys.readouterr().out
    assert "stored as: application/pdf 2097161 bytes" in out
    assert "streamed: 2097161 bytes of application/pdf" in out
    assert "text rendition: Hi Ann," in out


async def test_a_failed_upload_leaves_no_version(
    mail: Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await mail.create({"subject": "a", "avatar": b64(b"one")})
    store = mail._scope.store
    put = store.put

    async def failing(key: str, body: bytes, **kwargs: Any) -> None:
        if kwargs.get("role") == "content":
            raise StorageError("injected outage", retryable=True)
        await put(key, body, **kwargs)

    monkeypatch.setattr(store, "put", failing)
    with pytest.raises(StorageError, match="injected"):
        await mail.update(r.id, {"subject": "b", "avatar": b64(b"two")}, expected_ov=0)
    with pytest.raises(StorageError, match="injected"):
        await mail.create({"subject": "c", "avatar": b64(b"three")})
    before = await footprint(mail)
    assert before[:2] == (1, 1)
    monkeypatch.setattr(store, "put", put)
    done = await mail.update(r.id, {"subject": "b", "avatar": b64(b"two")}, expected_ov=0)
    item = await mail.get_latest(r.id)
    assert done.ov == 1 and item is not None and item.data["avatar"] == b64(b"two")
