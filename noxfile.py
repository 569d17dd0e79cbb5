"""Nox sessions: ``nox`` runs lint, typecheck and tests; ``nox -s docs`` builds the docs
site (strict); ``nox -s bench`` runs the benchmarks.

Each session gets its own virtualenv; extra arguments after ``--`` go to the tool, e.g.
``nox -s tests -- -k embedded -x``.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, as the README runs it (``python -m pytest``)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "--extend-exclude", ".venv-ci", ".")
    session.run("ruff", "format", "--check", "--extend-exclude", ".venv-ci", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package (with its dependencies installed for their types)."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "chronos_async")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material) in strict mode: any warning fails.

    ``nox -s docs -- serve`` serves it with live reload instead.
    """
    session.install("-e", ".[docs]")
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:], env={"NO_MKDOCS_2_WARNING": "1"})
    else:
        session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (``python -m benchmarks``); never part of the pass/fail suite."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks", *session.posargs)
