"""Fixtures of the reliability suites."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def payloads(_s3_server_or_none: Any) -> str:
    """The payload store of the in-process tests: the session's S3 server, else a folder."""
    return "s3" if _s3_server_or_none is not None else "local"
