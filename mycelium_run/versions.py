"""Versions mean something: an artifact's version changes when the code that makes it changes.

``versions.json`` (beside this file) records, for each artifact of ``mycelium_datasets.builders.BUILDERS`` and for
the students, the version and the hash of the code that makes it: ``run_folder.code_hash`` over the modules the
builder's module runs (``run_folder.code_closure``, the same hash that is in every fingerprint; for the students,
the modules ``mycelium_models.train`` runs). ``tests/test_versions.py`` recomputes every hash, so a change to an
artifact's code without a new version fails CI with a message naming the artifact, the ``VERSION`` to bump and the
command that records it::

    python -m mycelium_run.versions            # check: what differs from the table, and what to do
    python -m mycelium_run.versions --record   # after bumping: write the new versions and hashes

Recording refuses a changed hash under an unchanged version: that is the point. It records a bumped version with or
without a code change (a version may also move because the upstream data changed).

What counts as "the code that makes it" follows the imports, not the pipeline: an upstream artifact's code change
needs a downstream bump only when the downstream builder's own code imports the changed module. An upstream change
reaches a downstream artifact as data, and its card records the upstream's version and content digest in its
lineage. A release that would put different files under an existing tag is refused (``mycelium release``).

The table lives with the students because it covers both layers; the artifacts never import the students.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from datasets import Version

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.run_folder import code_closure, code_hash, module_hash

TABLE = Path(__file__).with_name("versions.json")
RECORD = "python -m mycelium_run.versions --record"
STUDENTS_MODULE, STUDENTS_VERSION = "mycelium_models.train", "STUDENT_VERSION"
PACKAGES = ("mycelium_datasets", "mycelium_models")


class VersionNotBumpedError(ValueError):
    """The code that makes an artifact changed but its version did not (or went down)."""


@dataclass(frozen=True)
class Versioned:
    """One versioned thing: an artifact, or the students (one version for all of them)."""

    name: str
    version: str
    modules: tuple[str, ...]  # the code that makes it
    constant: str  # where its version is written, e.g. mycelium_datasets.op_pairs.VERSION

    @property
    def code(self) -> str:
        return code_hash(self.modules)


def _version_constant(builder) -> str:
    """Where ``builder.VERSION`` comes from: ``VERSION = datasets.Version(op_pairs.VERSION)`` in the builder class
    (or the base it inherits it from) names ``mycelium_datasets.op_pairs.VERSION``."""
    owner = next(c for c in builder.__mro__ if "VERSION" in vars(c))
    for node in ast.walk(ast.parse(inspect.getsource(owner))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "VERSION" for t in node.targets):
            for ref in ast.walk(node.value):
                if isinstance(ref, ast.Attribute) and ref.attr.endswith("VERSION") and isinstance(ref.value, ast.Name):
                    module = getattr(sys.modules[owner.__module__], ref.value.id, None)
                    if inspect.ismodule(module):
                        return f"{module.__name__}.{ref.attr}"
    return f"{owner.__module__}.{owner.__name__}.VERSION"


def students_code() -> str:
    """The hash of the students' code: every module of both packages that ``mycelium_models.train`` runs (and the
    data files of those that are packages, such as the model card template). A kept student's identity includes it
    (``stage``), and the version table records it under ``students``."""
    return code_hash(code_closure(STUDENTS_MODULE, PACKAGES))


def versioned() -> dict[str, Versioned]:
    """Every artifact in pipeline order, then the students."""
    out = {
        name: Versioned(name, str(builder.VERSION), code_closure(builder.__module__), _version_constant(builder))
        for name, builder in BUILDERS.items()
    }
    version = getattr(importlib.import_module(STUDENTS_MODULE), STUDENTS_VERSION)
    out["students"] = Versioned(
        "students", version, code_closure(STUDENTS_MODULE, PACKAGES), f"{STUDENTS_MODULE}.{STUDENTS_VERSION}"
    )
    return out


def read_table(path: Path = TABLE) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {"versions": {}, "modules": {}}


def problems(table: dict | None = None, current: dict[str, Versioned] | None = None) -> list[str]:
    """What differs between the code and the table, one line each with what to do (empty: all recorded)."""
    table = read_table() if table is None else table
    current = versioned() if current is None else current
    recorded, modules = table.get("versions", {}), table.get("modules", {})
    out = []
    for name, now in current.items():
        was = recorded.get(name)
        if was is None:
            out.append(f"{name} {now.version} is not in {TABLE.name}: run `{RECORD}`")
        elif now.code != was["code"] and now.version == was["version"]:
            changed = [m for m in now.modules if modules.get(m) != module_hash(m)] or ["the set of modules"]
            out.append(
                f"{name}: its code changed since version {now.version} was recorded ({', '.join(changed)}): "
                f"bump {now.constant} (now {now.version}) and run `{RECORD}`"
            )
        elif Version(now.version) < Version(was["version"]):
            out.append(f"{name}: version {now.version} is below the recorded {was['version']}: versions only go up")
        elif now.code != was["code"] or now.version != was["version"]:
            out.append(
                f"{name}: version {now.version} is not recorded (the table has {was['version']}): run `{RECORD}`"
            )
    out += [
        f"{name} is in {TABLE.name} but is no longer built: run `{RECORD}`" for name in recorded if name not in current
    ]
    return out


def record(path: Path = TABLE, current: dict[str, Versioned] | None = None) -> list[str]:
    """Write the current versions and hashes to the table; returns what changed. Raises
    :class:`VersionNotBumpedError` (writing nothing) when any code changed under an unchanged version, or a version
    went down."""
    current = versioned() if current is None else current
    recorded = read_table(path).get("versions", {})
    refused, changes = [], []
    for name, now in current.items():
        was = recorded.get(name)
        if was is None:
            changes.append(f"{name}: {now.version} (new)")
            continue
        if now.code == was["code"] and now.version == was["version"]:
            continue
        if Version(now.version) < Version(was["version"]) or (
            now.code != was["code"] and now.version == was["version"]
        ):
            refused.append(f"{name} (bump {now.constant}, now {now.version}, recorded {was['version']})")
            continue
        code = "code changed" if now.code != was["code"] else "same code"
        changes.append(f"{name}: {was['version']} -> {now.version} ({code})")
    if refused:
        raise VersionNotBumpedError(
            "a version goes up when its code changes, and never down; bump it first: " + "; ".join(refused)
        )
    table = {
        "about": f"Written by `{RECORD}`; checked by tests/test_versions.py (see mycelium_run/versions.py).",
        "versions": {name: {"version": v.version, "code": v.code} for name, v in current.items()},
        "modules": {m: module_hash(m) for m in sorted({m for v in current.values() for m in v.modules})},
    }
    Path(path).write_text(json.dumps(table, indent=2) + "\n")
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mycelium_run.versions",
        description="Check (default) or record each artifact's and the students' version against their code's hash.",
    )
    parser.add_argument("--record", action="store_true", help=f"Write bumped versions and new hashes to {TABLE.name}.")
    args = parser.parse_args(argv)
    if args.record:
        try:
            changes = record()
        except VersionNotBumpedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print("\n".join(changes) if changes else f"{TABLE.name} is up to date; nothing recorded")
        return 0
    found = problems()
    print("\n".join(found) if found else f"every version in {TABLE.name} matches its code")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
