"""Nearest neighbours in an embeddings table: the top ``k`` nodes by cosine similarity.

Exact, and computed where the table is: a query's vector goes into the plan as a literal,
every row's cosine to it is one SQL expression over its array (no Python worker), and each
partition keeps its ``k`` best. Only the query rows and ``k`` rows per query reach the driver,
whatever the table's size; each query costs one pass over the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from distne.errors import InputError


def _dot(a: Column, b: Column) -> Column:
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda s, v: s + v)


def nearest(
    spark: SparkSession, embeddings: str, nodes: Sequence[str], k: int = 10
) -> dict[str, list[dict[str, object]]]:
    """For each id in ``nodes`` (as text: the table's ids are compared as strings), its ``k``
    most similar other nodes as ``{"node_id", "score"}``, best first (ties by id).

    Raises :class:`InputError` naming the ids that are not in the table.
    """
    if k < 1:
        raise InputError(f"neighbors -k: expected a positive number of neighbours; found {k}.")
    table = (
        spark.read.format("delta")
        .load(embeddings)
        .select("node_id", F.col("node_id").cast("string").alias("key"), "embedding")
    )
    keys = [str(n) for n in dict.fromkeys(nodes)]
    # One row per asked id: as many rows as ids were asked for, not as the table has.
    rows = table.where(F.col("key").isin(keys)).select("key", "embedding").collect()
    vectors = {r["key"]: r["embedding"] for r in rows}
    missing = [key for key in keys if key not in vectors]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(
            f"embeddings {embeddings!r}: expected the node ids to look up; found no row for "
            f"{shown}."
        )
    out: dict[str, list[dict[str, object]]] = {}
    for key in keys:
        q = F.array(*[F.lit(float(x)) for x in vectors[key]])
        norm = F.sqrt(_dot(F.col("embedding"), F.col("embedding")))
        qnorm = math.sqrt(sum(float(x) ** 2 for x in vectors[key]))
        score = _dot(F.col("embedding"), q) / F.nullif(norm * F.lit(qnorm), F.lit(0.0))
        # orderBy + limit is Spark's TakeOrderedAndProject: each partition keeps its k best
        # and only those are merged, so no task sorts the whole table.
        best = (
            table.where(F.col("key") != key)
            .select("node_id", "key", score.alias("score"))
            .where(F.col("score").isNotNull())
            .orderBy(F.desc("score"), "key")
            .limit(k)
            .collect()
        )
        out[key] = [{"node_id": r["node_id"], "score": float(r["score"])} for r in best]
    return out
