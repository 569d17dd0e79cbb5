"""Keeping credentials out of output: connection strings, error messages, config dumps."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from pydantic import FieldSerializationInfo

__all__ = ["mask_uri_secrets", "redact_uri", "secrets_revealed", "uri_secrets"]

#: Credentials a connection string can hold besides its password.
_SECRET_OPTIONS = (
    re.compile(r"(?i)([?&;]tlsCertificateKeyFilePassword=)([^&;#]*)"),
    re.compile(r"(?i)(AWS_SESSION_TOKEN(?::|%3A))([^,&;#]*)"),
)


def uri_secrets(uri: str) -> list[str]:
    """The credentials written in ``uri`` (password, key-file password, session token),
    as written and percent-decoded."""
    rest = uri.partition("://")[2]
    # pymongo's reading (up to the last "@" before the options), and the broadest one.
    userinfos = {rest.partition("?")[0].rpartition("@")[0], rest.rpartition("@")[0]}
    found = [userinfo.partition(":")[2] for userinfo in userinfos if ":" in userinfo]
    found += [m.group(2) for pattern in _SECRET_OPTIONS for m in pattern.finditer(uri)]
    found = [secret for secret in found if secret]
    return found + [unquote_plus(secret) for secret in found]


def mask_uri_secrets(text: str, uri: str) -> str:
    """``text`` (an error message about ``uri``), withheld when it shows a credential."""
    if any(secret in text for secret in uri_secrets(uri)):
        return "(details withheld: they would show a credential)"
    return text


def redact_uri(uri: str) -> str:
    """The URI with its credentials replaced by ``***`` (safe to log and to print).

    Masks the password, ``tlsCertificateKeyFilePassword`` and an ``AWS_SESSION_TOKEN``
    in ``authMechanismProperties``; the user name stays. The result is still a valid
    URI, so a redacted config loads (and fails to authenticate) rather than breaking.
    """
    scheme, sep, rest = uri.partition("://")
    head, qmark, query = rest.partition("?")
    # pymongo reads the user info up to the last "@" of the part before the options.
    userinfo, at, hosts = head.rpartition("@")
    if sep and at and ":" in userinfo:
        head = f"{userinfo.partition(':')[0]}:***@{hosts}"
    redacted = f"{scheme}{sep}{head}{qmark}{query}"
    for pattern in _SECRET_OPTIONS:
        redacted = pattern.sub(r"\1***", redacted)
    return redacted


def secrets_revealed(info: FieldSerializationInfo) -> bool:
    """True when a dump was asked for the real secrets (context ``reveal_secrets=True``).

    Used by the field serializers of secret fields; ``ChronosConfig.to_dict`` and
    ``to_json`` are the documented way to ask.
    """
    context = info.context
    return isinstance(context, dict) and context.get("reveal_secrets") is True
