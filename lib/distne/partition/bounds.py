"""The hard bounds on a part: nodes (``partition.max_nodes``) and edge rows (``max_edges``)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from distne.config import Config
from distne.graph import symmetric
from distne.partition.parts import part_sizes, small_table
from distne.sparkutil import cut_lineage, uniform


def enforce_node_bound(
    spark: SparkSession, labels: DataFrame, max_nodes: int, seed: int
) -> DataFrame:
    """Renumber parts densely from 0 and split any part over ``max_nodes`` into full chunks."""
    sizes = sorted(part_sizes(labels).items())
    dense: list[tuple[int, float]] = []
    overflow_base: list[tuple[int, float]] = []
    next_id = len(sizes)
    for new_id, (part, size) in enumerate(sizes):
        dense.append((part, float(new_id)))
        if size > max_nodes:
            overflow_base.append((part, float(next_id)))
            next_id += math.ceil((size - max_nodes) / max_nodes)
    mapped = labels.join(small_table(spark, dense, "dense"), "part")
    if not overflow_base:
        return mapped.select("id", F.col("dense").cast("long").alias("part"))
    base = small_table(spark, overflow_base, "base")
    over = mapped.join(base, "part")
    ok = mapped.join(base, "part", "left_anti").select(
        "id", F.col("dense").cast("long").alias("part")
    )
    # Each oversized part holds at most a little over max_nodes rows, so this window is bounded.
    rank = F.row_number().over(Window.partitionBy("part").orderBy(uniform(seed, F.col("id")), "id"))
    ranked = over.withColumn("r", rank)
    fixed = ranked.select(
        "id",
        F.when(F.col("r") <= max_nodes, F.col("dense"))
        .otherwise(F.col("base") + F.floor((F.col("r") - max_nodes - 1) / max_nodes))
        .cast("long")
        .alias("part"),
    )
    return ok.union(fixed)


def greedy_chunks(rows: np.ndarray, bound: int) -> np.ndarray:
    """Cut a sequence of nodes into consecutive chunks whose ``rows`` sum to at most ``bound``.

    Each chunk takes as many nodes as fit (fewest chunks for the order); a node with more rows
    than ``bound`` is a chunk of its own. Returns each node's chunk number, from 0.
    """
    cum = np.cumsum(rows, dtype=np.int64)
    chunk = np.empty(len(rows), dtype=np.int64)
    start, base, c = 0, 0, 0
    while start < len(rows):
        end = max(start + 1, int(np.searchsorted(cum, base + bound, side="right")))
        chunk[start:end] = c
        base, start, c = int(cum[end - 1]), end, c + 1
    return chunk


def _chunk_udf(bound: int):
    def split(table: pa.Table) -> pa.Table:
        """Grouped Arrow function: one part's ``id, part, rows`` -> ``id, part, chunk, rows``."""
        order = np.argsort(table.column("id").to_numpy())
        ids = table.column("id").to_numpy()[order]
        rows = table.column("rows").to_numpy()[order]
        part = table.column("part").to_numpy()[order]
        chunk = greedy_chunks(rows, bound)
        return pa.table({"id": ids, "part": part, "chunk": chunk, "rows": rows})

    return split


def enforce_edge_bound(
    spark: SparkSession,
    labels: DataFrame,
    edges: DataFrame,
    max_edges: int | None,
    config: Config,
) -> tuple[DataFrame, dict[int, int], dict[int, int]]:
    """Split parts with more than ``max_edges`` edge rows.

    ``labels`` has dense parts from 0. Split parts keep their number for their first chunk;
    the other chunks are numbered after the last part. Returns the labels and each part's
    nodes and edge rows (one aggregate gives both, so callers need not count parts again).
    """
    degree = symmetric(edges).groupBy(F.col("src").alias("id")).agg(F.count("*").alias("rows"))
    node_rows = labels.join(degree, "id", "left").select(
        "id", "part", F.coalesce(F.col("rows"), F.lit(0)).cast("long").alias("rows")
    )
    per_part = (F.count("*").alias("nodes"), F.sum("rows").alias("rows"))
    # One row per part.
    totals = node_rows.groupBy("part").agg(*per_part).collect()
    sizes = {int(r["part"]): int(r["nodes"]) for r in totals}
    sums = {int(r["part"]): int(r["rows"]) for r in totals}
    heavy = sorted(p for p, rows in sums.items() if max_edges is not None and rows > max_edges)
    if not heavy:
        return labels, sizes, sums
    assert max_edges is not None
    which = small_table(spark, [(p, 0.0) for p in heavy], "heavy").select("part")
    # A group is one part, at most max_nodes rows: bounded by design.
    chunks = cut_lineage(
        node_rows.join(which, "part")
        .groupBy("part")
        .applyInArrow(_chunk_udf(max_edges), "id long, part long, chunk long, rows long"),
        config.runtime,
    )
    # One row per new part.
    pieces = sorted(
        (int(r["part"]), int(r["chunk"]), int(r["nodes"]), int(r["rows"]))
        for r in chunks.groupBy("part", "chunk").agg(*per_part).collect()
    )
    next_id = len(sums)
    renumber: list[tuple[int, float]] = []
    for part, chunk, nodes, rows in pieces:
        new = part if chunk == 0 else next_id
        next_id += chunk != 0
        renumber.append((part * len(pieces) + chunk, float(new)))
        sizes[new], sums[new] = nodes, rows
    key = F.col("part") * len(pieces) + F.col("chunk")
    moved = chunks.withColumn("key", key).join(
        small_table(spark, renumber, "new").withColumnRenamed("part", "key"), "key"
    )
    kept = labels.join(which, "part", "left_anti").select("id", "part")
    return kept.union(moved.select("id", F.col("new").cast("long").alias("part"))), sizes, sums


# Refinement stops when a round moves at most this share of the level's nodes.
