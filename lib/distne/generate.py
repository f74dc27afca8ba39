"""Generated graphs for scale benchmarks: power-law degrees with planted communities.

Every edge is drawn independently inside Spark from its row number and the seed, so a graph of
any size is generated in parallel and the same arguments give the same graph.

An endpoint is drawn with probability proportional to ``(i + 1) ** -(1 / (beta - 1))`` over the
node ids (Chung–Lu weights), which gives a degree distribution with tail exponent ``beta``
(default 2.5): node 0 is a hub holding about ``n ** -(1 / alpha)`` of all edge endpoints, where
``alpha = (beta - 1) / (beta - 2)``. Node ``i`` belongs to community ``i mod communities``; with
probability ``mixing`` the second endpoint is drawn from the whole graph, otherwise from the
first endpoint's community, with the same skew.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.sparkutil import uniform


def _skewed(u: Column, size: Column | int, beta: float) -> Column:
    """An index in [0, size) with P(i) roughly proportional to (i + 1) ** -(1 / (beta - 1))."""
    alpha = (beta - 1.0) / (beta - 2.0)
    size_col = F.lit(size) if isinstance(size, int) else size
    return F.least(F.floor(size_col * F.pow(u, F.lit(alpha))), size_col - 1).cast("long")


def power_law_edges(
    spark: SparkSession,
    nodes: int,
    edges: int,
    seed: int,
    communities: int = 0,
    mixing: float = 0.2,
    beta: float = 2.5,
) -> DataFrame:
    """``src``, ``dst``, ``weight`` (1.0): up to ``edges`` distinct undirected edges, src < dst.

    Self-loops and repeated pairs are dropped, so the result holds somewhat fewer than
    ``edges`` rows; count it.
    """
    if not 2.0 < beta:
        raise ValueError(f"beta: expected > 2, found {beta}")
    c = communities or max(1, nodes // 1000)
    per = nodes // c
    rows = spark.range(edges).withColumnRenamed("id", "e")
    src = _skewed(uniform(seed, F.lit(1), F.col("e")), nodes, beta)
    local = (src % F.lit(c)) + F.lit(c) * _skewed(uniform(seed, F.lit(2), F.col("e")), per, beta)
    far = _skewed(uniform(seed, F.lit(3), F.col("e")), nodes, beta)
    mixed = uniform(seed, F.lit(4), F.col("e")) < F.lit(mixing)
    pairs = rows.select(src.alias("a"), F.when(mixed, far).otherwise(local).alias("b"))
    return (
        pairs.where(F.col("a") != F.col("b"))
        .select(F.least("a", "b").alias("src"), F.greatest("a", "b").alias("dst"))
        .distinct()
        .withColumn("weight", F.lit(1.0))
    )
