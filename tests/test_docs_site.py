"""The documentation site: its generated parts agree with the code, its reference is complete.

The site itself is built by ``nox -s docs`` (and CI) with warnings as errors; these tests need
no Sphinx. They load ``docs/conf.py``, which imports only wxlogistics at module level.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import wxlogistics
import wxlogistics.events
import wxlogistics.testing
from wxlogistics import cli
from wxlogistics._endpoints import ENDPOINTS, errcode_table_markdown, retry_table_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = DOCS / "reference" / "_generated"
REFERENCE = DOCS / "reference"


@pytest.fixture(scope="module")
def conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wxlogistics_docs_conf", DOCS / "conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented() -> set[str]:
    """Every object named by an autodoc directive of the reference pages."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in REFERENCE.glob("*.md"))
    return set(re.findall(r"^\.\. auto\w+:: ([\w.]+)$", text, re.M))


# -- the generated tables ---------------------------------------------------------------------


def test_committed_tables_match_the_code(conf: ModuleType) -> None:
    # If this fails, the code's tables changed: `nox -s docs` rewrites the pages; commit them.
    pages = conf.generated_pages()
    assert pages == {
        "errcodes.md": errcode_table_markdown(),
        "retry-safety.md": retry_table_markdown(),
    }
    for name, text in pages.items():
        assert (GENERATED / name).read_text(encoding="utf-8") == text, name


def test_committed_errcode_table_has_every_errcode_of_every_endpoint() -> None:
    text = (GENERATED / "errcodes.md").read_text(encoding="utf-8")
    for endpoint in ENDPOINTS:
        for code, cls in endpoint.errcodes.items():
            assert f"| {code} | `{cls.__name__}` |" in text, (endpoint.method_name, code)


def test_committed_retry_table_has_every_endpoint_and_its_safety() -> None:
    rows = (GENERATED / "retry-safety.md").read_text(encoding="utf-8").splitlines()[2:]
    assert len(rows) == len(ENDPOINTS)
    for endpoint, row in zip(ENDPOINTS, rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[0] == f"`{endpoint.method_name}`"
        assert cells[3] == ("yes" if endpoint.idempotent else "no")


def test_the_reference_pages_include_the_generated_tables() -> None:
    for page, name in (("errcodes.md", "errcodes.md"), ("retry-safety.md", "retry-safety.md")):
        text = (REFERENCE / page).read_text(encoding="utf-8")
        assert f"```{{include}} _generated/{name}\n```" in text, page


def test_every_errcode_is_a_search_target(conf: ModuleType) -> None:
    # Sphinx's full-text search skips numbers: each errcode is registered as an object too.
    entries = conf.errcode_entries()
    for endpoint in ENDPOINTS:
        for code, cls in endpoint.errcodes.items():
            assert (code, cls.__name__) in entries
    assert (9300506, "WaybillHasTracesError") in entries
    assert (-1, "SystemBusyError") in entries
    text = (REFERENCE / "errcodes.md").read_text(encoding="utf-8")
    assert "```{wxlogistics-errcode-targets}\n```" in text


def test_the_build_rewrites_a_stale_table_and_leaves_a_current_one(
    conf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conf, "GENERATED", tmp_path)
    (tmp_path / "errcodes.md").write_text("| stale |\n", encoding="utf-8")
    current = tmp_path / "retry-safety.md"
    current.write_text(retry_table_markdown(), encoding="utf-8")
    before = current.stat().st_mtime_ns
    conf.write_generated()
    assert (tmp_path / "errcodes.md").read_text(encoding="utf-8") == errcode_table_markdown()
    # Unchanged text is not rewritten, so sphinx-autobuild does not rebuild in a loop.
    assert current.stat().st_mtime_ns == before


def test_the_benchmark_page_shows_the_newest_committed_run(conf: ModuleType) -> None:
    runs = sorted((ROOT / "bench" / "results").glob("*.md"))
    assert conf.latest_benchmark() == runs[-1]
    text = (DOCS / "howto" / "benchmark.md").read_text(encoding="utf-8")
    assert "```{wxlogistics-latest-benchmark}\n```" in text


# -- the API reference ------------------------------------------------------------------------


def test_every_public_name_is_in_the_reference() -> None:
    names = documented()
    missing = [n for n in wxlogistics.__all__ if f"wxlogistics.{n}" not in names]
    assert missing == []
    # The two public modules are documented whole (automodule with :members:).
    assert {"wxlogistics.events", "wxlogistics.testing"} <= names
    # automodule shows the classes and functions (each has a docstring), and the data whose
    # docstring follows it in the module's own source; any other name needs its own directive.
    for module in (wxlogistics.events, wxlogistics.testing):
        source = Path(str(module.__file__)).read_text(encoding="utf-8")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{module.__name__}.{name}"
            elif not re.search(rf'^{name}(: .*)? = .*\n"""', source, re.M):
                assert f"{module.__name__}.{name}" in names, f"{module.__name__}.{name}"


def test_every_endpoint_method_is_on_the_endpoints_page() -> None:
    text = (REFERENCE / "endpoints.md").read_text(encoding="utf-8")
    methods = set(re.findall(r"^\.\. automethod:: wxlogistics\.AsyncLogistics\.(\w+)$", text, re.M))
    assert {e.method_name for e in ENDPOINTS} <= methods
    assert {"cancel", "cancel_orders", "batch_get_orders"} <= methods


def test_every_exception_is_on_the_exceptions_page() -> None:
    text = (REFERENCE / "exceptions.md").read_text(encoding="utf-8")
    exceptions = [
        n
        for n in wxlogistics.__all__
        if isinstance(getattr(wxlogistics, n), type)
        and issubclass(getattr(wxlogistics, n), BaseException)
    ]
    assert len(exceptions) >= 25
    for name in exceptions:
        assert f".. autoexception:: wxlogistics.{name}\n" in text, name
        # The tree is drawn from the module that defines them: every one is in it.
        assert getattr(wxlogistics, name).__module__ == "wxlogistics._exceptions", name
    assert ".. inheritance-diagram:: wxlogistics._exceptions " in text
    for name in wxlogistics.events.__all__:
        obj = getattr(wxlogistics.events, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert f".. autoexception:: wxlogistics.events.{name}\n" in text, name
            assert re.search(rf"inheritance-diagram:: .* wxlogistics\.events\.{name}\b", text)


# -- the command-line reference ---------------------------------------------------------------


def test_cli_help_has_every_command_and_none_of_the_builders_environment(
    conf: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WX_APPID", "wxbuildmachine0001")
    monkeypatch.setenv("WX_BASE_URL", "http://builder.invalid")
    found = conf.cli_help()
    parser = cli._parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert [name for name, _ in found] == [
        "wxlogistics",
        *(f"wxlogistics {name}" for name in commands.choices),
    ]
    for name, text in found:
        assert text.startswith("usage: " + name), name
        assert "wxbuildmachine0001" not in text
        assert "builder.invalid" not in text
