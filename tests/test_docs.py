"""The README's claims point at tests that exist: a renamed or deleted test breaks this, not the reader's trust."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w*]+))?`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test")}


def test_every_test_the_readme_names_exists():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = NAMED.findall(text)
    assert len(named) >= 20, "the Guarantees section names the tests that prove each claim"
    missing = []
    for file, name in named:
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name:
            names = _test_names(path)
            pattern = re.compile(re.escape(name).replace(r"\*", ".*") + "$")
            if not any(pattern.match(n) for n in names):
                missing.append(f"{file}::{name}")
    assert not missing, f"the README names tests that do not exist: {', '.join(missing)}"


def test_the_check_sees_a_missing_test(tmp_path):
    (tmp_path / "t.py").write_text("def test_here():\n    pass\n")
    assert _test_names(tmp_path / "t.py") == {"test_here"}
    assert "test_gone" not in _test_names(tmp_path / "t.py")
