"""The configuration: one frozen pydantic model, loaded from a dict, JSON text or a file.

Field names are snake_case; the camelCase names of the original chronos-db JSON are
accepted as aliases, so an existing config file loads unchanged. Unknown keys are
rejected. The library reads no environment variables.

Secrets never show unless asked for: ``repr``, ``str``, ``model_dump`` and
``model_dump_json`` mask the S3 keys (``**********``) and every credential in a MongoDB
URI (``***``). :meth:`ChronosConfig.to_dict` and :meth:`ChronosConfig.to_json` with
``reveal_secrets=True`` are the one way to get them back, e.g. to write a config file.

Example::

    config = ChronosConfig.model_validate({
        "mongoUris": ["mongodb://127.0.0.1:27017"],
        "localStorage": {"enabled": True, "basePath": "./chronos-data"},
        "collectionMaps": {"users": {"indexedProps": ["email", "status"]}},
    })
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import pydantic
from pydantic import (
    AfterValidator,
    Field,
    FieldSerializationInfo,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from chronos_async._errors import ConfigError
from chronos_async._redact import redact_uri, secrets_revealed
from chronos_async._sections import (
    CollectionMap,
    CounterRules,
    DeadlinesConfig,
    DevShadowConfig,
    FallbackConfig,
    IdempotencyConfig,
    LeaseConfig,
    LimitsConfig,
    LocalStorageConfig,
    LoggingConfig,
    MongoClientOptions,
    MongoStorageConfig,
    RestoreConfig,
    RetentionConfig,
    RollupConfig,
    RoutingConfig,
    Section,
    TransactionsConfig,
    WriteOptimizationConfig,
    describe_config_errors,
)
from chronos_async.meta._uris import validate_mongo_uri

__all__ = ["ChronosConfig", "CountersConfig", "SpacesConnection"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class SpacesConnection(Section):
    """One S3-compatible endpoint with its three buckets (payload JSON, content, backups)."""

    endpoint: str
    region: str = "us-east-1"
    access_key: SecretStr
    secret_key: SecretStr
    json_bucket: str
    content_bucket: str
    backups_bucket: str
    force_path_style: bool = True
    #: An optional prefix prepended to every object key of this connection.
    key_prefix: str = ""
    #: The S3 client: ``"obstore"`` (Rust's object_store; about a fifth of aioboto3's
    #: CPU per request) or ``"aioboto3"``. Both store the same objects and metadata, so
    #: the choice can change at any time; see ``docs/`` or the README for the numbers.
    client: Literal["aioboto3", "obstore"] = "obstore"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("endpoint must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("json_bucket", "content_bucket", "backups_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError(f"invalid bucket name {value!r}")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if (value and not re.match(r"^[A-Za-z0-9_.\-/]+$", value)) or ".." in value:
            raise ValueError("key_prefix may hold only letters, digits, '_', '.', '-', '/'")
        return value.strip("/")

    @field_serializer("access_key", "secret_key")
    def _dump_key(self, value: SecretStr, info: FieldSerializationInfo) -> Any:
        if secrets_revealed(info):
            return value.get_secret_value()
        return str(value) if info.mode_is_json() else value  # "**********" / SecretStr


class CountersConfig(Section):
    """Where the collection totals (``cnt_total``) live: ``db_name`` on ``mongo_uri``.

    Without ``mongo_uri`` they live next to the records, on each record's backend, in
    ``db_name`` (the record's own database when that is not set either). The section
    also turns counting on (as do ``counter_rules``).
    """

    mongo_uri: str | None = None
    db_name: str | None = Field(default=None, min_length=1, max_length=63)

    @field_validator("mongo_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        return None if value is None else validate_mongo_uri(value)

    @field_serializer("mongo_uri")
    def _dump_uri(self, value: str | None, info: FieldSerializationInfo) -> str | None:
        if value is None:
            return None
        return value if secrets_revealed(info) else redact_uri(value)

    def __repr_args__(self) -> Any:
        yield "mongo_uri", None if self.mongo_uri is None else redact_uri(self.mongo_uri)
        yield "db_name", self.db_name


PayloadStorage = Literal["auto", "s3", "local", "mongo"]


class ChronosConfig(Section):
    """The whole configuration of a :class:`~chronos_async.Chronos` instance.

    Backends: ``mongo_uris[i]`` pairs with ``spaces_conns[i]`` (when S3 is used). Payloads
    go to S3 (``spaces_conns``), a local folder (``local_storage``) or MongoDB itself
    (``payload_storage="mongo"``); ``payload_storage="auto"`` picks the local folder when
    it is enabled, else S3 when connections are given.
    """

    mongo_uris: list[Annotated[str, AfterValidator(validate_mongo_uri)]] = Field(
        min_length=1, max_length=10
    )
    spaces_conns: list[SpacesConnection] = Field(default_factory=list, max_length=10)
    local_storage: LocalStorageConfig | None = None
    mongo_storage: MongoStorageConfig = Field(default_factory=MongoStorageConfig)
    payload_storage: PayloadStorage = "auto"
    counters: CountersConfig | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    rollup: RollupConfig = Field(default_factory=RollupConfig)
    collection_maps: dict[str, CollectionMap] = Field(default_factory=dict)
    counter_rules: CounterRules = Field(default_factory=CounterRules)
    dev_shadow: DevShadowConfig = Field(default_factory=DevShadowConfig)
    hard_delete_enabled: bool = False
    fallback: FallbackConfig | None = None
    idempotency: IdempotencyConfig = Field(default_factory=IdempotencyConfig)
    write_optimization: WriteOptimizationConfig | None = None
    transactions: TransactionsConfig = Field(default_factory=TransactionsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    leases: LeaseConfig = Field(default_factory=LeaseConfig)
    deadlines: DeadlinesConfig = Field(default_factory=DeadlinesConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    mongo_client: MongoClientOptions = Field(default_factory=MongoClientOptions)
    restore: RestoreConfig = Field(default_factory=RestoreConfig)

    @field_serializer("mongo_uris")
    def _dump_uris(self, uris: list[str], info: FieldSerializationInfo) -> list[str]:
        return list(uris) if secrets_revealed(info) else [redact_uri(u) for u in uris]

    @model_validator(mode="after")
    def _cross_field(self) -> ChronosConfig:
        mode = self.resolved_payload_storage
        if mode == "s3" and not self.spaces_conns:
            raise ValueError("payload_storage 's3' needs at least one entry in spaces_conns")
        if self.spaces_conns and len(self.spaces_conns) != len(self.mongo_uris):
            raise ValueError(
                f"spaces_conns has {len(self.spaces_conns)} entries but mongo_uris has "
                f"{len(self.mongo_uris)}: they pair up by position"
            )
        ids = self.routing.backend_ids
        if ids is not None and len(ids) != len(self.mongo_uris):
            raise ValueError(
                f"routing.backend_ids has {len(ids)} entries but mongo_uris has "
                f"{len(self.mongo_uris)}: they pair up by position"
            )
        if ids is not None and len(set(ids)) != len(ids):
            raise ValueError("routing.backend_ids must be distinct")
        paths = self.local_storage.base_paths if self.local_storage is not None else None
        if paths is not None and len(paths) != len(self.mongo_uris):
            raise ValueError(
                f"local_storage.base_paths has {len(paths)} entries but "
                f"mongo_uris has {len(self.mongo_uris)}: they pair up by position"
            )
        if mode == "local" and (self.local_storage is None or not self.local_storage.enabled):
            raise ValueError("payload_storage 'local' needs local_storage.enabled = true")
        return self

    @property
    def resolved_payload_storage(self) -> Literal["s3", "local", "mongo"]:
        """Where payloads go, after resolving ``"auto"``."""
        if self.payload_storage != "auto":
            return self.payload_storage
        if self.local_storage is not None and self.local_storage.enabled:
            return "local"
        if self.spaces_conns:
            return "s3"
        raise ValueError(
            "no payload store: give spaces_conns (S3), enable local_storage, "
            "or set payload_storage to 'mongo'"
        )

    def collection_map(self, name: str) -> CollectionMap:
        """The collection map of ``name`` (an empty map when none is configured)."""
        found = self.collection_maps.get(name)
        return found if found is not None else _EMPTY_MAP

    # -- output ----------------------------------------------------------------------

    def to_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """The configuration as JSON-ready data with camelCase keys, as :meth:`load` reads it.

        Credentials are masked (S3 keys as ``**********``, URI passwords as ``***``)
        unless ``reveal_secrets=True``: then the result holds the real ones and loads
        back to an equal config. Keep such output out of logs and version control.
        """
        context = {"reveal_secrets": reveal_secrets}
        return self.model_dump(mode="json", by_alias=True, context=context)

    def to_json(self, *, reveal_secrets: bool = False, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text (what :meth:`from_file` and :meth:`load` read).

        Example: a config file for another process, created readable by its owner only
        (``python -m chronos_async local-stack --write-config PATH`` does the same)::

            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(config.to_json(reveal_secrets=True))
        """
        context = {"reveal_secrets": reveal_secrets}
        return self.model_dump_json(by_alias=True, indent=indent, context=context)

    # -- loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, source: dict[str, Any] | str | bytes) -> ChronosConfig:
        """Validate a dict or JSON text, raising :class:`ConfigError` on any problem.

        A ``str`` here is always JSON text; read a file with :meth:`from_file` (or give
        its path to :class:`~chronos_async.Chronos`, which reads it).
        """
        if isinstance(source, (str, bytes)):
            return cls.model_validate_json(source)
        return cls.model_validate(source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ChronosConfig:
        """Load a JSON config file (the original chronos-db format is accepted)."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a JSON object")
        return cls.load(data)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> ChronosConfig:
        """Validate a dict; any problem raises :class:`ConfigError` naming the key."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise ConfigError(describe_config_errors(exc)) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> ChronosConfig:
        """Validate JSON text; any problem raises :class:`ConfigError` naming the key."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except pydantic.ValidationError as exc:
            raise ConfigError(describe_config_errors(exc)) from None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "mongo_uris":
                yield name, [redact_uri(u) for u in self.mongo_uris]
            else:
                yield name, value


_EMPTY_MAP = CollectionMap()
