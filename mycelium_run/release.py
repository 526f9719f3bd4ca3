"""``mycelium release DIR --repo ORG/NAME [--push] [--revision vX.Y.Z]``: publish artifacts and students to the Hub.

``DIR`` is one of:

- an artifact folder (``DIR/README.md`` + ``DIR/data/*.parquet``): one dataset repo ``ORG/NAME``;
- a model folder (``DIR/config.json`` + ``DIR/README.md``, e.g. ``RUN/models/tagger``): one model repo ``ORG/NAME``;
- a models folder (``RUN/models`` with ``tagger/``, ``classifier/``, ``binder/``, ``decoder/``): one model repo
  ``ORG/NAME``, the **solver**: each student in its subfolder, unchanged but for its card, and a solver card on top,
  so that ``MyceliumSolver.from_pretrained("ORG/NAME", revision="vX.Y.Z")`` (and ``mycelium solve --models
  ORG/NAME``) loads them all, and each student still loads alone with ``from_pretrained("ORG/NAME",
  subfolder="tagger")``;
- a run folder: every artifact in it, one dataset repo each, ``ORG/NAME-<artifact>`` (e.g. ``ORG/NAME-cot_traces``),
  and its models folder as the solver repo ``ORG/NAME-solver``. One repo per artifact keeps each artifact's card,
  version tag and ``load_dataset("ORG/NAME-<artifact>")`` exactly as the design describes them; the cards link each
  artifact to its upstream repos and each student to the dataset repo it was trained on. The students share one
  repo because they are used together, at one version: one tag names the solver.

Without ``--push`` it is a dry run: it validates each folder (the card parses; every data file the card's
``configs`` name exists and every data file is named by them; a model has weights in safetensors, a config whose
``auto_map`` names modeling files that are there, a tokenizer and a card; each student of a solver is checked in
its subfolder, all three must be there and give one version) and lists exactly what would be uploaded: each file
with its size and sha256, the repo id and type, and the tag ``v<version>``. Work files (anything under a dot-folder
such as ``.mycelium/``, ``*.tmp``, ``*.lock``, ``__pycache__``) and pickles (``training_args.bin``) are never
uploaded, nor anything of a models folder outside its students' subfolders. The card is released with its usage
snippet pointing at the repo and the tag, and a ``mycelium.release`` entry in its YAML; the solver's card is written
from its students' cards; every other file is uploaded byte for byte. A solver repo also carries the students'
``modeling_mycelium.py`` on top: transformers reads remote code from the top of a repo even when loading with
``subfolder=``, so ``trust_remote_code=True`` needs it there as well as in each subfolder.

With ``--push``: ``create_repo(exist_ok=True)``, ``upload_folder`` (the repo then holds exactly the listed files)
and ``create_tag``; the token comes from ``HF_TOKEN`` or ``hf auth login`` (``huggingface-cli login``). Offline
(``HF_HUB_OFFLINE=1``) or without a token, it stops with a one-line error before uploading anything. A tag names one
content: when a repo already has the tag, its files there are compared with the staged ones (path and content: the
LFS sha256, or the git blob id of a small file); the same files mean that repo is already released (nothing is
uploaded to it), different ones stop the release before anything is uploaded, naming the first differing file
(bump the version: ``python -m mycelium_run.versions``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.layout import RunFolder
from mycelium_models.students import REPO_ID, STUDENTS

TAG = re.compile(r"^v\d+\.\d+\.\d+([.+-][0-9A-Za-z.-]+)?$")
# Never uploaded: work and temporary files, caches, and pickles (no pickle is ever published or loaded).
EXCLUDE = {
    "work or hidden file": (".*",),
    "temporary file": ("*.tmp", "*.lock", "*.part", "*~"),
    "cache": ("__pycache__", "*.pyc"),
    "pickle, never released": ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt"),
    "trainer checkpoint": ("checkpoint-*",),
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# A models folder is released as one model repo, the solver: each student in its subfolder (tagger/, ...), the
# solver's card on top. A run folder's goes to ORG/NAME-solver, beside its ORG/NAME-<artifact> dataset repos.
SOLVER = "solver"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "vocab.json")
# How a released card tells its reader to get the package: it is not on PyPI yet, so from a clone of the repository.
INSTALL = "the mycelium package, not on PyPI yet: pip install -e . in a clone of its repository"


class ReleaseError(RuntimeError):
    """Something stops a release; the message says what and how to fix it (one line)."""


@dataclasses.dataclass
class ReleaseFile:
    path: str  # in the repo, POSIX
    size: int
    sha256: str
    note: str = ""  # "" (byte for byte from the folder), or what was changed / added


@dataclasses.dataclass
class Release:
    """One repo's upload: what, where, under which tag, staged in ``stage_dir`` exactly as it will be uploaded."""

    name: str  # artifact or student name
    folder: Path
    repo_id: str
    repo_type: str  # "dataset" or "model"
    tag: str
    stage_dir: Path
    files: list[ReleaseFile]
    excluded: list[tuple[str, str]]  # (path, why)
    fingerprint: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["folder"], out["stage_dir"] = str(self.folder), str(self.stage_dir)
        return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _excluded_why(rel: str) -> str | None:
    for part in rel.split("/"):
        for why, patterns in EXCLUDE.items():
            if any(fnmatch.fnmatch(part, p) for p in patterns):
                return why
    return None


