"""One self-contained HTML page about a run: what it did, how the graph was cut, where the
time went, how good the vectors are, and a map of a sample of them.

Everything comes from the table: the run record in its latest Delta commit (sizes, plan,
levels, seconds per stage) and a sample of at most ``sample`` rows (the only rows that reach
the driver), projected to 2-D by PCA and coloured by leaf subgraph or, with labels, by label.
Charts are inline SVG; the page loads nothing from anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from distne import __version__
from distne.errors import InputError
from distne.write import open_embeddings, read_run_metadata

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
th { border-bottom: 1px solid #999; } td:first-child, th:first-child { text-align: left; }
.muted { color: #777; } table.facts td { text-align: left; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def _bars(items: list[tuple[str, float]], unit: str, width: int = 620, digits: int = 1) -> str:
    """A horizontal bar chart: one labelled bar per item."""
    if not items:
        return '<p class="muted">nothing recorded</p>'
    top = max(v for _, v in items) or 1.0
    row, left = 22, 150
    parts = [f'<svg width="{width}" height="{row * len(items) + 6}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * row + 3
        w = max(1.0, (width - left - 90) * value / top)
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{PALETTE[0]}"/>'
            f'<text x="{left + w + 5:.1f}" y="{y + 14}">{value:,.{digits}f} {unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _scatter(points: np.ndarray, groups: list[str], width: int = 620, height: int = 460) -> str:
    """Points in 2-D, coloured by group (the ten largest groups; the rest grey), with a key."""
    if len(points) == 0:
        return '<p class="muted">no vectors</p>'
    names, counts = np.unique(np.array(groups), return_counts=True)
    shown = [str(n) for n in names[np.argsort(-counts, kind="stable")][: len(PALETTE)]]
    colour = {g: PALETTE[i] for i, g in enumerate(shown)}
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = (points - lo) / span
    pad, key = 12, 150
    parts = [f'<svg width="{width + key}" height="{height}" role="img">']
    parts.append(f'<rect width="{width}" height="{height}" fill="#fafafa" stroke="#ddd"/>')
    for (x, y), g in zip(xy, groups, strict=True):
        cx = pad + x * (width - 2 * pad)
        cy = height - pad - y * (height - 2 * pad)
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" '
            f'fill="{colour.get(g, "#cccccc")}" fill-opacity="0.75"/>'
        )
    for i, g in enumerate(shown):
        y = 16 + i * 18
        parts.append(
            f'<circle cx="{width + 16}" cy="{y - 4}" r="5" fill="{colour[g]}"/>'
            f'<text x="{width + 26}" y="{y}">{html.escape(g)}</text>'
        )
    if len(names) > len(shown):
        y = 16 + len(shown) * 18
        parts.append(f'<text x="{width + 26}" y="{y}" class="muted">others: grey</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _quality(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return (
            '<p class="muted">No evaluation given: <code>distne evaluate ... &gt; e.json</code>, '
            "then <code>distne report --evaluation e.json</code>.</p>"
        )
    rows = []
    for task in ("link_prediction", "node_classification"):
        for key, value in (evaluation.get(task) or {}).items():
            if isinstance(value, int | float):
                shown = f"{value:.4f}" if isinstance(value, float) else f"{value:,}"
                rows.append([task.replace("_", " "), key, shown])
    return _table(["task", "figure", "value"], rows)


def sample_vectors(
    spark: SparkSession, embeddings: str, sample: int, seed: int
) -> tuple[np.ndarray, list[str], list[str], int]:
    """At most ``sample`` rows of the table (ids, leaf ids, vectors) and the table's size."""
    table = open_embeddings(spark, embeddings)
    total = table.count()
    fraction = min(1.0, 1.2 * sample / max(1, total))
    rows = (
        table.sample(fraction=fraction, seed=seed)
        .orderBy(F.xxhash64("node_id", F.lit(seed)))
        .limit(sample)
        .select(F.col("node_id").cast("string").alias("id"), "subgraph_id", "embedding")
        .collect()
    )
    vectors = np.array([r["embedding"] for r in rows], dtype=np.float64).reshape(len(rows), -1)
    return vectors, [r["id"] for r in rows], [str(r["subgraph_id"]) for r in rows], total


def pca2(vectors: np.ndarray) -> np.ndarray:
    """The rows projected on their two leading principal axes."""
    if len(vectors) < 2:
        return np.zeros((len(vectors), 2))
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))


