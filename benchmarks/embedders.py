"""Every embedder on the real graphs of ../shared/data, whole and partitioned, on one split;
and each one's embed time on a generated graph.

    .venv/bin/python benchmarks/embedders.py [--graphs ppi github-musae ...]
        [--methods prone fastrp] [--no-graphframes] [--time-edges 1e6] [--work /tmp/distne-emb]

(``--graphs`` with no names: the timing run alone.)

Per graph, each step a process of its own under a sampler of its whole process tree
(``scale.measure``): ``distne split`` (10% of edges held out, as many non-edges), then for
every method ``distne run`` on the training edges as one piece (``run.mode=local``) and over
16 or more leaves (``run.mode=exchange``, ``partition.max_nodes`` per graph), then GraphFrames'
``RandomWalkEmbeddings`` on the same training edges (``graphframes_peer.PEER``); every table
is scored by ``distne evaluate`` on the same held-out pairs, the cross-subgraph pairs being
those the exchange run of the first method splits. The one-piece ProNE run is the
single-machine ProNE of the comparison: the engine's local backend equals a plain scipy ProNE
to 1e-4 (tests/test_exchange.py).

``--time-edges``: a generated power-law graph (``scale.generate``) embedded by every method
with the default settings; the embed stage's seconds (cut at the progress lines).

Prints Markdown tables; writes ``<work>/embedders.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphframes_peer import GRAPHS, PEER  # noqa: E402
from scale import ROOT, _peak, generate, graphframes_env, measure  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
# Leaves of at most this many nodes: 16 or more leaf subgraphs on each graph.
MAX_NODES = {"ppi": 200, "wikipedia-pos": 250, "ca-astroph": 1000, "github-musae": 2000}
DISTNE = str(ROOT / ".venv" / "bin" / "distne")


def _checked(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    r = measure(cmd, log, env)
    if r["rc"] != 0:
        raise SystemExit(
            f"{' '.join(cmd[:3])} failed (rc {r['rc']}); {log}:\n" + log.read_text()[-3000:]
        )
    return r


def _evaluate(table: Path, test: Path, labels: Path | None, cross: Path | None, log: Path) -> dict:
    cmd = [DISTNE, "evaluate", "--embeddings", str(table), "--test-edges", str(test)]
    if labels is not None:
        cmd += ["--labels", str(labels)]
    if cross is not None:
        cmd += ["--subgraphs", str(cross)]
    report = json.loads(_checked(cmd, log)["stdout"])
    lp, nc = report.get("link_prediction", {}), report.get("node_classification", {})
    return {
        "auc": lp.get("auc"),
        "auc_cross": lp.get("auc_cross"),
        "micro_f1": nc.get("micro_f1"),
        "macro_f1": nc.get("macro_f1"),
    }


def real_graph(graph: str, methods: list[str], graphframes: bool, work: Path) -> dict:
    edges_rel, labels_rel = GRAPHS[graph]
    labels = DATA / labels_rel if labels_rel else None
    work = work / graph
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    train, test = work / "train", work / "test"
    split = [DISTNE, "split", "--input", str(DATA / edges_rel), "--train", str(train)]
    _checked(split + ["--test", str(test)], work / "split.log")
    runs: dict[str, tuple[list[str], dict | None]] = {}
    for method in methods:
        for mode in ("local", "exchange"):
            sets = [f"embedding.method={method}", f"run.mode={mode}", "runtime.progress=false"]
            if mode == "exchange":
                sets.append(f"partition.max_nodes={MAX_NODES[graph]}")
            cmd = [DISTNE, "run", "--input", str(train), "--output", str(work / f"{method}-{mode}")]
            runs[f"{method}-{mode}"] = (
                cmd + ["--json"] + [a for s in sets for a in ("--set", s)],
                None,
            )
    if graphframes:
        python = str(ROOT / ".venv" / "bin" / "python")
        cmd = [python, "-c", PEER, str(train), str(work / "graphframes"), str(work / "gf-work")]
        runs["graphframes"] = (cmd, graphframes_env(work.parent))
    results = {}
    for name, (cmd, env) in runs.items():
        r = _checked(cmd, work / f"{name}.log", env)
        row = {"seconds": round(r["seconds"], 1), "peak_gb": _peak(r["samples"])}
        if name != "graphframes":
            summary = json.loads(r["stdout"])
            row["leaves"] = summary["leaf_subgraphs"]
            row["embed_seconds"] = round(summary["seconds"]["embed"], 1)
        results[name] = row
    # Scored once every table exists: the cross pairs are those of the first exchange run.
    cross = work / f"{methods[0]}-exchange"
    for name, row in results.items():
        row.update(_evaluate(work / name, test, labels, cross, work / f"{name}-evaluate.log"))
        print(json.dumps({graph: {name: row}}), flush=True)
    return results


def timed(edges: float, methods: list[str], work: Path) -> dict:
    tsv = generate(edges, work, 42)
    results = {}
    for method in methods:
        out = tsv.parent / f"emb-{method}"
        cmd = [DISTNE, "run", "--input", str(tsv), "--output", str(out), "--json"]
        cmd += ["--set", f"embedding.method={method}"]
        r = _checked(cmd, tsv.parent / f"{method}.log")
        summary = json.loads(r["stdout"])
        results[method] = {
            "seconds": round(r["seconds"], 1),
            "embed_seconds": round(summary["seconds"]["embed"], 1),
            "peak_gb": _peak(r["samples"]),
            "mode": summary["mode"],
            "leaves": summary["leaf_subgraphs"],
            "edges": summary["edges"],
        }
        shutil.rmtree(out, ignore_errors=True)
        print(json.dumps({f"generated {int(edges)}": {method: results[method]}}), flush=True)
    return results


def _cell(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("—" if v is None else str(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", nargs="*", choices=sorted(GRAPHS), default=sorted(GRAPHS))
    ap.add_argument("--methods", nargs="+", default=["prone", "fastrp"])
    ap.add_argument("--no-graphframes", action="store_true")
    ap.add_argument("--time-edges", type=float, default=1e6, help="0: no timing run")
    ap.add_argument("--work", default="/tmp/distne-emb")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"graphs": {}}
    for graph in args.graphs:
        report["graphs"][graph] = real_graph(graph, args.methods, not args.no_graphframes, work)
    if args.time_edges:
        report["timed"] = timed(args.time_edges, args.methods, work)
    (work / "embedders.json").write_text(json.dumps(report, indent=2))
    head = ["graph", "run", "leaves", "seconds", "embed s", "peak GB", "AUC", "cross AUC"]
    head += ["Micro-F1", "Macro-F1"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for graph, rows in report["graphs"].items():
        for name, r in rows.items():
            cells = [r.get("leaves"), r["seconds"], r.get("embed_seconds"), r["peak_gb"]]
            scores = [r["auc"], r["auc_cross"], r["micro_f1"], r["macro_f1"]]
            shown = ["—" if c is None else str(c) for c in cells] + [_cell(c) for c in scores]
            print(f"| {graph} | {name} | " + " | ".join(shown) + " |")
    for method, r in report.get("timed", {}).items():
        print(
            f"generated {r['edges']:,} edges, {method}: embed {r['embed_seconds']} s "
            f"({r['mode']}, {r['leaves']} leaves), whole run {r['seconds']} s, "
            f"peak {r['peak_gb']} GB"
        )


if __name__ == "__main__":
    main()
