"""ChronosConfig: the original's JSON loads, bad input raises ConfigError, secrets stay hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chronos_async import ChronosConfig, ConfigError

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
    # _procs.py only scrubs the environment it hands to the embedded servers' processes.
    root = Path(__file__).resolve().parents[1] / "chronos_async"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if ("os.environ" in p.read_text() or "getenv" in p.read_text()) and p.name != "_procs.py"
    ]
    assert offenders == []
