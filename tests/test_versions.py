"""Versions mean something: every artifact's (and the students') version is recorded with the hash of the code that
makes it, a code change without a new version fails here, and the hash ignores what cannot change the data."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mycelium_datasets
import mycelium_models
import mycelium_run
from mycelium_datasets.run_folder import module_hash
from mycelium_run import versions


@pytest.fixture(scope="module")
def current() -> dict[str, versions.Versioned]:
    return versions.versioned()


def test_every_version_is_recorded_with_its_code(current):
    """The CI guard: change an artifact's code and this fails until its version is bumped and recorded."""
    found = versions.problems(current=current)
    assert not found, "versions.json is out of step with the code:\n" + "\n".join(found)
    assert list(versions.read_table()["versions"]) == [*versions.BUILDERS, "students"]


def _table_with(current, name: str, **changes) -> dict:
    """The recorded table as if ``name`` had been recorded with ``changes`` (another code hash or version)."""
    table = {"versions": {n: {"version": v.version, "code": v.code} for n, v in current.items()}, "modules": {}}
    table["versions"][name].update(changes)
    return table


def test_a_code_change_under_the_same_version_says_what_to_do(current):
    table = _table_with(current, "op_pairs", code="0" * 16)
    (line,) = versions.problems(table, current)
    assert line.startswith(f"op_pairs: its code changed since version {current['op_pairs'].version} was recorded")
    assert "bump mycelium_datasets.op_pairs.VERSION" in line and versions.RECORD in line
    table = _table_with(current, "io_tags", code="0" * 16)
    assert "bump mycelium_datasets.student_sets.VERSION" in versions.problems(table, current)[0]
    table = _table_with(current, "students", code="0" * 16)
    assert "bump mycelium_models.train.STUDENT_VERSION" in versions.problems(table, current)[0]


def test_record_refuses_a_changed_hash_under_an_unchanged_version_and_records_a_bump(current, tmp_path):
    path = tmp_path / "versions.json"
    path.write_text(json.dumps(_table_with(current, "op_pairs", code="0" * 16)))
    before = path.read_text()
    with pytest.raises(versions.VersionNotBumpedError, match=r"op_pairs \(bump mycelium_datasets\.op_pairs\.VERSION"):
        versions.record(path, current)
    assert path.read_text() == before  # nothing written
    old, new = current["op_pairs"].version, _next_patch(current["op_pairs"].version)
    bumped = {**current, "op_pairs": dataclasses.replace(current["op_pairs"], version=new)}
    assert versions.record(path, bumped) == [f"op_pairs: {old} -> {new} (code changed)"]
    table = versions.read_table(path)
    assert table["versions"]["op_pairs"] == {"version": new, "code": current["op_pairs"].code}
    assert versions.problems(table, bumped) == []
    # a version that goes down is refused even with the same code; one that goes up is recorded without a change
    with pytest.raises(versions.VersionNotBumpedError):
        versions.record(path, current)
    old, new = current["bindings"].version, _next_patch(current["bindings"].version)
    again = {**bumped, "bindings": dataclasses.replace(current["bindings"], version=new)}
    assert versions.record(path, again) == [f"bindings: {old} -> {new} (same code)"]


def _next_patch(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


SOURCE = '''"""A module."""

VERSION = "1.0.0"


def f(x, y=2):
    """Add."""
    return x + y  # the sum
'''

SAME = '''"""A module, documented differently."""

# a comment
VERSION = "1.0.1"


def f(
    x,
    y=2,
):
    return (x + y)
'''


def test_the_code_hash_ignores_comments_docstrings_formatting_and_the_version(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = tmp_path / "mycelium_hash_probe.py"
    hashes = []
    for source in (SOURCE, SAME, SOURCE.replace("y=2", "y=3"), SOURCE.replace("x + y", "y + x")):
        probe.write_text(source)
        hashes.append(module_hash("mycelium_hash_probe"))
    assert hashes[0] == hashes[1]  # nothing that can change what the code does
    assert len({hashes[0], hashes[2], hashes[3]}) == 3  # a default and an expression do


def test_the_dataset_card_template_counts(tmp_path, monkeypatch):
    package = tmp_path / "mycelium_hash_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("TEMPLATE = 'card.md'\n")
    (package / "card.md").write_text("# {{ artifact }}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = module_hash("mycelium_hash_probe_pkg")
    (package / "card.md").write_text("# {{ artifact }} (v{{ version }})\n")
    assert module_hash("mycelium_hash_probe_pkg") != before
    assert "mycelium_datasets.cards" in versions.versioned()["problems"].modules


PROBE_IDENTITY = """
import json, sys
from pathlib import Path
from mycelium_models import pointers
from mycelium_run.stage import StudentsConfig, _identity

run = Path(sys.argv[1])
(run / ".mycelium").mkdir(parents=True)
(run / ".mycelium" / "bindings.json").write_text(json.dumps({"fingerprint": "0123456789abcdef"}))
source = Path(pointers.__file__)
if not source.is_relative_to(sys.argv[2]):
    sys.exit(f"refusing to edit {source}: not in the copy {sys.argv[2]}")
ids = [_identity(run, "binder", StudentsConfig(), "backbone")]
source.write_text(source.read_text() + "\\n# a comment changes nothing the binder does\\n")
ids.append(_identity(run, "binder", StudentsConfig(), "backbone"))
source.write_text(source.read_text() + "\\nPROBE_OFFSET = 1\\n")
ids.append(_identity(run, "binder", StudentsConfig(), "backbone"))
print(json.dumps({"pointers": str(source), "identities": ids}))
"""


def test_editing_the_binders_input_encoding_retrains_the_binder(tmp_path):
    """A kept student's identity covers every module its training runs (the code closure), not a hand-kept list:
    an edit to ``pointers`` (the binder's input encoding) gives the binder a new identity, so ``mycelium run``
    retrains it; a comment does not. Run on a copy of the packages in a fresh process, so no file here is edited."""
    code = tmp_path / "code"
    for package in (mycelium_datasets, mycelium_models, mycelium_run):
        folder = Path(package.__file__).parent
        shutil.copytree(folder, code / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE_IDENTITY, str(tmp_path / "run"), str(code)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["pointers"]).is_relative_to(code)  # the copy was edited, not this checkout
    before, commented, edited = result["identities"]
    assert commented == before
    assert edited != before