def _walk(folder: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Files under ``folder`` (relative POSIX paths, sorted) split into kept and excluded (with why)."""
    kept, excluded = [], []
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(folder).as_posix()
            why = _excluded_why(rel)
            if why is None and path.is_symlink():
                why = "symbolic link"
            (excluded.append((rel, why)) if why else kept.append(rel))
    return kept, excluded


# -- what DIR is -------------------------------------------------------------------------------------------------


def is_artifact_folder(folder: Path) -> bool:
    return (folder / "README.md").is_file() and (folder / "data").is_dir()


def is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def is_models_folder(folder: Path) -> bool:
    return any(is_model_folder(folder / name) for name in STUDENTS)


def targets(directory: Path, repo: str) -> list[tuple[str, Path, str, str]]:
    """``(name, folder, repo_id, repo_type)`` for everything ``directory`` releases: a folder that is one repo goes
    to ``repo`` itself; a run folder, many repos, to ``repo-<artifact>`` and ``repo-solver``."""
    if is_artifact_folder(directory):
        return [(directory.name, directory, repo, "dataset")]
    if is_model_folder(directory):
        return [(directory.name, directory, repo, "model")]
    if is_models_folder(directory):
        return [(SOLVER, directory, repo, "model")]
    found = []
    for name in BUILDERS:
        if is_artifact_folder(directory / name):
            found.append((name, directory / name, f"{repo}-{name}", "dataset"))
    if is_models_folder(RunFolder(directory).models):
        found.append((SOLVER, RunFolder(directory).models, f"{repo}-{SOLVER}", "model"))
    if not found:
        raise ReleaseError(
            f"{directory} is not an artifact folder (README.md + data/), a model folder (config.json), a models "
            f"folder ({', '.join(f'{s}/' for s in STUDENTS)}) or a run folder holding any of them"
        )
    return found


# -- validation and staging ----------------------------------------------------------------------------------------


def _dataset_card(folder: Path):
    from huggingface_hub import DatasetCard

    try:
        return DatasetCard.load(folder / "README.md", repo_type="dataset")
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported as one line
        raise ReleaseError(f"{folder}/README.md does not parse as a dataset card: {exc}") from None


def _check_dataset(folder: Path, card, kept: list[str]) -> list[str]:
    """Problems with a dataset folder: configs, data files, required metadata."""
    problems = []
    data = card.data.to_dict()
    for key in ("license", "language", "pretty_name", "version", "configs", "task_categories", "size_categories"):
        if not data.get(key):
            problems.append(f"the card has no `{key}`")
    configs = data.get("configs") or []
    named: set[str] = set()
    for config in configs:
        files = config.get("data_files") or []
        files = [files] if isinstance(files, str) else files
        for entry in files:
            paths = entry.get("path") if isinstance(entry, dict) else entry
            for p in [paths] if isinstance(paths, str) else list(paths or []):
                matches = [k for k in kept if fnmatch.fnmatch(k, p)]
                if not matches:
                    problems.append(f"config {config.get('config_name')!r} names {p}, which does not exist")
                named.update(matches)
    stray = [k for k in kept if k.startswith("data/") and k not in named]
    if stray:
        problems.append(f"data files no config names (remove them or rebuild): {', '.join(stray)}")
    if not named:
        problems.append("no data file is named by the card's configs")
    return problems


def package_modeling_dir() -> Path:
    """Where the installed ``mycelium_models`` lives (its modeling file is what the Hub's ``auto_map`` runs)."""
    import importlib.util

    return Path(importlib.util.find_spec("mycelium_models").origin).parent


def _check_model(folder: Path, kept: list[str]) -> tuple[list[str], list[str]]:
    """Problems with a model folder, and modeling files to add from the installed package."""
    problems, add = [], []
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"config.json does not parse: {exc}"], []
    if not any(w in kept for w in WEIGHT_FILES):
        problems.append("no safetensors weights (model.safetensors)")
    if not any(t in kept for t in TOKENIZER_FILES):
        problems.append("no tokenizer (tokenizer.json or vocab.txt)")
    if "README.md" not in kept:
        problems.append("no model card (README.md)")
    auto_map = config.get("auto_map")
    if not auto_map:
        problems.append("config.json has no auto_map (save the model with mycelium_models imported)")
    for target in (auto_map or {}).values():
        module = (target[0] if isinstance(target, list) else target).split("--")[-1].rsplit(".", 1)[0]
        filename = module.replace(".", "/") + ".py"
        if filename not in kept and filename not in add:
            if (package_modeling_dir() / filename).is_file():
                add.append(filename)
            else:
                problems.append(f"auto_map names {filename}, which is missing")
    return problems, add


def _rewrite_dataset_card(card, repo_id: str, tag: str, fingerprint: str | None, upstream_repos: dict) -> str:
    """The released dataset card: ``mycelium.release``, the upstream artifacts' repo ids (in the lineage and in
    ``source_datasets``, before the problem source's Hub id the card already names) and the load snippet."""
    data = card.data
    mycelium = dict(data.get("mycelium") or {})
    mycelium["release"] = {"repo_id": repo_id, "tag": tag}
    if upstream_repos:
        lineage = dict(mycelium.get("lineage") or {})
        upstream = {k: dict(v) for k, v in (lineage.get("upstream") or {}).items()}
        for name, entry in upstream.items():
            if name in upstream_repos:
                entry["repo_id"] = upstream_repos[name]
        lineage["upstream"] = upstream
        mycelium["lineage"] = lineage
        released = [upstream_repos[name] for name in upstream if name in upstream_repos]
        data.source_datasets = list(dict.fromkeys([*released, *(data.get("source_datasets") or [])]))
    data.mycelium = mycelium
    text = str(card)
    snippet = f'load_dataset("{repo_id}", revision="{tag}")'
    return re.sub(r'load_dataset\("[^"\n]*"\)', lambda _: snippet, text, count=1)


def _rewrite_model_card(
    text: str, repo_id: str, tag: str, kind: str, dataset_repos: dict[str, str], subfolder: str | None = None
) -> str:
    """The released model card: ``mycelium.release`` (with the ``subfolder`` a student has in the solver repo), the
    datasets it was trained and measured on named by their released repo ids (``dataset_repos``: artifact -> repo id;
    ``datasets`` and ``model-index``), and the usage snippet."""
    from huggingface_hub import ModelCard

    from mycelium_models.model_card import USE_BEGIN, USE_END, point_at_repos

    card = point_at_repos(ModelCard(text), repo_id, dataset_repos)
    mycelium = dict(card.data.get("mycelium") or {})
    mycelium["release"] = {"repo_id": repo_id, "tag": tag, **({"subfolder": subfolder} if subfolder else {})}
    card.data.mycelium = mycelium
    auto = STUDENTS[kind].auto_class if kind in STUDENTS else "AutoModelForSequenceClassification"
    where = f'"{repo_id}", ' + (f'subfolder="{subfolder}", ' if subfolder else "") + f'revision="{tag}"'
    intro = (
        f"""# the solver: this student with the others of this repo ({INSTALL})
from mycelium_models.solver import MyceliumSolver

solver = MyceliumSolver.from_pretrained("{repo_id}", revision="{tag}")

# this student alone, with the package (no remote code)
"""
        if subfolder
        else f"# with the package (no remote code; {INSTALL})\n"
    )
    use = f"""{USE_BEGIN}
```python
{intro}import mycelium_models  # registers the classes with the Auto classes
from transformers import {auto}

model = {auto}.from_pretrained({where})

# or without it, running this repo's modeling_mycelium.py:
model = {auto}.from_pretrained({where}, trust_remote_code=True)
```
{USE_END}"""
    text = str(card)
    if USE_BEGIN in text and USE_END in text:
        head, rest = text.split(USE_BEGIN, 1)
        text = head + use + rest.split(USE_END, 1)[1]
    return text


def _prepare_model(
    folder: Path,
    kept: list[str],
    name: str,
    repo_id: str,
    revision: str | None,
    dataset_repos: dict[str, str],
    subfolder: str | None = None,
) -> tuple[list[str], dict[str, tuple[bytes, str]], str]:
    """One model folder's problems, the files the release changes or adds (path -> (content, note)) and its tag."""
    from huggingface_hub import ModelCard

    problems, add = _check_model(folder, kept)
    changed: dict[str, tuple[bytes, str]] = {}
    text = (folder / "README.md").read_text(encoding="utf-8") if "README.md" in kept else ""
    version = None
    if text:
        try:
            version = ModelCard(text).data.get("version")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"README.md does not parse as a model card: {exc}")
    tag = revision or (f"v{version}" if version else None)
    if tag is None:
        problems.append("the model card has no `version`: pass --revision vX.Y.Z")
        tag = "v?"
    if text and not problems:
        text = _rewrite_model_card(text, repo_id, tag, name, dataset_repos, subfolder)
        changed["README.md"] = (text.encode("utf-8"), "card: usage snippet and mycelium.release set")
    for filename in add:
        changed[filename] = ((package_modeling_dir() / filename).read_bytes(), "added from the installed package")
    return problems, changed, tag


