"""The packages import each other as a tree (no circle, also none inside functions), the CLI
installs under the project's own name, and common options have one definition."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from lca_toolkit_cli.run import main

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"lca_toolkit": ROOT / "lca_toolkit", "mammo_models": ROOT / "mammo_models",
            "lca_toolkit_cli": ROOT / "cli"}  # fmt: skip


def module_name(package: str, folder: Path, path: Path) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at any depth of its code (functions included,
    ``if TYPE_CHECKING:`` blocks left out); ``from package import name`` counts as importing
    ``package.name`` when that is a module, else as importing ``package`` (its ``__init__``)."""
    files = {module_name(p, d, f): f for p, d in PACKAGES.items() for f in d.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        typing_only = {  # `if TYPE_CHECKING:` imports run for type checkers only
            id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
            and getattr(block.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(block)
        }  # fmt: skip
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, base] if base else anchor)
                subs = [f"{base}.{a.name}" for a in node.names]
                names = [n for n in subs if n in files]
                if len(names) < len(subs):  # a name defined in `base` (an __init__'s included)
                    names.append(base)
            else:
                continue
            found |= {n for n in names if n in files and n != module}
        graph[module] = found
    return graph


def test_no_import_circle_anywhere():
    graph = import_graph()
    assert "lca_toolkit_cli.run" in graph and "mammo_models.recipes.plans" in graph
    # The generic toolkit never imports the paper's package or the CLI.
    leaks = {m: d for m, d in graph.items() if m.startswith("lca_toolkit.")
             and any(not x.startswith("lca_toolkit.") and x != "lca_toolkit" for x in d)}  # fmt: skip
    assert not leaks, leaks
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            circle = path[path.index(module) :]
            raise AssertionError(f"import circle: {' -> '.join([*circle, module])}")
        if module not in done:
            for dep in sorted(graph.get(module, ())):
                visit(dep, (*path, module))
            done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_recipe_imports_without_run():
    code = "import sys, lca_toolkit_cli.recipe; assert 'lca_toolkit_cli.run' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_the_cli_installs_under_the_project_s_name_with_every_package_listed():
    """No top-level ``cli`` in a user's site-packages; no sub-package forgotten by the list."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"lca_toolkit_cli": "cli"}
    listed = set(tool["packages"])
    on_disk = {module_name(p, d, f) for p, d in PACKAGES.items() for f in d.rglob("__init__.py")}
    assert listed == on_disk
    assert "cli" not in listed
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert all(v.startswith("lca_toolkit_cli.") for v in scripts.values())


def test_testbed_choices_are_shared():
    def testbed(command: str) -> tuple[list[str], str]:
        option = next(p for p in main.commands[command].params if p.name == "testbed")
        return list(option.type.choices), option.default

    assert testbed("recipe") == testbed("mammo") == testbed("sweep")
