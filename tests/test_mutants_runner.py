"""Resumable parts (``runner.map_in_parts``) as two ranks see them, run one after the other in this process."""

from __future__ import annotations

import datasets
import pytest

from mycelium_datasets.runner import ProcessInfo, map_in_parts, process_info

FEATURES = datasets.Features({"x": datasets.Value("int64"), "batch": datasets.Value("int64")})


def batch_sizes(batch):
    """Each row with the size of the batch it was mapped in."""
    return {"x": batch["x"], "batch": [len(batch["x"])] * len(batch["x"])}


class Barrier:
    def __init__(self):
        self.waits = 0

    def wait_for_everyone(self):
        self.waits += 1


def test_ranks_write_their_own_parts_and_each_returns_everything_in_input_order(tmp_path):
    data = datasets.Dataset.from_dict({"x": list(range(13))})
    work = tmp_path / "run" / "w"  # its parent does not exist yet either
    barrier = Barrier()
    ranks = [ProcessInfo(rank, 2, barrier) for rank in (0, 1)]
    # rank 0 alone: its parts are written, then the merge finds rank 1's missing and says where to look
    with pytest.raises(
        RuntimeError, match=f"squares: merged 7 rows from {work} but the input has 13; remove the folder to recompute"
    ):
        map_in_parts(
            data,
            batch_sizes,
            work_dir=work,
            features=FEATURES,
            batch_size=2,
            part_size=3,
            info=ranks[0],
            desc="squares",
        )
    assert barrier.waits == 1
    assert sorted(p.name for p in work.iterdir()) == [f"w002-r000-p{k:05d}.parquet" for k in range(3)]
    for info in (ranks[1], ranks[0]):  # rank 1 does its share; then rank 0, resumed, computes nothing more
        out = map_in_parts(data, batch_sizes, work_dir=work, features=FEATURES, batch_size=2, part_size=3, info=info)
        assert out["x"] == list(range(13))
        # contiguous shards of 7 and 6 rows, parts of 3, batches of 2 that never cross a part
        assert out["batch"] == [2, 2, 1, 2, 2, 1, 1] + [2, 2, 1, 2, 2, 1]
        assert out.features == FEATURES
    assert len(list(work.glob("w002-r001-p*.parquet"))) == 2 and barrier.waits == 3
    # another number of processes does not mix in those parts: one process computes its own
    out = map_in_parts(data, batch_sizes, work_dir=work, features=FEATURES, batch_size=4, part_size=13)
    assert out["batch"] == [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1]
    assert [p.name for p in sorted(work.glob("w001-*"))] == ["w001-r000-p00000.parquet"]
    assert not list(work.glob("*.tmp*"))


def test_an_empty_input_maps_to_an_empty_dataset_with_the_features(tmp_path):
    data = datasets.Dataset.from_dict({"x": []}, features=datasets.Features({"x": datasets.Value("int64")}))
    out = map_in_parts(data, batch_sizes, work_dir=tmp_path / "w", features=FEATURES)
    assert len(out) == 0 and out.features == FEATURES


def test_process_info_without_a_launcher(monkeypatch):
    for world in (None, "1", "0"):
        if world is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world)
        info = process_info()
        assert (info.rank, info.world_size, info.state, info.is_main) == (0, 1, None, True)
    assert not ProcessInfo(rank=1, world_size=2).is_main
    ProcessInfo().barrier()  # one process: nothing to wait for


def test_a_column_that_starts_with_none_keeps_its_declared_type(tmp_path):
    # the first batch has no answer yet: the type comes from the declared features, not from the first values
    features = datasets.Features({"x": datasets.Value("int64"), "answer": datasets.Value("string")})

    def answers_from_two(batch):
        return {"x": batch["x"], "answer": [None if x < 2 else str(x) for x in batch["x"]]}

    data = datasets.Dataset.from_dict({"x": list(range(4))})
    out = map_in_parts(data, answers_from_two, work_dir=tmp_path / "w", features=features, batch_size=2)
    assert out["answer"] == [None, None, "2", "3"] and out.features == features


# -- map_batches: several processes, the result of one ------------------------------------------------------------


