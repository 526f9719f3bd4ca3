"""What an artifact was made from, for its card: source and license, teachers and their exact revisions, generation
settings, segmenter, spaCy pipeline and student tokenizer.

Each artifact's provenance is its upstream artifacts' provenance (read from their completion markers) plus its own
entries, so every card of a run carries the whole chain (a ``clause_regions`` card names the problem source, the
teacher and the segmenter as well as its spaCy pipeline). Only local facts are used: package versions, file
hashes, the Hugging Face cache's commit of a Hub id; nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mycelium_datasets.defaults import EMBEDDED_BACKBONES, EMBEDDED_TEACHERS, resolve_spacy

# License of each known problem source (SPDX-style ids as the Hub's card metadata expects them).
SOURCE_LICENSES = {
    "gsm_symbolic": ("apache-2.0", "reasoning-gym's gsm_symbolic generator (Apache-2.0)"),
    "gsm8k": ("mit", "GSM8K, openai/gsm8k (MIT)"),
    "math500": ("mit", "MATH-500, HuggingFaceH4/MATH-500, from the MATH dataset (MIT)"),
}
UNKNOWN_LICENSE = "other"
# Where each known source's terms are written.
SOURCE_LINKS = {
    "gsm_symbolic": "https://github.com/open-thought/reasoning-gym",
    "gsm8k": "https://huggingface.co/datasets/openai/gsm8k",
    "math500": "https://huggingface.co/datasets/HuggingFaceH4/MATH-500",
}
# License of each model whose output or weights can end up in an artifact or a student (teachers, captured models,
# student backbones), by Hub id; a model not named here (a local folder, another Hub id) has unknown terms.
MODEL_LICENSES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0",
    "sentence-transformers/all-MiniLM-L6-v2": "apache-2.0",
    "Qwen/Qwen2-0.5B": "apache-2.0",
    "Qwen/Qwen2.5-0.5B": "apache-2.0",
}
# Files hashed in full when identifying a local model folder; larger ones are identified by name and size.
_FULL_HASH_LIMIT = 64 * 2**20
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=32)
def _sha256_file(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, computed once per process for an unchanged file."""
    stat = Path(path).stat()
    return _sha256_file(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def folder_identity(path: str | Path) -> str:
    """A content identity of a local model folder: sha256 over each file's relative name, size and (for files up to
    64 MiB: configs, tokenizers, small weights) content hash."""
    path = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        size = file.stat().st_size
        h.update(f"{file.relative_to(path).as_posix()}\0{size}\0".encode())
        if size <= _FULL_HASH_LIMIT:
            h.update(sha256_file(file).encode())
    return h.hexdigest()


def hub_cached_revision(repo_id: str, repo_type: str = "model") -> str | None:
    """The commit of ``repo_id``'s ``main`` in the local Hugging Face cache, if it is there (no network)."""
    try:
        from huggingface_hub import constants

        folder = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"
        ref = folder / "refs" / "main"
        if ref.is_file():
            commit = ref.read_text().strip()
            return commit if _COMMIT.match(commit) else None
    except Exception:  # the cache layout is best effort: a missing revision is recorded as null
        return None
    return None


def model_identity(name: str) -> dict:
    """Which exact model ``name`` (an embedded name, a local folder or a Hub id) is."""
    if name in EMBEDDED_TEACHERS or name in EMBEDDED_BACKBONES:
        pip_spec, module, filename, hub_id = {**EMBEDDED_BACKBONES, **EMBEDDED_TEACHERS}[name]
        package = pip_spec.split("==")[0]
        out = {"name": name, "upstream": hub_id, "package": package, "package_version": package_version(package)}
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            target = Path(list(spec.submodule_search_locations)[0]) / filename
            if target.is_file():
                out["file"] = filename
                out["sha256"] = sha256_file(target)
            elif target.is_dir():
                out["file"] = filename + "/"
                out["identity"] = folder_identity(target)
        return out
    path = Path(name)
    if path.is_dir():
        # a snapshot of the Hugging Face cache is named by its commit
        commit = path.resolve().name if _COMMIT.match(path.resolve().name) else None
        out = {"name": path.name, "local_folder": True, "identity": folder_identity(path)}
        if commit:
            out["revision"] = commit
        return out
    return {"name": name, "hub_id": name, "revision": hub_cached_revision(name)}


def spacy_identity(name: str | None) -> dict:
    """The spaCy pipeline that ``name`` resolves to, with its package version and spaCy's."""
    try:
        resolved = resolve_spacy(name)
    except Exception:  # noqa: BLE001 - a missing pipeline is recorded as such; the build itself reported it
        return {"pipeline": name, "version": None, "spacy_version": package_version("spacy")}
    pipeline_version = package_version(resolved) or package_version(resolved.replace("_", "-"))
    meta_name = None
    spec = importlib.util.find_spec(resolved) if not Path(resolved).is_dir() else None
    meta_dirs = [Path(resolved)] if Path(resolved).is_dir() else []
    if spec is not None and spec.submodule_search_locations:
        meta_dirs += [Path(p) for p in spec.submodule_search_locations]
    for folder in meta_dirs:
        for meta in [folder / "meta.json", *sorted(folder.glob("*/meta.json"))]:
            if meta.is_file():
                data = json.loads(meta.read_text())
                meta_name = f"{data.get('lang', '')}_{data.get('name', '')}"
                pipeline_version = pipeline_version or data.get("version")
                break
        if meta_name:
            break
    out = {"pipeline": resolved, "version": pipeline_version, "spacy_version": package_version("spacy")}
    if meta_name and meta_name != resolved:
        out["model"] = meta_name
    return out


def source_provenance(config) -> dict:
    """The problem source, where it came from and its license."""
    source = config.source
    kind = config.source_kind()
    if kind == "mix":  # each source with its own terms and digest
        return {"name": source, "kind": kind, "parts": [source_provenance(part) for part in config.parts()]}
    out = {"name": source, "kind": kind}
    if source in SOURCE_LICENSES:
        out["license"], out["license_note"] = SOURCE_LICENSES[source]
    else:
        out["license"] = UNKNOWN_LICENSE
        out["license_note"] = "unknown: a user's file or Hub dataset; check its own terms before redistributing"
    if source == "gsm_symbolic":
        out["generator"] = f"reasoning-gym {package_version('reasoning-gym') or package_version('reasoning_gym')}"
        out["seed"] = config.seed
    elif kind == "jsonl":
        out["name"] = Path(source).name
        out["sha256"] = sha256_file(source)
    else:
        from mycelium_datasets.problems import HUB_SOURCES

        hub_id = HUB_SOURCES.get(source, (source,))[0]
        out["hub_id"] = hub_id
        out["revision"] = hub_cached_revision(hub_id, "dataset")
    return out


def describe(markers: dict[str, dict], own, order: tuple[str, ...] = ()) -> dict:
    """An artifact's provenance: the union of its upstream markers' provenance, then the entries ``own(merged)``
    adds (the builder's ``own_provenance``), keys in pipeline ``order`` (markers store them sorted)."""
    merged: dict = {}
    for marker in markers.values():
        merged.update(marker.get("provenance") or {})
    merged.update(own(merged))
    return in_order(merged, order)


def in_order(provenance: dict, order: tuple[str, ...]) -> dict:
    """``provenance`` with its keys in pipeline ``order`` (unknown keys last, by name)."""
    return {
        k: provenance[k] for k in sorted(provenance, key=lambda k: (order.index(k) if k in order else len(order), k))
    }


# -- licenses of the whole lineage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LicensePart:
    """One thing whose terms an artifact or a student inherits: the problem source, a teacher whose CoTs it holds, a
    model whose attention made its spans, a backbone. ``license`` is ``None`` when the terms are unknown."""

    role: str  # "problem source", "teacher (generated the CoTs)", ...
    name: str
    license: str | None
    link: str | None = None

    def line(self) -> str:
        terms = self.license or "unknown terms: check them before redistributing"
        return f"{self.role} `{self.name}`: {terms}" + (f" ({self.link})" if self.link else "")


def model_license_part(role: str, identity: dict) -> LicensePart:
    """The license of a model named by its ``model_identity`` (an embedded model by the Hub id it was made from)."""
    hub_id = identity.get("upstream") or identity.get("hub_id")
    license_ = MODEL_LICENSES.get(hub_id or "")
    return LicensePart(
        role, hub_id or identity.get("name") or "?", license_, f"https://huggingface.co/{hub_id}" if hub_id else None
    )


def lineage_licenses(provenance: dict) -> list[LicensePart]:
    """Whose terms an artifact made along ``provenance`` (an artifact's merged provenance) inherits: the problem
    source; the teachers when they generated the CoTs (reference CoTs are the source's own text); the models whose
    attention was captured (``jsd_spans`` and everything after it hold their output). Each model once, first role."""
    parts = []
    whole = provenance.get("source")
    for source in (whole or {}).get("parts") or ([whole] if whole else []):
        link = SOURCE_LINKS.get(source.get("name")) or (
            f"https://huggingface.co/datasets/{source['hub_id']}" if source.get("hub_id") else None
        )
        license_ = None if source.get("license") in (None, UNKNOWN_LICENSE) else source["license"]
        parts.append(LicensePart("problem source", source.get("hub_id") or source.get("name") or "?", license_, link))
    if (provenance.get("generation") or {}).get("cot_source") == "teacher":
        parts += [model_license_part("teacher (generated the CoTs)", t) for t in provenance.get("teachers") or []]
    for teacher in (provenance.get("capture") or {}).get("teachers") or []:
        parts.append(model_license_part("captured model (its attention made the spans)", teacher))
    seen, unique = set(), []
    for part in parts:
        if (part.name, part.license) not in seen:
            seen.add((part.name, part.license))
            unique.append(part)
    return unique


def combine_licenses(parts: list[LicensePart], link: str = "README.md#license") -> dict:
    """The card metadata for ``parts``: one license when every part has the same known one; otherwise ``other``
    with a ``license_name`` naming the parts' licenses (``unknown`` for unknown terms) and a ``license_link`` to the
    card's license section (``link``), which explains each part."""
    licenses = list(dict.fromkeys(part.license for part in parts))
    if len(licenses) == 1 and licenses[0] is not None:
        return {"license": licenses[0]}
    names = [re.sub(r"[^a-z0-9]+", "-", (name or "unknown").lower()).strip("-") for name in licenses] or ["unknown"]
    return {"license": UNKNOWN_LICENSE, "license_name": "-and-".join(dict.fromkeys(names)), "license_link": link}
