"""Partitioning time against edge count on generated power-law graphs, with the fitted exponent.

    .venv/bin/python benchmarks/partition_scale.py [--edges 1e6 2e6 5e6 1e7 2e7] \
        [--method multilevel] [--max-nodes 20000] [--max-levels 0]

Each graph has edges/10 nodes (mean degree about 20), degree tail exponent 2.5 and one planted
community per 1,000 nodes (distne.generate). It is generated once into Parquet under
``--work`` (not timed), read back, and partitioned; the time is that of ``partition()`` alone.
Prints one JSON line per graph (time, per-level cut and size figures) and, at the end, the
exponent ``b`` of the least-squares fit ``seconds = a * edges^b`` (b = 1 is linear).

Only ratios from one run mean much: the machine is shared and its speed varies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from distne.config import load_config
from distne.generate import power_law_edges
from distne.graph import endpoints
from distne.partition import partition
from distne.session import build_session


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", nargs="*", type=float, default=[1e6, 2e6, 5e6, 1e7, 2e7])
    ap.add_argument("--method", default="multilevel")
    ap.add_argument("--max-nodes", type=int, default=20_000)
    ap.add_argument("--max-levels", type=int, default=0)
    ap.add_argument("--work", default="/tmp/distne-scale")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    cfg = load_config(
        None,
        [
            "runtime.progress=true",
            "spark.shuffle_partitions=16",
            "spark.conf.spark.ui.enabled=false",
            "spark.conf.spark.driver.memory=14g",
            f"partition.method={args.method}",
            f"partition.max_nodes={args.max_nodes}",
            *args.set,
        ],
    )
    spark = build_session(cfg, "local[*]")
    spark.sparkContext.setLogLevel("ERROR")
    work = Path(args.work)
    sizes, times = [], []
    for target in args.edges:
        m_target = int(target)
        path = work / f"powerlaw-{m_target}.parquet"
        if not path.exists():
            tmp = work / f"powerlaw-{m_target}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            power_law_edges(spark, m_target // 10, m_target, cfg.seed).write.parquet(str(tmp))
            tmp.rename(path)
        edges = spark.read.parquet(str(path))
        nodes = endpoints(edges)
        m = edges.count()
        t0 = time.perf_counter()
        p = partition(spark, nodes, edges, cfg, max_levels=args.max_levels)
        seconds = time.perf_counter() - t0
        sizes.append(m)
        times.append(seconds)
        line = {
            "edges": m,
            "nodes": p.levels[0].nodes,
            "method": args.method,
            "seconds": round(seconds, 1),
            "levels": [
                {
                    "level": s.level,
                    "nodes": s.nodes,
                    "edges": s.edges,
                    "subgraphs": s.subgraphs,
                    "cut_fraction": round(s.cut_fraction, 4),
                    "border_nodes": s.border_nodes,
                    "seconds": s.seconds,
                    "coarsening_steps": s.method.coarsening_steps if s.method else 0,
                    "coarse_nodes": s.method.coarse_nodes if s.method else 0,
                }
                for s in p.levels
            ],
        }
        print(json.dumps(line), flush=True)
        spark.catalog.clearCache()
    if len(sizes) >= 2:
        b, log_a = np.polyfit(np.log(sizes), np.log(times), 1)
        print(
            json.dumps(
                {
                    "fit": "seconds = a * edges^b",
                    "b": round(float(b), 3),
                    "a": float(np.exp(log_a)),
                    "points": len(sizes),
                }
            ),
            flush=True,
        )
    spark.stop()


if __name__ == "__main__":
    main()
