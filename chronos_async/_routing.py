"""Which backend serves a request: routing keys, rendezvous and jump hashing (pure).

A backend is one ``(mongo_uris[i], spaces_conns[i])`` pair. A request's routing key is
built from its context by :func:`routing_key`; :func:`choose_backend` (rendezvous, the
default) or :func:`jump_hash` maps the key to a backend index. Both are stable: growing
from ``n`` to ``n + 1`` backends moves about ``1 / (n + 1)`` of the keys, all of them to
the new backend. There is no migration: data of moved keys stays where it was written.

Rendezvous scores are the original's (first 64 bits of ``sha256("<key>|<backend id>")``),
so with the same backend ids a key lands where chronos-db put it. Backend ids differ
on purpose: the original hashed the full URI, credentials and options included, so a
password rotation re-routed every key; :func:`backend_id` keeps only hosts, database and
bucket.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from chronos_async._errors import ConfigError, ValidationError

__all__ = [
    "RouteInfo",
    "backend_id",
    "choose_backend",
    "explain_route",
    "jump_hash",
    "routing_key",
    "select_backend",
]

_MASK64 = (1 << 64) - 1
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-%]+)(?::(\d{1,5}))?")


def routing_key(
    choose_key: str,
    *,
    tenant: str | None,
    db: str,
    collection: str,
    item_id: str | None,
) -> str:
    """The routing key of a request, by the original's first-match fallback chain.

    ``choose_key`` is ``|``-separated tokens tried in order; the first one that yields a
    value is the **whole** key (tokens are alternatives, not parts):

    - ``tenantId``: the tenant, if set;
    - ``dbName``: the database name, if set;
    - ``collection``: the collection name, if set;
    - ``objectId``: the record id, if given;
    - ``collection:objectId``: always yields ``"<collection>:<id or ''>"``.

    If no token yields a value the key is ``tenant or db or "<collection>:<id or ''>"``.
    With the default ``tenantId|dbName|collection:objectId`` every collection of a tenant
    (or, without a tenant, of a database) lives on one backend, so collection-wide reads
    need no fan-out. A chain that reaches ``objectId`` spreads one collection's records
    over backends; callers must then pass the same ``item_id`` on every read and write of
    a record (``None`` where there is no record, as in a listing).

    >>> routing_key("tenantId|dbName", tenant=None, db="myapp", collection="users", item_id=None)
    'myapp'
    """
    for raw in choose_key.split("|"):
        token = raw.strip()
        if token == "tenantId":
            value = tenant
        elif token == "dbName":
            value = db
        elif token == "collection":
            value = collection
        elif token == "objectId":
            value = item_id
        elif token == "collection:objectId":
            value = f"{collection}:{item_id or ''}"
        else:
            # The config validates the chain; a silent skip (as in the original) would
            # route every key by a different rule than the one the user wrote.
            raise ValidationError(f"unknown routing token {token!r} in {choose_key!r}")
        if value:
            return value
    return tenant or db or f"{collection}:{item_id or ''}"


def _score(key: str, backend: str) -> int:
    return int(hashlib.sha256(f"{key}|{backend}".encode()).hexdigest()[:16], 16)


def choose_backend(key: str, backend_ids: Sequence[str]) -> int:
    """The index of the backend for ``key`` by rendezvous (highest random weight) hashing.

    Each backend scores ``int(sha256(f"{key}|{backend_id}").hexdigest()[:16], 16)``; the
    highest score wins and a tie goes to the lower index, as in the original.
    """
    if not backend_ids:
        raise ValidationError("no backends to choose from")
    best, best_score = 0, -1
    for index, backend in enumerate(backend_ids):
        score = _score(key, backend)
        if score > best_score:
            best, best_score = index, score
    return best


def _jump(key: int, n: int) -> int:
    """Lamping and Veach's jump consistent hash of a 64-bit key into ``range(n)``."""
    bucket, jump = -1, 0
    while jump < n:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & _MASK64
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def jump_hash(key: str, n: int) -> int:
    """The bucket in ``range(n)`` of ``key`` by jump consistent hashing.

    The 64-bit input is the first 8 bytes (big-endian) of ``sha256(key)``. When ``n``
    grows by one, a key either stays or moves to the new bucket ``n``. Unlike rendezvous
    hashing it ignores backend ids, so backends may only be appended, never removed or
    reordered.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError(f"jump_hash needs at least one bucket, got {n!r}")
    return _jump(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"), n)


def select_backend(key: str, backend_ids: Sequence[str], hash_algo: str) -> int:
    """The backend index for ``key`` with the configured ``routing.hash_algo``."""
    if hash_algo == "rendezvous":
        return choose_backend(key, backend_ids)
    if hash_algo == "jump":
        return jump_hash(key, len(backend_ids))
    raise ValidationError(f"unknown hash algorithm {hash_algo!r}; use 'rendezvous' or 'jump'")


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """Which backend serves a collection, and why (see :meth:`Chronos.route
    <chronos_async.Chronos.route>`).

    ``key`` is the routing key the ``routing.choose_key`` chain produced; ``algo`` the
    hash (``rendezvous`` or ``jump``). With rendezvous hashing ``scores`` holds every
    backend's score (the highest wins, a tie goes to the lower index) and ``score`` the
    winner's; with jump hashing both are empty. ``backend_id`` carries hosts, database
    and bucket only, never credentials.
    """

    index: int
    backend_id: str
    key: str
    algo: str
    score: int | None = None
    scores: tuple[int, ...] = ()


def explain_route(key: str, backend_ids: Sequence[str], hash_algo: str) -> RouteInfo:
    """:func:`select_backend` with its reasons: the winning backend, the key, the scores."""
    index = select_backend(key, backend_ids, hash_algo)
    if hash_algo != "rendezvous":
        return RouteInfo(index, backend_ids[index], key, hash_algo)
    scores = tuple(_score(key, backend) for backend in backend_ids)
    return RouteInfo(index, backend_ids[index], key, hash_algo, scores[index], scores)


def backend_id(index: int, mongo_uri: str, json_bucket: str | None) -> str:
    """A stable id for backend ``index``: hosts, database and bucket, never credentials.

    User info and the query string are dropped; hosts are lower-cased, given the default
    port and sorted, so password rotation, URI options and seed-list order never change
    routing. ``mongodb://u:p@B:27017,a/app?tls=true`` with bucket ``json`` gives
    ``mongodb://a:27017,b:27017/app|json``. Adding or removing a seed host does change the
    id. Raises :class:`~chronos_async.ConfigError` (naming ``index``, not the URI) when
    the URI cannot be split safely.
    """
    where = f"mongo_uris[{index}]"
    scheme, sep, rest = mongo_uri.partition("://")
    if not sep or scheme.lower() not in ("mongodb", "mongodb+srv"):
        raise ConfigError(f"{where} is not a mongodb:// or mongodb+srv:// connection string")
    # pymongo's own split: the host part ends at the first "/" and user info at its last
    # "@". An "@" after the host part means a password with an unescaped "/" or "?", and
    # the "hosts" we would keep could then hold part of it: refuse rather than guess.
    host_part, _, path = rest.partition("/")
    if "@" in host_part:
        host_part = host_part.rpartition("@")[2]
    if "?" in host_part:  # options without a "/" before them
        host_part, _, options = host_part.partition("?")
        path = "?" + options
    if "@" in path:
        raise ConfigError(
            f"{where}: percent-encode '@' (as %40), '/' and '?' in user names, passwords "
            "and options"
        )
    hosts = []
    for host in host_part.split(","):
        match = _HOST.fullmatch(host)
        if match is None:
            raise ConfigError(f"{where} has an invalid host in its seed list")
        name, port = match.group(1), match.group(2)
        if "%" in name:  # a percent-encoded Unix socket path: case matters, no port
            hosts.append(name)
        elif scheme.lower() == "mongodb+srv":
            hosts.append(name.lower())
        else:
            hosts.append(f"{name.lower()}:{port or 27017}")
    database = path.partition("?")[0]
    return f"{scheme.lower()}://{','.join(sorted(hosts))}/{database}|{json_bucket or ''}"