def _prepare_solver(
    folder: Path, kept: list[str], repo_id: str, revision: str | None, data_repos: dict[str, str]
) -> tuple[list[str], dict[str, tuple[bytes, str]], str, list[str], list[tuple[str, str]]]:
    """A models folder as one solver repo: each student validated and staged in its subfolder, their modeling
    file(s) also on top (transformers reads remote code from the repo's top even with ``subfolder=``), and the
    solver's card. Returns the problems, the changed or added files, the tag, the files kept and those left out."""
    from huggingface_hub import ModelCard

    problems: list[str] = []
    changed: dict[str, tuple[bytes, str]] = {}
    tags: dict[str, str] = {}
    cards: dict[str, ModelCard] = {}
    code: dict[str, set[bytes]] = {}  # modeling file -> its contents, over the students
    missing = [name for name in STUDENTS if not is_model_folder(folder / name)]
    if missing:
        problems.append(
            f"no {', '.join(f'{m}/' for m in missing)}: the solver repo holds every student "
            f"({', '.join(f'{s}/' for s in STUDENTS)}); release one student alone from its own folder"
        )
    for name in STUDENTS:
        if name in missing:
            continue
        sub = [k.split("/", 1)[1] for k in kept if k.startswith(f"{name}/")]
        found, added, tags[name] = _prepare_model(
            folder / name, sub, name, repo_id, revision, data_repos, subfolder=name
        )
        problems += [f"{name}/: {p}" for p in found]
        changed.update({f"{name}/{k}": v for k, v in added.items()})
        for rel in sorted(set(sub) | set(added)):
            if rel.endswith(".py"):
                content = added[rel][0] if rel in added else (folder / name / rel).read_bytes()
                code.setdefault(rel, set()).add(content)
        if "README.md" in sub:
            cards[name] = ModelCard((folder / name / "README.md").read_text(encoding="utf-8"))
    if len(set(tags.values())) > 1:
        given = ", ".join(f"{name} {tag}" for name, tag in tags.items())
        problems.append(f"the students' cards give different versions ({given}): pass --revision vX.Y.Z")
    tag = revision or next(iter(tags.values()), "v?")
    for rel, contents in code.items():
        if len(contents) > 1:
            problems.append(f"the students carry different {rel}: retrain them with one version of the package")
        else:
            changed[rel] = (contents.pop(), "remote code for from_pretrained(..., subfolder=..., trust_remote_code)")
    if not problems:
        changed["README.md"] = (_solver_card(repo_id, tag, cards, data_repos).encode("utf-8"), "solver card")
    inside = [k for k in kept if k.split("/", 1)[0] in STUDENTS and "/" in k]
    outside = [(k, "not a student's file") for k in kept if k not in inside and k not in changed]
    return problems, changed, tag, [k for k in kept if k in inside or k in changed], outside


