"""The bottom floor: the graph as the stages pass it on, its schemas and its column helpers.

Nothing here imports another distne module except the config, so every stage can build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import IdType


@dataclass(frozen=True)
class Graph:
    """A graph ready for partitioning and embedding.

    ``edges`` hold each undirected edge once (``src < dst``); with ``input.directed`` each
    orientation present in the input is one row.
    """

    nodes: DataFrame  # id: long (dense), node_id: user's id (long or string)
    edges: DataFrame  # src: long, dst: long, weight: double
    id_type: IdType  # LONG or STRING: the type of nodes.node_id
    # Ids of the input that appear only in self-loops: no edge to embed them by, so they are
    # not nodes of the graph (no vector); counted for the run's summary.
    loop_only: int = 0


# One vector per node, as every embedding backend returns them: ``id`` (dense), ``part`` (the
# node's leaf subgraph, 0 when the graph was embedded in one piece) and ``vec``.
VECTORS_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("part", T.LongType(), False),
        T.StructField("vec", T.ArrayType(T.FloatType(), False), False),
    ]
)

# Spark's array<float> with non-null elements, as Arrow names it.
VECTOR_ARROW_TYPE = pa.list_(pa.field("element", pa.float32(), nullable=False))


def symmetric(edges: DataFrame, keys: Sequence[str] = ()) -> DataFrame:
    """Both orientations of each edge (``*keys, src, dst, weight``): what neighbour sums need.

    ``keys`` are carried along unchanged (e.g. the subgraph an edge belongs to).
    """
    k = list(keys)
    return edges.select(*k, "src", "dst", "weight").union(
        edges.select(*k, F.col("dst").alias("src"), F.col("src").alias("dst"), "weight")
    )


def endpoints(edges: DataFrame, name: str = "id") -> DataFrame:
    """The distinct nodes that have an edge (``src`` or ``dst``), as one column ``name``."""
    return (
        edges.select(F.col("src").alias(name))
        .union(edges.select(F.col("dst").alias(name)))
        .distinct()
    )


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


def vectors_table(ids: np.ndarray, part: int | np.ndarray, vecs: np.ndarray) -> pa.Table:
    """``id, part, vec`` as an Arrow table matching :data:`VECTORS_SCHEMA`."""
    n = len(ids)
    parts = np.broadcast_to(np.asarray(part, dtype=np.int64), (n,))
    vecs = np.nan_to_num(vecs.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return pa.table(
        {
            "id": pa.array(np.asarray(ids, dtype=np.int64), pa.int64()),
            "part": pa.array(parts, pa.int64()),
            "vec": vectors_to_arrow(vecs),
        }
    )
