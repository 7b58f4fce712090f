"""The package's layout rules, checked over the real source with `ast` (docs/architecture.md,
"Rules the layout keeps"): the import rules between the rooms of `ftutils.local`, no import
cycle, no use of another module's private names, short functions and modules, small folders,
and each base model's name written in one place.

Imports count wherever they are written (a function-level import is still a dependency), except
under `if TYPE_CHECKING:`. Importing `a.b.c` is counted as depending on `a.b.c` only, not on the
packages `a` and `a.b` it passes through.
"""
from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from ftutils import openai_rules
from ftutils.local.models import catalog
from tests.conftest import ROOT

PACKAGE = ROOT / "ftutils"
LOCAL = "ftutils.local"
ROOMS = ("models", "store", "training", "inference", "worker", "api")
CLIENT = ("ftutils.train", "ftutils.evaluate", "ftutils.widgets", "ftutils.plots", "ftutils.suite", "ftutils.data")
# The training-file validator is OpenAI's file rules, which the server applies as the client does:
# the worker validates with it, the trainer reads lines through its reader. Nothing else of the client.
LOCAL_MAY_IMPORT = {"ftutils.data.validate", "ftutils.data.load"}
# What each part of ftutils.local may import of the rest of ftutils.local (itself always).
ALLOWED = {
    "models": set(),
    "store": set(),
    "training": {"models"},
    "inference": {"models"},
    "settings": {"models"},
    "worker": {"models", "store", "training", "settings", "server_process"},
    "export": {"models", "store", "settings"},
    "server_process": {"settings"},
    "api": {"models", "store", "inference", "worker", "settings"},
    "cli": {"api", "settings", "server_process", "models"},
}
# What the rest of ftutils may import of ftutils.local (besides `ftutils.cli`, the dispatcher): the
# models room (the table of base models, their tokenizer and chat format) and the helper that
# spawns a server.
CLIENT_MAY_IMPORT = ("ftutils.local.models", "ftutils.local.server_process")
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
MAX_FOLDER_MODULES = 10


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, inner.end_lineno + 1))
    return lines


def imports(name: str) -> set[str]:
    """The ftutils modules that module `name` imports."""
    path, tree = sources()[name]
    known = sources()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip = _type_checking_lines(tree)
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def part_of(name: str) -> str | None:
    """The room (or top-level module) of ftutils.local that `name` belongs to."""
    if not name.startswith(LOCAL + "."):
        return None
    return name.split(".")[2]


def test_every_local_module_belongs_to_a_part_with_rules():
    parts = {part_of(m) for m in sources() if part_of(m)}
    assert parts == ALLOWED.keys(), "a new room or top-level module of ftutils.local needs its rule in ALLOWED"
    assert set(ROOMS) <= parts


def test_local_rooms_import_only_what_the_rules_allow():
    broken = []
    for name in sources():
        part = part_of(name)
        if part is None:
            continue
        for target in imports(name):
            other = part_of(target)
            if target.startswith(CLIENT) and target not in LOCAL_MAY_IMPORT:
                broken.append(f"{name} imports the client package {target}")
            elif other is not None and other != part and other not in ALLOWED[part]:
                broken.append(f"{name} ({part}) imports {target} ({other})")
            elif target == LOCAL and part in ROOMS:
                broken.append(f"{name} imports the package ftutils.local (its __init__) instead of what it needs")
    assert not broken, "\n".join(broken)


def test_only_the_cli_imports_the_api():
    importers = {name for name in sources() for target in imports(name)
                 if part_of(target) == "api" and part_of(name) != "api"}
    assert importers <= {"ftutils.local.cli"}, importers


def test_the_client_reads_the_local_backend_only_through_its_public_seams():
    broken = [f"{name} imports {target}" for name in sources() if part_of(name) is None and name != LOCAL
              for target in imports(name)
              if target.startswith(LOCAL) and not target.startswith(CLIENT_MAY_IMPORT) and name != "ftutils.cli"]
    assert not broken, "\n".join(broken)


def test_no_import_cycle():
    graph = {name: imports(name) for name in sources()}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "\n".join(cycles)


def _private(attribute: str) -> bool:
    return attribute.startswith("_") and not attribute.startswith("__")


def private_uses(tree: ast.Module, known: set[str]) -> list[str]:
    """`from m import _x` and `m._x` where m names an ftutils module."""
    modules = {}  # local name -> module it stands for
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ftutils"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "ftutils"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("ftutils", "tests")):
            for alias in node.names:
                if _private(alias.name):
                    uses.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                elif f"{node.module}.{alias.name}" in known:
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules:
                uses.append(f"line {node.lineno}: {ast.unparse(node)}")
    return uses


# Tests of the local backend too (the rest of tests/ holds five white-box uses of private helpers,
# in tests/data and tests/evaluate, left to those packages' owners).
@pytest.mark.parametrize("folder", ["ftutils", "tests/local", "benchmarks", "scripts"])
def test_no_module_uses_another_modules_private_names(folder):
    known = set(sources())
    broken = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        broken += [f"{path.relative_to(ROOT)} {use}" for use in private_uses(ast.parse(path.read_text()), known)]
    assert not broken, "\n".join(broken)


def test_no_function_over_60_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, tree in sources().values() for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_no_module_over_400_lines():
    long = [f"{path.relative_to(ROOT)} ({n} lines)" for path, _ in sources().values()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "\n".join(long)


def test_no_folder_of_the_local_backend_holds_more_than_10_modules():
    # Scoped to ftutils.local: ftutils/data and ftutils/evaluate hold 13 each today, outside this
    # rule's reach (issue 18 restructured the local backend only).
    folders = {p.parent for p in (PACKAGE / "local").rglob("*.py")}
    crowded = {f"{f.relative_to(ROOT)} ({n})" for f in folders
               if (n := len([p for p in f.glob("*.py") if p.name != "__init__.py"])) > MAX_FOLDER_MODULES}
    assert not crowded, crowded


def test_each_local_base_model_is_named_in_the_catalog_only():
    names = [m.id for m in catalog.local_models()]
    assert set(names) >= {"smollm2-135m-instruct", "tiny-smollm2"}
    pattern = re.compile("|".join(re.escape(n) for n in names))
    writers = {module_name(p) for p, _ in sources().values() if pattern.search(p.read_text())}
    assert writers == {"ftutils.local.models.catalog"}, writers


def _string_constants(tree: ast.Module) -> set[str]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_openais_model_ids_are_written_in_openai_rules_only():
    ids = (set(openai_rules.TOKEN_LIMITS) | set(openai_rules.TRAINING_PRICES) | set(openai_rules.FINE_TUNABLE_MODELS)
           | {openai_rules.DEFAULT_MODEL} | set(openai_rules.SHUTDOWN_DATES) | set(openai_rules.SHORT_NAMES)
           | {family for family, _ in openai_rules.FAMILY_ENCODINGS})
    writers = {name for name, (_, tree) in sources().items() if ids & _string_constants(tree)}
    assert writers == {"ftutils.openai_rules"}, writers


def test_only_the_store_runs_sql():
    sql = re.compile(r"^\s*(SELECT\s|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|(CREATE|ALTER|DROP)\s+(TABLE|INDEX)|PRAGMA\s)")
    outside = {name for name, (_, tree) in sources().items() if not name.startswith(f"{LOCAL}.store")
               and ("sqlite3" in imports_any(tree) or any(sql.match(text) for text in _string_constants(tree)))}
    assert not outside, outside


def imports_any(tree: ast.Module) -> set[str]:
    """Every module name an import statement of `tree` names (ftutils or not)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names
