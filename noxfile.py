"""Development sessions: ``nox`` runs tests, lint and typecheck; ``nox -s bench`` the benchmark;
``nox -s docs`` builds the documentation site (``nox -s docs -- serve`` serves it).

``nox -s tests-3.10`` runs the suite on one Python. Every supported Python must be there: a
missing interpreter fails the run instead of being skipped (``.ci/run`` does the same for the
oldest and the newest).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
# A session whose interpreter is missing fails: "success" must mean every Python ran.
nox.options.error_on_missing_interpreters = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
# requires-python's lower bound up to the newest CPython supported (keep .ci/run's NEWEST in step).
NEWEST_PYTHON = "3.13"
PYTHONS = nox.project.python_versions(PYPROJECT, max_version=NEWEST_PYTHON)


def _pyenv_versions_on_path() -> None:
    """Let nox find pyenv's Pythons that pyenv has not activated.

    pyenv's shims only run the versions it has activated (``pyenv global``/``local``), so on a
    machine with 3.10 to 3.13 installed and 3.11 active, ``python3.10`` is not found. Their
    ``bin`` folders go at the end of ``PATH``: whatever was already found first still wins.
    """
    root = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
    found = []
    for version in PYTHONS:
        # Newest patch release first; "3.10.13", not "3.10.13/envs/x" nor "3.10t".
        releases = sorted(
            (
                p
                for p in root.glob(f"versions/{version}.*")
                if re.fullmatch(r"\d+\.\d+\.\d+", p.name)
            ),
            key=lambda p: [int(part) for part in p.name.split(".")],
            reverse=True,
        )
        found += [str(p / "bin") for p in releases[:1] if (p / "bin" / f"python{version}").exists()]
    if found:
        os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), *found])


_pyenv_versions_on_path()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (asyncio and trio) with the README's command.

    Arguments after -- go to pytest, e.g. ``nox -s tests-3.10 -- -x tests/test_timeouts.py``.
    pytest's exit code 5 (no test collected) fails the session like any other non-zero code.
    """
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
    """The benchmarks: wxlogistics against bare httpx and aiohttp; then FastAPI services.

    Writes bench-results/bench.md and bench.json, then bench-results/fastapi.md and .json
    (bench/fastapi_bench.py: a FastAPI + uvicorn service awaiting ``cancel_order`` against
    the same service on raw aiohttp, timed and counted by callgrind; it uses ``wrk`` when it is
    on PATH). Arguments after -- go to bench/bench.py only, e.g.
    ``nox -s bench -- --n 2000 --rounds 1`` for a quick look; ``python bench/bench.py --help``
    and ``python bench/fastapi_bench.py --help`` list them.
    """
    session.install("-e", ".[test,bench]")
    session.run("python", "bench/bench.py", *session.posargs)
    # --instructions: the service's instructions per request under callgrind (noise-free).
    session.run("python", "bench/fastapi_bench.py", "--instructions", "300")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into build/docs/html, warnings as errors.

    ``nox -s docs -- serve`` rebuilds on every change and serves it on http://127.0.0.1:8000
    (``-- serve --port 8001`` for another port). Needs Graphviz's ``dot`` for the diagrams
    (Debian/Ubuntu: ``apt-get install graphviz``; macOS: ``brew install graphviz``). Nothing is
    fetched from the network while building.
    """
    if shutil.which("dot") is None:
        session.error("Graphviz's `dot` is needed for the diagrams: apt-get install graphviz")
    session.install("-e", ".[docs]")
    # -n: a reference that does not resolve is a warning; -W: a warning fails the build;
    # --keep-going: report them all first.
    build = ["-n", "-W", "--keep-going", "docs", "build/docs/html"]
    if session.posargs[:1] == ["serve"]:
        session.run(
            "sphinx-autobuild",
            *build,
            "--watch",
            "wxlogistics",  # docstrings: the API reference
            "--ignore",
            "*/reference/_generated/*",  # written by the build itself
            *session.posargs[1:],
        )
    else:
        # -E: read every page again, so warnings of unchanged pages are reported too.
        session.run("python", "-m", "sphinx", "-E", "-b", "html", *build, *session.posargs)
