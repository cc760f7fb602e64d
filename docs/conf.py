"""Sphinx configuration: MyST pages, an API reference from the docstrings, the furo theme.

Build: ``nox -s docs`` (warnings are errors); ``nox -s docs -- serve`` rebuilds on change and
serves on http://127.0.0.1:8000. Nothing is fetched from the network while building: no
intersphinx, diagrams rendered by Graphviz's ``dot`` into SVG.

The errcode and retry-safety tables are rendered from the client's own tables
(:func:`wxlogistics._endpoints.errcode_table_markdown` and ``retry_table_markdown``) into
``reference/_generated/`` when the build starts (:func:`write_generated`), so they cannot
drift; ``tests/test_docs_site.py`` checks that the committed copies match the code.
"""

from __future__ import annotations

import pathlib
from typing import Any

import wxlogistics
from wxlogistics import _endpoints

HERE = pathlib.Path(__file__).resolve().parent
GENERATED = HERE / "reference" / "_generated"

project = "wxlogistics"
author = "wxlogistics developers"
copyright = "wxlogistics developers"
release = wxlogistics.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.graphviz",
    "sphinx.ext.inheritance_diagram",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "reference/_generated", ".venv", ".nox"]
# Fences without a language (trees, sample output) are shown as they are, not lexed as Python.
highlight_language = "none"

# -- MyST -----------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
# "http.md#one-client-per-event-loop" links resolve (a missing anchor is a warning, so an error).
myst_heading_anchors = 3

# -- API reference --------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Inheritance is shown where it means something: on the exceptions (exceptions.md).
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# A reference that does not resolve is a warning (and so fails the build). Names from other
# projects are not looked up over the network (no intersphinx): they are listed here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(httpx|httpcore|aiohttp|anyio|trio|attrs?|cattrs|ssl|asyncio|fastapi)(\..*)?"),
    (r"py:.*", r"(typing|typing_extensions|collections\.abc|types|enum|datetime)\..*"),
    (r"py:.*", r"(logging|os|pathlib|json|decimal|contextlib|abc|builtins)\..*"),
    (r"py:class", r"(Self|T|R|_T|TypeAlias|NoneType|ellipsis|Ellipsis)"),
    # Docstring problems reported to the maintainers (remove each once its docstring is fixed):
    # errcodes written in "Raises:" entries, "WaybillNotFoundError (9300528)", are read by
    # napoleon as exception names (wxlogistics/_resources/orders.py:166, accounts.py:34-35) ...
    (r"py:exc", r"\d+"),
    # ... as are the words of a Raises entry without a colon (wxlogistics/events.py:666, 693-694);
    (r"py:exc", r"(PushFormatError\.|also when|the message is another event)"),
    # private names referred to from public docstrings (wxlogistics/_wire.py:149,
    # wxlogistics/_tokens.py:8 and 220).
    (r"py:class", r"ResponseTooLargeError"),
    (r"py:data", r"REFRESH_RETRY_INTERVAL"),
]

# -- Diagrams -------------------------------------------------------------------------------
graphviz_output_format = "svg"
inheritance_graph_attrs = {"rankdir": "LR", "fontsize": 11, "ratio": "compress"}
inheritance_node_attrs = {"fontsize": 11, "shape": "box", "style": '"rounded"'}

