"""``mycelium show``: one problem's spans, regions, operations, IAF maps and JSD curve as one HTML page.

The CoT is rendered with spaCy's displaCy (span style), one labelled span per step; under it, the problem text is
shaded by each span's IAF; beside it, a PNG of the JSD curve (raw and Savitzky-Golay smoothed) with its peaks and
the chosen boundaries (matplotlib). The PNG is written next to the page and embedded in it.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from pathlib import Path

import numpy as np

from .builders import load_artifact
from .segment import SegmenterConfig, jsd_peaks, smooth

ARTIFACTS_WITH_SPANS = ("op_pairs", "clause_regions", "iaf_maps", "jsd_spans")


class ShowError(ValueError):
    """The run folder has no row to show (missing artifact or unknown id)."""


def find_row(run_dir: str | Path, row_id: str) -> tuple[dict, str]:
    """The row with ``row_id`` from the most downstream artifact that has spans, and that artifact's name."""
    run_dir = Path(run_dir)
    for name in ARTIFACTS_WITH_SPANS:
        if (run_dir / name / "README.md").is_file():
            dataset = load_artifact(run_dir / name)
            for split in dataset.values():
                matches = split.filter(lambda ids: [i == row_id for i in ids], input_columns="id", batched=True)
                if len(matches):
                    return matches[0], name
            some = next(iter(dataset.values()))["id"][:5]
            raise ShowError(f"no row with id {row_id!r} in {run_dir / name}; ids look like: {', '.join(some)}")
    raise ShowError(
        f"{run_dir} has no jsd_spans or iaf_maps artifact; build one first: mycelium build jsd_spans --out {run_dir}"
    )


