"""ChronosConfig: the original's JSON loads, bad input raises ConfigError, secrets stay hidden."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from chronos_async import ChronosConfig, ConfigError
from chronos_async.__main__ import write_config
from chronos_async._redact import redact_uri
from chronos_async._sections import CollectionMap

ORIGINAL_STYLE: dict[str, Any] = {
    "mongoUris": ["mongodb://app:s3cr3t-pw@db1:27017,db2:27017,db3:27017/app?replicaSet=rs0"],
    "spacesConns": [
        {
            "endpoint": "https://nyc3.digitaloceanspaces.com",
            "region": "nyc3",
            "accessKey": "AKIA-VISIBLE-NOWHERE",
            "secretKey": "very-secret-key",
            "backupsBucket": "chronos-backups",
            "jsonBucket": "chronos-json",
            "contentBucket": "chronos-content",
            "forcePathStyle": False,
        }
    ],
    "counters": {"mongoUri": "mongodb://cnt:cnt-pw@counters:27017", "dbName": "chronos_counters"},
    "routing": {"hashAlgo": "rendezvous", "chooseKey": "tenantId|dbName"},
    "retention": {"ver": {"enabled": True, "days": 30, "maxPerItem": 100}, "counters": {"days": 7}},
    "rollup": {"enabled": False, "manifestPeriod": "daily"},
    "collectionMaps": {
        "users": {
            "indexedProps": ["email", "status", "address.city", "tags[]"],
            "base64Props": {"avatar": {"contentType": "image/png"}},
            "validation": {"requiredIndexed": ["email"]},
        }
    },
    "counterRules": {
        "rules": [{"name": "activeUsers", "on": ["CREATE", "UPDATE"], "when": {"status": "active"}}]
    },
    "devShadow": {"enabled": True, "ttlHours": 24, "maxBytesPerDoc": 1000000},
    "hardDeleteEnabled": True,
    "fallback": {
        "enabled": True,
        "maxAttempts": 10,
        "baseDelayMs": 2000,
        "maxDelayMs": 60000,
        "deadLetterCollection": "chronos_fallback_dead",
    },
    "writeOptimization": {
        "batchS3": True,
        "batchWindowMs": 100,
        "debounceCountersMs": 1000,
        "allowShadowSkip": True,
    },
    "transactions": {"enabled": True, "autoDetect": True},
}


def test_original_camel_case_config_loads_unchanged() -> None:
    config = ChronosConfig.model_validate(ORIGINAL_STYLE)
    assert config.mongo_uris[0].startswith("mongodb://app:")
    assert config.spaces_conns[0].json_bucket == "chronos-json"
    assert config.retention.ver.max_age == 30
    assert config.retention.ver.max_versions == 100
    assert config.retention.counters.max_age == 7
    assert config.collection_map("users").indexed_props == [
        "email",
        "status",
        "address.city",
        "tags[]",
    ]
    assert config.collection_map("users").validation.required_indexed == ["email"]
    assert config.collection_map("unknown").indexed_props == []
    assert config.hard_delete_enabled is True
    assert config.fallback is not None and config.fallback.max_attempts == 10
    assert config.resolved_payload_storage == "s3"


def test_snake_case_names_work_too() -> None:
    config = ChronosConfig.model_validate(
        {
            "mongo_uris": ["mongodb://localhost:27017"],
            "local_storage": {"enabled": True, "base_path": "/tmp/x"},
            "collection_maps": {"users": {"indexed_props": ["email"]}},
        }
    )
    assert config.resolved_payload_storage == "local"


def test_json_text_and_file(tmp_path: Path) -> None:
    text = json.dumps(ORIGINAL_STYLE)
    assert ChronosConfig.model_validate_json(text).mongo_uris == ORIGINAL_STYLE["mongoUris"]
    assert ChronosConfig.load(text).spaces_conns[0].region == "nyc3"
    path = tmp_path / "chronos.json"
    path.write_text(text)
    assert ChronosConfig.from_file(path).counters is not None


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://h1:27017,h2:27018,h3/db?replicaSet=rs0&w=majority",
        "mongodb+srv://user:pw@cluster0.example.net/app?retryWrites=true",
        "mongodb://[::1]:27017",
        "mongodb://127.0.0.1",
    ],
)
def test_multi_host_and_srv_uris_are_valid(uri: str) -> None:
    config = ChronosConfig.model_validate({"mongoUris": [uri], "payloadStorage": "mongo"})
    assert config.mongo_uris == [uri]


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"bogusKey": 1}, "unknown configuration key 'bogusKey'"),
        (
            {"spacesConns": [{**ORIGINAL_STYLE["spacesConns"][0], "extra": 1}]},
            "spacesConns.0.extra",
        ),
        ({"mongoUris": ["http://not-mongo"]}, "mongoUris.0"),
        ({"mongoUris": ["mongodb://h1:99999"]}, "port"),
        ({"mongoUris": ["mongodb+srv://a,b/x"]}, "mongodb+srv"),
        ({"mongoUris": []}, "mongoUris"),
        ({"routing": {"chooseKey": "tenantId|nonsense"}}, "routing"),
        ({"writeOptimization": {"batchWindowMs": -1}}, "batchWindowMs"),
        ({"collectionMaps": {"u": {"indexedProps": ["a..b"]}}}, "invalid property path"),
        (
            {
                "collectionMaps": {
                    "u": {"indexedProps": ["a"], "validation": {"requiredIndexed": ["b"]}}
                }
            },
            "not indexed",
        ),
        ({"spacesConns": []}, "no payload store"),
        ({"mongoUris": ["mongodb://a", "mongodb://b"]}, "pair up by position"),
        ({"payloadStorage": "local"}, "local_storage.enabled"),
    ],
)
def test_invalid_config_raises_config_error_naming_the_problem(
    patch: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        ChronosConfig.model_validate({**ORIGINAL_STYLE, **patch})
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        ChronosConfig.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ChronosConfig.from_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        ChronosConfig.from_file(bad)


def test_secrets_never_appear_in_repr_str_or_errors() -> None:
    config = ChronosConfig.model_validate(ORIGINAL_STYLE)
    for text in (repr(config), str(config), repr(config.spaces_conns[0]), repr(config.counters)):
        for secret in ("s3cr3t-pw", "very-secret-key", "AKIA-VISIBLE-NOWHERE", "cnt-pw"):
            assert secret not in text
    assert "app:***@db1" in repr(config)
    with pytest.raises(ConfigError) as info:
        ChronosConfig.model_validate({**ORIGINAL_STYLE, "mongoUris": ["mongodb://u:leak-me@h:1:2"]})
    assert "leak-me" not in str(info.value)


def test_config_is_frozen() -> None:
    config = ChronosConfig.model_validate(ORIGINAL_STYLE)
    with pytest.raises(Exception, match="frozen"):
        config.hard_delete_enabled = False  # type: ignore[misc]


def test_library_reads_no_environment_variables() -> None:
    # _procs.py only scrubs the environment it hands to the embedded servers' processes;
    # the pytest plugin (chronos_async/testing/) is test tooling: it reads CHRONOS_TEST_*
    # as the last fallback of its own options, never for the library.
    root = Path(__file__).resolve().parents[1] / "chronos_async"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if ("os.environ" in p.read_text() or "getenv" in p.read_text())
        and p.name != "_procs.py"
        and p.relative_to(root).parts[0] != "testing"
    ]
    assert offenders == []


# -- secrets in output -------------------------------------------------------------------

#: A config holding every kind of credential: URI passwords (one percent-encoded), a TLS
#: key-file password and an AWS session token in URI options, S3 access and secret keys.
SECRETS = ("s3cr3t-pw", "p@ss/w0rd", "very-secret-key", "AKIA-VISIBLE-NOWHERE", "cnt-pw")
SECRETS += ("kf-pass-123", "session-tok-456")
WITH_EVERY_SECRET: dict[str, Any] = {
    **ORIGINAL_STYLE,
    "mongoUris": [
        ORIGINAL_STYLE["mongoUris"][0] + "&tlsCertificateKeyFilePassword=kf-pass-123",
        "mongodb://aws%40id:p%40ss%2Fw0rd@db9/?authMechanism=MONGODB-AWS"
        "&authMechanismProperties=AWS_SESSION_TOKEN:session-tok-456",
    ],
    "spacesConns": ORIGINAL_STYLE["spacesConns"] * 2,
}


def _dumps(config: ChronosConfig) -> dict[str, object]:
    """Every way to turn the config (or a section holding secrets) into text or data."""
    counters = config.counters
    assert counters is not None
    return {
        "repr": repr(config),
        "str": str(config),
        "model_dump": config.model_dump(),
        "model_dump by_alias": config.model_dump(by_alias=True),
        "model_dump json": config.model_dump(mode="json"),
        "model_dump json by_alias": config.model_dump(mode="json", by_alias=True),
        "model_dump_json": config.model_dump_json(),
        "model_dump_json by_alias": config.model_dump_json(by_alias=True, indent=2),
        "model_dump_json exclude_defaults": config.model_dump_json(exclude_defaults=True),
        "context without reveal": config.model_dump(context={"reveal_secrets": "yes"}),
        "other context": config.model_dump_json(context={"other": True}),
        "to_dict": config.to_dict(),
        "to_json": config.to_json(),
        "counters repr": repr(counters),
        "counters model_dump": counters.model_dump(),
        "counters model_dump_json": counters.model_dump_json(),
        "spaces model_dump_json": config.spaces_conns[0].model_dump_json(),
        "spaces model_dump": config.spaces_conns[0].model_dump(),
    }


def test_no_dump_shows_a_secret_unless_asked() -> None:
    config = ChronosConfig.model_validate(WITH_EVERY_SECRET)
    for how, output in _dumps(config).items():
        text = str(output)
        for secret in SECRETS:
            assert secret not in text, f"{how} shows {secret!r}"
        assert "p%40ss" not in text, f"{how} shows the percent-encoded password"
    masked = config.to_dict()
    assert masked["mongoUris"][0].startswith("mongodb://app:***@db1:27017,")
    assert "tlsCertificateKeyFilePassword=***" in masked["mongoUris"][0]
    assert masked["mongoUris"][1].startswith("mongodb://aws%40id:***@db9/")
    assert "AWS_SESSION_TOKEN:***" in masked["mongoUris"][1]
    assert masked["counters"]["mongoUri"] == "mongodb://cnt:***@counters:27017"
    assert masked["spacesConns"][0]["secretKey"] == "**********"


def test_revealed_output_round_trips_to_an_equal_config(tmp_path: Path) -> None:
    minimal = ChronosConfig.model_validate(
        {"mongoUris": ["mongodb://u:pw@h"], "payloadStorage": "mongo"}
    )
    for config in (ChronosConfig.model_validate(WITH_EVERY_SECRET), minimal):
        text = config.to_json(reveal_secrets=True)
        assert ChronosConfig.load(text) == config
        assert ChronosConfig.model_validate_json(text) == config
        assert ChronosConfig.model_validate(config.to_dict(reveal_secrets=True)) == config
        assert json.loads(text) == config.to_dict(reveal_secrets=True)  # JSON-ready data
        path = tmp_path / "config.json"
        path.write_text(config.to_json(reveal_secrets=True, indent=None))
        assert ChronosConfig.from_file(path) == config
    revealed = ChronosConfig.model_validate(WITH_EVERY_SECRET).to_json(reveal_secrets=True)
    assert '"mongoUris"' in revealed and '"secretKey": "very-secret-key"' in revealed
    assert all(secret in revealed or secret == "p@ss/w0rd" for secret in SECRETS)
    assert "\n" not in minimal.to_json(indent=None)


def test_masked_output_still_loads_but_holds_placeholders() -> None:
    config = ChronosConfig.model_validate(WITH_EVERY_SECRET)
    masked = ChronosConfig.load(config.to_json())
    assert masked != config
    assert masked.mongo_uris[0].startswith("mongodb://app:***@")
    assert masked.spaces_conns[0].secret_key.get_secret_value() == "**********"


@pytest.mark.parametrize(
    ("uri", "redacted"),
    [
        ("mongodb://h", "mongodb://h"),
        ("mongodb://user@h/db", "mongodb://user@h/db"),
        ("mongodb://u:pw@h1,h2:27018/db?w=1", "mongodb://u:***@h1,h2:27018/db?w=1"),
        (
            "mongodb+srv://u:pw@c.example.net/?tls=true",
            "mongodb+srv://u:***@c.example.net/?tls=true",
        ),
        ("mongodb://a%40b:p%3Aw@h", "mongodb://a%40b:***@h"),
        # unescaped '/' or '@' in a password (refused by the config, still masked)
        ("mongodb://u:p/ss@h", "mongodb://u:***@h"),
        ("mongodb://u:p@ss@h", "mongodb://u:***@h"),
        (
            "mongodb://h/?TLSCertificateKeyFilePassword=k&w=1",
            "mongodb://h/?TLSCertificateKeyFilePassword=***&w=1",
        ),
        (
            "mongodb://h/?authMechanismProperties=SERVICE_NAME:x,AWS_SESSION_TOKEN:t%2B1",
            "mongodb://h/?authMechanismProperties=SERVICE_NAME:x,AWS_SESSION_TOKEN:***",
        ),
        ("not a uri", "not a uri"),
    ],
)
def test_redact_uri(uri: str, redacted: str) -> None:
    assert redact_uri(uri) == redacted
    assert redact_uri(redacted) == redacted


# -- MongoDB URIs: what pymongo would refuse is refused by the config --------------------

LEAK = "Leak-Me-42"


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        (f"mongodb://adm:in:{LEAK}@host", "escaped"),  # unescaped ':' in the password
        (f"mongodb://admin:{LEAK}%zz@host", "escaped"),  # '%' that is no escape
        (f"mongodb://u:{LEAK}@h/?serverSelectionTimeoutMS=abc", "integer or float"),
        (f"mongodb://u:{LEAK}@h/?connectTimeoutMS=-1", "connecttimeoutms"),
        (f"mongodb://u:{LEAK}@h/?bogusOption=1", "Unknown option"),
        (f"mongodb://u:{LEAK}@h/?w=1&w=2", "Duplicate URI option"),
        ("mongodb://h/?ssl=true&tls=false", "conflicting"),
        ("mongodb://h/?readPreference=bogus", "read preference"),
        ("mongodb://a,b/?directConnection=true", "multiple hosts"),
        ("mongodb://h/?srvMaxHosts=2", "only allowed with 'mongodb+srv://'"),
        ("mongodb://h/db name", "Bad database name"),
        (f"mongodb://u:{LEAK}@h/?authSource=", "authSource"),
        ("mongodb://h/?w=1;j=true&x=1", "mix"),
        ("mongodb+srv://c.example.invalid/?srvMaxHosts=x", "srvmaxhosts"),
        ("mongodb+srv://c.example.invalid/?directConnection=true", "directConnection"),
        ("mongodb+srv://c.example.invalid/?loadBalanced=true&srvMaxHosts=2", "srvMaxHosts"),
        ("mongodb+srv://c.example.invalid/?srvMaxHosts=2;w=1&tls=true", "mix"),
        ("mongodb+srv://c.example.invalid/?bogus=1", "Unknown option"),
        # pymongo's message would name the password: withheld
        ("mongodb://u:Unknown@h/?bogus=1", "details withheld"),
    ],
)
def test_uris_pymongo_refuses_are_refused_naming_the_key(uri: str, needle: str) -> None:
    for where, patch in (
        ("mongoUris.0", {"mongoUris": [uri], "spacesConns": ORIGINAL_STYLE["spacesConns"]}),
        ("counters.mongoUri", {"counters": {"mongoUri": uri, "dbName": "c"}}),
    ):
        with pytest.raises(ConfigError) as info:
            ChronosConfig.model_validate({**ORIGINAL_STYLE, **patch})
        message = str(info.value)
        assert where in message and needle in message
        assert LEAK not in message and "Leak-Me" not in message


def test_srv_uris_are_checked_without_any_dns_lookup() -> None:
    # ".invalid" never resolves (RFC 2606): a lookup would refuse these URIs.
    for uri in (
        "mongodb+srv://u:pw@cluster0.example.invalid/app?retryWrites=true&srvMaxHosts=2",
        "mongodb+srv://cluster0.example.invalid/?srvServiceName=custom;replicaSet=rs0",
        "mongodb+srv://c.example.invalid/?SRVMAXHOSTS=3&srvAllowedHostsSuffix=.invalid",
    ):
        config = ChronosConfig.model_validate({"mongoUris": [uri], "payloadStorage": "mongo"})
        assert config.mongo_uris == [uri]


def test_pool_bounds_are_checked_by_the_config() -> None:
    with pytest.raises(ConfigError, match=r"mongoClient: .*min_pool_size"):
        ChronosConfig.model_validate(
            {**ORIGINAL_STYLE, "mongoClient": {"minPoolSize": 10, "maxPoolSize": 5}}
        )


# -- writing a config file with its credentials (the CLI's --write-config) ---------------


def test_write_config_writes_the_real_config_readable_by_the_owner_only(tmp_path: Path) -> None:
    config = ChronosConfig.model_validate(WITH_EVERY_SECRET)
    path = tmp_path / "chronos.json"
    path.write_text("old")
    path.chmod(0o644)
    assert write_config(config, path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ChronosConfig.from_file(path) == config
    assert [p.name for p in tmp_path.iterdir()] == ["chronos.json"]  # no temporary left
    # a symlink at the path is replaced, not followed
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("untouched")
    link = tmp_path / "link.json"
    link.symlink_to(elsewhere)
    write_config(config, link)
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600
    assert elsewhere.read_text() == "untouched"
    with pytest.raises(FileNotFoundError):
        write_config(config, tmp_path / "missing-dir" / "chronos.json")


def test_model_copy_validates_its_update() -> None:
    config = ChronosConfig.load(ORIGINAL_STYLE)
    # A dict where a section belongs becomes the section (pydantic's copy kept the dict).
    copy = config.model_copy(update={"collection_maps": {"users": {"indexed_props": ["email"]}}})
    assert isinstance(copy.collection_maps["users"], CollectionMap)
    assert copy.collection_map("users").indexed_props == ["email"]
    assert copy.mongo_uris == config.mongo_uris  # secrets carried over, not masked
    assert copy.spaces_conns[0].secret_key.get_secret_value() == "very-secret-key"
    assert copy.model_fields_set == config.model_fields_set | {"collection_maps"}
    assert config.model_copy(update={"collectionMaps": {}}).collection_maps == {}  # alias
    # Problems raise ConfigError at once, naming the key.
    with pytest.raises(ConfigError, match=r"collection_maps\.users\.bogus"):
        config.model_copy(update={"collection_maps": {"users": {"bogus": 1}}})
    with pytest.raises(ConfigError, match="unknown configuration key 'no_such_key'"):
        config.model_copy(update={"no_such_key": 1})
    with pytest.raises(ConfigError, match="spaces_conns has 1 entries but mongo_uris has 2"):
        config.model_copy(update={"mongo_uris": ["mongodb://a", "mongodb://b"]})
    # Sections validate too; no update, or deep=True, still copy.
    with pytest.raises(ConfigError, match="max_list_limit"):
        config.limits.model_copy(update={"max_list_limit": "many"})
    assert config.model_copy() == config
    deep = config.model_copy(update={"hard_delete_enabled": True}, deep=True)
    assert deep.hard_delete_enabled and deep.routing == config.routing
