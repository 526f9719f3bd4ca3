"""The README's claims point at tests that exist, and every Python example of the README and docs/ runs as written:
a renamed test or a stale example breaks this, not the reader's trust."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- every Python example of the README and docs/ runs, verbatim ------------------------------------------------------

PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOLVER_REPO, SOLVER_REVISION = "my-org/mycelium-demo-solver", "v1.0.0"  # the README's released solver


def python_examples(path: Path) -> list[tuple[int, str]]:
    """Each fenced ``python`` block of a Markdown file: the line it starts on and its code, as written."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


EXAMPLES = [(path, line, code) for path in DOCS for line, code in python_examples(path)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_solver) -> tuple[Path, dict]:
    """A folder to run the examples in, holding what they read: ``runs/demo`` up to ``io_tags`` (the data stages of
    ``mycelium run --out runs/demo --config tiny`` up to it, with the run folder's card) and, in a Hub cache read
    offline, the released solver ``my-org/mycelium-demo-solver`` at ``v1.0.0`` (tiny students, laid out as
    ``mycelium release`` uploads them)."""
    from mycelium_datasets.pipeline import build
    from mycelium_run.job import load_preset, split_options

    from conftest import save_solver

    cwd = tmp_path_factory.mktemp("readme")
    build(cwd / "runs" / "demo", "io_tags", split_options(load_preset("tiny")))
    repo = cwd / "hub" / f"models--{SOLVER_REPO.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / SOLVER_REVISION).write_text(commit)
    save_solver(tiny_solver, repo / "snapshots" / commit)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_CACHE": str(cwd / "hub")}
    return cwd, env


def run_example(code: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``code`` as a user would paste it: a fresh Python process in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "path, line, code", EXAMPLES, ids=[f"{path.relative_to(ROOT)}:{line}" for path, line, _ in EXAMPLES]
)
def test_every_python_example_runs_verbatim(workspace, path, line, code):
    cwd, env = workspace
    result = run_example(code, cwd, env)
    assert result.returncode == 0, f"{path.name}:{line} failed:\n{result.stderr[-3000:]}"


def test_the_examples_are_found_and_a_failing_one_fails(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(python_examples(ROOT / "README.md")) == readme.count("```python") >= 3
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nimport sys\n\nsys.exit(3)\n```\n\n```bash\nfalse\n```\n")
    assert python_examples(page) == [(3, "import sys\n\nsys.exit(3)\n")]
    assert run_example(python_examples(page)[0][1], tmp_path, dict(os.environ)).returncode == 3


# -- links stay inside the repository; install lines work from a clone -----------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
PIP_INSTALL = re.compile(r"pip install ([^`\n)]+)")


def relative_links(path: Path) -> list[str]:
    """The targets of a Markdown file's links that are not web addresses or anchors within the page."""
    targets = [m.group(1).split("#")[0] for m in LINK.finditer(path.read_text(encoding="utf-8"))]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


def test_every_link_of_the_readme_and_docs_is_a_file_in_the_repository():
    broken = []
    for path in DOCS:
        for target in relative_links(path):
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, f"links that leave the repository or name nothing: {broken}"
    assert "docs/design.md" in relative_links(ROOT / "README.md")  # the design is in the repository


def test_the_link_check_sees_a_link_outside_the_repository(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[design](../shared/DESIGN.md), [hub](https://huggingface.co), [top](#top), [x](x.md#part)\n")
    assert relative_links(page) == ["../shared/DESIGN.md", "x.md"]


def test_no_install_line_names_the_unpublished_distribution():
    """Until a release is on PyPI, ``pip install <our distribution>`` fails for a reader: the README, the docs and
    the released cards' template install from the repository (``pip install -e .``, ``scripts/install.sh``)."""
    import configparser

    from mycelium_run import release

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    ours = config["metadata"]["name"]
    texts = {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in DOCS}
    texts["mycelium_run.release.INSTALL"] = release.INSTALL
    named = {where: PIP_INSTALL.findall(text) for where, text in texts.items()}
    assert not [(w, line) for w, lines in named.items() for line in lines if ours in line.split()]
    assert "-e ." in " ".join(named["README.md"]) and (ROOT / "scripts" / "install.sh").is_file()
