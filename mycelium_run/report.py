"""``DIR/report/``: the run's Markdown report with plots, written at the end of ``mycelium run``.

It reads only what the run wrote (markers, artifacts, ``models/*/metrics.json`` and ``training_log.json``,
``eval/eval.json`` and ``eval/predictions.jsonl``), so it can be regenerated at any time with
:func:`write_run_report`.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import datasets

from mycelium_datasets.card import run_relative
from mycelium_datasets.layout import RunFolder
from mycelium_models.students import STUDENTS


def _markers(out_dir: Path) -> dict[str, dict]:
    from mycelium_datasets.builders import BUILDERS

    markers = {}
    for name in BUILDERS:
        if (marker := RunFolder(out_dir).read_marker(name)) is not None:
            markers[name] = marker
    return markers


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_op_status(out_dir: Path, path: Path) -> dict[str, collections.Counter]:
    pairs = datasets.load_dataset(str(out_dir / "op_pairs"))
    counts = {split: collections.Counter(d["op_status"]) for split, d in pairs.items()}
    statuses = sorted({s for c in counts.values() for s in c})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    left = [0] * len(statuses)
    for split, counter in counts.items():
        values = [counter.get(s, 0) for s in statuses]
        ax.barh(statuses, values, left=left, label=split)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlabel("problems")
    ax.set_title("op_pairs: execution validation status")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return counts


def training_curves(history: list[dict]) -> dict:
    """A student's ``training_log.json`` as what its plot draws: ``train`` and ``validation`` losses as
    ``(epoch, loss)`` points during training, and the model training ended with (the restored best checkpoint when
    one was kept): ``best``, its epoch and validation loss, and ``test``, its test loss at that epoch (``None``
    when not evaluated). The evaluations after training are logged at the last epoch; they belong to the restored
    checkpoint's epoch, found by its validation loss (the same model on the same rows gives the same loss)."""
    end = next((k for k, h in enumerate(history) if "train_runtime" in h), len(history))
    during, after = history[:end], history[end + 1 :]
    validation = [(h["epoch"], h["eval_loss"]) for h in during if "eval_loss" in h]
    final = next((h["validation_loss"] for h in after if "validation_loss" in h), None)
    test = next((h["eval_loss"] for h in after if "eval_loss" in h), None)
    epoch = max((e for e, _ in validation), default=None)
    if final is not None and validation:
        epoch = min(validation, key=lambda point: abs(point[1] - final))[0]
    elif epoch is None:
        epoch = max((h.get("epoch", 0) for h in history), default=0)
    return {
        "train": [(h["epoch"], h["loss"]) for h in during if "loss" in h],
        "validation": validation,
        "best": (epoch, final) if final is not None else None,
        "test": (epoch, test) if test is not None else None,
    }


def _plot_training(models_dir: Path, path: Path) -> bool:
    logs = {}
    for kind in STUDENTS:
        log = models_dir / kind / "training_log.json"
        if log.is_file():
            logs[kind] = json.loads(log.read_text())
    if not logs:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(logs), figsize=(5 * len(logs), 3), squeeze=False)
    for ax, (kind, history) in zip(axes[0], logs.items()):
        curves = training_curves(history)
        if curves["train"]:
            ax.plot(*zip(*curves["train"]), label="train loss")
        if curves["validation"]:
            ax.plot(*zip(*curves["validation"]), marker="o", label="validation loss, each epoch")
        if curves["best"] is not None:
            ax.plot(*curves["best"], marker="*", markersize=14, linestyle="none", label="restored best checkpoint")
        if curves["test"] is not None:
            ax.plot(*curves["test"], marker="s", linestyle="none", label="its test loss")
        ax.set_title(kind)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def path_from_here(folder: str | Path, run_dir: str | Path) -> tuple[str, str]:
    """``folder`` (of the run ``run_dir``) as code opens it, and from where: from the current directory, where the
    run was started, when it is inside it (``runs/demo/models``), else from the run folder's parent as cards name it
    (``demo/models``); never by an absolute path, which is this machine's."""
    try:
        return Path(folder).resolve().relative_to(Path.cwd().resolve()).as_posix(), "the folder the run was started in"
    except ValueError:
        return run_relative(folder, run_dir), "the folder that holds the run folder"


