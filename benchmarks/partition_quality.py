"""Edge cut of distne's level-0 partition against METIS and random hashing, at equal parts.

    .venv/bin/python benchmarks/partition_quality.py [--graphs ppi powerlaw-50k] [--max-nodes N]

For each real graph in ../shared/data and a generated power-law graph with planted communities,
partition level 0 with each of distne's methods at ``partition.max_nodes``:

- ``multilevel``: the default; on graphs under ``partition.coarse_nodes`` this is METIS on the
  whole level graph followed by label-propagation refinement;
- ``multilevel_coarsened``: the same with ``partition.coarse_nodes`` set to an eighth of the
  nodes, so the Spark coarsening path runs as it would on a graph too big for one machine;
- ``label_propagation``: size-constrained label propagation from a hash start;

then partition the same graph into ``k = ceil(n / (fill * max_nodes))`` parts (the number the
methods aim for) with METIS (pymetis, single machine, the reference) at its default 3%
imbalance and again allowed parts up to ``max_nodes`` as distne is, and with a seeded hash. Prints,
per graph, one JSON line with each method's cut fraction, balance (largest part / mean part),
number of parts, seconds, and its cut over METIS's.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pymetis
from distne.config import load_config
from distne.generate import power_law_edges
from distne.graph import endpoints
from distne.ingest import ingest
from distne.partition import partition
from distne.session import build_session

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GRAPHS = {
    "ppi": ("ppi/edges.tsv", 200),
    "wikipedia-pos": ("wikipedia-pos/edges.tsv", 250),
    "ca-astroph": ("ca-astroph/edges.tsv", 1000),
    "github-musae": ("github-musae/edges.csv", 2000),
    # Generated: 50k nodes, ~300k edges, 50 planted communities, degree tail exponent 2.5.
    "powerlaw-50k": (None, 2000),
}
METHODS = {
    "multilevel": ["partition.method=multilevel"],
    "multilevel_coarsened": ["partition.method=multilevel"],  # + coarse_nodes = n // 8
    "label_propagation": ["partition.method=label_propagation"],
}


def cut_and_balance(
    src: np.ndarray, dst: np.ndarray, part: np.ndarray, k: int
) -> tuple[float, float]:
    cut = float(np.mean(part[src] != part[dst]))
    sizes = np.bincount(part, minlength=k)
    sizes = sizes[sizes > 0]
    return cut, float(sizes.max() / sizes.mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--graphs", nargs="*", default=list(GRAPHS))
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
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
        if rel is None:
            edges = power_law_edges(spark, 50_000, 320_000, base.seed, communities=50)
            edges = edges.select("src", "dst", "weight").cache()
            nodes = endpoints(edges).cache()
        else:
            graph = ingest(spark, base.with_overrides([f"input.path={DATA / rel}"]).input)
            nodes, edges = graph.nodes.cache(), graph.edges.cache()
        # Benchmark only: these graphs are small enough to inspect on the driver.
        ids = np.array(sorted(r["id"] for r in nodes.collect()), dtype=np.int64)
        n = len(ids)
        e = np.array(edges.select("src", "dst").collect(), dtype=np.int64)
        src, dst = np.searchsorted(ids, e[:, 0]), np.searchsorted(ids, e[:, 1])
        k = max(2, math.ceil(n / (base.partition.fill * max_nodes)))
        line: dict[str, object] = {"graph": name, "nodes": n, "edges": len(e)}
        line |= {"max_nodes": max_nodes, "parts": k}
        for method in args.methods:
            extra = METHODS[method] + (
                [f"partition.coarse_nodes={n // 8}"] if method.endswith("coarsened") else []
            )
            cfg = base.with_overrides([f"partition.max_nodes={max_nodes}", *extra])
            t0 = time.perf_counter()
            p = partition(spark, nodes, edges, cfg, max_levels=0)
            seconds = time.perf_counter() - t0
            got = np.zeros(n, dtype=np.int64)
            for r in p.membership.where("level = 0").collect():
                got[np.searchsorted(ids, r["id"])] = r["part"]
            cut, balance = cut_and_balance(src, dst, got, int(got.max()) + 1)
            line[method] = {
                "cut": round(cut, 4),
                "balance": round(balance, 3),
                "parts": int(got.max()) + 1,
                "seconds": round(seconds, 1),
                "coarse_nodes": p.levels[0].method.coarse_nodes if p.levels[0].method else None,
            }
        adj: list[list[int]] = [[] for _ in range(n)]
        for u, v in zip(src, dst, strict=True):
            adj[u].append(int(v))
            adj[v].append(int(u))
        _, metis = pymetis.part_graph(k, adjacency=adj)
        # METIS allowed the same slack as distne: parts up to max_nodes, not 3% over the mean.
        slack = int(1000 * (max_nodes * k / n - 1))
        _, metis_slack = pymetis.part_graph(
            k, adjacency=adj, options=pymetis.Options(ufactor=slack)
        )
        hashed = np.random.default_rng(base.seed).integers(0, k, n)
        refs = {"metis": metis, "metis_same_slack": metis_slack, "hash": hashed}
        for ref, labels in refs.items():
            labels = np.asarray(labels, dtype=np.int64)
            cut, balance = cut_and_balance(src, dst, labels, k)
            line[ref] = {"cut": round(cut, 4), "balance": round(balance, 3), "parts": k}
        for method in args.methods:
            line[method]["over_metis"] = round(line[method]["cut"] / line["metis"]["cut"], 3)
            line[method]["over_metis_same_slack"] = round(
                line[method]["cut"] / line["metis_same_slack"]["cut"], 3
            )
        print(json.dumps(line), flush=True)
        nodes.unpersist()
        edges.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
