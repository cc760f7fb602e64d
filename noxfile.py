"""Development sessions: ``nox -s tests lint typecheck docs bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (asyncio and trio)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy --strict on the package."""
    session.install("-e", ".[test]")
    session.run("mypy", "--strict", "wxlogistics")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark: wxlogistics against bare httpx and aiohttp, asyncio and trio.

    Writes bench-results/bench.md and bench.json. Arguments after -- go to bench/bench.py,
    e.g. ``nox -s bench -- --n 2000 --rounds 1`` for a quick look.
    """
    session.install("-e", ".[test]")
    session.run("python", "bench/bench.py", *session.posargs)
