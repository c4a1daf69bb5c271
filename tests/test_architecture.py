"""The tree's shape (issue #17), read from the source with `ast`: module size, the direction of
imports, no SQL in `app`, one BM25 and one dense-leg builder. None of these needs the database."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

QUIRE = Path(__file__).resolve().parents[1] / "quire"
MAX_LINES = 500
# Top to bottom: a package imports its own modules and those of the packages below it.
LAYERS = ["app", "agent", "memory", "content", "runtime", "core"]
# The client is the HTTP API's SDK for scripts and agents without the server's dependencies:
# only `app` (the CLI) uses it, and it uses only the root of the server's exceptions (a module
# that imports nothing), so that the CLI reports the client's errors and the server's one way.
CLIENT_MAY_IMPORT = {"quire.client", "quire.core.errors"}
# Migrations describe every package's tables (models, tenancy); nothing but `app` runs them.
MIGRATIONS = "migrations"


def modules(under: Path = QUIRE) -> Iterator[Path]:
    yield from sorted(under.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(QUIRE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """`app`, `core`, ...: the package under quire/ that a module belongs to ("" for quire/ itself)."""
    parts = path.relative_to(QUIRE).parts
    return parts[0] if len(parts) > 1 else ""


def is_package(name: str) -> bool:
    return (QUIRE.parent / name.replace(".", "/")).is_dir()


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module `path` imports (line, dotted name): at the top, in functions, under
    TYPE_CHECKING alike, since an import a type checker follows still ties the two packages.
    (Modules named at run time, `importlib.import_module(...)`, are out of its sight: the few
    there are load providers and partitioners of their own package, or programs in `app`.)"""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = dotted(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if is_package(name):  # `from quire.pkg import mod`: the modules named
                for alias in node.names:
                    yield node.lineno, f"{name}.{alias.name}"
            else:  # `from quire.pkg.mod import f`: the module
                yield node.lineno, name


def quire_package(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "quire" and len(parts) > 1 else None


def allowed(importer: str, name: str) -> bool:
    target = quire_package(name)
    if target is None or target == importer or importer == "":
        return True
    if importer == "client":
        return any(name == ok or name.startswith(ok + ".") for ok in CLIENT_MAY_IMPORT)
    if target == "client":
        return importer == "app"
    if target == MIGRATIONS:
        return importer == "app"
    if importer == MIGRATIONS:
        return target in LAYERS and target != "app"
    if importer not in LAYERS or target not in LAYERS:
        return False
    return LAYERS.index(target) >= LAYERS.index(importer)


def string_constants(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def relative(path: Path) -> str:
    return str(path.relative_to(QUIRE.parent))


def test_no_module_is_over_500_lines() -> None:
    long = {
        relative(path): lines
        for path in modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, (
        f"modules over {MAX_LINES} lines: "
        + ", ".join(f"{path} ({lines})" for path, lines in sorted(long.items()))
        + ". Split each at its seams: one idea per module, named for what it holds."
    )


def test_imports_run_from_app_down_to_core() -> None:
    upward = [
        f"{relative(path)}:{line} imports {name}"
        for path in modules()
        for line, name in imported(path)
        if not allowed(package_of(path), name)
    ]
    assert not upward, (
        "imports that run against " + " → ".join(LAYERS) + " (client: only app imports it, and it "
        "imports only " + ", ".join(sorted(CLIENT_MAY_IMPORT)) + "):\n  " + "\n  ".join(upward) + "\n"
        "Move the code that needs the higher package up into it, or pass what the lower package "
        "needs down as an argument from the composition root in app."
    )


def test_the_layer_rule_reads_as_the_design_says() -> None:
    assert allowed("agent", "quire.memory.recall")
    assert allowed("content", "quire.core.search.lexical")
    assert not allowed("core", "quire.runtime.models")
    assert not allowed("memory", "quire.agent.tools")
    assert not allowed("agent", "quire.app.services")
    assert not allowed("runtime", "quire.client")
    assert allowed("app", "quire.client.models")
    assert allowed("client", "quire.core.errors")
    assert not allowed("client", "quire.core.db")
    assert not allowed("core", "quire.migrations.tenancy")
    assert allowed("migrations", "quire.memory.models")


# What `app` may take from the database libraries: the session type it passes on, and the
# exceptions it maps to responses. Statements (text, select, update, func, ...) belong to the
# package that owns the table.
APP_MAY_IMPORT_FROM_DB = {
    "sqlmodel": {"Session"},
    "sqlalchemy.orm": {"Session"},
    "sqlalchemy.exc": None,  # any exception
}
# What runs a statement: a session's or a connection's.
STATEMENT_CALLS = {"exec", "execute", "scalar", "scalars", "query", "exec_driver_sql"}
SQL_TEXT = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)


def test_app_holds_no_sql() -> None:
    found: list[str] = []
    for path in modules(QUIRE / "app"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{relative(path)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                found += [
                    f"{where} imports {alias.name}"
                    for alias in node.names
                    if alias.name.split(".")[0] in {"sqlalchemy", "sqlmodel"}
                    and alias.name not in APP_MAY_IMPORT_FROM_DB
                ]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {
                "sqlalchemy",
                "sqlmodel",
            }:
                names = APP_MAY_IMPORT_FROM_DB.get(node.module or "", set())
                found += [
                    f"{where} imports {node.module}.{alias.name}"
                    for alias in node.names
                    if names is not None and alias.name not in names
                ]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in STATEMENT_CALLS
            ):
                found.append(f"{where} calls .{node.func.attr}(...)")
        found += [
            f"{relative(path)}:{constant.lineno} holds SQL text"
            for constant in string_constants(tree)
            if SQL_TEXT.search(constant.value)
        ]
    assert not found, (
        "SQL under quire/app:\n  " + "\n  ".join(found) + "\n"
        "Move the query into a service function of the package that owns the table, and let app "
        "format what it returns."
    )


LEXICAL = QUIRE / "core" / "search" / "lexical.py"
DENSE = QUIRE / "core" / "search" / "dense.py"
# BM25's marks in SQL: its parameters and the corpus's average document length.
BM25_SQL = re.compile(r":k1\b|:b\b|\bavgdl\b")
# pgvector's distance operators (cosine, L2, inner product).
DISTANCE = re.compile(r"<=>|<->|<#>")


def test_one_bm25_and_one_dense_leg_builder() -> None:
    found: list[str] = []
    for path in modules():
        if package_of(path) == MIGRATIONS:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if path != LEXICAL:
            found += [
                f"{relative(path)}:{node.lineno} defines {node.name}: BM25 is built in {relative(LEXICAL)}"
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and "bm25" in node.name.lower()
            ]
            found += [
                f"{relative(path)}:{constant.lineno} writes BM25's formula: use {relative(LEXICAL)}'s bm25()"
                for constant in string_constants(tree)
                if BM25_SQL.search(constant.value)
            ]
        if path != DENSE:
            found += [
                f"{relative(path)}:{constant.lineno} uses a pgvector distance operator: use "
                f"{relative(DENSE)}'s nearest() or similarity()"
                for constant in string_constants(tree)
                if DISTANCE.search(constant.value)
            ]
    assert not found, "a second search implementation:\n  " + "\n  ".join(found)
