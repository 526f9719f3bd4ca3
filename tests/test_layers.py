"""The one-way layering: the artifacts never import the students, and inference imports only what it runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The artifact layer: mycelium_datasets, its builders/ and cards/ included.
ARTIFACT_LAYER = [ROOT / "mycelium_datasets"]


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file, relative imports resolved to their package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: inside the artifact layer by construction
                module = "mycelium_datasets." + module
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_no_module_of_the_artifacts_imports_the_students():
    offenders = []
    for folder in ARTIFACT_LAYER:
        for path in sorted(folder.rglob("*.py")):
            for line, module in _imported_modules(path):
                if module == "mycelium_models" or module.startswith("mycelium_models."):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not offenders, "the artifacts must not import the students:\n" + "\n".join(offenders)


def test_the_guard_sees_an_upward_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from mycelium_models.solver import MyceliumSolver\n    return MyceliumSolver\n")
    assert (2, "mycelium_models.solver") in _imported_modules(planted)


def _modules_after_import(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


# Attention capture, the teacher, the artifacts' builders and the CoT parsers: none of them runs at inference.
NOT_AT_INFERENCE = (
    "mycelium_datasets.capture",
    "mycelium_datasets.teacher",
    "mycelium_datasets.jsd_spans",
    "mycelium_datasets.iaf_maps",
    "mycelium_datasets.clause_regions",
    "mycelium_datasets.op_pairs",
    "mycelium_datasets.equations",
    "mycelium_datasets.builders",
)


def test_the_solver_imports_no_capture_or_parsing_code():
    loaded = _modules_after_import("from mycelium_models.solver import MyceliumSolver")
    assert "mycelium_datasets.numbers" in loaded  # the one definition of a number in text
    assert not loaded & set(NOT_AT_INFERENCE), sorted(loaded & set(NOT_AT_INFERENCE))


def test_the_evaluation_imports_no_capture_code():
    loaded = _modules_after_import("import mycelium_models.evaluation")
    assert not loaded & set(NOT_AT_INFERENCE), sorted(loaded & set(NOT_AT_INFERENCE))


def test_the_command_line_front_imports_nothing_heavy():
    """``mycelium --help`` and an unknown command are answered by ``mycelium_cli`` alone (its docstring): it must not
    load torch, transformers, datasets or either package, each of which costs seconds before the first line."""
    loaded = _modules_after_import("import mycelium_cli")
    heavy = {"torch", "transformers", "datasets", "mycelium_models", "mycelium_datasets"}
    assert not loaded & heavy, sorted(loaded & heavy)
    assert "torch" in _modules_after_import("import mycelium_cli, mycelium_models.cli")  # the guard sees a load
