"""Hostile configuration: bad MongoDB URIs fail as ``ConfigError`` and credentials never
leak.

- URIs pymongo refuses (unescaped ``:`` or ``%`` in a password, option values it cannot
  read, unknown or repeated options) are refused by the config, before anything starts,
  with a message that names the key and never the password.
- What only the client checks (a mechanism without the credentials it needs, a TLS file
  that cannot be read, a config built without validation) is a ``ConfigError`` at
  ``async with Chronos(...)``, again without the password.
- Hypothesis builds URIs with random credentials, hosts and options: each is refused with
  a clean ``ConfigError`` or accepted, and then no dump shows the password, the revealed
  dump round-trips, and the client either builds or fails with a clean ``ConfigError``.
- ``python -m chronos_async local-stack --write-config PATH`` prints the config masked and
  writes the real one (mode 0600), which a second process can use.
"""

from __future__ import annotations

import asyncio
import signal
import stat
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pydantic
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chronos_async import Chronos, ChronosConfig, ConfigError
from chronos_async.meta._connect import _new_client, client_options

LEAK = "Leak-Me-42"
REPO = Path(__file__).parents[2]


def _clean(message: str, *secrets: str) -> bool:
    """True when ``message`` shows none of ``secrets`` (as written or percent-decoded)."""
    return not any(s and (s in message or unquote_plus(s) in message) for s in secrets)


@pytest.mark.parametrize(
    "uri",
    [
        f"mongodb://adm:in:{LEAK}@127.0.0.1",
        f"mongodb://admin:{LEAK}%zz@127.0.0.1",
        f"mongodb://u:{LEAK}@127.0.0.1/?serverSelectionTimeoutMS=abc",
        f"mongodb://u:{LEAK}@127.0.0.1/?maxPoolSize=-1",
        f"mongodb://u:{LEAK}@127.0.0.1/?notAnOption=1",
        f"mongodb://u:{LEAK}@127.0.0.1/?w=1&w=majority",
        f"mongodb+srv://u:{LEAK}@cluster.example.invalid/?srvMaxHosts=many",
    ],
)
def test_uris_pymongo_refuses_fail_before_anything_starts(uri: str, tmp_path: Path) -> None:
    data = {"mongoUris": [uri], "payloadStorage": "mongo"}
    path = tmp_path / "config.json"
    path.write_text(f'{{"mongoUris": ["{uri}"], "payloadStorage": "mongo"}}')
    for make in (
        lambda: Chronos(data),
        lambda: Chronos(ChronosConfig.from_file(path)),
        lambda: ChronosConfig.load(path.read_text()),
    ):
        with pytest.raises(ConfigError) as info:
            make()
        assert "mongoUris.0" in str(info.value)
        assert _clean(str(info.value), LEAK)


@pytest.mark.parametrize(
    ("userinfo", "options", "needle"),
    [
        ("", "authMechanism=PLAIN", "requires a username"),
        ("solo@", "authMechanism=SCRAM-SHA-256", "password is required"),
        (f"cn%3Dclient:{LEAK}@", "authMechanism=MONGODB-X509", "Passwords are not supported"),
        (f"u:{LEAK}@", "tls=true&tlsCAFile=%2Fnonexistent%2Fca.pem", "not readable"),
    ],
)
async def test_what_only_the_client_checks_is_a_config_error_at_start(
    userinfo: str, options: str, needle: str
) -> None:
    # The client refuses these while it is built, before any I/O: no server is needed.
    uri = f"mongodb://{userinfo}127.0.0.1:9/?{options}"
    config = ChronosConfig.model_validate({"mongoUris": [uri], "payloadStorage": "mongo"})
    chronos = Chronos(config)
    with pytest.raises(ConfigError, match=needle) as info:
        async with chronos:
            pytest.fail("started with a client pymongo refuses")
    assert _clean(str(info.value), LEAK)
    assert not chronos.is_open


async def test_a_config_that_skipped_validation_still_fails_cleanly_at_start(
    mongo_uri: str,
) -> None:
    valid = ChronosConfig.model_validate({"mongoUris": [mongo_uri], "payloadStorage": "mongo"})
    for bad in (f"mongodb://adm:in:{LEAK}@127.0.0.1", f"mongodb://admin:{LEAK}%zz@127.0.0.1"):
        # pydantic's own model_copy skips validation (ChronosConfig's validates).
        broken = pydantic.BaseModel.model_copy(valid, update={"mongo_uris": [bad]})
        with pytest.raises(ConfigError, match="refused by pymongo") as info:
            async with Chronos(broken):
                pytest.fail("started with a URI pymongo refuses")
        assert _clean(str(info.value), LEAK)
        assert info.value.__cause__ is None and info.value.__suppress_context__


# -- random URIs -------------------------------------------------------------------------

