"""Nearest neighbours in an embeddings table: the top ``k`` nodes by cosine similarity.

Computed where the table is; only the query rows and ``k`` rows per query reach the driver,
whatever the table's size. Two methods (``method``; ``auto`` takes exact while rows x asked
ids is at most :data:`EXACT_MAX_PAIRS`, approximate above):

- **exact**: one pass over the table for the whole batch of queries. Each Arrow batch of rows
  meets every query in one matrix product (numpy, in a Python worker); each Spark partition
  keeps its ``k`` best per query, and a window over those picks the ``k`` best of all. Cost:
  rows x queries x dim multiply-adds.
- **approximate**: an inverted-file index. MLlib's k-means, fitted on a sample of the unit
  vectors, cuts the table into ``cells`` cells (about the square root of its rows); every
  row is assigned to its nearest cell and a query is compared only with the rows of its
  ``probes`` nearest cells: about ``probes / cells`` of the table per query. What it misses
  are the neighbours that fall in other cells; ``benchmarks/neighbors_recall.py`` measures
  that recall against the exact method on a real graph (``docs/neighbors.md``).

Scores are cosines in float64; ties are broken by id (as text). A zero vector has no
direction and is nobody's neighbour.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from enum import Enum

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from distne.errors import InputError
from distne.write import open_embeddings

# ``auto`` searches exactly while rows x asked ids is at most this (1e10 pairs at 128
# dimensions: ~1.3e12 multiply-adds, minutes on a few cores). The approximate search pays a
# k-means fit and a pass over the table whatever the batch: on GitHub's 37,700 vectors it
# took ~190 s against exact's 3.3 s for 500 ids (docs/neighbors.md), so it is for large
# batches over large tables only.
EXACT_MAX_PAIRS = 10**10
# Rows of the k-means sample per cell, and the bounds of the cell count.
SAMPLE_PER_CELL = 64
MIN_CELLS, MAX_CELLS = 16, 4096


class Method(str, Enum):
    AUTO = "auto"
    EXACT = "exact"
    APPROXIMATE = "approximate"


def _dot(a: Column, b: Column) -> Column:
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0), lambda s, v: s + v)


def nearest(
    spark: SparkSession,
    embeddings: str,
    nodes: Sequence[str],
    k: int = 10,
    method: Method | str = Method.AUTO,
    seed: int = 42,
    probes: int = 8,
    cells: int | None = None,
) -> dict[str, list[dict[str, object]]]:
    """For each id in ``nodes`` (as text: the table's ids are compared as strings), its ``k``
    most similar other nodes as ``{"node_id", "score"}``, best first (ties by id).

    ``method``: ``exact``, ``approximate`` or ``auto`` (see the module docstring); ``seed``,
    ``probes`` and ``cells`` (default: about the square root of the rows) are the
    approximate method's.

    Raises :class:`InputError` naming the ids that are not in the table.
    """
    method = Method(method)
    if k < 1:
        raise InputError(f"neighbors -k: expected a positive number of neighbours; found {k}.")
    if probes < 1:
        raise InputError(f"neighbors --probes: expected a positive number; found {probes}.")
    table = open_embeddings(spark, embeddings).select(
        "node_id", F.col("node_id").cast("string").alias("key"), "embedding"
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
    queries = np.array([vectors[key] for key in keys], dtype=np.float64)
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, queries / norms, np.nan)
    dim = queries.shape[1]
    table = table.where(F.size("embedding") == dim)
    if method is Method.AUTO:
        pairs = table.count() * len(keys)
        method = Method.EXACT if pairs <= EXACT_MAX_PAIRS else Method.APPROXIMATE
    if method is Method.EXACT:
        found = _exact(table, unit, keys, k)
    else:
        found = _approximate(spark, table, unit, keys, k, seed, probes, cells)
    node_id = table.schema["node_id"].dataType
    best = (
        found.withColumn(
            "rank",
            F.row_number().over(Window.partitionBy("q").orderBy(F.desc("score"), "key")),
        )
        .where(F.col("rank") <= k)
        .select("q", "rank", F.col("key").cast(node_id).alias("node_id"), "score")
        .collect()
    )
    out: dict[str, list[dict[str, object]]] = {key: [] for key in keys}
    for r in sorted(best, key=lambda r: (r["q"], r["rank"])):
        out[keys[r["q"]]].append({"node_id": r["node_id"], "score": float(r["score"])})
    return out


FOUND_SCHEMA = "q int, key string, score double"


def _keep_best(
    q: np.ndarray, score: np.ndarray, key: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best rows per query (score descending, then key), from parallel arrays."""
    order = np.lexsort((key, -score, q))
    q, score, key = q[order], score[order], key[order]
    rank = np.arange(len(q)) - np.searchsorted(q, q, side="left")
    keep = rank < k
    return q[keep], score[keep], key[keep]


def _exact(table: DataFrame, unit: np.ndarray, keys: list[str], k: int) -> DataFrame:
    """``q, key, score``: each partition's ``k`` best rows per query (``q``: its index)."""
    dim = unit.shape[1]
    asked = {key: j for j, key in enumerate(keys)}

    def best(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        q = np.zeros(0, np.int32)
        score = np.zeros(0)
        key = np.zeros(0, dtype=object)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            rows = batch.column("embedding").flatten().to_numpy(zero_copy_only=False)
            rows = rows.astype(np.float64).reshape(-1, dim)
            names = batch.column("key").to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore", divide="ignore"):
                s = (rows @ unit.T) / np.linalg.norm(rows, axis=1)[:, None]
            s[~np.isfinite(s)] = -np.inf  # zero vectors, and queries that are zero vectors
            for i, name in enumerate(names):  # a node is not its own neighbour
                if name in asked:
                    s[i, asked[name]] = -np.inf
            if len(s) > k:  # only rows at or above each query's k-th best can be kept
                kth = np.partition(s, len(s) - k, axis=0)[len(s) - k]
                s[s < kth[None, :]] = -np.inf
            i, j = np.nonzero(np.isfinite(s))
            q = np.concatenate([q, j.astype(np.int32)])
            score = np.concatenate([score, s[i, j]])
            key = np.concatenate([key, names[i]])
            q, score, key = _keep_best(q, score, key, k)
        yield pa.record_batch(
            [pa.array(q, pa.int32()), pa.array(key, pa.string()), pa.array(score, pa.float64())],
            names=["q", "key", "score"],
        )

    return table.select("key", "embedding").mapInArrow(best, FOUND_SCHEMA)


def _approximate(
    spark: SparkSession,
    table: DataFrame,
    unit: np.ndarray,
    keys: list[str],
    k: int,
    seed: int,
    probes: int,
    cells: int | None,
) -> DataFrame:
    """``q, key, score`` for the rows in each query's ``probes`` nearest k-means cells."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.functions import array_to_vector, vector_to_array

    norm = F.sqrt(_dot(F.col("embedding"), F.col("embedding")))
    rows = table.select(
        "key",
        array_to_vector(F.transform("embedding", lambda x: x / norm)).alias("unit"),
    ).where(norm > 0)
    n = rows.count()
    cells = cells or min(MAX_CELLS, max(MIN_CELLS, round(math.sqrt(n))))
    cells = max(1, min(cells, n))
    fraction = min(1.0, SAMPLE_PER_CELL * cells / max(n, 1))
    sample = rows.sample(fraction=fraction, seed=seed)
    model = KMeans(k=cells, seed=seed, featuresCol="unit", predictionCol="cell").fit(sample)
    centers = np.array(model.clusterCenters())
    # Each query's nearest cells: a queries x cells matrix on the driver (both are small).
    dist = ((unit[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    near = np.argsort(dist, axis=1, kind="stable")[:, : min(probes, len(centers))]
    asked = spark.createDataFrame(
        [
            (j, int(c), keys[j], [float(x) for x in unit[j]])
            for j in range(len(keys))
            if np.isfinite(unit[j]).all()
            for c in near[j]
        ],
        "q int, cell int, asked string, query array<double>",
    )
    # The cell of every row: one pass, in the JVM (the model's transform); the rows of the
    # asked cells meet their queries (a broadcast of queries x probes rows).
    placed = model.transform(rows).select("key", "cell", "unit")
    pairs = placed.join(F.broadcast(asked), "cell").where(F.col("key") != F.col("asked"))
    score = _dot(vector_to_array(F.col("unit"), "float64"), F.col("query"))
    return pairs.select("q", "key", score.alias("score"))
