"""The package's import floors, read from the source with `ast`: no cycle, through imports inside
functions too; `lmscale.config` stands on nothing of lmscale; an import inside a function says why.
And the house's rules: the top of the package holds only the CLI, the config and the plan-time
checks; each `lmscale <command>` lives in a module of its name, a leaf that no other module imports;
only the laws package asks a law which form it has (`loss_form(`).

An import inside a function hides a cycle from Python (the module is read only when the function
runs) but not from a reader: the module still stands on the other. So the graph counts every
import, at module level or in a function. LMSCALE_IMPORTS_SRC points the tests at another source
tree (its `src/` folder), to show them failing on an older commit.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from tests.workflow import REPO

SRC = Path(os.environ.get("LMSCALE_IMPORTS_SRC", REPO / "src"))
PACKAGE = "lmscale"
DEFERRED = "# deferred:"


@dataclass(frozen=True)
class Import:
    """One module of lmscale that a module imports, where, and whether the import says why."""

    source: str  # the importing module
    target: str  # the imported module of lmscale
    line: int
    in_function: bool
    commented: bool  # a `# deferred:` comment on its line or above its group of imports


def modules(src: Path) -> dict[str, Path]:
    """Every module of the package under `src`, by its dotted name (a package by its own)."""
    found = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_of(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def targets(node: ast.Import | ast.ImportFrom, name: str, path: Path, known: dict[str, Path]) -> list[str]:
    """The modules of lmscale an import statement reads: each named module, and the packages above
    it (importing lmscale.a.b runs lmscale/a/__init__.py first)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = package_of(name, path).split(".")
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        # `from x import y`: y is a module when x/y.py exists, else a name defined in x.
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found = []
    # The packages above the importing module itself Python has begun before the module runs: an
    # import of a sibling reads none of them again (lmscale/jobs/__init__.py gathers its submodules).
    begun = {".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1)}
    for module in named:
        parts = module.split(".")
        # The package itself only when named: its __init__ is a docstring.
        for depth in range(len(parts), 1 if len(parts) > 1 else 0, -1):
            prefix = ".".join(parts[:depth])
            if prefix in known and prefix != name and prefix not in found and (depth == len(parts) or prefix not in begun):
                found.append(prefix)
    return [module for module in found if module == PACKAGE or module.startswith(PACKAGE + ".")]


def statement_lists(tree: ast.AST):
    """Every list of statements in a tree (a module's body, a function's, an if's branches...)."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            statements = getattr(node, field, None)
            if isinstance(statements, list) and statements and isinstance(statements[0], ast.stmt):
                yield statements


def commented_imports(tree: ast.AST, lines: list[str]) -> set[int]:
    """The ids of the import statements that carry a `# deferred:` comment: on their own line, on the
    line above, or above the group of imports they stand in."""
    commented: set[int] = set()
    for statements in statement_lists(tree):
        previous = None
        for statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                above = lines[statement.lineno - 2].strip() if statement.lineno > 1 else ""
                own = lines[statement.lineno - 1]
                in_group = (isinstance(previous, (ast.Import, ast.ImportFrom)) and id(previous) in commented
                            and previous.end_lineno == statement.lineno - 1)
                if above.startswith(DEFERRED) or DEFERRED in own or in_group:
                    commented.add(id(statement))
            previous = statement
    return commented


def imports(src: Path) -> list[Import]:
    """Every import of an lmscale module by an lmscale module under `src`."""
    known = modules(src)
    found = []
    for name, path in known.items():
        text = path.read_text()
        tree = ast.parse(text, filename=str(path))
        commented = commented_imports(tree, text.splitlines())
        in_function = {id(node) for function in ast.walk(tree)
                       if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                       for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in targets(node, name, path, known):
                    found.append(Import(name, target, node.lineno, id(node) in in_function, id(node) in commented))
    return found


def function_level_imports(src: Path) -> list[tuple[str, int, str, bool]]:
    """(file, line, statement, commented) of every import inside a function, lmscale's or a library's."""
    found = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text, filename=str(path))
        commented = commented_imports(tree, text.splitlines())
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for node in ast.walk(function):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        found.append((path.relative_to(src).as_posix(), node.lineno, ast.unparse(node),
                                      id(node) in commented))
    return sorted(set(found))


def cycles(edges: list[Import]) -> list[tuple[list[str], list[Import]]]:
    """Each strongly connected group of modules (Tarjan): its modules, and the shortest cycle through
    the first of them, as its imports in order."""
    graph: dict[str, list[Import]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for edge in graph[module]:
            if edge.target not in index:
                connect(edge.target)
                low[module] = min(low[module], low[edge.target])
            elif edge.target in stack:
                low[module] = min(low[module], index[edge.target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == module:
                    break
            if len(group) > 1 or any(edge.target == module for edge in graph[module]):
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            connect(module)
    return [(sorted(group), shortest_cycle(graph, group)) for group in groups]


def shortest_cycle(graph: dict[str, list[Import]], group: set[str]) -> list[Import]:
    """The shortest cycle through the group's first module, by breadth-first search inside the group."""
    start = min(group)
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for edge in graph[module]:
                if edge.target == start:
                    return paths[module] + [edge]
                if edge.target in group and edge.target not in paths:
                    paths[edge.target] = paths[module] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def describe(cycle: list[Import]) -> str:
    """a -> b (a:12, in a function) -> a (b:3)"""
    steps = [f"{edge.target} (line {edge.line} of {edge.source}{', in a function' if edge.in_function else ''})"
             for edge in cycle]
    return " -> ".join([cycle[0].source, *steps])


# ---- the checks, on the package ------------------------------------------------------


def test_the_package_has_no_import_cycle():
    found = cycles(imports(SRC))
    assert not found, "import cycles:\n" + "\n".join(
        f"{len(group)} modules import each other ({', '.join(group)}), e.g. {describe(cycle)}"
        for group, cycle in found)


def test_config_is_the_floor_and_imports_nothing_from_lmscale():
    assert "lmscale.config" in modules(SRC)
    above = [f"{edge.target} (line {edge.line})" for edge in imports(SRC) if edge.source == "lmscale.config"]
    assert above == [], f"lmscale.config imports {', '.join(above)}: it must stand on nothing of lmscale"


def test_an_lmscale_import_inside_a_function_says_why():
    """Inside a function, an import of lmscale defers a heavy library (its comment says which);
    anything else is a cycle dodged or an import that belongs at the top."""
    silent = sorted({f"{edge.source} line {edge.line}: {edge.target}" for edge in imports(SRC)
                     if edge.in_function and not edge.commented})
    assert silent == [], "imports of lmscale inside functions without a `# deferred:` comment:\n" + "\n".join(silent)


def test_every_import_inside_a_function_says_why():
    silent = [f"{path}:{line}: {statement}" for path, line, statement, commented in function_level_imports(SRC)
              if not commented]
    assert silent == [], "imports inside functions without a `# deferred: <why>` comment:\n" + "\n".join(silent)


TOP_MODULES = {"lmscale", "lmscale.cli", "lmscale.config", "lmscale.checks"}
LAWS_PACKAGE = "lmscale.laws"


def command_modules(src: Path) -> dict[str, str]:
    """`lmscale <command>` -> its module, read from cli.py's COMMANDS with `ast` (not imported, so
    LMSCALE_IMPORTS_SRC can point at another tree)."""
    tree = ast.parse((src / PACKAGE / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and "COMMANDS" in ast.unparse(node).split("=")[0]:
            table = ast.literal_eval(node.value)
            return {command: module for command, (module, _) in table.items()}
    raise AssertionError("cli.py has no COMMANDS table")


def form_lookups(src: Path) -> list[str]:
    """file:line of every `loss_form(` outside the laws package."""
    found = []
    for name, path in modules(src).items():
        if name == LAWS_PACKAGE or name.startswith(LAWS_PACKAGE + "."):
            continue
        found += [f"{path.relative_to(src).as_posix()}:{number}"
                  for number, line in enumerate(path.read_text().splitlines(), 1) if "loss_form(" in line]
    return found


def test_the_top_of_the_package_holds_only_the_cli_the_config_and_the_checks():
    top = {name for name in modules(SRC) if name.count(".") <= 1 and not (SRC / PACKAGE / name.split(".")[-1]).is_dir()}
    assert top - TOP_MODULES == set(), (f"modules at the top of src/lmscale besides cli, config and checks: "
                                        f"{sorted(top - TOP_MODULES)}; each belongs in the package of its stage")


def test_each_command_lives_in_a_module_of_its_name():
    misnamed = {command: module for command, module in command_modules(SRC).items()
                if module.rpartition(".")[2] != command.replace("-", "_") or module not in modules(SRC)}
    assert misnamed == {}, f"commands not in a module of their name: {misnamed}"


def test_no_module_imports_a_command_module():
    """Commands are leaves: what two commands share lives in a library module below both."""
    commands = set(command_modules(SRC).values())
    found = sorted({f"{edge.source} line {edge.line}: {edge.target}" for edge in imports(SRC)
                    if edge.target in commands and edge.source != "lmscale.cli"})
    assert found == [], "command modules imported by other modules (move what they share below both):\n" + "\n".join(
        found)


def test_only_the_laws_package_asks_a_law_its_form():
    found = form_lookups(SRC)
    assert found == [], f"`loss_form(` outside {LAWS_PACKAGE} (ask the law object instead): {', '.join(found)}"


# ---- the checks, checked -------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_a_function_a_relative_import_and_a_subpackage_is_found(tmp_path):
    src = write_package(tmp_path, {
        "__init__.py": "",
        "config.py": "import json\n",
        "jobs.py": "from lmscale import config\nfrom lmscale.config import json\n",
        "training/__init__.py": '"""Contents."""\n',
        "training/loop.py": "from . import budget\n",
        "training/budget.py": "from ..jobs import config\n\ndef f():\n    from lmscale.training.loop import x\n",
        "other.py": "import lmscale.training.loop\n",
    })
    edges = imports(src)
    assert ("lmscale.training.loop", "lmscale.training.budget") in {(e.source, e.target) for e in edges}
    assert ("lmscale.training.budget", "lmscale.jobs") in {(e.source, e.target) for e in edges}
    assert {("lmscale.other", "lmscale.training"), ("lmscale.other", "lmscale.training.loop")} <= {
        (e.source, e.target) for e in edges}
    ((group, cycle),) = cycles(edges)
    assert group == ["lmscale.training.budget", "lmscale.training.loop"]
    assert describe(cycle) == ("lmscale.training.budget -> lmscale.training.loop (line 4 of lmscale.training.budget, "
                               "in a function) -> lmscale.training.budget (line 1 of lmscale.training.loop)")
    write_package(tmp_path, {"training/budget.py": "from ..jobs import config\n"})
    assert cycles(imports(src)) == []


def test_a_comment_covers_the_imports_of_its_group_only(tmp_path):
    src = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": ("def f():\n    # deferred: heavy\n    import torch\n    from lmscale import b\n\n"
                 "    import numpy\n\n"
                 "def g():\n    from lmscale import b  # deferred: heavy too\n"),
        "b.py": "",
    })
    assert [(line, commented) for _, line, _, commented in function_level_imports(src)] == [
        (3, True), (4, True), (6, False), (9, True)]


def test_a_command_module_imported_by_another_and_a_form_lookup_are_found(tmp_path):
    src = write_package(tmp_path, {
        "__init__.py": "",
        "cli.py": 'COMMANDS: dict = {"fit-loss": ("lmscale.analysis.fit_loss", "help"),'
                  ' "predict": ("lmscale.analysis.chain", "help")}\n',
        "analysis/__init__.py": '"""Contents."""\n',
        "analysis/fit_loss.py": "def main(args):\n    return 0\n",
        "analysis/chain.py": "from lmscale.analysis.fit_loss import main\n\nf = laws.loss_form('gadre')\n",
        "laws/__init__.py": '"""Contents."""\n',
        "laws/forms.py": "def loss_form(name):\n    return name\n",
    })
    assert command_modules(src) == {"fit-loss": "lmscale.analysis.fit_loss", "predict": "lmscale.analysis.chain"}
    commands = set(command_modules(src).values())
    assert [(e.source, e.target) for e in imports(src) if e.target in commands] == [
        ("lmscale.analysis.chain", "lmscale.analysis.fit_loss")]
    assert form_lookups(src) == ["lmscale/analysis/chain.py:3"]
