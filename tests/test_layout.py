"""The run folder's layout has one description (``mycelium_datasets.layout.RunFolder``); the versioned modules that
still spell their part of it agree with it, and a folder a run wrote is where the layout says."""

from __future__ import annotations

import json

import pytest

from mycelium_datasets.builders import BUILDERS
from mycelium_datasets.layout import RunFolder
from mycelium_datasets.run_folder import RunLock
from mycelium_models.students import STUDENTS
from mycelium_models.train import checkpoints_dir
from mycelium_run.job import read_run_configs, split_options, write_run_configs


def test_the_versioned_modules_spell_the_layout_as_run_folder_does(tmp_path):
    folder = RunFolder(tmp_path)
    for name, builder_class in BUILDERS.items():
        builder = builder_class(tmp_path)
        assert builder.path == folder.artifact(name)
        assert builder.marker_path == folder.marker(name)
        assert builder.work_dir("0123456789abcdef0123") == folder.work(name, "0123456789abcdef")
    for kind in STUDENTS:
        assert checkpoints_dir(tmp_path, kind) == folder.checkpoints(kind)
    lock = RunLock(tmp_path)
    assert (lock.path, lock.info_path) == (folder.lock, folder.lock_info)


def test_a_marker_reads_back_and_a_missing_or_broken_one_is_none(tmp_path):
    folder = RunFolder(str(tmp_path))
    assert not folder.is_run_folder() and folder.read_marker("problems") is None
    folder.marker("problems").parent.mkdir(parents=True)
    folder.marker("problems").write_text(json.dumps({"fingerprint": "abc"}))
    folder.marker("io_tags").write_text("{not json")
    assert folder.is_run_folder()
    assert folder.read_marker("problems") == {"fingerprint": "abc"}
    assert folder.read_marker("io_tags") is None


def test_a_folder_without_a_run_config_names_the_command_that_makes_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="mycelium run"):
        RunFolder(tmp_path).read_run_config()
    RunFolder(tmp_path).run_config.write_text(json.dumps({"io_tags": {"max_length": 256}}))
    assert RunFolder(tmp_path).read_run_config()["io_tags"]["max_length"] == 256


def test_a_runs_configs_read_back_as_the_classes_that_split_them(tmp_path, caplog):
    configs = split_options({"size": 7, "op_spacy_pipeline": "my_pipeline", "student_epochs": 2.0, "max_length": 64})
    write_run_configs(tmp_path, configs)
    back = read_run_configs(tmp_path)
    assert back == configs
    assert back["op_pairs"].op_spacy_pipeline == "my_pipeline" and back["clause_regions"].spacy_pipeline is None
    recorded = json.loads(RunFolder(tmp_path).run_config.read_text())
    recorded["problems"]["an_option_of_another_version"] = 1
    del recorded["students"]
    RunFolder(tmp_path).run_config.write_text(json.dumps(recorded))
    back = read_run_configs(tmp_path)
    assert back["problems"] == configs["problems"] and back["students"] == type(configs["students"])()
    assert "an_option_of_another_version" in caplog.text
