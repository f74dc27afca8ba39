"""Split: hold out edges for link prediction, following the protocol in shared/DESIGN.md.

A fraction of edges is held out uniformly at random, never a node's last edge: each node
first protects one of its edges (the one with the smallest seeded hash), and only unprotected
edges can be held out. As many non-edges of the whole graph are sampled uniformly as negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.evaluation.metrics import index_nodes, sample_non_edges
from distne.graph import Graph, endpoints
from distne.sparkutil import uniform


@dataclass(frozen=True)
class Split:
    train: DataFrame  # src, dst (user ids), and weight if the split was weighted
    test: DataFrame  # src, dst, label (user ids; 1 held-out edge, 0 sampled non-edge)


def split_edges(
    spark: SparkSession, graph: Graph, fraction: float, seed: int, weighted: bool = True
) -> Split:
    """Hold out ``fraction`` of the edges of ``graph`` (dense ids) and sample as many non-edges.

    ``weighted``: the training edges keep a ``weight`` column (for input read with
    ``input.weight_col``; a run on them sets ``input.weight_col=weight``). Without it they are
    ``src, dst`` alone, which a run reads with the default settings (extra columns are refused).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1); found {fraction}")
    e = graph.edges.withColumn("h", uniform(seed, F.col("src"), F.col("dst")))
    ends = e.select(F.col("src").alias("v"), "src", "dst", "h").union(
        e.select(F.col("dst").alias("v"), "src", "dst", "h")
    )
    protected = (
        ends.groupBy("v")
        .agg(F.min(F.struct("h", "src", "dst")).alias("p"))
        .select(F.col("p.src").alias("src"), F.col("p.dst").alias("dst"))
        .distinct()
    )
    candidates = e.join(protected, ["src", "dst"], "left_anti")
    m = graph.edges.count()
    c = candidates.count()
    p = min(1.0, fraction * m / c) if c else 0.0
    held = candidates.where(uniform(seed + 1, F.col("src"), F.col("dst")) < p).select("src", "dst")
    train = e.join(held, ["src", "dst"], "left_anti").select("src", "dst", "weight")
    names = graph.nodes

    def named(df: DataFrame, *extra: str) -> DataFrame:
        return (
            df.join(names.select(F.col("id").alias("src"), F.col("node_id").alias("a")), "src")
            .join(names.select(F.col("id").alias("dst"), F.col("node_id").alias("b")), "dst")
            .select(F.col("a").alias("src"), F.col("b").alias("dst"), *extra)
        )

    n_held = held.count()
    # Negatives are drawn among nodes with an edge: a node whose only edges were self-loops
    # has no place in the training graph, so it has no vector to score.
    dense = index_nodes(
        names.join(endpoints(graph.edges), "id", "left_semi").select(
            F.col("node_id").cast("string").alias("node_id")
        )
    )
    n = dense.count()
    all_edges = named(graph.edges).select(
        F.col("src").cast("string").alias("a"), F.col("dst").cast("string").alias("b")
    )
    neg = sample_non_edges(dense, n, n_held, all_edges, seed + 2)
    test = (
        named(held)
        .withColumn("label", F.lit(1))
        .select(F.col("src").cast("string"), F.col("dst").cast("string"), "label")
        .union(
            neg.select(F.col("a").alias("src"), F.col("b").alias("dst"), F.lit(0).alias("label"))
        )
    )
    return Split(train=named(train, *(["weight"] if weighted else [])), test=test)
