"""ObstoreBlobStore against the session SeaweedFS server (and a scripted fake S3).

Mirrors test_store_s3.py (presigning, prefixes, metadata, error mapping), then checks
that the two S3 clients share their objects, that statuses are classified as
S3BlobStore classifies them, and that a Chronos on ``client="obstore"`` works end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from chronos_async import Chronos, SpacesConnection, StorageError, ValidationError
from chronos_async.storage import BlobMissingError, ObstoreBlobStore, S3BlobStore
from chronos_async.storage import s3_obstore as obstore_module
from chronos_async.storage._deadline import DeadlineStore
from tests.storage.s3_support import ConnFactory, closed_port, fetch, sha

# -- presigning, prefixes, metadata --------------------------------------------------------


async def test_presigned_url_fetches_exact_bytes_and_expires(make_conn: ConnFactory) -> None:
    body = bytes(range(256)) * 3
    async with ObstoreBlobStore(make_conn()) as store:
        await store.put("pre/v0/a.json", body, sha256=sha(body))
        url = await store.presign_get("pre/v0/a.json", ttl_seconds=2)
        assert await fetch(url) == (200, body)
        tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert (await fetch(tampered))[0] == 403
        assert (await fetch(url.split("?", 1)[0]))[0] == 403  # unsigned
        await asyncio.sleep(3.5)
        assert (await fetch(url))[0] == 403  # expired


@pytest.mark.parametrize("ttl", [0, -5, 7 * 24 * 3600 + 1])
async def test_presign_ttl_is_bounded(make_conn: ConnFactory, ttl: int) -> None:
    async with ObstoreBlobStore(make_conn()) as store:
        with pytest.raises(ValidationError):
            await store.presign_get("a.json", ttl_seconds=ttl)


async def test_key_prefix_is_prepended_and_stripped(make_conn: ConnFactory) -> None:
    conn = make_conn()
    assert conn.key_prefix
    raw_conn = make_conn(key_prefix="")
    async with ObstoreBlobStore(conn) as store, ObstoreBlobStore(raw_conn) as raw:
        await store.put("x/v0/a.json", b"a", sha256=sha(b"a"))
        assert [i.key async for i in store.list("x/")] == ["x/v0/a.json"]
        full = f"{conn.key_prefix}/x/v0/a.json"
        assert [i.key async for i in raw.list(f"{conn.key_prefix}/")] == [full]
        assert [i.key async for i in raw.list(f"{conn.key_prefix}/x/v")] == [full]
        assert await raw.get(full) == b"a"


async def test_object_metadata_holds_sha256_and_content_type(
    make_conn: ConnFactory, s3_server: Any
) -> None:
    conn = make_conn()
    async with ObstoreBlobStore(conn) as store:
        await store.put("m/a.txt", b"hello", sha256=sha(b"hello"), content_type="text/plain")
    async with s3_server.client() as client:
        head = await client.head_object(
            Bucket=s3_server.json_bucket, Key=f"{conn.key_prefix}/m/a.txt"
        )
    assert head["Metadata"] == {"sha256": sha(b"hello")}
    assert head["ContentType"] == "text/plain"


async def test_both_clients_share_objects(make_conn: ConnFactory) -> None:
    conn = make_conn()
    async with ObstoreBlobStore(conn) as fast, S3BlobStore(conn) as boto:
        assert fast.identity == boto.identity
        await fast.put("both/a.json", b"from obstore", sha256=sha(b"from obstore"))
        await boto.put("both/b.json", b"from aioboto3", sha256=sha(b"from aioboto3"))
        # each one reads, re-puts (same bytes: fine) and refuses other bytes for the other's
        assert await boto.get("both/a.json") == b"from obstore"
        assert await fast.get("both/b.json") == b"from aioboto3"
        await boto.put("both/a.json", b"from obstore", sha256=sha(b"from obstore"))
        await fast.put("both/b.json", b"from aioboto3", sha256=sha(b"from aioboto3"))
        for store, key in ((boto, "both/a.json"), (fast, "both/b.json")):
            with pytest.raises(StorageError, match="exists") as info:
                await store.put(key, b"other", sha256=sha(b"other"))
            assert info.value.retryable is False
        assert [i.key async for i in fast.list("both/")] == ["both/a.json", "both/b.json"]
        await fast.delete(["both/b.json"])
        with pytest.raises(BlobMissingError):
            await boto.get("both/b.json")


async def test_delete_batches_requests(
    make_conn: ConnFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(obstore_module, "DELETE_BATCH", 4)
    keys = [f"del/{i:02}" for i in range(11)]
    async with ObstoreBlobStore(make_conn()) as store:
        for key in keys:
            await store.put(key, b"x", sha256=sha(b"x"))
        await store.delete([*keys, "del/missing"])
        assert [i.key async for i in store.list("del/")] == []


@pytest.mark.slow
async def test_listing_crosses_server_pages(make_conn: ConnFactory) -> None:
    # S3 answers at most 1000 keys per ListObjectsV2 page: obstore follows the token.
    keys = [f"many/{i:04}" for i in range(1003)]
    gate = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with gate:
            await store.put(key, b"x", sha256=sha(b"x"))

    async with ObstoreBlobStore(make_conn()) as store:
        await asyncio.gather(*(put(key) for key in keys))
        assert [i.key async for i in store.list("many/")] == keys
        assert [i.key async for i in store.list("many/100")] == keys[1000:]


async def test_ambient_aws_environment_is_ignored(
    make_conn: ConnFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # obstore reads AWS_* variables for what it is not given; the library reads none.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "ambient-token-from-a-role")
    monkeypatch.setenv("AWS_SKIP_SIGNATURE", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    async with ObstoreBlobStore(make_conn()) as store:
        await store.ping()
        await store.put("env/a.json", b"x", sha256=sha(b"x"))
        assert await store.get("env/a.json") == b"x"


# -- errors against the real server ----------------------------------------------------------


async def test_wrong_credentials_are_not_retryable(make_conn: ConnFactory) -> None:
    secret = "wrong-secret-9f8e7d6c5b4a"
    conn = make_conn(access_key="no-such-access-key-1234", secret_key=secret)
    store = ObstoreBlobStore(conn)
    assert secret not in repr(store)
    async with store:
        for call in (
            store.ping,
            lambda: store.put("a.json", b"x", sha256=sha(b"x")),
            lambda: store.get("a.json"),
            lambda: store.delete(["a.json"]),
            lambda: store.get_range("a.json", offset=0, length=1),
        ):
            with pytest.raises(StorageError) as info:
                await call()
            assert info.value.retryable is False
            assert not isinstance(info.value, BlobMissingError)
            assert secret not in str(info.value)
            assert "no-such-access-key-1234" not in str(info.value)
            assert "HTTP 403" in str(info.value)


async def test_unreachable_endpoint_is_retryable(make_conn: ConnFactory) -> None:
    conn = make_conn(endpoint=f"http://127.0.0.1:{closed_port()}")
    async with ObstoreBlobStore(conn, max_attempts=1, connect_timeout=1) as store:
        for call in (
            store.ping,
            lambda: store.get("a.json"),
            lambda: store.put("a", b"", sha256=sha(b"")),
            lambda: store.delete(["a"]),
        ):
            with pytest.raises(StorageError, match="Connect") as info:
                await call()
            assert info.value.retryable is True
        with pytest.raises(StorageError) as info:
            [i async for i in store.list("")]
        assert info.value.retryable is True


async def test_missing_bucket_is_not_retryable(make_conn: ConnFactory) -> None:
    conn = make_conn(json_bucket="chronos-no-such-bucket")
    async with ObstoreBlobStore(conn) as store:
        with pytest.raises(StorageError, match="NoSuchBucket") as info:
            await store.ping()
        assert info.value.retryable is False
        for call in (lambda: store.get("a.json"), lambda: store.put("a", b"", sha256=sha(b""))):
            with pytest.raises(StorageError, match="NoSuchBucket") as info:
                await call()
            assert not isinstance(info.value, BlobMissingError)
            assert info.value.retryable is False


def test_constructor_validates_options(make_conn: ConnFactory) -> None:
    for options in ({"list_chunk_size": 0}, {"max_attempts": 0}, {"connect_timeout": 0}):
        with pytest.raises(ValidationError):
            ObstoreBlobStore(make_conn(), **options)


# -- status classification against a scripted fake S3 -------------------------------------


@dataclass
class FakeS3:
    """An HTTP server that answers every request with ``status`` and an S3 error body."""

    endpoint: str
    status: int = 503
    code: str = "SlowDown"
    hits: int = 0
    hang: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def fake_s3() -> AsyncIterator[FakeS3]:
    fake = FakeS3("")

    async def answer(request: web.Request) -> web.Response:
        fake.hits += 1
        if fake.hang:
            await fake.released.wait()
        body = f"<Error><Code>{fake.code}</Code><Message>said {fake.code}</Message></Error>"
        return web.Response(status=fake.status, text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield fake
    finally:
        fake.released.set()
        await runner.cleanup()


def fake_conn(fake: FakeS3) -> SpacesConnection:
    return SpacesConnection.model_validate(
        {
            "endpoint": fake.endpoint,
            "access_key": "fake-access-key-0042",
            "secret_key": "fake-secret-key-0042",
            "json_bucket": "json-bucket",
            "content_bucket": "content-bucket",
            "backups_bucket": "backups-bucket",
            "client": "obstore",
        }
    )


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (503, "SlowDown", True),
        (500, "InternalError", True),
        (429, "TooManyRequests", True),
        (400, "RequestTimeout", True),  # a retryable code under a 4xx status
        (408, "RequestTimeout", True),
        (403, "AccessDenied", False),
        (401, "Unauthorized", False),
        (400, "InvalidArgument", False),
        (412, "PreconditionFailed", False),
    ],
)
async def test_statuses_are_classified_like_s3blobstore(
    fake_s3: FakeS3, status: int, code: str, retryable: bool
) -> None:
    fake_s3.status, fake_s3.code = status, code
    async with ObstoreBlobStore(fake_conn(fake_s3), max_attempts=2) as store:
        for call in (
            lambda: store.get("a.json"),
            lambda: store.get_range("a.json", offset=1, length=2),
            store.ping,
            lambda: store.delete(["a.json"]),
        ):
            with pytest.raises(StorageError, match=f"{code} \\(HTTP {status}\\)") as info:
                await call()
            assert info.value.retryable is retryable, (status, code)
            assert "fake-secret-key-0042" not in str(info.value)


async def test_retries_stop_after_max_attempts(fake_s3: FakeS3) -> None:
    async with ObstoreBlobStore(fake_conn(fake_s3), max_attempts=3) as store:
        with pytest.raises(StorageError) as info:
            await store.get("a.json")
    assert info.value.retryable is True
    assert fake_s3.hits == 3


async def test_conditional_write_in_flight_is_retryable(fake_s3: FakeS3) -> None:
    # AWS answers 409 ConditionalRequestConflict while another If-None-Match PUT runs.
    fake_s3.status, fake_s3.code = 409, "ConditionalRequestConflict"
    async with ObstoreBlobStore(fake_conn(fake_s3)) as store:
        with pytest.raises(StorageError, match="ConditionalRequestConflict") as info:
            await store.put("a.json", b"x", sha256=sha(b"x"))
    assert info.value.retryable is True


async def test_a_stalled_server_times_out_retryably(fake_s3: FakeS3) -> None:
    fake_s3.hang = True
    async with ObstoreBlobStore(fake_conn(fake_s3), max_attempts=1, request_timeout=0.5) as store:
        for call in (lambda: store.get("a.json"), lambda: store.put("a", b"x", sha256=sha(b"x"))):
            with pytest.raises(StorageError) as info:
                await call()
            assert info.value.retryable is True


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["obstore", "aioboto3"])
async def test_chronos_on_either_client_end_to_end(
    make_config: Any, db_name: str, client: str
) -> None:
    config = make_config("s3")
    conn = config.spaces_conns[0].model_copy(update={"client": client})
    config = config.model_copy(update={"spaces_conns": [conn]})
    expected = ObstoreBlobStore if client == "obstore" else S3BlobStore
    async with Chronos(config) as chronos:
        store = chronos._backends[0].store
        assert isinstance(store, DeadlineStore) and isinstance(store.inner, expected)
        users = chronos.collection("users", db=db_name)
        big = "x" * 100_000  # 100 KB: never inline, one object per version
        created = await users.create({"email": "a@x", "pad": big})
        updated = await users.update(created.id, {"email": "b@x", "pad": big + "y"}, expected_ov=0)
        assert updated.ov == 1
        latest = await users.get_latest(created.id, presign=True)
        assert latest is not None and latest.data == {"email": "b@x", "pad": big + "y"}
        status, body = await fetch(latest.urls["payload"])
        assert status == 200 and b"b@x" in body
        first = await users.get_version(created.id, 0)
        assert first is not None and first.data == {"email": "a@x", "pad": big}
        objects = [i async for i in store.list("")]
        assert len(objects) == 2 and all(i.size > 100_000 for i in objects)
        report = await chronos.admin.verify(db_name)
        assert report.ok, report.problems
        assert report.counts["payloads_hashed"] >= 2
