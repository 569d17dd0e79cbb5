"""Test tooling for applications built on chronos-async: a pytest plugin and its servers.

The pytest plugin (:mod:`chronos_async.testing.plugin`) is registered through the
``pytest11`` entry point ``chronos_async``: with chronos-async installed next to pytest
(and pytest-asyncio for the async fixtures), a test can ask for an open ``chronos`` and a
fresh database name ``chronos_db``; the module docstring of the plugin lists the fixtures
and options. Nothing starts until a test asks for one of them.

This package is not imported by :mod:`chronos_async` and does not import pytest; what it
exports here, :class:`ChronosServers` and :class:`ServerSettings`, also serves to run the
same servers from other test runners.
"""

from __future__ import annotations

from chronos_async.testing._servers import (
    ChronosServers,
    PayloadStorage,
    S3Endpoint,
    ServerSettings,
)

__all__ = ["ChronosServers", "PayloadStorage", "S3Endpoint", "ServerSettings"]
