"""Routing: the original's key chain and HRW scores, jump hash, credential-free ids."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos_async import Chronos, ChronosConfig
from chronos_async._errors import ConfigError, ValidationError
from chronos_async._routing import (
    _jump,
    backend_id,
    choose_backend,
    explain_route,
    jump_hash,
    routing_key,
    select_backend,
)
from tests.conftest import S3Server
from tests.support import drop_databases

KEYS = [f"tenant-{i}" for i in range(5000)]
ORIGINAL_IDS = [
    "mongodb://a:27017|https://s3.a.example|json-a",
    "mongodb://b:27017|https://s3.b.example|json-b",
    "mongodb://c:27017|https://s3.c.example|json-c",
]


# --- routing_key ----------------------------------------------------------------------

DEFAULT_CHAIN = "tenantId|dbName|collection:objectId"


@pytest.mark.parametrize(
    ("chain", "tenant", "db", "item_id", "expected"),
    [
        (DEFAULT_CHAIN, "acme", "myapp", "42", "acme"),
        (DEFAULT_CHAIN, None, "myapp", "42", "myapp"),
        (DEFAULT_CHAIN, None, "", "42", "users:42"),
        (DEFAULT_CHAIN, None, "", None, "users:"),
        ("collection:objectId|tenantId", "acme", "myapp", None, "users:"),
        ("objectId|tenantId", "acme", "myapp", "42", "42"),
        ("objectId|tenantId", "acme", "myapp", None, "acme"),
        ("objectId", None, "myapp", None, "myapp"),  # nothing matched: the fixed fallback
        ("objectId", "acme", "myapp", None, "acme"),
        ("collection|tenantId", "acme", "myapp", None, "users"),
        (" dbName | tenantId ", "acme", "myapp", None, "myapp"),
    ],
)
def test_routing_key_is_a_first_match_chain(
    chain: str, tenant: str | None, db: str, item_id: str | None, expected: str
) -> None:
    key = routing_key(chain, tenant=tenant, db=db, collection="users", item_id=item_id)
    assert key == expected


def test_routing_key_rejects_unknown_tokens() -> None:
    with pytest.raises(ValidationError, match="'shard'"):
        routing_key("shard|tenantId", tenant="a", db="d", collection="c", item_id=None)


# --- rendezvous -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "of_two", "of_three"),
    [("tenantA", 0, 0), ("tenantB", 1, 1), ("tenantC", 1, 1), ("myapp", 0, 0), ("acme", 1, 1)],
)
def test_rendezvous_reproduces_the_original_test_vectors(
    key: str, of_two: int, of_three: int
) -> None:
    assert choose_backend(key, ORIGINAL_IDS[:2]) == of_two
    assert choose_backend(key, ORIGINAL_IDS) == of_three


def test_rendezvous_score_is_the_original_formula() -> None:
    digest = hashlib.sha256(f"tenantA|{ORIGINAL_IDS[0]}".encode()).hexdigest()
    assert digest.startswith("ee50cfa4")


def test_rendezvous_single_backend_and_ties() -> None:
    assert choose_backend("anything", ["only"]) == 0
    assert all(choose_backend(k, ["same", "same", "same"]) == 0 for k in KEYS[:50])
    with pytest.raises(ValidationError):
        choose_backend("k", [])


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=40), n=st.integers(1, 8))
def test_rendezvous_is_deterministic_and_in_range(key: str, n: int) -> None:
    ids = [f"mongodb://h{i}:27017/|b" for i in range(n)]
    chosen = choose_backend(key, ids)
    assert 0 <= chosen < n
    assert choose_backend(key, list(ids)) == chosen


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_adding_a_backend_moves_about_one_in_n_plus_one_keys_all_to_it(n: int) -> None:
    ids = [f"mongodb://host{i}:27017/app|json" for i in range(n + 1)]
    before = [choose_backend(k, ids[:n]) for k in KEYS]
    after = [choose_backend(k, ids) for k in KEYS]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == n for _, a in moved)  # keys only ever move to the new backend
    assert abs(len(moved) / len(KEYS) - 1 / (n + 1)) < 0.03


def test_removing_a_backend_moves_only_its_keys() -> None:
    ids = [f"mongodb://host{i}:27017/app|json" for i in range(5)]
    before = [choose_backend(k, ids) for k in KEYS]
    survivors = ids[:2] + ids[3:]
    for key, was in zip(KEYS, before, strict=True):
        now = survivors[choose_backend(key, survivors)]
        if was != 2:
            assert now == ids[was]


def test_rendezvous_spreads_keys_evenly() -> None:
    ids = [f"mongodb://host{i}:27017/app|json" for i in range(4)]
    counts = Counter(choose_backend(k, ids) for k in KEYS)
    assert all(abs(c / len(KEYS) - 0.25) < 0.03 for c in counts.values())


# --- jump -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "n", "bucket"),
    [
        # published values of the reference algorithm (paper's C++, ClickHouse, Rust ports)
        (1, 1, 0),
        (42, 57, 43),
        (256, 1024, 520),
        (0xDEAD10CC, 1, 0),
        (0xDEAD10CC, 666, 361),
        (16045690984833335023, 255, 237),
        (0, 60, 0),
        (1, 60, 55),
        (2, 60, 46),
    ],
)
def test_jump_matches_the_reference_algorithm(key: int, n: int, bucket: int) -> None:
    assert _jump(key, n) == bucket


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=40), n=st.integers(1, 10_000))
def test_jump_hash_is_in_range_and_deterministic(key: str, n: int) -> None:
    bucket = jump_hash(key, n)
    assert 0 <= bucket < n
    assert jump_hash(key, n) == bucket


def test_jump_hash_keys_only_move_to_the_new_bucket() -> None:
    for key in KEYS[:1000]:
        previous = jump_hash(key, 1)
        assert previous == 0
        for n in range(2, 33):
            now = jump_hash(key, n)
            assert now in (previous, n - 1)
            previous = now


@pytest.mark.parametrize("n", [1, 2, 4, 9])
def test_jump_hash_moves_about_one_in_n_plus_one_keys(n: int) -> None:
    moved = sum(jump_hash(k, n) != jump_hash(k, n + 1) for k in KEYS)
    assert abs(moved / len(KEYS) - 1 / (n + 1)) < 0.03


@pytest.mark.parametrize("n", [0, -1, True, 2.0])
def test_jump_hash_needs_a_bucket(n: object) -> None:
    with pytest.raises(ValidationError):
        jump_hash("k", n)  # type: ignore[arg-type]


def test_select_backend_dispatches_on_the_configured_algorithm() -> None:
    ids = ORIGINAL_IDS
    assert select_backend("tenantB", ids, "rendezvous") == choose_backend("tenantB", ids)
    assert select_backend("tenantB", ids, "jump") == jump_hash("tenantB", 3)
    with pytest.raises(ValidationError):
        select_backend("k", ids, "modulo")


# --- backend_id -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "expected"),
    [
        ("mongodb://localhost", None, "mongodb://localhost:27017/|"),
        ("mongodb://u:p@B:27017,a/app?tls=true", "json", "mongodb://a:27017,b:27017/app|json"),
        ("mongodb://a:27017,b:27017/app", "json", "mongodb://a:27017,b:27017/app|json"),
        ("mongodb://h:27018/?replicaSet=rs0", "j", "mongodb://h:27018/|j"),
        ("mongodb://h?w=1", "j", "mongodb://h:27017/|j"),
        ("mongodb://[::1]:27017/db", "j", "mongodb://[::1]:27017/db|j"),
        ("mongodb://%2Ftmp%2Fmongo.sock/db", "j", "mongodb://%2Ftmp%2Fmongo.sock/db|j"),
        (
            "MONGODB+SRV://u:p@Cluster0.example.net/app?tls=true",
            None,
            "mongodb+srv://cluster0.example.net/app|",
        ),
        ("mongodb://us%40er:p%2Fw%3Fd@h/app", "j", "mongodb://h:27017/app|j"),
        ("mongodb://u:p?w@h/app", "j", "mongodb://h:27017/app|j"),  # pymongo's split too
    ],
)
def test_backend_id_keeps_hosts_db_and_bucket(uri: str, bucket: str | None, expected: str) -> None:
    assert backend_id(0, uri, bucket) == expected


_secret = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20
)


@settings(max_examples=200, deadline=None)
@given(user=_secret, password=_secret, options=st.sampled_from(["", "?tls=true", "?w=majority"]))
def test_backend_id_never_depends_on_or_contains_credentials(
    user: str, password: str, options: str
) -> None:
    uri = f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@db1:27017,db2/app{options}"
    ident = backend_id(3, uri, "json")
    # the same id as without credentials or options, so it cannot hold any part of them
    assert ident == backend_id(3, "mongodb://db2:27017,db1/app", "json")


@pytest.mark.parametrize(
    "uri",
    [
        "postgres://u:p@h/db",
        "h:27017",
        "mongodb://u:p/w@h/db",  # unescaped "/" in the password
        "mongodb://u:123/w@h/db",
        "mongodb://u:1/w?a=b@h/db",
        "mongodb://h/db?appName=me@home",
        "mongodb://u:p@/db",
        "mongodb://h:port/db",
        "mongodb://a,,b/db",
    ],
)
def test_backend_id_refuses_uris_it_cannot_split_safely(uri: str) -> None:
    with pytest.raises(ConfigError) as info:
        backend_id(7, uri, "json")
    message = str(info.value)
    assert "mongo_uris[7]" in message
    assert "u:" not in message
    assert "@" not in message.replace("'@'", "")


# -- explaining a route (pure) -----------------------------------------------------------


def test_explain_route_names_the_winner_and_every_score() -> None:
    ids = ["mongodb://a:27017/app|", "mongodb://b:27017/app|", "mongodb://c:27017/app|"]
    info = explain_route("acme", ids, "rendezvous")
    assert info.index == choose_backend("acme", ids) and info.backend_id == ids[info.index]
    assert info.key == "acme" and info.algo == "rendezvous"
    assert len(info.scores) == 3 and info.score == max(info.scores)
    assert info.scores.index(info.score) == info.index
    jumped = explain_route("acme", ids, "jump")
    assert (jumped.index, jumped.score, jumped.scores) == (jump_hash("acme", 3), None, ())


# -- two MongoDB servers: where records really are ---------------------------------------


@pytest.mark.parametrize("algo", ["rendezvous", "jump"])
async def test_route_says_where_each_tenant_lives_on_two_servers(
    mongo_uri: str, second_mongo_uri: str, db_name: str, tmp_path: Path, algo: str
) -> None:
    config = ChronosConfig.model_validate(
        {
            "mongo_uris": [mongo_uri, second_mongo_uri],
            "payload_storage": "local",
            "local_storage": {"enabled": True, "base_path": str(tmp_path / "payloads")},
            "routing": {"hash_algo": algo},
        }
    )
    tenants = [f"t{n}" for n in range(24)]
    try:
        async with Chronos(config) as chronos:
            placed: dict[str, int] = {}
            for tenant in tenants:
                info = chronos.route(db=db_name, collection="users", tenant=tenant, id="any-id")
                assert info.key == tenant and info.algo == algo
                assert info.backend_id == chronos.backends[info.index].id
                assert "@" not in info.backend_id  # hosts, database, bucket: no credentials
                placed[tenant] = info.index
                users = chronos.collection("users", db=db_name, tenant=tenant)
                created = await users.create({"tenant": tenant})
                updated = await users.update(created.id, {"tenant": tenant, "n": 1}, expected_ov=0)
                assert (await users.get_as_of(created.id, created.at)) is not None
                assert [v.ov async for v in users.history(created.id)] == [1, 0]
                assert updated.ov == 1
            counts = [list(placed.values()).count(i) for i in (0, 1)]
            assert min(counts) >= 6, counts  # both servers used, roughly evenly
            for tenant, index in placed.items():
                for backend in chronos.backends:
                    heads = backend.client[db_name]["users_head"]
                    found = await heads.count_documents({"_id": {"$regex": f"^{tenant}/"}})
                    assert found == (1 if backend.index == index else 0), (tenant, index)
    finally:
        await drop_databases(mongo_uri, db_name)
        await drop_databases(second_mongo_uri, db_name)


def _with_database(uri: str, database: str) -> str:
    """``uri`` naming ``database`` (the same server, another spelling of the backend)."""
    scheme, _, rest = uri.partition("://")
    hosts, slash, tail = rest.partition("/")
    if slash:
        options = tail.partition("?")[2]
    else:
        hosts, _, options = hosts.partition("?")
    return f"{scheme}://{hosts}/{database}" + (f"?{options}" if options else "")


async def test_configured_backend_ids_keep_routes_when_hosts_are_respelled(
    mongo_uri: str, second_mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    storage = {
        "payload_storage": "local",
        "local_storage": {"enabled": True, "base_path": str(tmp_path / "payloads")},
    }
    before = [mongo_uri, second_mongo_uri]
    after = [_with_database(u, "renamed") for u in before]
    tenants = [f"t{n}" for n in range(50)]

    def routes(uris: list[str], ids: list[str] | None) -> dict[str, int]:
        config = ChronosConfig.model_validate(
            {"mongo_uris": uris, **storage, "routing": {"backend_ids": ids}}
        )
        backend_ids = ids or [backend_id(i, u, None) for i, u in enumerate(config.mongo_uris)]
        return {t: explain_route(t, backend_ids, "rendezvous").index for t in tenants}

    # Derived ids change with the spelling (and so would about half the routes) ...
    assert routes(before, None) != routes(after, None)
    # ... configured ids do not.
    assert routes(before, ["east", "west"]) == routes(after, ["east", "west"])

    ids = {"routing": {"backend_ids": ["east", "west"]}}
    try:
        config = ChronosConfig.model_validate({"mongo_uris": before, **storage, **ids})
        async with Chronos(config) as chronos:
            made = {}
            for tenant in tenants[:8]:
                users = chronos.collection("users", db=db_name, tenant=tenant)
                made[tenant] = (await users.create({"tenant": tenant})).id
            assert {
                chronos.route(db=db_name, collection="users", tenant=t).backend_id for t in tenants
            } == {"east", "west"}
        config = ChronosConfig.model_validate({"mongo_uris": after, **storage, **ids})
        async with Chronos(config) as chronos:  # the same servers, spelled differently
            for tenant, item_id in made.items():
                users = chronos.collection("users", db=db_name, tenant=tenant)
                item = await users.get_latest(item_id)
                assert item is not None and item.data == {"tenant": tenant}
    finally:
        await drop_databases(mongo_uri, db_name)
        await drop_databases(second_mongo_uri, db_name)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["east"], "pair up by position"),
        (["east", "east"], "must be distinct"),
        (["east", "has space"], "backendIds.1"),
        (["east", ""], "backendIds.1"),
        (["east", "x" * 65], "backendIds.1"),
    ],
)
def test_configured_backend_ids_are_checked(ids: list[str], message: str) -> None:
    config = {
        "mongo_uris": ["mongodb://a:27017/app", "mongodb://b:27017/app"],
        "payload_storage": "mongo",
        "routing": {"backendIds": ids},
    }
    with pytest.raises(ConfigError, match=message):
        ChronosConfig.model_validate(config)


async def test_two_servers_with_two_s3_stores_keep_payloads_with_their_records(
    mongo_uri: str, second_mongo_uri: str, db_name: str, s3_server: S3Server, key_prefix: str
) -> None:
    # Two backends, each with its own S3 store: the session's bucket set (SeaweedFS spends
    # a volume per bucket) under two key prefixes, so the stores are distinct.
    prefixes = [f"{key_prefix}-east", f"{key_prefix}-west"]
    conns = [
        {
            "endpoint": s3_server.endpoint,
            "region": s3_server.region,
            "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key,
            "json_bucket": s3_server.json_bucket,
            "content_bucket": s3_server.content_bucket,
            "backups_bucket": s3_server.backups_bucket,
            "key_prefix": prefix,
        }
        for prefix in prefixes
    ]
    config = ChronosConfig.model_validate(
        {
            "mongo_uris": [mongo_uri, second_mongo_uri],
            "spaces_conns": conns,
            "payload_storage": "s3",
            "limits": {"inline_payload_bytes": 0},  # every read goes to the store
            "routing": {"backend_ids": ["east", "west"]},
        }
    )
    try:
        async with Chronos(config) as chronos:
            placed: dict[str, int] = {}
            for n in range(16):
                tenant = f"s{n}"
                placed[tenant] = chronos.route(db=db_name, collection="docs", tenant=tenant).index
                docs = chronos.collection("docs", db=db_name, tenant=tenant)
                made = await docs.create({"tenant": tenant, "body": "x" * 100})
                await docs.enrich(made.id, {"tags": ["a"]}, function_id="tagger@1")
                await docs.restore_object(made.id, ov=0)
                assert [v.ov async for v in docs.history(made.id)] == [2, 1, 0]
                assert (await docs.diff(made.id, 0, 1)) != []
                item = await docs.get_latest(made.id)
                assert item is not None and item.data["tenant"] == tenant
            assert set(placed.values()) == {0, 1}
            for tenant, index in placed.items():
                for backend in chronos.backends:
                    keys = [info.key async for info in backend.store.list(f"{tenant}/")]
                    assert (len(keys) > 0) == (backend.index == index), (tenant, backend.index)
            assert (await chronos.admin.verify(db_name)).ok
    finally:
        await drop_databases(mongo_uri, db_name)
        await drop_databases(second_mongo_uri, db_name)


def _two_stores(kind: str, tmp_path: Path, s3: S3Server | None, prefix: str) -> dict[str, Any]:
    """Payload settings giving each of two backends its own store: two local folders, or
    two different buckets (the session's JSON bucket for one backend, its content bucket
    for the other: no extra bucket, SeaweedFS spends a volume on each)."""
    if kind == "local":
        folders = [str(tmp_path / "east"), str(tmp_path / "west")]
        return {
            "payload_storage": "local",
            "local_storage": {"enabled": True, "base_path": folders[0], "base_paths": folders},
        }
    assert s3 is not None
    buckets = [
        (s3.json_bucket, s3.content_bucket),
        (s3.content_bucket, s3.json_bucket),
    ]
    conns = [
        {
            "endpoint": s3.endpoint,
            "region": s3.region,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "json_bucket": json_bucket,
            "content_bucket": content_bucket,
            "backups_bucket": s3.backups_bucket,
            "key_prefix": f"{prefix}-{n}",
        }
        for n, (json_bucket, content_bucket) in enumerate(buckets)
    ]
    return {"payload_storage": "s3", "spaces_conns": conns}


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_every_operation_reaches_the_backend_that_holds_the_record(
    mongo_uri: str,
    second_mongo_uri: str,
    db_name: str,
    tmp_path: Path,
    key_prefix: str,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    s3 = request.getfixturevalue("s3_server") if kind == "s3" else None  # skips without S3
    config = ChronosConfig.model_validate(
        {
            "mongo_uris": [mongo_uri, second_mongo_uri],
            **_two_stores(kind, tmp_path, s3, key_prefix),
            "limits": {"inline_payload_bytes": 0},  # every read goes to the store
            "collection_maps": {"docs": {"indexed_props": ["tenant", "n"]}},
            "counters": {},
            "routing": {"backend_ids": ["east", "west"]},
        }
    )
    try:
        async with Chronos(config) as chronos:
            placed: dict[str, int] = {}
            for n in range(10):
                tenant = f"s{n}"
                placed[tenant] = chronos.route(db=db_name, collection="docs", tenant=tenant).index
                docs = chronos.collection("docs", db=db_name, tenant=tenant)
                a = await docs.create({"tenant": tenant, "n": 0})
                child = await docs.create({"tenant": tenant, "n": 9}, parent_id=a.id)
                await docs.update(a.id, {"tenant": tenant, "n": 1}, expected_ov=0)
                await docs.enrich(a.id, {"tags": ["x"]}, function_id="tagger@1")
                await docs.restore_object(a.id, ov=0)
                assert [v.ov async for v in docs.history(a.id)] == [3, 2, 1, 0]
                assert await docs.diff(a.id, 0, 1) != []
                assert (await docs.get_version(a.id, ov=1)).data["n"] == 1  # type: ignore[union-attr]
                assert (await docs.get_as_of(a.id, a.at)).data["n"] == 0  # type: ignore[union-attr]
                assert [i.id for i in await docs.lineage(child.id)] == [a.id]
                page = await docs.list_by_meta({"tenant": tenant})
                assert sorted(i.id for i in page.items) == sorted([a.id, child.id])
                await docs.delete(child.id)
                restored = await docs.restore_collection(at=child.at)
                assert restored.undeleted == (child.id,) and a.id in restored.unchanged
                assert (await docs.get_latest(child.id)) is not None
                totals = await chronos.counters.get_totals(
                    db=db_name, collection="docs", tenant=tenant
                )
                assert (totals.created, totals.updated, totals.enriched) == (2, 1, 1)
            assert set(placed.values()) == {0, 1}
            for tenant, index in placed.items():
                for backend in chronos.backends:
                    keys = [info.key async for info in backend.store.list(f"{tenant}/")]
                    assert (len(keys) > 0) == (backend.index == index), (tenant, backend.index)
                    heads = backend.client[db_name]["docs_head"]
                    held = await heads.count_documents({"t": {"$eq": tenant}})
                    assert held == (2 if backend.index == index else 0)
            report = await chronos.admin.verify(db_name)
            assert report.ok, report.problems[:3]
            assert (await chronos.admin.recount(db=db_name)).corrected == ()
    finally:
        await drop_databases(mongo_uri, db_name)
        await drop_databases(second_mongo_uri, db_name)


def test_local_folders_per_backend_pair_with_mongo_uris() -> None:
    base = {"mongo_uris": ["mongodb://a", "mongodb://b"], "payload_storage": "local"}
    local = {"enabled": True, "base_path": "/tmp/x", "base_paths": ["/tmp/x"]}
    with pytest.raises(ConfigError, match="base_paths has 1 entries"):
        ChronosConfig.model_validate({**base, "local_storage": local})
    local["base_paths"] = ["/tmp/x", "/tmp/y"]
    config = ChronosConfig.model_validate({**base, "local_storage": local})
    assert config.local_storage is not None and config.local_storage.path_for(1) == "/tmp/y"


@pytest.mark.parametrize("chain", ["objectId", "collection:objectId", "tenantId|objectId|dbName"])
def test_routing_by_record_id_is_refused(chain: str) -> None:
    with pytest.raises(ConfigError, match="routing by record id"):
        ChronosConfig.model_validate(
            {
                "mongo_uris": ["mongodb://a"],
                "payload_storage": "mongo",
                "routing": {"choose_key": chain},
            }
        )
    ok = ChronosConfig.model_validate(
        {
            "mongo_uris": ["mongodb://a"],
            "payload_storage": "mongo",
            "routing": {"choose_key": "collection|dbName"},
        }
    )
    assert ok.routing.choose_key == "collection|dbName"