def _solver_card(repo_id: str, tag: str, cards: dict, data_repos: dict[str, str]) -> str:
    """The solver repo's card: YAML the Hub reads (license, language, tags, base model, datasets, version, a
    ``model-index`` with the solver's end-to-end accuracy when the run was evaluated, each student's training data
    and test metrics) and a body with the one-line use, the students and their metrics. ``data_repos``: artifact ->
    released dataset repo id."""
    from huggingface_hub import ModelCardData

    from mycelium_models.model_card import E2E_TASK_TYPE, RESULTS_BEGIN, RESULTS_END, results_block

    def common(key):
        values = {str(card.data.get(key)) for card in cards.values() if card.data.get(key)}
        return values.pop() if len(values) == 1 else None

    students, end_to_end = {}, None
    for name, card in cards.items():
        mycelium = card.data.get("mycelium") or {}
        results = card.data.eval_results or []
        students[name] = {
            "subfolder": name,
            "auto_class": STUDENTS[name].auto_class,
            "version": card.data.get("version"),
            "training_data": mycelium.get("training_data"),
            "metrics": {r.metric_type: r.metric_value for r in results if r.task_type != E2E_TASK_TYPE},
        }
        end_to_end = end_to_end or next((r for r in results if r.task_type == E2E_TASK_TYPE), None)
    if end_to_end is not None:
        end_to_end.dataset_type = data_repos.get(end_to_end.dataset_type, end_to_end.dataset_type)
    used = [STUDENTS[name].artifact for name in STUDENTS] + (["problems"] if end_to_end is not None else [])
    data = ModelCardData(
        license=common("license") or "other",
        license_name=common("license_name"),
        license_link=common("license_link"),
        language=["en"],
        tags=["mycelium", "math-word-problems", "no-chain-of-thought", *STUDENTS],
        base_model=common("base_model"),
        datasets=[data_repos[a] for a in used if a in data_repos] or None,
        model_name=repo_id if end_to_end is not None else None,
        eval_results=[end_to_end] if end_to_end is not None else None,
        version=common("version"),
        mycelium={"release": {"repo_id": repo_id, "tag": tag}, "students": students},
    )
    rows = []
    for name, student in STUDENTS.items():
        metrics = students.get(name, {}).get("metrics") or {}
        shown = ", ".join(f"{label} {metrics[key]:.3f}" for key, label in student.headline if key in metrics)
        trained = (students.get(name, {}).get("training_data") or {}).get("artifact", student.artifact)
        rows.append(f"| `{name}/` | {student.task} | `{student.auto_class}` | `{trained}` | {shown or '-'} |")
    results = (
        "\n\n## Evaluation\n\n"
        + results_block([end_to_end]).replace(RESULTS_BEGIN + "\n", "").replace("\n" + RESULTS_END, "")
        if end_to_end is not None
        else ""
    )
    table = "\n".join(rows)
    return f"""---
{data.to_yaml()}
---

# Mycelium solver

Small students that answer math word problems from the problem text alone, with no chain of thought: the tagger
finds the operation units, and the step decoder writes the whole program in one decode, each step two operands (a
quantity of the problem, a constant or an earlier step's result) and an operation scored together, every hypothesis
of its beam executed exactly as it grows. The classifier (each unit's operations) and the binder (every operand a
pointer) are the chain the decoder replaced, kept for comparison.

## Use

```python
from mycelium_models.solver import MyceliumSolver  # {INSTALL}

solver = MyceliumSolver.from_pretrained("{repo_id}", revision="{tag}")
print(solver.solve(["Tom has 3 apples and buys 4 more. How many apples does he have?"])[0]["answer"])
```

From the command line: `mycelium solve --models {repo_id} --revision {tag} "PROBLEM TEXT"`. Each answer comes with
its trace: the units, the operations, the operands and their values, or the stage that failed.{results}

## The students

Each subfolder is a complete model with its own card, and loads alone, e.g.
`AutoModelForTokenClassification.from_pretrained("{repo_id}", subfolder="tagger", revision="{tag}")` after
`import mycelium_models`, or with `trust_remote_code=True` and without the package.

| subfolder | task | loads with | trained on | test metrics |
| --- | --- | --- | --- | --- |
{table}

## Intended use and limits

Research on no-CoT math word problem solving. Trained on execution-validated labels of one teacher and one
problem source; expect it to fail on problem styles it has not seen, and check answers before relying on them.
"""


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def prepare(
    directory: str | Path, repo: str, revision: str | None = None, stage_root: str | Path | None = None
) -> list[Release]:
    """Validate ``directory`` and stage each repo's upload; raises :class:`ReleaseError` listing every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReleaseError(f"{directory} is not a folder")
    if not REPO_ID.match(repo):
        raise ReleaseError(f"--repo must look like ORG/NAME, got {repo!r}")
    if revision is not None and not TAG.match(revision):
        raise ReleaseError(f"--revision must look like vX.Y.Z, got {revision!r}")
    found = targets(directory.resolve(), repo)
    repos = {name: repo_id for name, _, repo_id, _ in found}
    stage_root = Path(stage_root) if stage_root else Path(tempfile.mkdtemp(prefix="mycelium-release-"))
    releases, errors = [], []
    for name, folder, repo_id, repo_type in found:
        kept, excluded = _walk(folder)
        stage = stage_root / repo_id.replace("/", "__")
        shutil.rmtree(stage, ignore_errors=True)
        changed: dict[str, tuple[bytes, str]] = {}
        fingerprint = None
        if repo_type == "dataset":
            card = _dataset_card(folder)
            problems = _check_dataset(folder, card, kept)
            version = card.data.get("version")
            fingerprint = (card.data.get("mycelium") or {}).get("fingerprint")
            named = ((card.data.get("mycelium") or {}).get("lineage") or {}).get("upstream") or {}
            upstream = {u: repos[u] for u in named if u in repos} if len(found) > 1 else {}
            tag = revision or f"v{version}"
            text = _rewrite_dataset_card(card, repo_id, tag, fingerprint, upstream)
            changed["README.md"] = (text.encode("utf-8"), "card: load snippet and mycelium.release set for the Hub")
        elif is_models_folder(folder):
            data_repos = {a: r for a, r in repos.items() if a in BUILDERS}
            problems, changed, tag, kept, outside = _prepare_solver(folder, kept, repo_id, revision, data_repos)
            excluded = sorted(excluded + outside)
        else:
            data_repos = {a: r for a, r in repos.items() if a in BUILDERS} if len(found) > 1 else {}
            problems, changed, tag = _prepare_model(folder, kept, name, repo_id, revision, data_repos)
        errors += [f"{folder}: {p}" for p in problems]
        files = []
        for rel in sorted(set(kept) | set(changed)):
            dst = stage / rel
            if rel in changed:
                content, note = changed[rel]
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(content)
            else:
                _place(folder / rel, dst)
                note = ""
            files.append(ReleaseFile(rel, dst.stat().st_size, _sha256(dst), note))
        releases.append(Release(name, folder, repo_id, repo_type, tag, stage, files, excluded, fingerprint))
    if errors:
        shutil.rmtree(stage_root, ignore_errors=True)
        raise ReleaseError("cannot release: " + "; ".join(errors))
    return releases


# -- pushing -----------------------------------------------------------------------------------------------------


def _offline() -> bool:
    from huggingface_hub import constants

    from mycelium_datasets.defaults import hub_offline

    return hub_offline() or bool(constants.HF_HUB_OFFLINE)


def get_token() -> str | None:
    from huggingface_hub import get_token as hub_token

    return hub_token()


def _git_blob_id(path: Path) -> str:
    """The git object id of a file's content (what the Hub lists as ``blob_id`` for a file not stored in LFS)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tag_difference(api, release: Release) -> str | None:
    """The first file (by path) that differs between ``release``'s staged files and its repo at ``release.tag``, as a
    few words; ``None`` when the tag holds exactly these files (``.gitattributes``, which the Hub keeps, aside)."""
    tree = api.list_repo_tree(release.repo_id, repo_type=release.repo_type, revision=release.tag, recursive=True)
    tagged = {f.path: f for f in tree if hasattr(f, "blob_id") and f.path != ".gitattributes"}  # files, not folders
    staged = {f.path: f for f in release.files}
    for path in sorted(set(tagged) | set(staged)):
        if path not in tagged:
            return f"{path} is not in the tag"
        if path not in staged:
            return f"{path} is in the tag but not in this release"
        ours, theirs = staged[path], tagged[path]
        if theirs.lfs is not None:
            same = theirs.lfs.sha256 == ours.sha256
        else:
            same = theirs.blob_id == _git_blob_id(release.stage_dir / path)
        if not same:
            return f"{path} differs"
    return None


