"""S3BlobStore against the session SeaweedFS server: presigning, prefixes, error mapping."""

from __future__ import annotations

from typing import Any

import aioboto3
import pytest

from chronos_async import StorageError, ValidationError
from chronos_async.storage import S3BlobStore
from chronos_async.storage import s3 as s3_module
from tests.storage.s3_support import ConnFactory, closed_port, fetch, sha


async def test_presigned_url_fetches_exact_bytes(make_conn: ConnFactory) -> None:
    body = bytes(range(256)) * 3
    async with S3BlobStore(make_conn()) as store:
        await store.put("pre/v0/a.json", body, sha256=sha(body))
        url = await store.presign_get("pre/v0/a.json", ttl_seconds=60)
    assert await fetch(url) == (200, body)


async def test_tampered_presigned_url_is_refused(make_conn: ConnFactory) -> None:
    async with S3BlobStore(make_conn()) as store:
        await store.put("pre/v0/b.json", b"secret payload", sha256=sha(b"secret payload"))
        url = await store.presign_get("pre/v0/b.json", ttl_seconds=60)
    last = url[-1]
    tampered = url[:-1] + ("0" if last != "0" else "1")
    status, _ = await fetch(tampered)
    assert status == 403
    status, _ = await fetch(url.split("?", 1)[0])  # unsigned
    assert status == 403


@pytest.mark.parametrize("ttl", [0, -5, 7 * 24 * 3600 + 1])
async def test_presign_ttl_is_bounded(make_conn: ConnFactory, ttl: int) -> None:
    async with S3BlobStore(make_conn()) as store:
        with pytest.raises(ValidationError):
            await store.presign_get("a.json", ttl_seconds=ttl)


async def test_key_prefix_is_prepended_and_stripped(
    make_conn: ConnFactory, key_prefix: str
) -> None:
    conn = make_conn()
    assert conn.key_prefix
    async with S3BlobStore(conn) as store, S3BlobStore(make_conn(key_prefix="")) as raw:
        await store.put("x/v0/a.json", b"a", sha256=sha(b"a"))
        listed = [i.key async for i in store.list("x/")]
        assert listed == ["x/v0/a.json"]
        full = f"{conn.key_prefix}/x/v0/a.json"
        assert [i.key async for i in raw.list(f"{conn.key_prefix}/")] == [full]
        assert await raw.get(full) == b"a"


async def test_object_metadata_holds_sha256_and_content_type(
    make_conn: ConnFactory, s3_server: Any
) -> None:
    conn = make_conn()
    async with S3BlobStore(conn) as store:
        await store.put("m/a.txt", b"hello", sha256=sha(b"hello"), content_type="text/plain")
    session = aioboto3.Session(
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    )
    async with session.client("s3", endpoint_url=s3_server.endpoint) as client:
        head = await client.head_object(
            Bucket=s3_server.json_bucket, Key=f"{conn.key_prefix}/m/a.txt"
        )
    assert head["Metadata"] == {"sha256": sha(b"hello")}
    assert head["ContentType"] == "text/plain"


async def test_delete_batches_requests(
    make_conn: ConnFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 4)
    keys = [f"del/{i:02}" for i in range(11)]
    async with S3BlobStore(make_conn()) as store:
        for key in keys:
            await store.put(key, b"x", sha256=sha(b"x"))
        await store.delete([*keys, "del/missing"])
        assert [i.key async for i in store.list("del/")] == []


async def test_wrong_credentials_are_not_retryable(make_conn: ConnFactory) -> None:
    secret = "wrong-secret-9f8e7d6c5b4a"
    conn = make_conn(access_key="no-such-access-key-1234", secret_key=secret)
    store = S3BlobStore(conn)
    assert secret not in repr(store)
    async with store:
        for call in (
            store.ping,
            lambda: store.put("a.json", b"x", sha256=sha(b"x")),
            lambda: store.get("a.json"),
        ):
            with pytest.raises(StorageError) as info:
                await call()
            assert info.value.retryable is False
            assert secret not in str(info.value)
            assert "no-such-access-key-1234" not in str(info.value)


async def test_unreachable_endpoint_is_retryable(make_conn: ConnFactory) -> None:
    conn = make_conn(endpoint=f"http://127.0.0.1:{closed_port()}")
    async with S3BlobStore(conn, max_attempts=1, connect_timeout=1) as store:
        for call in (
            store.ping,
            lambda: store.get("a.json"),
            lambda: store.put("a", b"", sha256=sha(b"")),
        ):
            with pytest.raises(StorageError) as info:
                await call()
            assert info.value.retryable is True
        with pytest.raises(StorageError) as info:
            [i async for i in store.list("")]
        assert info.value.retryable is True


async def test_missing_bucket_is_not_retryable(make_conn: ConnFactory) -> None:
    conn = make_conn(json_bucket="chronos-no-such-bucket")
    async with S3BlobStore(conn) as store:
        with pytest.raises(StorageError) as info:
            await store.ping()
        assert info.value.retryable is False
        with pytest.raises(StorageError, match="NoSuchBucket") as info:
            await store.get("a.json")
        assert info.value.retryable is False


def test_constructor_validates_options(make_conn: ConnFactory) -> None:
    with pytest.raises(ValidationError):
        S3BlobStore(make_conn(), list_page_size=1001)
    with pytest.raises(ValidationError):
        S3BlobStore(make_conn(), max_attempts=0)


async def test_listing_order_of_this_server(make_conn: ConnFactory) -> None:
    # Pins the server's order so a change is noticed: AWS lists in key order, SeaweedFS
    # 4.48 folder by folder. Either way every page size gives the same complete listing.
    keys = ["a/1", "a/2", "a-b/1", "a.c", "a/z/1", "a0", "b"]
    async with S3BlobStore(make_conn()) as store:
        for key in keys:
            await store.put(key, b"x", sha256=sha(b"x"))
    listings = []
    for page_size in (1, 2, 3, 1000):
        async with S3BlobStore(make_conn(), list_page_size=page_size) as store:
            listings.append([i.key async for i in store.list("")])
    assert all(listing == listings[0] for listing in listings)
    assert listings[0] in (sorted(keys), sorted(keys, key=lambda k: k.split("/")))
