"""Bytes shuffled per stage of the exchange fusion, read from Spark's own stage metrics.

    .venv/bin/python benchmarks/exchange_shuffle.py [--edges 1e7] [--max-nodes 100000] [--dim 128]

Generates a power-law graph (distne.generate, edges/10 nodes) into Parquet, partitions it
(level 0, multilevel), runs the exchange fusion, then reads every completed stage's shuffle
write bytes from the Spark UI's REST API and sums them per job description ("exchange
product w", "exchange reduction", ...). Prints one JSON line per description and one with the
graph's figures (nodes, edges, leaves, border nodes, halo rows) for scale: what a product
shuffles is the node state plus the halo, against ``2 * edges * p * 8`` bytes for a plain
distributed sparse product that ships a vector per edge.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from distne.config import load_config
from distne.embedders import make_program
from distne.engine.exchange import embed_exchange
from distne.generate import power_law_edges
from distne.graph import endpoints
from distne.partition import partition
from distne.session import build_session
from pyspark.sql import functions as F


def _get(url: str) -> list[dict]:
    with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - the local Spark UI
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=float, default=1e7)
    ap.add_argument("--max-nodes", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--work", default="/tmp/distne-scale")
    ap.add_argument("--input", help="an edge list to use instead of a generated graph")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument(
        "--halo-only",
        action="store_true",
        help="partition and count the halo rows (what one product ships), without the fusion run",
    )
    args = ap.parse_args()
    cfg = load_config(
        None,
        [
            "runtime.progress=false",
            "spark.shuffle_partitions=16",
            "spark.conf.spark.ui.enabled=true",
            "spark.conf.spark.ui.retainedStages=100000",
            "spark.conf.spark.ui.retainedJobs=100000",
            "spark.conf.spark.driver.memory=14g",
            f"partition.max_nodes={args.max_nodes}",
            f"embedding.dim={args.dim}",
            *args.set,
        ],
    )
    spark = build_session(cfg, "local[*]")
    spark.sparkContext.setLogLevel("ERROR")
    if args.input:
        from distne.ingest import ingest

        graph = ingest(spark, cfg.with_overrides([f"input.path={args.input}"]).input)
        nodes, edges = graph.nodes, graph.edges
    else:
        m_target = int(args.edges)
        path = Path(args.work) / f"powerlaw-{m_target}.parquet"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            power_law_edges(spark, m_target // 10, m_target, cfg.seed).write.parquet(str(tmp))
            tmp.rename(path)
        edges = spark.read.parquet(str(path))
        nodes = endpoints(edges)
    spark.sparkContext.setJobDescription("partition")
    p = partition(spark, nodes, edges, cfg, max_levels=0)
    leaf = p.membership.where(F.col("level") == 0).select("id", "part")
    n_out, seconds = 0, 0.0
    if not args.halo_only:
        t0 = time.perf_counter()
        n_out = embed_exchange(
            spark, edges, leaf, make_program(cfg.embedding, cfg.seed), cfg
        ).count()
        seconds = time.perf_counter() - t0
    spark.sparkContext.setJobDescription("measure")
    # Halo rows: one per (leaf, node of another leaf adjacent to it), in both directions.
    lr = leaf.select(F.col("id").alias("src"), F.col("part").alias("ps"))
    ld = leaf.select(F.col("id").alias("dst"), F.col("part").alias("pd"))
    cut = edges.join(lr, "src").join(ld, "dst").where(F.col("ps") != F.col("pd"))
    halo_rows = (
        cut.select("ps", "dst").distinct().count() + cut.select("pd", "src").distinct().count()
    )
    base = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}"
    stages = {s["stageId"]: s for s in _get(f"{base}/stages?status=complete")}
    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job in _get(f"{base}/jobs"):
        desc = job.get("description") or job.get("name", "")
        key = desc if desc.startswith(("exchange", "partition")) else "other"
        per[key]["jobs"] += 1
        for sid in job["stageIds"]:
            st = stages.get(sid)
            if st is not None:
                per[key]["shuffle_write_bytes"] += st.get("shuffleWriteBytes", 0)
                per[key]["shuffle_read_bytes"] += st.get("shuffleReadBytes", 0)
    lv = p.levels[0]
    p_width = min(args.dim + 10, lv.nodes)
    print(
        json.dumps(
            {
                "nodes": lv.nodes,
                "edges": lv.edges,
                "leaves": lv.subgraphs,
                "cut_fraction": round(lv.cut_fraction, 4),
                "border_nodes": lv.border_nodes,
                "vectors_out": n_out,
                "exchange_seconds": round(seconds, 1),
                "plain_spmm_bytes_per_product": 2 * lv.edges * p_width * 8,
                "state_bytes_per_product": lv.nodes * p_width * 8,
                "halo_rows": halo_rows,
                "halo_bytes_per_product": halo_rows * p_width * 8,
            }
        )
    )
    for key, v in sorted(per.items()):
        print(json.dumps({"jobs_described": key, **{k: int(x) for k, x in v.items()}}))
    spark.stop()


if __name__ == "__main__":
    main()
