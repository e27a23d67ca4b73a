"""Project-wide rules that keep the package installable and portable."""

import ast
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_SOURCES = sorted(
    p
    for folder in ("indexer", "search_app", "tests", "bench", "tools")
    for p in (ROOT / folder).rglob("*.py")
    # not what a benchmark installs beside itself (bench/.venv-lucene/...)
    if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
) + [ROOT / "schema.py"]


@pytest.mark.parametrize("path", OUR_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiles_without_syntax_warnings(path):
    # Invalid escape sequences are SyntaxWarnings on 3.12+ and errors later.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


@pytest.mark.parametrize("path", OUR_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_reads_the_shared_folder(path):
    # A user's clone has no ../shared: everything needed is copied in.
    if path.name == "test_source_hygiene.py":
        return
    assert "../shared" not in path.read_text(encoding="utf-8").replace("\\", "/")


def _imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_pure_analysis_modules_do_not_import_whoosh_or_flask():
    for name in ("normalize", "tokenize", "stem", "stopwords", "analysis", "ids", "dates", "records"):
        imported = set(_imported_modules(ROOT / "indexer" / f"{name}.py"))
        assert not {m for m in imported if m.split(".")[0] in ("whoosh", "flask")}, name


def test_only_one_whoosh_distribution_is_installed():
    from importlib import metadata

    names = {
        (d.metadata["Name"] or "").lower()
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("whoosh")
    }
    assert names == {"whoosh-reloaded"}


def test_the_indexer_never_imports_the_search_service():
    # Imports run one way: search_app -> indexer (-> schema's analyzers).
    for path in sorted((ROOT / "indexer").rglob("*.py")):
        imported = set(_imported_modules(path))
        assert not {m for m in imported if m.split(".")[0] == "search_app"}, path
