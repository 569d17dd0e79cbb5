"""Checking MongoDB connection strings with pymongo's own parser, without any I/O."""

from __future__ import annotations

import re
import warnings
from typing import Any

from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri, split_options

from chronos_async._redact import mask_uri_secrets

__all__ = ["validate_mongo_uri"]

_MONGO_URI = re.compile(
    r"^(mongodb|mongodb\+srv)://(?:(?P<auth>[^@/]*)@)?(?P<hosts>[^/?]+)(?P<rest>.*)$"
)
#: URI options only ``mongodb+srv://`` takes (pymongo refuses them in ``mongodb://``).
_SRV_ONLY_OPTIONS = frozenset({"srvservicename", "srvmaxhosts", "srvallowedhostssuffix"})
#: URI options naming files pymongo opens to check them: the client checks them at start.
_FILE_OPTIONS = frozenset({"tlscafile", "tlscertificatekeyfile", "tlscrlfile"})


def validate_mongo_uri(uri: str) -> str:
    """Check a MongoDB connection string (seed lists and ``+srv`` included) as pymongo will.

    Our shape checks come first, then pymongo's own parser (``validate=True,
    warn=False``): what pymongo would refuse at start-up, or only warn about (an option
    value it cannot read and ignores, an option given twice), is refused here. No DNS
    lookup and no connection happen (a ``mongodb+srv://`` URI is parsed as
    ``mongodb://`` after the checks only ``+srv`` needs). Messages never show a
    credential.
    """
    match = _MONGO_URI.match(uri)
    if match is None:
        raise ValueError("must be a mongodb:// or mongodb+srv:// connection string")
    if "@" in match["rest"].split("?", 1)[0]:
        # An unescaped "/" or "@" in a password would otherwise be read as a host or path.
        raise ValueError("has '@' after the host list: percent-encode '@' and '/' in credentials")
    hosts = match["hosts"].split(",")
    for host in hosts:
        if not host or not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-%]+)(:\d{1,5})?$", host):
            raise ValueError("has an invalid host in its seed list")
        port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else None
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError("has a port out of range")
    srv = match.group(1) == "mongodb+srv"
    if srv and (len(hosts) != 1 or ":" in hosts[0]):
        raise ValueError("mongodb+srv:// takes exactly one host name and no port")
    try:
        _pymongo_parse(uri, srv=srv)
    except (PyMongoError, ValueError, TypeError, UserWarning) as exc:
        raise ValueError(f"is refused by pymongo: {mask_uri_secrets(str(exc), uri)}") from None
    return uri


def _pymongo_parse(uri: str, *, srv: bool) -> None:
    """Run pymongo's URI parser without I/O; raises what pymongo raises.

    pymongo would look up the SRV and TXT records of a ``+srv`` host and open the TLS
    files an option names. So the whole query is parsed without validating values (its
    form, separators and conflicting TLS options are still checked), then the URI as
    ``mongodb://`` without the file options (whose values are checked at start-up), and
    the options only ``+srv`` takes on their own.
    """
    base, _, query = uri.partition("?")
    names = [(pair, pair.partition("=")[0].lower()) for pair in re.split("[&;]", query) if pair]
    srv_only = "&".join(p for p, name in names if srv and name in _SRV_ONLY_OPTIONS)
    kept = "&".join(
        p
        for p, name in names
        if name not in _FILE_OPTIONS and not (srv and name in _SRV_ONLY_OPTIONS)
    )
    plain = "mongodb://" + base.removeprefix("mongodb+srv://") if srv else base
    options: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the client warns again
        warnings.simplefilter("error", UserWarning)  # a duplicate option: which one wins?
        if query:
            split_options(query, validate=False, warn=False)
        if srv_only:
            options.update(split_options(srv_only, validate=True, warn=False))
        parsed = parse_uri(plain + (f"?{kept}" if kept else ""), validate=True, warn=False)
        options.update(parsed["options"])
    lowered = {key.lower(): value for key, value in options.items()}
    if srv and lowered.get("directconnection"):
        raise ValueError("mongodb+srv:// URIs cannot take directConnection=true")
    if srv and lowered.get("loadbalanced") and lowered.get("srvmaxhosts"):
        raise ValueError("loadBalanced cannot be combined with srvMaxHosts")
