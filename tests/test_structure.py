"""The package's shape holds: imports only run downward, the wings do not import each other,
no file or function grows past its limit, and a registry line is all a new controller needs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

PKG = Path(__file__).resolve().parents[1] / "ponder"
# Lower layers first; a module may import its own layer or any lower one, never a higher one.
LAYERS = [
    {"types", "assignments", "assets"},
    {"prompts", "engines", "verifiers", "benchmarks"},
    {"controllers"},
    {"sdk", "eval", "rl", "serve"},
    {"cli"},
]
WINGS = {"sdk", "eval", "rl", "serve"}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        yield path, (rel.parts[0].removesuffix(".py") if len(rel.parts) else "")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ponder."):
            names.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names += [a.name.split(".")[1] for a in node.names if a.name.startswith("ponder.")]
    return names


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_imports_only_run_downward_and_wings_stay_apart():
    wrong = []
    for path, part in _modules():
        if part == "__init__":
            continue
        for target in _imports(path):
            if target == part:
                continue
            if _layer(target) > _layer(part) or (part in WINGS and target in WINGS):
                wrong.append(f"{path.relative_to(PKG)} imports ponder.{target}")
    assert not wrong, wrong


def test_no_file_over_500_lines_and_no_function_over_80():
    too_long = []
    for path, _ in _modules():
        text = path.read_text()
        if text.count("\n") > 500:
            too_long.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                too_long.append(f"{path.name}:{node.lineno} {node.name}")
    assert not too_long, too_long


def test_engines_import_nothing_from_their_package_face():
    # the registry names classes by string, so no engine module needs `ponder.engines` itself
    for path in (PKG / "engines").glob("*.py"):
        if path.name != "__init__.py":
            tree = ast.parse(path.read_text())
            faces = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "ponder.engines"]
            assert not faces, f"{path.name} imports from ponder.engines (a cycle through the package face)"


def test_a_registry_line_is_all_a_new_controller_needs(monkeypatch, tmp_path):
    """A controller defined in its own module and registered by one line runs from the CLI with -o options."""
    from ponder.cli import app
    from ponder.controllers import REGISTRY

    module = tmp_path / "echo_controller.py"
    module.write_text(
        "from dataclasses import dataclass\n"
        "from ponder.types import Solution, Trace\n"
        "@dataclass(frozen=True)\n"
        "class Echo:\n"
        "    answer: str = '0'\n"
        "    name = 'echo'\n"
        "    async def run(self, problem, engine, *, verifier=None):\n"
        "        return Solution(self.answer, [Trace(answer=self.answer)], controller=self.name)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(REGISTRY, "echo", "echo_controller:Echo")
    from ponder.controllers import get_controller

    assert get_controller("echo", answer="7").answer == "7"
    with pytest.raises(ValueError, match="has no option nope"):
        get_controller("echo", nope=1)
    result = CliRunner().invoke(app, ["solve", "Compute 001+002", "-c", "echo", "-o", "answer=forty-two", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer"] == "forty-two"
