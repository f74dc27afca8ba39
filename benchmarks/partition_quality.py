"""Edge cut of distne's level-0 partition against METIS and random hashing, at equal parts.

    .venv/bin/python benchmarks/partition_quality.py [--graphs ppi ca-astroph] [--max-nodes N]

For each real graph in ../shared/data: run distne's partitioner (level 0 only) with
``partition.max_nodes``; take the number of parts it produced; partition the same graph into
that many parts with METIS (pymetis, single machine, the reference) and with a seeded hash;
print cut fraction and balance (largest part / mean part) for each, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pymetis
from distne.config import load_config
from distne.ingest import ingest
from distne.partition import partition
from distne.session import build_session

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPHS = {
    "ppi": ("ppi/edges.tsv", 200),
    "wikipedia-pos": ("wikipedia-pos/edges.tsv", 250),
    "ca-astroph": ("ca-astroph/edges.tsv", 1000),
    "github-musae": ("github-musae/edges.csv", 2000),
}


def cut_and_balance(
    src: np.ndarray, dst: np.ndarray, part: np.ndarray, k: int
) -> tuple[float, float]:
    cut = float(np.mean(part[src] != part[dst]))
    sizes = np.bincount(part, minlength=k)
    return cut, float(sizes.max() / sizes.mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graphs", nargs="*", default=list(GRAPHS))
    ap.add_argument("--max-nodes", type=int, default=None, help="override the per-graph bound")
    args = ap.parse_args()
    base = load_config(
        None,
        [
            "runtime.progress=false",
            "spark.shuffle_partitions=8",
            "spark.conf.spark.ui.enabled=false",
        ],
    )
    spark = build_session(base, "local[*]")
    spark.sparkContext.setLogLevel("ERROR")
    for name in args.graphs:
        rel, default_max = GRAPHS[name]
        max_nodes = args.max_nodes or default_max
        cfg = base.with_overrides(
            [
                f"input.path={DATA / rel}",
                f"partition.max_nodes={max_nodes}",
                "partition.max_levels=0",
            ]
        )
        graph = ingest(spark, cfg.input)
        t0 = time.perf_counter()
        p = partition(spark, graph.nodes, graph.edges, cfg)
        seconds = time.perf_counter() - t0
        # Benchmark only: the graphs here are small enough to inspect on the driver.
        n = graph.nodes.count()
        e = np.array(graph.edges.select("src", "dst").collect(), dtype=np.int64)
        src, dst = e[:, 0], e[:, 1]
        lp = np.zeros(n, dtype=np.int64)
        for r in p.membership.where("level = 0").collect():
            lp[r["id"]] = r["part"]
        k = int(lp.max()) + 1
        adj: list[list[int]] = [[] for _ in range(n)]
        for u, v in e:
            adj[u].append(int(v))
            adj[v].append(int(u))
        _, metis = pymetis.part_graph(k, adjacency=adj)
        metis = np.asarray(metis, dtype=np.int64)
        hashed = np.random.default_rng(cfg.seed).integers(0, k, n)
        rows = {
            "distne_lp": cut_and_balance(src, dst, lp, k),
            "metis": cut_and_balance(src, dst, metis, k),
            "hash": cut_and_balance(src, dst, hashed, k),
        }
        print(
            json.dumps(
                {
                    "graph": name,
                    "nodes": n,
                    "edges": len(e),
                    "max_nodes": max_nodes,
                    "parts": k,
                    "lp_seconds": round(seconds, 1),
                    **{f"{m}_cut": round(c, 4) for m, (c, _) in rows.items()},
                    **{f"{m}_balance": round(b, 3) for m, (_, b) in rows.items()},
                    "lp_over_metis": round(rows["distne_lp"][0] / rows["metis"][0], 3),
                }
            ),
            flush=True,
        )
    spark.stop()


if __name__ == "__main__":
    main()