_PASSWORD_CHARS = string.ascii_letters + string.digits + ":@/%?#[]!$&'()*+,;=-._~ "
_OPTIONS = [
    "w=majority",
    "w=1",
    "replicaSet=rs0",
    "retryWrites=true",
    "readPreference=nearest",
    "readPreference=bogus",
    "serverSelectionTimeoutMS=1500",
    "serverSelectionTimeoutMS=abc",
    "connectTimeoutMS=-5",
    "maxPoolSize=0",
    "directConnection=true",
    "loadBalanced=true",
    "srvMaxHosts=2",
    "srvServiceName=custom",
    "tls=true",
    "ssl=false",
    "authSource=admin",
    "authSource=",
    "appname=x",
    "notAnOption=1",
    "w",
    "=1",
]


@st.composite
def uris(draw: st.DrawFn) -> tuple[str, str]:
    """A MongoDB URI with random credentials, hosts and options, and its password."""
    srv = draw(st.booleans())
    user = draw(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=6))
    password = "Pw" + draw(st.text(_PASSWORD_CHARS, min_size=6, max_size=14))
    written = quote_plus(password) if draw(st.booleans()) else password
    userinfo = draw(st.sampled_from(["", f"{user}@", f"{user}:{written}@"]))
    if srv:
        hosts = draw(st.sampled_from(["cluster0.example.invalid", "c.invalid:27017", "a,b"]))
    else:
        seeds = ["127.0.0.1", "db1:27018", "[::1]:27017", "db.example.invalid", "h:0"]
        hosts = ",".join(draw(st.lists(st.sampled_from(seeds), min_size=1, max_size=3)))
    path = draw(st.sampled_from(["", "/", "/app", "/bad db"]))
    options = draw(st.lists(st.sampled_from(_OPTIONS), max_size=4))
    query = ("?" if path else "/?") + draw(st.sampled_from("&;")).join(options) if options else ""
    scheme = "mongodb+srv" if srv else "mongodb"
    return f"{scheme}://{userinfo}{hosts}{path}{query}", password


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=uris())
async def test_random_uris_fail_cleanly_or_never_show_the_password(
    drawn: tuple[str, str],
) -> None:
    uri, password = drawn
    secrets = (password, quote_plus(password))
    data = {"mongoUris": [uri], "payloadStorage": "mongo"}
    refusal = _refusal(lambda: ChronosConfig.model_validate(data))
    if refusal is not None:
        assert "mongoUris.0" in refusal
        assert _clean(refusal, *secrets), refusal
        event("refused by the config")
        return
    config = ChronosConfig.model_validate(data)
    for text in (
        repr(config),
        str(config),
        str(config.model_dump()),
        config.model_dump_json(),
        config.to_json(),
    ):
        assert _clean(text, *secrets), text
    assert ChronosConfig.load(config.to_json(reveal_secrets=True)) == config
    clients: list[Any] = []
    refusal = _refusal(
        lambda: clients.append(
            _new_client(uri, client_options(config.mongo_client, op_timeout_ms=10_000))
        )
    )
    for client in clients:
        await client.close()
    if refusal is not None:
        assert _clean(refusal, *secrets), refusal
    event("refused by the client" if refusal else "accepted")


def _refusal(call: Callable[[], object]) -> str | None:
    """The message of the ``ConfigError`` that ``call`` raised (``None`` if it returned)."""
    try:
        call()
    except ConfigError as exc:
        return str(exc)
    return None


# -- the CLI: masked on stdout, real in the file -----------------------------------------


async def _read_line(stream: asyncio.StreamReader, prefix: str, seen: list[str]) -> str:
    """The first line of ``stream`` starting with ``prefix`` (the lines before are kept)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"no line starting with {prefix!r} in {seen}")
        seen.append(line)
        if line.startswith(prefix):
            return line


async def test_local_stack_prints_the_config_masked_and_writes_it_real(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chronos_async",
        "local-stack",
        "--write-config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        errors: list[str] = []
        async with asyncio.timeout(120):
            line = await _read_line(proc.stderr, "Config with credentials written to", errors)
            await _read_line(proc.stderr, "Local stack running", errors)
        assert str(path.resolve()) in line
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = ChronosConfig.from_file(path)
        # The file is usable: a second process's client reads and writes through it.
        async with Chronos(config) as chronos:
            users = chronos.collection("users", db="cli_check")
            written = await users.create({"email": "cli@x"})
            item = await users.get_latest(written.id)
            assert item is not None and item.data == {"email": "cli@x"}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            printed, _ = await proc.communicate()
    assert proc.returncode == 130
    shown = ChronosConfig.load(printed)
    if config.spaces_conns:  # `weed` is installed: the S3 keys are real secrets
        secret = config.spaces_conns[0].secret_key.get_secret_value()
        assert secret not in printed.decode() and secret != "**********"
        assert shown.spaces_conns[0].secret_key.get_secret_value() == "**********"
    assert shown.mongo_uris == config.mongo_uris  # the stack's URI holds no password