def push(releases: list[Release], private: bool = False, log=print) -> list[str]:
    """Create each repo, upload its staged folder (mirroring it exactly) and tag the commit; returns the URLs. A repo
    whose tag already holds exactly the staged files is skipped; one whose tag holds other files stops the release
    before anything is uploaded."""
    if _offline():
        raise ReleaseError(
            "cannot push: the Hugging Face Hub is offline here (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set); "
            "unset it on a machine with network, or drop --push for a dry run"
        )
    token = get_token()
    if not token:
        raise ReleaseError("cannot push: no Hugging Face token; set HF_TOKEN or run `hf auth login`")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        released = set()  # repos whose tag already holds exactly the staged files
        for r in releases:  # check every tag before uploading anything
            try:
                refs = api.list_repo_refs(r.repo_id, repo_type=r.repo_type)
            except RepositoryNotFoundError:
                continue
            if any(t.name == r.tag for t in refs.tags):
                difference = tag_difference(api, r)
                if difference is not None:
                    raise ReleaseError(
                        f"{r.repo_type} {r.repo_id} already has tag {r.tag} with other content ({difference}): a "
                        "tag names one content, so bump the version (python -m mycelium_run.versions) or pass "
                        "--revision vX.Y.Z"
                    )
                released.add(r.repo_id)
        urls = []
        for r in releases:
            if r.repo_id in released:
                log(f"{r.repo_type} {r.repo_id} @ {r.tag} already holds exactly these files; nothing to upload")
                continue
            api.create_repo(r.repo_id, repo_type=r.repo_type, exist_ok=True, private=private)
            commit = api.upload_folder(
                repo_id=r.repo_id,
                repo_type=r.repo_type,
                folder_path=str(r.stage_dir),
                commit_message=f"Release {r.name} {r.tag}" + (f" ({r.fingerprint[:12]})" if r.fingerprint else ""),
                delete_patterns=["*"],  # the repo holds exactly the released files (.gitattributes is kept)
            )
            api.create_tag(
                r.repo_id, tag=r.tag, revision=commit.oid, repo_type=r.repo_type, tag_message=f"{r.name} {r.tag}"
            )
            log(f"pushed {r.repo_type} {r.repo_id} @ {r.tag} ({commit.oid[:12]})")
            urls.append(commit.commit_url)
        return urls
    except ReleaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and Hub errors become one line
        raise ReleaseError(
            f"push failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


# -- the command ---------------------------------------------------------------------------------------------------


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def describe(releases: list[Release]) -> str:
    lines = []
    for r in releases:
        lines.append(
            f"{r.repo_type} {r.repo_id}  tag {r.tag}  from {r.folder}  ({len(r.files)} files, {_human(r.total_bytes)})"
        )
        width = max(len(f.path) for f in r.files)
        for f in r.files:
            note = f"  [{f.note}]" if f.note else ""
            lines.append(f"  {f.path:<{width}}  {f.size:>12,d} B  sha256:{f.sha256}{note}")
        for path, why in r.excluded:
            lines.append(f"  excluded: {path} ({why})")
    return "\n".join(lines)
