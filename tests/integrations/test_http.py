"""The framework-free HTTP mapping: error -> problem details, ETag and If-Match rules."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronos_async import (
    ChronosError,
    ClosedError,
    IntegrityError,
    ItemDeletedError,
    ItemExistsError,
    LockLostError,
    LockTimeoutError,
    ModelValidationError,
    NotFoundError,
    StorageError,
    ValidationError,
    VersionConflictError,
)
from chronos_async.integrations import (
    HeaderError,
    format_etag,
    parse_at,
    parse_if_match,
    parse_ov,
    problem_for,
    validate_idempotency_key,
)


@pytest.mark.parametrize(
    ("exc", "if_match", "status"),
    [
        (ValidationError("bad"), False, 422),
        (ModelValidationError("bad", model=dict), False, 422),
        (HeaderError("bad", field="If-Match"), False, 400),
        (HeaderError("need", field="If-Match", status=428), False, 428),
        (NotFoundError("no x", id="x"), False, 404),
        (VersionConflictError(1, 2, id="x"), False, 409),
        (VersionConflictError(1, 2, id="x"), True, 412),
        (ItemExistsError("x", 0), False, 409),
        (ItemExistsError("x", 0), True, 409),
        (ItemDeletedError("x", 3), False, 410),
        (LockTimeoutError("x", 500.0), False, 503),
        (LockLostError("x"), False, 503),
        (StorageError("mongodb://u:p@h down", retryable=True), False, 503),
        (StorageError("mongodb://u:p@h broken"), False, 500),
        (IntegrityError("sha256 mismatch in bucket b"), False, 500),
        (ClosedError("closed"), False, 500),
        (ChronosError("?"), False, 500),
        (RuntimeError("boom"), False, 500),
        (KeyError("k"), False, 500),
    ],
)
def test_status_of_every_error(exc: BaseException, if_match: bool, status: int) -> None:
    problem = problem_for(exc, if_match=if_match)
    assert problem.status == status
    body = problem.body()
    assert body["status"] == status and {"type", "title", "detail"} <= set(body)
    json.dumps(body)  # serialisable
    if status >= 500:
        assert "mongodb" not in body["detail"] and "bucket" not in body["detail"]
        assert "boom" not in body["detail"]
    if status == 503:
        assert problem.headers == {"Retry-After": "1"}
    else:
        assert problem.headers == {}


def test_conflict_body_names_current_version() -> None:
    assert problem_for(VersionConflictError(1, 4, id="x"), if_match=True).body()["current_ov"] == 4
    assert problem_for(ItemDeletedError("x", 3)).body()["current_ov"] == 3


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_etag_round_trips(ov: int) -> None:
    etag = format_etag(ov)
    assert etag.startswith('"') and etag.endswith('"')
    assert parse_if_match(etag) == ov
    assert parse_if_match(f"  {etag} ") == ov
    assert parse_ov(str(ov)) == ov


@given(st.text(max_size=30))
def test_if_match_never_fails_unexpectedly(value: str) -> None:
    error: HeaderError | None = None
    try:
        ov = parse_if_match(value)
    except HeaderError as exc:
        error = exc
    if error is not None:
        assert (error.status, error.field, problem_for(error).status) == (400, "If-Match", 400)
    else:
        assert ov is None or (0 <= ov < 2**63 and format_etag(ov) == value.strip())


@pytest.mark.parametrize(
    "value", ["0", "'0'", 'W/"0"', '"0", "1"', '"-1"', '""', '"1.5"', '"9223372036854775808"', ""]
)
def test_malformed_if_match_is_400(value: str) -> None:
    with pytest.raises(HeaderError) as info:
        parse_if_match(value)
    assert info.value.status == 400


def test_if_match_absent_star_and_required() -> None:
    assert parse_if_match(None) is None
    assert parse_if_match("*") is None
    assert parse_if_match("*", required=True) is None
    with pytest.raises(HeaderError) as info:
        parse_if_match(None, required=True)
    assert info.value.status == 428
    with pytest.raises(ValueError, match="ov"):
        format_etag(-1)


@given(st.text(max_size=25))
def test_parse_ov_refuses_non_numbers(value: str) -> None:
    error: HeaderError | None = None
    try:
        ov = parse_ov(value)
    except HeaderError as exc:
        error = exc
    if error is not None:
        assert error.status == 400
    else:
        assert 0 <= ov < 2**63 and str(ov) == value.strip().lstrip("0").rjust(1, "0")


def test_parse_at() -> None:
    assert parse_at("2026-03-01T00:00:00Z") == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(HeaderError, match="needs a UTC offset"):
        parse_at("2026-03-01")  # no offset: refused, as the library refuses naive times
    for bad in ("not-a-date", "", "2026-13-01", "x" * 100):
        with pytest.raises(HeaderError):
            parse_at(bad)


def test_idempotency_key() -> None:
    assert validate_idempotency_key(None) is None
    assert validate_idempotency_key("order-42:retry") == "order-42:retry"
    for bad in ("", "a b", "é", "x" * 256, "a\nb"):
        with pytest.raises(HeaderError):
            validate_idempotency_key(bad)


def test_core_import_pulls_in_no_web_framework() -> None:
    import subprocess

    code = (
        "import sys, chronos_async, chronos_async.integrations\n"
        "bad = [m for m in ('fastapi', 'starlette', 'aiohttp.web') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