def jsd_png(row: dict) -> bytes:
    """The JSD curve with its smoothed version, its peaks and the chosen span boundaries, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = np.asarray(row["jsd"], dtype=np.float64)
    smoothed = smooth(curve, 5, 2)
    peaks = jsd_peaks(curve, SegmenterConfig()) if len(curve) else np.array([], dtype=int)
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    ax.plot(curve, color="#bbbbbb", lw=1, label="JSD between consecutive CoT rows")
    ax.plot(smoothed, color="#1f77b4", lw=1.6, label="Savitzky-Golay (5, 2)")
    if len(peaks):
        ax.plot(peaks, smoothed[peaks], "x", color="#ff7f0e", label="peaks (field guide)")
    for i, b in enumerate(row["boundary_tokens"]):
        ax.axvline(b, color="#d62728", lw=1.2, ls="--", label="chosen boundaries" if i == 0 else None)
    ax.set_xlabel("CoT token")
    ax.set_ylabel("JSD (bits)")
    ax.set_title(f"{row['id']}: segmenter {row['segmenter']}, {len(row['spans'])} spans")
    # below the axes, so it never covers the curve
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


# Light colours that dark text reads on, told apart from their neighbours (the spans of a CoT come one after another).
PALETTE = (
    *("#a6cee3", "#fdbf6f", "#b2df8a", "#fb9a99", "#cab2d6"),
    *("#ffff99", "#8dd3c7", "#fccde5", "#d9d9d9", "#bc80bd"),
)
# The operations, one colour each, wherever they are drawn.
OP_COLOURS = {"add": "#b2df8a", "sub": "#fb9a99", "mul": "#a6cee3", "div": "#fdbf6f"}

# Why the chosen boundaries are where they are, for each segmenter (under the JSD plot).
BOUNDARY_RULES = {
    "jsd": "the chosen boundaries are the peaks of the smoothed curve (the field guide's method).",
    "sentence": "the chosen boundaries are sentence ends and newlines; the curve is shown for comparison only.",
    "jsd_clause": "every sentence end and newline is a boundary (there the language says a step ends, whatever the "
    "curve does, so many fall in its valleys); inside a sentence that holds two or more equations, one more boundary "
    "goes between each pair of them, at the word start where the smoothed curve is highest. The marked peaks are "
    "those the field guide's jsd segmenter would cut at, for comparison.",
}


def span_colours(labels: list[str]) -> dict[str, str]:
    """A colour per label: by operation when the label names one (``op2 mul``), else the palette in turn."""
    colours = {}
    for i, label in enumerate(labels):
        op = label.split()[-1]
        colours[label] = OP_COLOURS.get(op, PALETTE[i % len(PALETTE)])
    return colours


def displacy_spans(text: str, ranges: list[tuple[int, int, str]]) -> str:
    """``text`` with labelled character ranges drawn by displaCy (span style), each label in its own colour."""
    import spacy
    from spacy import displacy

    doc = spacy.blank("en")(text)
    spans = []
    for a, b, label in ranges:
        span = doc.char_span(a, b, label=label, alignment_mode="expand")
        if span is not None and len(span):
            spans.append(span)
    doc.spans["sc"] = spans
    options = {"colors": span_colours([label for _, _, label in ranges])}
    return displacy.render(doc, style="span", page=False, jupyter=False, options=options)


def spans_html(row: dict) -> str:
    """The CoT with one displaCy span per step (span style), character ranges mapped onto spaCy tokens."""
    return displacy_spans(
        row["cot"], [(s["char_start"], s["char_end"], f"S{i + 1}") for i, s in enumerate(row["spans"])]
    )


def _provenance(operand: dict) -> str:
    return f"op {operand['op_index']}" if operand["source"] == "op" else operand["source"]


def ops_html(row: dict) -> str:
    """The problem with its operation regions (displaCy) and the operation DAG as a table."""
    if "ops" not in row and "regions" not in row:
        return ""
    parts = []
    if row.get("ops"):
        ranges = [
            (op["region"]["char_start"], op["region"]["char_end"], f"op{k} {op['op']}")
            for k, op in enumerate(row["ops"])
            if op["region"]["char_start"] >= 0
        ]
        parts.append("<h2>Operations and their problem regions</h2>" + displacy_spans(row["problem"], ranges))
        lines = []
        for k, op in enumerate(row["ops"]):
            args = ", ".join(f"{html.escape(o['value'])} <small>({_provenance(o)})</small>" for o in op["operands"])
            lines.append(
                f"<tr><td>op{k}</td><td><b>{op['op']}</b>({args})</td><td>{html.escape(op['result'])}</td>"
                f"<td>S{op['span_index'] + 1}</td><td>{html.escape(op['region']['text'])}</td></tr>"
            )
        status = html.escape(
            f"{row.get('op_status')}: executed {row.get('executed_answer')}, gold {row.get('answer')}"
        )
        parts.append(
            f'<p class="meta">{status}</p><table><tr><th></th><th>operation</th><th>result</th>'
            f"<th>span</th><th>region</th></tr>{''.join(lines)}</table>"
        )
    elif row.get("regions"):
        ranges = [(r["char_start"], r["char_end"], f"R{i + 1}") for i, r in enumerate(row["regions"])]
        parts.append("<h2>Regions</h2>" + displacy_spans(row["problem"], ranges))
    return "\n".join(parts)


def iaf_html(row: dict) -> str:
    """For each span, the problem text with each problem token shaded by the span's IAF."""
    problem = row["problem"]
    offsets = row.get("problem_token_offsets") or []
    iafs = row.get("iaf")
    if iafs is None:  # jsd_spans: compute IAF from the kept problem attention
        from .iaf_maps import span_iaf

        matrix = np.asarray(row.get("problem_attn") or [], dtype=np.float64)
        iafs = [
            span_iaf(matrix, s["token_start"], s["token_end"]).tolist() if matrix.size else [] for s in row["spans"]
        ]
    parts = []
    for i, (s, iaf) in enumerate(zip(row["spans"], iafs)):
        peak = max(iaf) if iaf else 0.0
        pieces, position = [], 0
        for off, weight in zip(offsets, iaf):
            a, b = off["char_start"], off["char_end"]
            pieces.append(html.escape(problem[position:a]))
            alpha = 0.9 * weight / peak if peak > 0 else 0.0
            pieces.append(
                f'<span title="{weight:.3f}" style="background: rgba(214, 39, 40, {alpha:.2f})">'
                f"{html.escape(problem[a:b])}</span>"
            )
            position = b
        pieces.append(html.escape(problem[position:]))
        parts.append(
            f'<div class="iaf"><div class="label">S{i + 1}: <code>{html.escape(s["text"].strip())}</code> '
            f'<span class="scale">darkest = this span\'s highest IAF, {peak:.3f}</span></div>'
            f'<div class="problem">{"".join(pieces)}</div></div>'
        )
    if not parts:
        return ""
    scale = (
        '<p class="meta">Each problem token is shaded by the share of the span\'s attention it received (IAF), '
        "relative to the span's most attended token: "
        '<span class="ramp"></span> 0 to that span\'s highest (hover a token for its value).</p>'
    )
    return scale + "\n".join(parts)


