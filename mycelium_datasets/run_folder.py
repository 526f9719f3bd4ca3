"""Run-folder integrity: the code an artifact is made by, the files it was written as, and one writer at a time.

Three guarantees a run folder gives, and where each is kept:

- **No stale reuse.** An artifact's fingerprint hashes the source of every module of this package that its builder
  imports, followed transitively (:func:`code_closure`), so no hand-kept list of modules can go stale: change a helper
  and exactly the artifacts whose code imports it (and everything downstream) are rebuilt.
- **A folder heals.** The completion marker records each file of the artifact with its size and sha256
  (:func:`file_records`); resume checks the sizes always and the hashes when asked (``--verify``, ``mycelium verify``),
  and a missing or altered file makes the artifact rebuild (:func:`check_files`).
- **One writer.** :class:`RunLock` is held for a whole run or build; a second writer waits (naming the holder) or,
  with ``--no_wait``, stops at once. The lock is an OS file lock, released by the kernel when its holder dies, so a
  killed run never leaves a lock that blocks the next one.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import logging
import os
import socket
import sys
import time
from functools import cache
from pathlib import Path

from filelock import FileLock, Timeout

logger = logging.getLogger(__name__)

PACKAGE = "mycelium_datasets"
_CHUNK = 1 << 20


# -- the code an artifact is made by ---------------------------------------------------------------------------------


def _resolve(name: str, level: int, module: str, is_package: bool) -> str:
    """The absolute name of an import written in ``module`` (``level`` > 0 for a relative import)."""
    if not level:
        return name
    base = module.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, name] if name else base)


def _is_module(name: str) -> bool:
    """Whether ``name`` is a module or a package with an ``__init__`` (a folder of data files beside a package, such
    as a metric's, is not: ``from mycelium_models.metrics import io_span_f1`` imports a function)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def _imports(name: str, packages: tuple[str, ...] = (PACKAGE,)) -> tuple[str, list[str]]:
    """The source of module ``name`` and the names of the modules of ``packages`` it imports (anywhere in the file,
    function-level imports included)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ImportError(f"cannot read the source of {name}")
    source = Path(spec.origin).read_text(encoding="utf-8")
    is_package = spec.submodule_search_locations is not None
    found = []
    for node in ast.walk(ast.parse(source, filename=spec.origin)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", node.level, name, is_package)
            for alias in node.names:  # `from pkg import module` names a module; `from module import thing` does not
                child = f"{base}.{alias.name}"
                found.append(child if _is_module(child) else base)
    return source, [n for n in found if any(n == p or n.startswith(p + ".") for p in packages)]


@cache
def code_closure(module: str, packages: tuple[str, ...] = (PACKAGE,)) -> tuple[str, ...]:
    """Every module of ``packages`` (this package unless told) that ``module`` runs: itself and its imports, followed
    transitively, sorted.

    A package's ``__init__`` is included but its own imports are not followed: ``__init__`` files re-export (the
    builder registry imports every builder), and following them would make every artifact depend on all the code.
    """
    seen: dict[str, None] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = None
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None and name != module:
            continue  # a package: its __init__ counts, its re-exports are not followed
        todo += _imports(name, packages)[1]
    return tuple(sorted(seen))


def _is_version(node: ast.stmt) -> bool:
    """``VERSION = "2.0.0"`` (or ``STUDENT_VERSION = ...``): a version label, not code."""
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and (node.targets[0].id == "VERSION" or node.targets[0].id.endswith("_VERSION"))
    )


def _strip(tree: ast.Module) -> ast.Module:
    """``tree`` without its docstrings (module, class, function) and without its module-level version labels (and
    without the empty string parts that Python 3.12 puts in some f-strings: ``f"{x:{w}}"``)."""
    tree.body = [node for node in tree.body if not _is_version(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            node.values = [v for v in node.values if not (isinstance(v, ast.Constant) and v.value == "")]
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:]
    return tree


def _canonical(node) -> str:
    """The text of a syntax tree, the same on every Python we support: each node's type and fields, leaving out
    fields that are empty (``None`` or ``[]``). ``ast.dump`` is not used because its text changes between Python
    versions (3.12 adds ``type_params`` to every function, 3.13 stops printing empty fields), which would change
    every hash on a machine with another Python."""
    if isinstance(node, ast.AST):
        fields = ((name, _canonical(getattr(node, name, None))) for name in node._fields)
        return f"{type(node).__name__}({', '.join(f'{k}={v}' for k, v in fields if v not in ('None', '[]'))})"
    if isinstance(node, list):
        return f"[{', '.join(_canonical(item) for item in node)}]"
    return repr(node)


def _data_files(folder: Path) -> list[Path]:
    """The files of a package's folder that are not modules of its own (nor of a subpackage): templates, and
    scripts in plain folders (a metric's, loaded by ``evaluate``). The version table is left out: it records the
    hashes these files go into."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or "__pycache__" in rel.parts or rel.name == "versions.json":
            continue
        if len(rel.parts) == 1 and rel.suffix == ".py":
            continue  # a module of the package: hashed as code when something imports it
        if any((folder.joinpath(*rel.parts[:i]) / "__init__.py").is_file() for i in range(1, len(rel.parts))):
            continue  # inside a subpackage: its own module_hash covers it
        found.append(path)
    return found


@cache
def _tree_text(source: bytes) -> str:
    """The canonical text of a module's source without docstrings and version labels (cached by content: every
    artifact's hash reads the same modules)."""
    return _canonical(_strip(ast.parse(source)))


def module_hash(name: str) -> str:
    """sha256 (first 16 hex digits) of what module ``name`` does: its syntax tree without docstrings or version
    labels. A package also contributes the data files in its folder (the card template of ``mycelium_datasets.cards``,
    the metric scripts of ``mycelium_models.metrics``), byte for byte, except the version table, which records these
    hashes.

    Why a syntax tree and not the file's bytes: the hash must change when the code can make different data and only
    then. Comments, docstrings, blank lines and formatting (``ruff format``, a line re-wrapped) cannot change what
    the code does, so they leave the hash alone; a changed statement, name, constant or default changes it. It reads
    the files' contents only (never paths or times), so every machine and checkout of the same code gets the same
    hash. Version labels (``VERSION = "2.0.0"``) are left out because they are what a version table records beside
    the hash (and the fingerprint records separately): bumping one artifact's version must not change the hash of
    every artifact whose code imports its module.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise ImportError(f"cannot read the source of {name}")
    h = hashlib.sha256(_tree_text(Path(spec.origin).read_bytes()).encode())
    if spec.submodule_search_locations is not None:
        folder = Path(spec.origin).parent
        for path in _data_files(folder):
            h.update(b"\0" + path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def code_hash(modules: tuple[str, ...] | list[str]) -> str:
    """sha256 (first 16 hex digits) over the given modules' names and each one's :func:`module_hash`: the hash of
    the code an artifact is made by, in its fingerprint and in the version table (``mycelium_run/versions.json``).
    """
    h = hashlib.sha256()
    for name in sorted(modules):
        h.update(f"{name}\0{module_hash(name)}\0".encode())
    return h.hexdigest()[:16]


# -- the files an artifact was written as ----------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_records(folder: Path) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` for every file under ``folder`` (POSIX paths, sorted)."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": sha256_file(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def content_digest(records: dict[str, dict]) -> str:
    """One hash for an artifact's data files (the card is left out: it carries timings)."""
    h = hashlib.sha256()
    for rel, rec in sorted(records.items()):
        if rel.startswith("data/"):
            h.update(f"{rel}\0{rec['sha256']}\0".encode())
    return h.hexdigest()[:16]


def check_files(folder: Path, records: dict[str, dict] | None, verify: bool = False) -> str | None:
    """The first problem with ``folder``'s files against the marker's ``records`` (``None`` when they match): a
    missing file or a different size always, a different sha256 when ``verify``. A record of ``None`` asks only
    that the file exists (markers written before files were recorded)."""
    for rel, rec in records.items():
        path = Path(folder) / rel
        if not path.is_file():
            return f"{rel} is missing"
        if rec is None:
            continue
        size = path.stat().st_size
        if size != rec["size"]:
            return f"{rel} has {size} bytes, {rec['size']} were written"
        if verify and sha256_file(path) != rec["sha256"]:
            return f"{rel} differs from what was written (sha256)"
    return None


class ArtifactDamagedError(RuntimeError):
    """A finished artifact's files do not match its completion marker, and rebuilding was not allowed."""


# -- one writer at a time ---------------------------------------------------------------------------------------------


class RunFolderBusyError(RuntimeError):
    """Another process holds the run folder's lock, and waiting was not allowed."""


class RunLock:
    """The run folder's writer lock, ``DIR/.mycelium/lock`` (+ ``lock.json`` naming the holder).

    ``with RunLock(DIR):`` waits for the folder, logging who holds it (every ``notice_every`` seconds); with
    ``wait=False`` it raises :class:`RunFolderBusyError` at once. Re-entrant in one process, so a run that builds
    its artifacts and trains its students takes it once. Only the main process of a distributed launch takes it
    (the other ranks write under the main one's barriers).
    """

    def __init__(self, out_dir: str | Path, wait: bool = True, notice_every: float = 30.0) -> None:
        self.out_dir = Path(out_dir)
        self.wait = wait
        self.notice_every = notice_every
        self.path = self.out_dir / ".mycelium" / "lock"
        self.info_path = self.out_dir / ".mycelium" / "lock.json"
        self._lock: FileLock | None = None

    def holder(self) -> str:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return "another process"
        return f"pid {info.get('pid')} on {info.get('host')} (`{info.get('command')}`, since {info.get('since')})"

    def __enter__(self) -> RunLock:
        if int(os.environ.get("RANK", "0")) != 0:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path), is_singleton=True)  # one lock object per path: re-entrant
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if not self.wait:
                raise RunFolderBusyError(
                    f"{self.out_dir} is being written by {self.holder()}; wait for it, or drop --no_wait to queue"
                ) from None
            while True:  # say who holds it now, then every `notice_every` seconds
                logger.warning("waiting for %s: it is being written by %s", self.out_dir, self.holder())
                try:
                    self._lock.acquire(timeout=self.notice_every)
                    break
                except Timeout:
                    continue
        if self._lock.lock_counter == 1:
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:300],
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            self.info_path.write_text(json.dumps(record))
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            if self._lock.lock_counter == 1:
                self.info_path.unlink(missing_ok=True)
            self._lock.release()
