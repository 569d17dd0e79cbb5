"""Facts the repository states in more than one place agree, and docs point only at files
that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tests_readme_gives_the_minio_credentials_compose_sets() -> None:
    compose = (ROOT / "compose" / "docker-compose.yml").read_text()
    user = re.search(r"MINIO_ROOT_USER:\s*(\S+)", compose)
    password = re.search(r"MINIO_ROOT_PASSWORD:\s*(\S+)", compose)
    assert user is not None and password is not None
    for readme in (ROOT / "tests" / "README.md", ROOT / "compose" / "README.md"):
        text = readme.read_text()
        exported = dict(re.findall(r'CHRONOS_TEST_S3_(ACCESS_KEY|SECRET_KEY)="?([^"\s]+)', text))
        assert exported == {"ACCESS_KEY": user[1], "SECRET_KEY": password[1]}, readme


def test_the_package_refers_to_no_missing_reference_document() -> None:
    for module in (ROOT / "chronos_async").rglob("*.py"):
        assert "reference/local-servers.md" not in module.read_text(), module
    # What the package points to instead is in the repository.
    assert "nx-27017 is not MongoDB" in (ROOT / "tests" / "README.md").read_text()
