"""The pytest plugin for applications (``chronos_async.testing``), as its users meet it.

Each behaviour runs in a pytest of its own (``pytester``, in a subprocess): strict
asyncio mode, loops per function and ``filterwarnings = error`` there, so the plugin is
also checked in the configuration pytest-asyncio recommends. ``examples/test_with_plugin.py``
runs from the repository root, with this project's own pytest settings.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

STRICT_INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder with the strict ini, and no external S3 settings inherited."""
    for name in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "REGION"):
        monkeypatch.delenv(f"CHRONOS_TEST_S3_{name}", raising=False)
    pytester.makeini(STRICT_INI)
    return pytester


def test_the_entry_point_loads_the_plugin(pytestconfig: pytest.Config) -> None:
    found = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert found.get("chronos_async") == "chronos_async.testing.plugin"
    plugin = pytestconfig.pluginmanager.get_plugin("chronos_async")
    assert plugin is not None
    assert plugin.__name__ == "chronos_async.testing.plugin"


def test_the_example_passes() -> None:
    example = "examples/test_with_plugin.py"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", example],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


def test_nothing_starts_unless_a_test_asks(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(
        """
        import sys
        import threading

        def test_plain(request):
            assert request.config.pluginmanager.has_plugin("chronos_async")
            assert "chronos_async.embedded" not in sys.modules
            assert "chronos_async._procs" not in sys.modules
            assert not [t for t in threading.enumerate() if t.name.startswith("chronos")]
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider", "--setup-show")
    result.assert_outcomes(passed=1)
    assert "chronos_" not in result.stdout.str()


def test_each_test_gets_its_own_database_and_prefix(user_project: pytest.Pytester) -> None:
    user_project.makeconftest(
        """
        import pytest

        @pytest.fixture
        def chronos_config_overrides():
            return {"collection_maps": {"notes": {"indexed_props": ["topic"]}}}
        """
    )
    user_project.makepyfile(
        """
        import pytest
        from pymongo import MongoClient

        SEEN = []

        @pytest.mark.asyncio
        @pytest.mark.parametrize("n", [1, 2])
        async def test_write(chronos, chronos_db, chronos_key_prefix, chronos_config, n):
            assert chronos.config is chronos_config
            assert chronos_config.collection_map("notes").indexed_props == ["topic"]
            assert chronos_config.local_storage.base_path.endswith(chronos_key_prefix)
            notes = chronos.collection("notes", db=chronos_db)
            await notes.create({"topic": "isolation", "n": n}, actor="t", reason="t")
            page = await notes.list_by_meta({"topic": "isolation"})
            assert [item.data["n"] for item in page.items] == [n]
            SEEN.append((chronos_db, chronos_key_prefix))

        def test_names_differ_and_databases_are_dropped(chronos_servers):
            assert len(SEEN) == 2
            assert len({db for db, _ in SEEN}) == len({prefix for _, prefix in SEEN}) == 2
            with MongoClient(chronos_servers.mongo_uri) as client:
                left = set(client.list_database_names())
            assert not left & {db for db, _ in SEEN}
        """
    )
    result = user_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_configured_mongodb_is_used_as_is(user_project: pytest.Pytester, mongo_uri: str) -> None:
    user_project.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_external(chronos, chronos_db, chronos_servers, pytestconfig):
            assert chronos_servers.stack is None  # nothing started
            assert chronos_servers.mongo_uri == pytestconfig.getoption("chronos_mongo_uri")
            notes = chronos.collection("notes", db=chronos_db)
            created = await notes.create({"text": "hi"}, actor="t", reason="t")
            assert (await notes.get_latest(created.id)).data == {"text": "hi"}
        """
    )
    result = user_project.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--chronos-mongo-uri={mongo_uri}"
    )
    result.assert_outcomes(passed=1)


def test_an_unknown_payload_storage_is_a_usage_error(user_project: pytest.Pytester) -> None:
    user_project.makepyfile("def test_x():\n    pass\n")
    result = user_project.runpytest_subprocess("-o", "chronos_payload_storage=floppy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*chronos_payload_storage must be one of local, s3, mongo*"])


def test_incomplete_s3_settings_fail_before_starting_anything(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOS_TEST_S3_ENDPOINT", "http://127.0.0.1:9")
    user_project.makepyfile("def test_x(chronos_config):\n    pass\n")
    result = user_project.runpytest_subprocess(
        "-p", "no:cacheprovider", "--chronos-payload-storage=s3"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*missing: CHRONOS_TEST_S3_ACCESS_KEY, CHRONOS_TEST_S3_SECRET_KEY*"]
    )
    assert "LocalStack" not in result.stdout.str()