def write_run_report(out_dir: str | Path, seconds: dict | None = None) -> Path:
    """Write ``DIR/report/report.md`` (+ PNGs) from what the run folder holds; returns the report's path."""
    from mycelium_models.evaluation import STAGES, accuracy_text, plot_attribution, render_eval_markdown

    out_dir = Path(out_dir)
    folder = RunFolder(out_dir)
    report = folder.report
    report.mkdir(parents=True, exist_ok=True)
    markers = _markers(out_dir)
    lines = [f"# Mycelium run report: `{out_dir.resolve().name}`", ""]

    metrics = {}
    for kind in STUDENTS:
        path = folder.student(kind) / "metrics.json"
        if path.is_file():
            metrics[kind] = json.loads(path.read_text())
    eval_path = folder.eval / "eval.json"
    summary = json.loads(eval_path.read_text()) if eval_path.is_file() else None

    lines += ["## Headline", "", "| measure | value |", "| --- | --- |"]
    if summary:
        lines.append(
            f"| **end-to-end accuracy, students alone, no CoT, {summary.get('split', 'test')} split** | "
            f"{accuracy_text(summary)} |"
        )
        if summary.get("teacher_accuracy") is not None:
            lines.append(
                f"| teacher CoT accuracy on the same problems (reported apart) | {summary['teacher_accuracy']:.3f} |"
            )
    for kind, m in metrics.items():
        student = STUDENTS[kind]
        names = " / ".join(label for _, label in student.headline)
        values = " / ".join(f"{m.get('eval_' + key, 0):.3f}" for key, _ in student.headline)
        lines.append(f"| {kind} {names} (test split) | {values} |")
    if seconds:
        lines.append(f"| wall time | {seconds.get('total', 0):.0f} s |")
    lines.append("")

    lines += [
        "## Artifacts",
        "",
        "| artifact | version | fingerprint | rows | dropped | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in markers.items():
        rows = ", ".join(f"{k} {v}" for k, v in m.get("rows", {}).items())
        dropped = ", ".join(f"{k}: {v}" for k, v in (m.get("dropped") or {}).items()) or "none"
        lines.append(
            f"| [`{name}`](../{name}/README.md) | {m.get('version')} | `{m.get('fingerprint', '')[:12]}` | {rows} | "
            f"{dropped} | {m.get('seconds', '')} |"
        )
    lines.append("")

    if (out_dir / "op_pairs" / "README.md").is_file():
        counts = _plot_op_status(out_dir, report / "op_status.png")
        total = sum(sum(c.values()) for c in counts.values())
        validated = sum(c.get("validated", 0) for c in counts.values())
        lines += [
            "## Operations: execution validation",
            "",
            f"{validated} of {total} problems ({validated / max(1, total):.1%}) have a CoT whose operation DAG "
            "executes to the gold answer; only those train the students.",
            "",
            "![op_pairs status](op_status.png)",
            "",
        ]

    if metrics:
        lines += ["## Students", "", "| student | metric | value |", "| --- | --- | --- |"]
        for kind, m in metrics.items():
            for key, value in sorted(m.items()):
                if (
                    isinstance(value, float)
                    and key.startswith("eval_")
                    and "runtime" not in key
                    and "per_second" not in key
                ):
                    lines.append(f"| {kind} | {key[5:]} | {value:.4f} |")
        lines.append("")
        models, where = path_from_here(folder.models, out_dir)
        if _plot_training(folder.models, report / "training.png"):
            lines += ["![training curves](training.png)", ""]
        lines += [
            "Models: "
            + ", ".join(f"[`models/{kind}`](../models/{kind}/README.md)" for kind in metrics)
            + f' (`MyceliumSolver.from_pretrained("{models}")` from {where}).',
            "",
        ]

    if summary:
        rows = []
        predictions = folder.eval / "predictions.jsonl"
        if predictions.is_file():
            rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
        plot_attribution(summary, report / "attribution.png")
        body = render_eval_markdown(summary, rows, "Evaluation", "attribution.png")
        lines += ["#" + line if line.startswith("#") else line for line in body.splitlines()]
        lines += [
            "",
            f"Attribution stages, in order: {', '.join(STAGES)}; full predictions: `eval/predictions.jsonl`.",
        ]
    (report / "report.md").write_text("\n".join(lines) + "\n")
    return report / "report.md"
