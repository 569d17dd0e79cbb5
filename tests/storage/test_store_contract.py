"""The BlobStore contract, run against every backend (local folder, MongoDB, S3 twice).

S3 runs through both clients, aioboto3 (``S3BlobStore``) and obstore (``ObstoreBlobStore``).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from chronos_async import ClosedError, SpacesConnection, StorageError, ValidationError
from chronos_async.storage import (
    BlobInfo,
    BlobMissingError,
    BlobStore,
    LocalBlobStore,
    MongoBlobStore,
    ObstoreBlobStore,
    S3BlobStore,
)
from chronos_async.storage._s3_common import normal_endpoint


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def put(store: BlobStore, key: str, body: bytes, **kwargs: object) -> None:
    await store.put(key, body, sha256=sha(body), **kwargs)  # type: ignore[arg-type]


async def collect(store: BlobStore, prefix: str, **kwargs: object) -> list[BlobInfo]:
    return [info async for info in store.list(prefix, **kwargs)]  # type: ignore[arg-type]


def segment_order(keys: list[str]) -> list[str]:
    """The order of a folder-by-folder listing (SeaweedFS): by the tuple of segments."""
    return sorted(keys, key=lambda key: key.split("/"))


def test_stores_satisfy_the_protocol(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    assert store.kind in {"local", "mongo", "s3"}


async def test_ranged_reads_return_exactly_the_span(store: BlobStore) -> None:
    body = bytes(range(256)) * 64  # 16 KiB
    await put(store, "t/db/c/1/v0/pack.json", body)
    for offset, length in ((0, 1), (0, len(body)), (100, 1000), (len(body) - 7, 7), (5000, 3)):
        got = await store.get_range("t/db/c/1/v0/pack.json", offset=offset, length=length)
        assert got == body[offset : offset + length], (offset, length)
    # past the end: what there is (callers verify the bytes they read against sha256)
    tail = await store.get_range("t/db/c/1/v0/pack.json", offset=len(body) - 2, length=10)
    assert tail == body[-2:]
    with pytest.raises(BlobMissingError):
        await store.get_range("t/db/c/1/v0/none.json", offset=0, length=5)
    for offset, length in ((-1, 5), (0, 0), (1.5, 2), (True, 2)):
        with pytest.raises(ValidationError):
            await store.get_range("t/db/c/1/v0/pack.json", offset=offset, length=length)  # type: ignore[arg-type]


async def test_round_trip_keeps_exact_bytes(store: BlobStore) -> None:
    bodies = {
        "t/db/c/1/v0/a1.json": b'{"a": 1}',
        "t/db/c/1/v1/b2.json": bytes(range(256)) * 40,
        "t/db/c/2/v0/empty.json": b"",
    }
    for key, body in bodies.items():
        await put(store, key, body)
    for key, body in bodies.items():
        assert await store.get(key) == body


async def test_put_never_overwrites(store: BlobStore) -> None:
    await put(store, "k/v0/x.json", b"first")
    with pytest.raises(StorageError, match="exists") as info:
        await put(store, "k/v0/x.json", b"second")
    assert not isinstance(info.value, BlobMissingError)
    assert info.value.retryable is False
    assert await store.get("k/v0/x.json") == b"first"


async def test_repeating_an_identical_put_succeeds(store: BlobStore) -> None:
    # A retried put (e.g. after a lost response) must not fail on its own earlier success.
    await put(store, "k/v0/same.json", b"payload")
    await put(store, "k/v0/same.json", b"payload")
    assert await store.get("k/v0/same.json") == b"payload"


async def test_racing_puts_to_one_key_have_one_winner(store: BlobStore) -> None:
    # SeaweedFS queues racing conditional PUTs on one key and answers each loser after
    # another second of polling (1 s, 2 s, ...): few racers keep the S3 run short.
    bodies = [f"writer {i}".encode() for i in range(3 if store.kind == "s3" else 10)]
    results = await asyncio.gather(
        *(put(store, "race/v1/tok.json", body) for body in bodies), return_exceptions=True
    )
    winners = [body for body, result in zip(bodies, results, strict=True) if result is None]
    losers = [r for r in results if r is not None]
    assert len(winners) == 1
    assert all(isinstance(r, StorageError) and not r.retryable for r in losers)
    assert await store.get("race/v1/tok.json") == winners[0]


async def test_missing_key_raises_blob_missing(store: BlobStore) -> None:
    with pytest.raises(BlobMissingError) as info:
        await store.get("no/such/key.json")
    assert isinstance(info.value, StorageError)
    assert info.value.retryable is False
    assert (info.value.role, info.value.key) == ("json", "no/such/key.json")


async def test_roles_are_separate(store: BlobStore) -> None:
    await put(store, "shared/key.json", b"json", role="json")
    await put(store, "shared/key.json", b"content", content_type="text/plain", role="content")
    assert await store.get("shared/key.json", role="json") == b"json"
    assert await store.get("shared/key.json", role="content") == b"content"
    with pytest.raises(BlobMissingError):
        await store.get("shared/key.json", role="backups")


async def test_delete_is_idempotent_and_ignores_missing(store: BlobStore) -> None:
    await put(store, "d/1.json", b"1")
    await put(store, "d/2.json", b"2")
    await store.delete(["d/1.json", "d/never.json"])
    with pytest.raises(BlobMissingError):
        await store.get("d/1.json")
    assert await store.get("d/2.json") == b"2"
    await store.delete(["d/1.json"])
    await store.delete([])
    assert [i.key for i in await collect(store, "d/")] == ["d/2.json"]


async def test_list_filters_by_prefix_in_key_order(store: BlobStore) -> None:
    keys = [f"p/k{i}.json" for i in range(30)]
    others = ["p-x/a.json", "q/a.json", "pa.json"]
    shuffled = keys + others
    random.Random(7).shuffle(shuffled)
    await asyncio.gather(*(put(store, key, key.encode()) for key in shuffled))

    listed = await collect(store, "p/")
    assert [i.key for i in listed] == sorted(keys)
    assert all(i.size == len(i.key) for i in listed)
    assert all(i.modified_at.tzinfo is not None for i in listed)

    partial = [i.key for i in await collect(store, "p/k1")]
    assert partial == sorted(k for k in keys if k.startswith("p/k1"))
    everything = [i.key for i in await collect(store, "")]
    if store.kind == "s3":
        # SeaweedFS lists folder by folder ("p/..." before "p-x/..."), see S3BlobStore.list.
        assert everything in (sorted(keys + others), segment_order(keys + others))
    else:
        assert everything == sorted(keys + others)
    assert await collect(store, "nothing/") == []
    assert await collect(store, "p/", role="content") == []


async def test_list_can_stop_early(store: BlobStore) -> None:
    await asyncio.gather(*(put(store, f"e/{i:02}", b"x") for i in range(12)))
    seen = []
    async for info in store.list("e/"):
        seen.append(info.key)
        if len(seen) == 3:
            break
    assert seen == ["e/00", "e/01", "e/02"]


@pytest.mark.parametrize(
    "key",
    ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "./a", "a/", "a\\b", "a\x00b",
     "a b", "tmp~1", "é", "x" * 1025, "a/" + "b" * 256],
)  # fmt: skip
async def test_invalid_keys_are_rejected_everywhere(store: BlobStore, key: str) -> None:
    with pytest.raises(ValidationError):
        await store.put(key, b"x", sha256=sha(b"x"))
    with pytest.raises(ValidationError):
        await store.get(key)
    with pytest.raises(ValidationError):
        await store.delete(["ok.json", key])
    with pytest.raises(ValidationError):
        await store.presign_get(key, ttl_seconds=60)


@pytest.mark.parametrize("prefix", ["/a", "../", "a//", "a/../b/", "a\\", "a b"])
async def test_invalid_prefixes_are_rejected(store: BlobStore, prefix: str) -> None:
    with pytest.raises(ValidationError):
        await collect(store, prefix)


async def test_ping_answers(store: BlobStore) -> None:
    await store.ping()


async def test_unknown_role_is_a_validation_error(store: BlobStore) -> None:
    with pytest.raises(ValidationError):
        await store.get("a.json", role="bogus")  # type: ignore[arg-type]


async def test_lifecycle_open_once_close_idempotent(store: BlobStore) -> None:
    with pytest.raises(ClosedError):
        await store.__aenter__()
    await store.__aexit__(None, None, None)
    await store.__aexit__(None, None, None)
    with pytest.raises(ClosedError):
        await store.get("a.json")
    with pytest.raises(ClosedError):
        await store.ping()
    with pytest.raises(ClosedError):
        await store.__aenter__()


async def test_unopened_store_refuses_calls(unopened_store: BlobStore) -> None:
    with pytest.raises(ClosedError):
        await unopened_store.put("a.json", b"x", sha256=sha(b"x"))
    with pytest.raises(ClosedError):
        await unopened_store.get("a.json")
    with pytest.raises(ClosedError):
        await collect(unopened_store, "")
    with pytest.raises(ClosedError):
        await unopened_store.ping()
    await unopened_store.__aexit__(None, None, None)  # closing an unopened store is harmless


# -- identity: which stores share their objects ---------------------------------------------


def test_identity_names_the_place_without_secrets(store: BlobStore) -> None:
    identity = store.identity
    assert isinstance(identity, str) and identity.startswith(f"{store.kind}:")
    assert store.identity == identity  # stable
    if isinstance(store, (S3BlobStore, ObstoreBlobStore)):
        conn = store._conn
        for secret in (conn.access_key.get_secret_value(), conn.secret_key.get_secret_value()):
            assert secret not in identity


async def test_local_identity_is_the_real_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    stores = [
        LocalBlobStore(tmp_path / "real"),
        LocalBlobStore(tmp_path / "alias"),  # a symbolic link to the same folder
        LocalBlobStore(tmp_path / "real" / ".." / "real"),
        LocalBlobStore(tmp_path / "other"),
    ]
    for store in stores:
        await store.__aenter__()
    try:
        same, alias, dotted, other = (store.identity for store in stores)
        assert same == alias == dotted == f"local:{(tmp_path / 'real' / 'json').resolve()}"
        assert other != same
    finally:
        for store in stores:
            await store.__aexit__(None, None, None)


def test_s3_identity_is_endpoint_bucket_and_prefix(
    make_conn: Callable[..., SpacesConnection], s3_server: Any
) -> None:
    base = S3BlobStore(make_conn()).identity
    assert S3BlobStore(make_conn(endpoint=s3_server.endpoint + "/")).identity == base
    assert S3BlobStore(make_conn(region="eu-west-1", access_key="other")).identity == base
    assert S3BlobStore(make_conn(key_prefix="elsewhere")).identity != base
    assert S3BlobStore(make_conn(key_prefix="")).identity != base
    assert S3BlobStore(make_conn(json_bucket="another-bucket")).identity != base
    assert S3BlobStore(make_conn(content_bucket="another-bucket")).identity == base  # json only
    # Either client: one bucket and prefix are one place, whichever client reaches it.
    assert ObstoreBlobStore(make_conn()).identity == base
    assert ObstoreBlobStore(make_conn(client="aioboto3", region="eu-west-1")).identity == base
    assert ObstoreBlobStore(make_conn(key_prefix="elsewhere")).identity != base


@pytest.mark.parametrize(
    ("endpoint", "normal"),
    [
        ("http://Example.COM", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("https://EXAMPLE.com:443/", "https://example.com:443"),
        ("http://u:p@example.com:8333/s3/", "http://example.com:8333/s3"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_s3_endpoints_are_compared_by_scheme_host_port_path(endpoint: str, normal: str) -> None:
    assert normal_endpoint(endpoint) == normal


async def test_mongo_identity_is_deployment_and_collection() -> None:
    clients: list[AsyncMongoClient[Any]] = [
        AsyncMongoClient("mongodb://Example.COM,b.example.com:27018/app", connect=False),
        AsyncMongoClient("mongodb://u:secret@b.example.com:27018,example.com:27017", connect=False),
        AsyncMongoClient("mongodb://example.com:27019", connect=False),
    ]
    try:
        first, same, other = (MongoBlobStore(c, "chronos", "payloads") for c in clients)
        assert first.identity == same.identity
        assert first.identity == "mongo:b.example.com:27018,example.com:27017/chronos.payloads"
        assert "secret" not in same.identity
        assert other.identity != first.identity
        assert MongoBlobStore(clients[0], "chronos", "blobs").identity != first.identity
        assert MongoBlobStore(clients[0], "other", "payloads").identity != first.identity
    finally:
        for client in clients:
            await client.close()
