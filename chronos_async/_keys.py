"""Names and keys: validation of ids and names, object-key layout (pure, no I/O).

Object keys: ``<tenant>/<db>/<collection>/<itemId>/v<ov>/<token>.json`` where ``tenant``
is ``_`` for records without a tenant (tenant names must start with a letter or digit,
so ``_`` can never be a tenant) and ``token`` is random per write attempt, which keeps
payloads immutable even when two writers race for the same ``ov``.
"""

from __future__ import annotations

import re
import secrets

from bson import ObjectId

from chronos_async._errors import ValidationError

__all__ = [
    "NO_TENANT",
    "collection_prefix",
    "copy_key",
    "head_id",
    "is_copy_key",
    "names_are_valid",
    "item_prefix",
    "new_item_id",
    "new_write_token",
    "parse_payload_key",
    "payload_key",
    "validate_collection",
    "validate_db",
    "validate_id",
    "validate_tenant",
    "version_id",
]

NO_TENANT = "_"

_ID = re.compile(r"[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]{0,127}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")
_COLLECTION = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
_DB = re.compile(r"[A-Za-z0-9_\-]{1,63}")
_PAYLOAD_KEY = re.compile(
    r"(?P<tenant>[^/]+)/(?P<db>[^/]+)/(?P<collection>[^/]+)/(?P<id>[^/]+)"
    r"/v(?P<ov>\d+)/(?P<token>[0-9a-f]+)\.json"
)


def _check(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        shown = (
            repr(value) if isinstance(value, str) and len(value) <= 200 else type(value).__name__
        )
        raise ValidationError(f"invalid {what} {shown}: {rule}")
    return value


def validate_id(value: object) -> str:
    """A record id: 1-128 of ``A-Z a-z 0-9 _ . : -``, not starting with ``.``, no ``..``.

    A leading dot is refused so that no id can be a path segment like ``.`` that a
    file system or URL normaliser would drop.
    """
    return _check(
        _ID, value, "id", "use 1-128 characters of A-Z a-z 0-9 _ . : - (no leading '.', no '..')"
    )


def validate_tenant(value: object) -> str:
    """A tenant name: like an id, and it starts with a letter or digit."""
    return _check(
        _TENANT,
        value,
        "tenant",
        "use 1-128 characters of A-Z a-z 0-9 _ . : -, starting alphanumeric",
    )


def validate_collection(value: object) -> str:
    """A collection name: a letter, then up to 63 of ``A-Z a-z 0-9 _ -``."""
    return _check(
        _COLLECTION, value, "collection name", "start with a letter; then A-Z a-z 0-9 _ - (max 64)"
    )


def validate_db(value: object) -> str:
    """A database name: 1-63 of ``A-Z a-z 0-9 _ -`` (valid for MongoDB on every OS)."""
    return _check(_DB, value, "database name", "use 1-63 characters of A-Z a-z 0-9 _ -")


def names_are_valid(db: str, collection: str) -> bool:
    """Whether ``db`` and ``collection`` are names this library writes (for names read
    back from object keys, which anyone may have written)."""
    try:
        validate_db(db)
        validate_collection(collection)
    except ValidationError:
        return False
    return True


def new_item_id() -> str:
    """A fresh record id (an ObjectId in hex: sortable by creation time, 24 characters)."""
    return str(ObjectId())


def new_write_token() -> str:
    """A random token that makes each write attempt's object key unique."""
    return secrets.token_hex(8)


def head_id(tenant: str | None, item_id: str) -> str:
    """The ``_id`` of a record's head document (tenant-qualified, so tenants never meet)."""
    return f"{tenant or NO_TENANT}/{item_id}"


def version_id(tenant: str | None, item_id: str, ov: int) -> str:
    """The ``_id`` of a version document: unique per (tenant, record, ov) by construction."""
    return f"{tenant or NO_TENANT}/{item_id}/{ov}"


def collection_prefix(tenant: str | None, db: str, collection: str) -> str:
    """The key prefix of every payload of one collection of one tenant."""
    return f"{tenant or NO_TENANT}/{db}/{collection}/"


def item_prefix(tenant: str | None, db: str, collection: str, item_id: str) -> str:
    """The key prefix of every payload of one record."""
    return f"{collection_prefix(tenant, db, collection)}{item_id}/"


def payload_key(
    tenant: str | None, db: str, collection: str, item_id: str, ov: int, token: str
) -> str:
    """The object key of one version's payload."""
    return f"{item_prefix(tenant, db, collection, item_id)}v{ov}/{token}.json"


def copy_key(
    tenant: str | None, db: str, collection: str, item_id: str, ov: int, sha256: str
) -> str:
    """The key of the stand-alone copy of a packed payload (made for a presigned URL).

    It is a payload key whose token is the first 32 hex digits of the payload's sha256,
    so it is the same for every copy of the same version and is found by its version.
    """
    return payload_key(tenant, db, collection, item_id, ov, sha256[:32])


def is_copy_key(key: str, version: dict[str, object]) -> bool:
    """Whether ``key`` is the stand-alone copy of ``version``'s packed payload."""
    parsed = parse_payload_key(key)
    return (
        parsed is not None
        and version.get("offset") is not None
        and str(version.get("sha256", "")).startswith(parsed[5])
        and len(parsed[5]) == 32
    )


def parse_payload_key(key: str) -> tuple[str | None, str, str, str, int, str] | None:
    """Split a payload key into (tenant, db, collection, id, ov, token), or ``None``."""
    match = _PAYLOAD_KEY.fullmatch(key)
    if match is None:
        return None
    tenant = None if match["tenant"] == NO_TENANT else match["tenant"]
    return tenant, match["db"], match["collection"], match["id"], int(match["ov"]), match["token"]