def label_batches(batch, *, tag):
    """Each row with the rows of the batch it was mapped in and the process that mapped it."""
    import os

    n = len(batch["x"])
    return {"x": batch["x"], "batch": [f"{tag}{batch['x'][0]}-{batch['x'][-1]}"] * n, "pid": [os.getpid()] * n}


LABELLED = datasets.Features(
    {"x": datasets.Value("int32"), "batch": datasets.Value("string"), "pid": datasets.Value("int64")}
)


@pytest.mark.parametrize("num_proc, workers", [(None, 1), (1, 1), (2, 2), (3, 3), (10, 6)])
def test_map_batches_on_several_processes_gives_the_batches_and_rows_of_one(num_proc, workers):
    import os

    from mycelium_datasets.runner import map_batches

    data = datasets.Dataset.from_dict({"x": list(range(22)), "drop": ["d"] * 22})
    loaded = []
    out = map_batches(
        data,
        label_batches,
        batch_size=4,
        features=LABELLED,
        fn_kwargs={"tag": "b"},
        remove_columns=["drop"],
        num_proc=num_proc,
        preload=lambda: loaded.append(os.getpid()),
    )
    assert out.features == LABELLED  # the declared types (x is int32), the removed column gone
    assert out["x"] == list(range(22))  # the shards joined in input order
    # every batch is the one a single process makes: whole batches of 4 from the start, the last one short
    assert out["batch"] == [f"b{a}-{min(a + 3, 21)}" for a in range(0, 22, 4) for _ in range(min(4, 22 - a))]
    pids = set(out["pid"])
    assert 1 <= len(pids) <= workers  # never more workers than batches (a worker that is done may take a next shard)
    if workers == 1:
        assert pids == {os.getpid()} and loaded == []  # in this process; nothing to share with workers
    else:
        assert os.getpid() not in pids and loaded == [os.getpid()]  # preloaded once, here, before the workers start


def die_on_row(batch, *, bad):
    import os
    import signal

    if bad in batch["x"]:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OS does to a process out of memory
    return batch


def test_map_batches_names_the_stage_and_rows_when_a_worker_dies():
    from mycelium_datasets.runner import WorkerDiedError, map_batches

    data = datasets.Dataset.from_dict({"x": list(range(20))})
    features = datasets.Features({"x": datasets.Value("int64")})
    message = (
        r"^stage: a worker process died before rows (0-8|8-20) of 20 came back \(killed, out of memory, or a crash "
        r"in compiled code\); rerun with num_proc=1 to see the error in this process$"
    )
    with pytest.raises(WorkerDiedError, match=message):
        map_batches(data, die_on_row, batch_size=4, features=features, fn_kwargs={"bad": 13}, num_proc=2, desc="stage")


HELPER = {"add": 1}


def add_helper(batch):
    return {"x": [x + HELPER["add"] for x in batch["x"]]}


def test_map_batches_never_hands_back_rows_cached_from_other_code(tmp_path, monkeypatch):
    # datasets' map cache knows a function by name: after an edit to what it calls, it would return the old rows
    from mycelium_datasets.runner import map_batches

    datasets.Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(str(tmp_path / "data"))
    data = datasets.load_from_disk(str(tmp_path / "data"))  # on disk: a map may be cached next to it
    features = datasets.Features({"x": datasets.Value("int64")})
    assert map_batches(data, add_helper, batch_size=2, features=features)["x"] == [2, 3, 4]
    monkeypatch.setitem(HELPER, "add", 10)
    assert map_batches(data, add_helper, batch_size=2, features=features)["x"] == [11, 12, 13]


def test_map_in_parts_never_hands_back_rows_cached_from_other_code(tmp_path, monkeypatch):
    datasets.Dataset.from_dict({"x": [1, 2, 3]}).save_to_disk(str(tmp_path / "data"))
    data = datasets.load_from_disk(str(tmp_path / "data"))
    features = datasets.Features({"x": datasets.Value("int64")})
    assert map_in_parts(data, add_helper, work_dir=tmp_path / "w1", features=features)["x"] == [2, 3, 4]
    monkeypatch.setitem(HELPER, "add", 10)  # a new run (its own parts folder) after an edit to the helper
    assert map_in_parts(data, add_helper, work_dir=tmp_path / "w2", features=features)["x"] == [11, 12, 13]
