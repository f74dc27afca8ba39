"""Recall of the approximate neighbour search against the exact one, on a real graph's vectors.

    .venv/bin/python benchmarks/neighbors_recall.py --graph github-musae [--queries 500]

Embeds the graph with ``distne run`` (default settings; skipped when ``<work>/<graph>`` holds
a table already), draws ``--queries`` node ids with the seed, and asks for their ``-k``
neighbours: once exactly, then approximately with each ``--probes`` count, in one Spark
session. Recall@k is the share of the exact top k that the approximate answer also returns,
averaged over the queries. Prints a Markdown table (seconds per batch, share of the table
searched, recall) and writes ``<work>/neighbors_recall.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graphframes_peer import DATA, GRAPHS  # noqa: E402
from scale import ROOT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graph", choices=sorted(GRAPHS), default="github-musae")
    ap.add_argument("--work", default="/tmp/distne-neighbors")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--probes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    work = Path(args.work)
    table = work / args.graph
    if not (table / "_delta_log").exists():
        distne = str(ROOT / ".venv" / "bin" / "distne")
        edges = str(DATA / GRAPHS[args.graph][0])
        subprocess.run([distne, "run", "--input", edges, "--output", str(table)], check=True)

    from distne.config import load_config
    from distne.neighbors import MAX_CELLS, MIN_CELLS, nearest
    from distne.session import build_session
    from pyspark.sql import functions as F

    spark = build_session(load_config(None, []), "local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    frame = spark.read.format("delta").load(str(table))
    rows = frame.count()
    picked = frame.orderBy(F.rand(args.seed)).limit(args.queries).select("node_id").collect()
    ids = [str(r["node_id"]) for r in picked]

    def timed(**how):
        t = time.perf_counter()
        found = nearest(spark, str(table), ids, args.k, seed=args.seed, **how)
        return found, time.perf_counter() - t

    exact, exact_s = timed(method="exact")
    cells = min(MAX_CELLS, max(MIN_CELLS, round(rows**0.5)))
    results = [{"method": "exact", "seconds": round(exact_s, 2), "searched": 1.0, "recall": 1.0}]
    for probes in args.probes:
        found, seconds = timed(method="approximate", probes=probes)
        recall = [
            len({h["node_id"] for h in found[q]} & {h["node_id"] for h in exact[q]})
            / max(1, len(exact[q]))
            for q in ids
        ]
        results.append(
            {
                "method": f"approximate, {probes} of {cells} cells",
                "seconds": round(seconds, 2),
                "searched": round(min(1.0, probes / cells), 4),
                "recall": round(sum(recall) / len(recall), 4),
            }
        )
    record = {
        "graph": args.graph,
        "rows": rows,
        "queries": len(ids),
        "k": args.k,
        "results": results,
    }
    (work / "neighbors_recall.json").write_text(json.dumps(record, indent=2))
    print(f"\n{args.graph}: {rows:,} vectors, {len(ids)} queries, k={args.k}\n")
    print("| method | seconds (whole batch) | share of the table searched (about) | recall@k |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['seconds']} | {r['searched']:.3f} | {r['recall']:.4f} |")


if __name__ == "__main__":
    main()