def render_page(row: dict, artifact: str, png_name: str, png: bytes) -> str:
    encoded = base64.b64encode(png).decode()
    status = html.escape(f"{row.get('span_status', '')} {row.get('span_status_reason', '')}".strip())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mycelium: {html.escape(row["id"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; max-width: 1100px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
.meta {{ color: #555; font-size: 13px; }} .problem {{ line-height: 1.9; padding: 4px 0 10px; }}
.iaf {{ border-top: 1px solid #eee; padding-top: 6px; }} .label {{ font-size: 13px; color: #444; }}
img {{ max-width: 100%; border: 1px solid #eee; }} .scale {{ color: #777; font-size: 12px; margin-left: 8px; }}
.ramp {{ display: inline-block; width: 120px; height: 10px; vertical-align: middle; border: 1px solid #ddd;
background: linear-gradient(to right, rgba(214, 39, 40, 0), rgba(214, 39, 40, 0.9)); }}
table {{ border-collapse: collapse; font-size: 14px; }} td, th {{ border-bottom: 1px solid #eee; padding: 4px 8px;
text-align: left; }}
</style></head><body>
<h1>{html.escape(row["id"])}</h1>
<p class="meta">from <code>{artifact}</code> · teacher <code>{html.escape(str(row.get("teacher")))}</code> ·
segmenter <code>{html.escape(str(row.get("segmenter")))}</code> · gold {html.escape(str(row.get("answer")))} ·
CoT answer {html.escape(str(row.get("cot_answer")))} ({html.escape(str(row.get("answer_source")))}) ·
{status}</p>
<h2>Problem</h2><div class="problem">{html.escape(row["problem"])}</div>
<h2>Chain of thought, cut into spans</h2>
{spans_html(row)}
<h2>JSD curve</h2>
<img alt="JSD curve" src="data:image/png;base64,{encoded}">
<p class="meta">Why the boundaries are there: {html.escape(BOUNDARY_RULES.get(str(row.get("segmenter")), ""))}
Also saved as {html.escape(png_name)}.</p>
{ops_html(row)}
<h2>Where each span looked in the problem (IAF)</h2>
{iaf_html(row)}
</body></html>
"""


def page_path(out: str | Path, row_id: str) -> Path:
    """Where the page goes: ``out`` itself, or ``out/<row_id>.html`` when ``out`` is a folder (an existing one, or a
    path ending in ``/``); characters of the id a file name cannot hold become ``_``."""
    text = os.fspath(out)
    if Path(text).is_dir() or text.endswith(("/", os.sep)):
        return Path(text) / (re.sub(r"[^\w.-]", "_", row_id) + ".html")
    return Path(text)


def show(run_dir: str | Path, row_id: str, out: str | Path) -> Path:
    """Write the page for ``row_id`` to ``out`` (a file, or a folder: :func:`page_path`) and the JSD plot beside
    it; returns the page's path."""
    row, artifact = find_row(run_dir, row_id)
    out = page_path(out, row_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = jsd_png(row)
    png_path = out.with_suffix(".jsd.png")
    png_path.write_bytes(png)
    out.write_text(render_page(row, artifact, png_path.name, png), encoding="utf-8")
    return out