def render(
    spark: SparkSession,
    embeddings: str,
    *,
    labels: dict[str, str] | None = None,
    evaluation: dict[str, Any] | None = None,
    sample: int = 2000,
    seed: int = 42,
) -> str:
    """The report's HTML for the table at ``embeddings``."""
    try:
        meta = read_run_metadata(spark, embeddings)
    except Exception as e:  # noqa: BLE001 - a Delta error's class is the JVM's
        raise InputError(
            f"report --embeddings {embeddings!r}: expected a Delta table written by distne; "
            f"found none ({str(e).splitlines()[0][:200]})."
        ) from None
    vectors, ids, leaves, total = sample_vectors(spark, embeddings, sample, seed)
    part = meta.get("partition") or {}
    recorded = meta.get("seconds") or {}
    order = ["ingest", "components", "partition", "embed", "fuse"]
    seconds = [(k, float(recorded[k])) for k in order if k in recorded]
    seconds += [(k, float(v)) for k, v in recorded.items() if k not in order and k != "total"]
    facts = [
        ["table", embeddings],
        ["rows", f"{total:,}"],
        ["nodes / edges", f"{meta.get('nodes', 0):,} / {meta.get('edges', 0):,}"],
        ["mode", f"{meta.get('mode', '?')} ({meta.get('plan', '')})"],
        ["leaf subgraphs", f"{part.get('leaf_subgraphs', 1):,}"],
        ["written by", f"distne {meta.get('version', '?')}, seed {meta.get('seed', '?')}"],
    ]
    if meta.get("resumed"):
        facts.append(["resumed from", meta["resumed"]])
    hist = part.get("leaf_size_histogram") or []
    max_nodes = part.get("max_nodes") or 0
    tenth = [(f"{10 * i}-{10 * (i + 1)}% of {max_nodes:,}", float(c)) for i, c in enumerate(hist)]
    levels = [
        [
            lv["level"],
            f"{lv['nodes']:,}",
            lv["subgraphs"],
            f"{lv['max_subgraph_edges']:,}",
            f"{lv['cut_fraction']:.1%}",
            f"{lv['border_nodes']:,}",
            f"{lv['seconds']:.1f}",
        ]
        for lv in part.get("per_level", [])
    ]
    colour_by = "label" if labels else "leaf subgraph"
    groups = [labels.get(i, "unlabelled") for i in ids] if labels else leaves
    sections = [
        f"<h1>distne run: {html.escape(embeddings)}</h1>",
        _table(["", ""], facts).replace("<table>", '<table class="facts">', 1),
        "<h2>Time per stage</h2>",
        _bars(seconds, "s"),
        "<h2>Leaf sizes</h2>",
        _bars(tenth, "leaves", digits=0)
        if hist
        else '<p class="muted">one piece: no partition</p>',
        "<h2>Levels: cut and border</h2>",
        _table(["level", "nodes", "subgraphs", "largest (edge rows)", "cut", "border", "s"], levels)
        if levels
        else '<p class="muted">one piece: no partition</p>',
        "<h2>Quality</h2>",
        _quality(evaluation),
        f"<h2>A map of {len(ids):,} vectors (PCA), coloured by {colour_by}</h2>",
        _scatter(pca2(vectors), groups),
        f'<p class="muted">distne {__version__} report; run record: Delta commit userMetadata.</p>',
    ]
    body = "\n".join(sections)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>distne report</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f"</body></html>\n"
    )


def write_report(
    spark: SparkSession,
    embeddings: str,
    output: str,
    labels_path: str | None = None,
    evaluation_path: str | None = None,
    sample: int = 2000,
    seed: int = 42,
) -> dict[str, Any]:
    """Write the report to the local file ``output``; return what it shows."""
    labels = None
    if labels_path:
        from distne.evaluation.metrics import read_labels

        labels = {str(k): str(v[0]) for k, v in read_labels(labels_path).items()}
    evaluation = None
    if evaluation_path:
        try:
            evaluation = json.loads(Path(evaluation_path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(
                f"report --evaluation {evaluation_path!r}: expected the JSON distne evaluate "
                f"prints; found {e}."
            ) from None
    page = render(spark, embeddings, labels=labels, evaluation=evaluation, sample=sample, seed=seed)
    Path(output).write_text(page)
    return {"report": output, "bytes": len(page.encode())}
