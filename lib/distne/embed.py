"""Embed: every subgraph of every level embedded in parallel inside a cogrouped Arrow UDF.

Each group is one subgraph (a ``(level, part)`` key): its node ids on one side and its inside
edges on the other. The partitioner bounds a group to ``partition.max_nodes`` nodes, so one
Python worker always holds one bounded subgraph. The per-subgraph work is
:func:`embed_subgraph`, a pure numpy/scipy function that unit tests call without Spark.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from pyspark import Accumulator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import Config, EmbeddingConfig
from distne.embedders import get_embedder
from distne.partition import Partitioning

VECTORS_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("level", T.IntegerType(), False),
        T.StructField("part", T.LongType(), False),
        T.StructField("vec", T.ArrayType(T.FloatType(), False), False),
    ]
)


# Spark's array<float> with non-null elements, as Arrow names it.
VECTOR_ARROW_TYPE = pa.list_(pa.field("element", pa.float32(), nullable=False))


def subgraph_seed(seed: int, level: int, part: int) -> int:
    """The seed of one subgraph's embedder, derived from the run's seed and the subgraph key."""
    return int(np.random.SeedSequence([seed, level, part]).generate_state(1)[0])


def adjacency(
    ids: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> sp.csr_matrix:
    """Symmetric CSR adjacency over ``ids`` (row i is ``ids[i]``) from edges given once each."""
    n = len(ids)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    si = order[np.searchsorted(sorted_ids, src)]
    di = order[np.searchsorted(sorted_ids, dst)]
    rows = np.concatenate([si, di])
    cols = np.concatenate([di, si])
    vals = np.concatenate([weight, weight]).astype(np.float64)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))  # duplicates are summed


def embed_subgraph(
    ids: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    cfg: EmbeddingConfig,
    seed: int,
) -> np.ndarray:
    """Embed one subgraph: ``(len(ids), cfg.dim)`` float32, row i for node ``ids[i]``.

    Example:
        >>> ids = np.array([10, 11, 12]); s = np.array([10, 11]); d = np.array([11, 12])
        >>> embed_subgraph(ids, s, d, np.ones(2), EmbeddingConfig(dim=4), seed=0).shape
        (3, 4)
    """
    adj = adjacency(ids, src, dst, weight)
    vecs = get_embedder(cfg.method)(adj, cfg, seed)
    if vecs.shape != (len(ids), cfg.dim):
        raise RuntimeError(f"embedder returned shape {vecs.shape}, expected {(len(ids), cfg.dim)}")
    return np.nan_to_num(vecs.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)


def vectors_to_arrow(vecs: np.ndarray) -> pa.ListArray:
    """An Arrow ``list<float32>`` column from an ``(n, d)`` array: one flat buffer + offsets."""
    n, d = vecs.shape
    flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).ravel(), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else [0], type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat, type=VECTOR_ARROW_TYPE)


def arrow_to_vectors(col: pa.ChunkedArray | pa.Array, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values, valid)``: an ``(n, dim)`` float32 array from a nullable ``list<float>``
    column (null rows become zeros) and the boolean mask of non-null rows."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    valid = (
        ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if n
        else np.zeros(0, bool)
    )
    out = np.zeros((n, dim), dtype=np.float32)
    if valid.any():
        flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        out[valid] = flat.reshape(-1, dim)
    return out, valid


def make_embed_udf(
    cfg: EmbeddingConfig, seed: int, done: Accumulator[int] | None = None
) -> Callable[[tuple[pa.Scalar, ...], pa.Table, pa.Table], pa.Table]:
    """The cogrouped Arrow function for ``(level, part)`` groups: nodes x edges -> vectors.

    ``done``, if given, counts embedded subgraphs (Spark reports it as tasks finish).
    """

    def embed_group(key: tuple[pa.Scalar, ...], nodes: pa.Table, edges: pa.Table) -> pa.Table:
        level, part = int(key[0].as_py()), int(key[1].as_py())
        ids = nodes.column("id").to_numpy()
        vecs = embed_subgraph(
            ids,
            edges.column("src").to_numpy(),
            edges.column("dst").to_numpy(),
            edges.column("weight").to_numpy(),
            cfg,
            subgraph_seed(seed, level, part),
        )
        n = len(ids)
        if done is not None:
            done.add(1)
        return pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "level": pa.array(np.full(n, level, dtype=np.int32)),
                "part": pa.array(np.full(n, part, dtype=np.int64)),
                "vec": vectors_to_arrow(vecs),
            }
        )

    return embed_group


def embed(
    partitioning: Partitioning, config: Config, done: Accumulator[int] | None = None
) -> DataFrame:
    """Vectors of every node in every subgraph it belongs to: ``id, level, part, vec``.

    All levels are embedded in one Spark job, one group per subgraph. ``done`` (a Spark
    accumulator) counts subgraphs embedded, for progress reports.
    """
    nodes = partitioning.membership.select("level", "part", "id")
    edges = None
    for level, e in enumerate(partitioning.level_edges):
        tagged = e.select(F.lit(level).alias("level"), "part", "src", "dst", "weight")
        edges = tagged if edges is None else edges.union(tagged)
    assert edges is not None
    return (
        nodes.groupBy("level", "part")
        .cogroup(edges.groupBy("level", "part"))
        .applyInArrow(make_embed_udf(config.embedding, config.seed, done), VECTORS_SCHEMA)
    )
