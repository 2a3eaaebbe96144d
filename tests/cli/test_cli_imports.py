"""The ``cli`` modules import each other as a tree, and share one definition of common options."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from cli.run import main

CLI = Path(__file__).resolve().parents[2] / "cli"


def cli_imports() -> dict[str, set[str]]:
    """Module -> the ``cli`` modules it imports (at any depth of its code)."""
    graph = {}
    for path in sorted(CLI.glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cli."):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("cli.")}
        graph[f"cli.{path.stem}"] = found
    return graph


def test_no_import_circle_in_cli():
    graph = cli_imports()
    assert graph["cli.run"] >= {"cli.recipe", "cli._common", "cli._options"}
    assert "cli.run" not in graph["cli.recipe"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join([*path, module])}"
        if module not in done:
            for dep in graph.get(module, ()):
                visit(dep, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_recipe_imports_without_run():
    code = "import sys, cli.recipe; assert 'cli.run' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CLI.parent)


def test_testbed_choices_are_shared():
    def testbed(command: str) -> tuple[list[str], str]:
        option = next(p for p in main.commands[command].params if p.name == "testbed")
        return list(option.type.choices), option.default

    assert testbed("recipe") == testbed("mammo") == testbed("sweep")
