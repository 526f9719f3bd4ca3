"""The one-way layering, bottom up: the artifacts (``mycelium_datasets``), the students and solver
(``mycelium_models``), the orchestration (``mycelium_run``: CLI, run, loop, release, report, versions). No module
imports a layer above its own, at module level or inside a function; and inference imports only what it runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("mycelium_datasets", "mycelium_models", "mycelium_run")  # bottom up


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in a file (module level or inside a function), relative imports resolved
    against the file's module name (its path under ``root``)."""
    name = _module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _layer(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def _upward_imports(folder: Path, root: Path = ROOT) -> list[str]:
    own = LAYERS.index(folder.name)
    return [
        f"{path.relative_to(root)}:{line} imports {module} ({LAYERS[_layer(module)]} is above {folder.name})"
        for path in sorted(folder.rglob("*.py"))
        for line, module in _imported_modules(path, root)
        if (_layer(module) or 0) > own
    ]


def test_no_module_imports_a_layer_above_its_own():
    offenders = [o for layer in LAYERS for o in _upward_imports(ROOT / layer)]
    assert not offenders, "imports against the layering:\n" + "\n".join(offenders)


def test_the_guard_sees_upward_imports_inside_functions_and_relative_ones(tmp_path):
    models = tmp_path / "mycelium_models"
    models.mkdir()
    (models / "planted.py").write_text("def f():\n    from mycelium_run.stage import StudentsConfig\n    return 1\n")
    (models / "fine.py").write_text("from mycelium_datasets import numbers\nfrom .planted import f\n")
    run = tmp_path / "mycelium_run"
    run.mkdir()
    (run / "job.py").write_text("from .stage import StudentsConfig\n")
    found = _upward_imports(models, tmp_path)
    assert [o.split(" (")[0] for o in found] == [
        "mycelium_models/planted.py:2 imports mycelium_run.stage",
        "mycelium_models/planted.py:2 imports mycelium_run.stage.StudentsConfig",
    ]
    assert (1, "mycelium_run.stage") in _imported_modules(run / "job.py", tmp_path)
    datasets_layer = tmp_path / "mycelium_datasets"
    datasets_layer.mkdir()
    (datasets_layer / "up.py").write_text("import mycelium_models.solver\n")
    assert len(_upward_imports(datasets_layer, tmp_path)) == 1


LOADED_BY_EACH_MODULE = """
import importlib, json, pkgutil, sys
layer = sys.argv[1]
package = importlib.import_module(layer)
for info in pkgutil.walk_packages(package.__path__, layer + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_every_module_of_a_layer_loads_nothing_above_it():
    """What runs, not only what is written: every module of each layer imported in a fresh process (dynamic imports
    and re-exports included) leaves the layers above it unloaded."""
    for own, layer in enumerate(LAYERS[:-1]):
        out = subprocess.run(
            [sys.executable, "-c", LOADED_BY_EACH_MODULE, layer], capture_output=True, text=True, check=True, cwd=ROOT
        )
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        above = [m for m in loaded if (_layer(m) or 0) > own]
        assert not above, f"importing {layer} loads {above}"
        assert any(m.startswith(layer + ".") for m in loaded)  # the walk imported the layer's modules


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
    assert "torch" in _modules_after_import("import mycelium_cli, mycelium_run.cli")  # the guard sees a load