# -- HTML -----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"wxlogistics {release}"
html_static_path = ["_static"]
html_css_files = ["wxlogistics.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False


def generated_pages() -> dict[str, str]:
    """The Markdown files rendered from the client's tables: ``{file name: text}``."""
    return {
        "errcodes.md": _endpoints.errcode_table_markdown(),
        "retry-safety.md": _endpoints.retry_table_markdown(),
    }


def write_generated(app: Any = None) -> None:
    """Write :func:`generated_pages` into ``reference/_generated/``.

    A file is only rewritten when its text changed, so ``sphinx-autobuild`` does not loop.
    """
    GENERATED.mkdir(parents=True, exist_ok=True)
    for name, text in generated_pages().items():
        path = GENERATED / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def errcode_entries() -> list[tuple[int, str]]:
    """Every (errcode, exception class name) pair of the client's tables, sorted.

    Sphinx's full-text search skips numbers, so each pair is also registered as a searchable
    object ("9300506 (WaybillHasTracesError)") pointing at the errcode table.
    """
    pairs = {(code, cls.__name__) for code, cls in _endpoints.COMMON_ERRCODES.items()}
    for endpoint in _endpoints.ENDPOINTS:
        pairs |= {(code, cls.__name__) for code, cls in endpoint.errcodes.items()}
    return sorted(pairs)


def _errcode_targets_directive() -> Any:
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class ErrcodeTargets(SphinxDirective):
        """``{wxlogistics-errcode-targets}``: make every errcode findable by the search box."""

        def run(self) -> list[Any]:
            std = self.env.domains.standard_domain
            found: list[Any] = []
            for code, name in errcode_entries():
                label = f"errcode-{code}-{name.lower()}".replace("--", "-minus-")
                std.note_object("errcode", f"{code} ({name})", label, location=self.get_location())
                found.append(nodes.target("", "", ids=[label]))
            return found

    return ErrcodeTargets


def latest_benchmark() -> pathlib.Path:
    """The newest full benchmark run committed in ``bench/results/`` (named by date)."""
    runs = sorted((HERE.parent / "bench" / "results").glob("*.md"))
    if not runs:
        raise FileNotFoundError("no benchmark results in bench/results/")
    return runs[-1]


def _benchmark_directive() -> Any:
    from sphinx.util.docutils import SphinxDirective

    class LatestBenchmark(SphinxDirective):
        """``{wxlogistics-latest-benchmark}``: the newest committed run, as its tables."""

        def run(self) -> list[Any]:
            path = latest_benchmark()
            self.env.note_dependency(str(path))  # a new run rebuilds the page
            text = f"From `bench/results/{path.name}`:\n\n" + path.read_text(encoding="utf-8")
            return list(self.parse_text_to_nodes(text))

    return LatestBenchmark


def cli_help() -> list[tuple[str, str]]:
    """``wxlogistics --help`` and each command's ``--help``: ``[(command, text)]``."""
    import argparse
    import os
    from unittest import mock

    from wxlogistics import cli

    # Defaults read from the environment must not leak the builder's into the page.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WX_")}
    with mock.patch.dict(os.environ, {**env, "COLUMNS": "90"}, clear=True):
        parser = cli._parser()
        found = [("wxlogistics", parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((f"wxlogistics {name}", sub.format_help()))
    return found


def _cli_help_directive() -> Any:
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class CliHelp(SphinxDirective):
        """``{wxlogistics-cli-help}``: a heading per command, with its ``--help`` text."""

        def run(self) -> list[Any]:
            found: list[Any] = []
            for command, text in cli_help():
                found.append(nodes.rubric(text=command, ids=[nodes.make_id(command)]))
                found.append(nodes.literal_block(text, text, language="none"))
            return found

    return CliHelp


def _attribute_docstring_as_written(self: Any) -> list[str]:
    """Napoleon, for an attribute's docstring: the text as written, no inline type.

    Google style reads an attribute docstring's first line "Name (WeChat: ...)" as
    ``type: description``; this project's attribute docstrings are plain sentences (their
    types are the annotations), so the split is not made.
    """
    lines = self._dedent(self._consume_to_end())
    return list(self._format_field("", "", type(self)(lines, self._config).lines()))


def _drop_private_bases(app: Any, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """``AsyncLogistics(OrdersResource, ...)``: the mixins are private; show no base for them."""
    bases[:] = [b for b in bases if not getattr(b, "__module__", "").startswith("wxlogistics._")]


def _public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a short name in a docstring (``:class:`AsyncLogistics```) to the public one.

    Docstrings inside the package name public classes by their short name; outside the
    module that defines them Sphinx would not find them.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    short = target.rpartition(".")[2]
    for module in (wxlogistics, _events()):
        if short in getattr(module, "__all__", ()):
            domain = env.get_domain("py")
            found = f"{module.__name__}.{short}"
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], found, node, contnode
            )
    return None


def _events() -> Any:
    import wxlogistics.events

    return wxlogistics.events


def setup(app: Any) -> dict[str, Any]:
    """Render the generated tables when the build starts; register ``wxlogistics-cli-help``."""
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    # A private napoleon method: fail loudly if a Sphinx release renames it.
    assert hasattr(GoogleDocstring, "_parse_attribute_docstring")
    GoogleDocstring._parse_attribute_docstring = _attribute_docstring_as_written  # type: ignore[method-assign]
    app.connect("builder-inited", write_generated)
    app.connect("autodoc-process-bases", _drop_private_bases)
    app.connect("missing-reference", _public_name)
    app.add_directive("wxlogistics-cli-help", _cli_help_directive())
    app.add_directive("wxlogistics-latest-benchmark", _benchmark_directive())
    app.add_object_type("errcode", "errcode", objname="WeChat errcode")
    app.add_directive("wxlogistics-errcode-targets", _errcode_targets_directive())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
