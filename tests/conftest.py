"""Shared fixtures: small real models and small real data, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _shared_data() -> Path:
    """``shared/data`` beside the checkout or beside any folder above it (a clone in a worktree or CI folder finds the
    project's shared data too); ``MYCELIUM_SHARED_DATA`` names it explicitly."""
    if os.environ.get("MYCELIUM_SHARED_DATA"):
        return Path(os.environ["MYCELIUM_SHARED_DATA"])
    for folder in Path(__file__).resolve().parents[1].parents:
        if (folder / "shared" / "data").is_dir():
            return folder / "shared" / "data"
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


SHARED_DATA = _shared_data()
REQUIRE = "MYCELIUM_REQUIRE_SHARED_DATA"


def shared_file(name: str) -> Path:
    """A file of the shared data, or a clean skip when it is absent (a user's fresh machine). With
    ``MYCELIUM_REQUIRE_SHARED_DATA=1`` (or ``CI=true`` where the shared data is reachable: a CI that has it must read
    it) a missing file fails the test instead: a skip there would hide that real data was never read."""
    path = SHARED_DATA / name
    if not path.is_file():
        reason = f"{path} is absent (real-data tests need ../shared/data)"
        ci = os.environ.get("CI", "").lower() in ("true", "1") and SHARED_DATA.is_dir()
        if os.environ.get(REQUIRE) == "1" or ci:
            pytest.fail(f"{reason}; shared data is required here, so this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)
    return path


def read_artifact(folder: Path) -> dict[str, list[dict]]:
    """An artifact folder's rows as they are on disk: each split's Parquet files read with pyarrow, in file and row
    order, every column. Compare run folders with this, never through ``load_dataset``: it caches a local folder by
    its card header (file names, row counts, sizes), so two runs with the same fingerprint load as one."""
    import pyarrow.parquet as pq

    files = sorted((Path(folder) / "data").glob("*.parquet"))
    assert files, f"{folder} holds no Parquet file"
    splits: dict[str, list[dict]] = {}
    for path in files:
        splits.setdefault(path.name.split("-")[0], []).extend(pq.read_table(path).to_pylist())
    return splits


def read_run(out: Path) -> dict[str, tuple[str, dict[str, list[dict]]]]:
    """Every artifact of a run folder from disk: its fingerprint (from the completion marker) and its rows."""
    from mycelium_datasets.builders import BUILDERS

    result = {}
    for name in BUILDERS:
        marker = json.loads((Path(out) / ".mycelium" / f"{name}.json").read_text())
        result[name] = (marker["fingerprint"], read_artifact(Path(out) / name))
    return result


def check_token_alignment(offsets: list[tuple[int, int]], spans: list[dict]) -> None:
    """A span's tokens start at the first token that overlaps its first character (every earlier token ends at or
    before ``char_start``), and consecutive spans meet exactly: one's ``token_end`` is the next one's
    ``token_start``; together they cover every token."""
    for s in spans:
        k = s["token_start"]
        assert all(end <= s["char_start"] for _, end in offsets[:k]), (s, offsets[:k])
        assert k == len(offsets) or offsets[k][1] > s["char_start"], (s, offsets[k])
    assert spans[0]["token_start"] == 0 and spans[-1]["token_end"] == len(offsets)
    for left, right in zip(spans, spans[1:]):
        assert left["token_end"] == right["token_start"], (left, right)


def write_jsonl(path: Path, records: list) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture(scope="session")
def teacher_path() -> str:
    """The embedded SmolLM2-135M-Instruct as a safetensors folder (converted from its GGUF once per machine)."""
    from mycelium_datasets.defaults import DEFAULT_TEACHER, resolve_teacher

    return resolve_teacher(DEFAULT_TEACHER)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, teacher_path) -> str:
    """A tiny randomly initialised Llama with the embedded teacher's tokenizer and chat template: a real, fast,
    *different* second teacher for cascade and distributed tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-teacher")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_solver():
    """Randomly initialised tiny students over the embedded backbone's tokenizer; the tagger tags every token OP,
    so every non-empty problem reaches the classifier (or the step decoder) and the executor."""
    import torch
    from transformers import AutoTokenizer, BertConfig

    from mycelium_datasets.dag import ARITY
    from mycelium_datasets.defaults import resolve_backbone
    from mycelium_datasets.op_graph import OP_NAMES
    from mycelium_models import MyceliumOpClassifier, MyceliumOpClassifierConfig, MyceliumTagger, MyceliumTaggerConfig
    from mycelium_models.modeling_mycelium import (
        MyceliumBinder,
        MyceliumBinderConfig,
        MyceliumStepDecoder,
        MyceliumStepDecoderConfig,
    )
    from mycelium_models.solver import MyceliumSolver

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone())
    backbone = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    ).to_dict()
    tagger = MyceliumTagger(MyceliumTaggerConfig(backbone_config=backbone))
    with torch.no_grad():
        tagger.head.bias.copy_(torch.tensor([-10.0, 10.0]))
    classifier = MyceliumOpClassifier(
        MyceliumOpClassifierConfig(
            backbone_config=backbone, num_labels=len(OP_NAMES), id2label=dict(enumerate(OP_NAMES))
        )
    )
    binder = MyceliumBinder(
        MyceliumBinderConfig(
            backbone_config=backbone, op_names=list(OP_NAMES), arity={k: list(v) for k, v in ARITY.items()}
        )
    )
    decoder = MyceliumStepDecoder(MyceliumStepDecoderConfig(backbone_config=backbone, constants=["2", "100"]))
    return MyceliumSolver(
        tagger,
        tokenizer,
        classifier,
        tokenizer,
        binder,
        tokenizer,
        "cpu",
        decoder=decoder,
        decoder_tokenizer=tokenizer,
    )


def save_solver(solver, folder: Path) -> Path:
    """Save each student of ``solver`` with its tokenizer into ``folder/<student>/``: a models folder as a run
    writes it (what ``MyceliumSolver.from_pretrained`` and ``mycelium solve --models`` read)."""
    for name in ("tagger", "classifier", "binder", "decoder"):
        model = getattr(solver, name)
        if model is not None:
            model.save_pretrained(folder / name)
            getattr(solver, f"{name}_tokenizer").save_pretrained(folder / name)
    return folder


def run_single_and_distributed(argv: list[str], tmp_path: Path, port: int) -> tuple[Path, Path, str]:
    """Run ``mycelium ARGV`` once in one process (--out tmp/one) and once under torchrun with two CPU processes
    (--out tmp/two); returns both run folders and the distributed run's stderr."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run(
        [sys.executable, "-m", "mycelium_run.cli", *argv, "--out", str(one)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(port),
            "-m",
            "mycelium_run.cli",
            *argv,
            "--out",
            str(two),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    return one, two, double.stderr


def run_as_hub_user(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``script`` (Python source) as a Hub user without our package would: a fresh process, offline, its own
    remote-code module cache, started outside the repository so that ``mycelium_models`` is never imported from it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
