"""Procrustes fusion (a baseline): per-subgraph vectors rotated into one frame, level by level.

Every subgraph is embedded in a frame of its own (an embedding is defined only up to a
rotation). Border nodes belong to a subgraph at level ``l`` *and* to the border subgraph at
level ``l+1``, so they are shared anchor rows between the two frames. Fusion runs top-down:

1. The top level's vectors are final: when the border fits in one subgraph that is a single,
   global frame.
2. For each subgraph ``S`` at level ``l`` (from the top down to the leaves), let ``X`` be the
   anchors' vectors in ``S``'s frame and ``Y`` their already fused vectors from level ``l+1``
   (rows L2-normalised). The orthogonal Procrustes map ``Q = U V^T`` with
   ``U S V^T = svd(X^T Y)`` minimises ``||X Q - Y||_F``; every node of ``S`` is mapped by ``Q``
   into the level-``l+1`` frame. An anchor's fused vector is the mean of its mapped vector and
   its level-``l+1`` vector (internal and external structure); others keep their mapped vector.

Cost: each level is one join of its nodes with the level above and one grouped pass over
subgraphs of at most ``max_nodes`` rows, so the total is linear in nodes x dim; only border
nodes' vectors travel between levels. Per subgraph it costs an ``O(a d^2)`` product and a
``d x d`` SVD. Limits (issue "One coordinate system" measures them): a subgraph with fewer
than ``d`` anchors gets a rotation fixed on their span only, and a top level that needed
several subgraphs leaves those subgraphs in separate frames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from distne.config import Config, RunMode
from distne.embedders.prone import row_normalize_l2
from distne.graph import VECTORS_SCHEMA, arrow_to_vectors, vectors_to_arrow
from distne.partition import Partitioning
from distne.sparkutil import cut_lineage


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The orthogonal ``Q`` (d x d) minimising ``||x @ Q - y||_F`` (Schönemann 1966)."""
    u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ y.astype(np.float64))
    return u @ vt


def align_subgraph(own: np.ndarray, upper: np.ndarray, is_anchor: np.ndarray) -> np.ndarray:
    """Fuse one subgraph's vectors into the frame of the level above.

    Args:
        own: ``(n, d)`` vectors of the subgraph's nodes in its own frame.
        upper: ``(n, d)`` fused vectors from the level above (rows of non-anchors ignored).
        is_anchor: ``(n,)`` True where the node also belongs to the level above.

    Returns:
        ``(n, d)`` float32 L2-normalised vectors in the upper frame (zero rows stay zero).
    """
    own_n = row_normalize_l2(own.astype(np.float64))
    if not is_anchor.any():
        return own_n.astype(np.float32)
    up_n = row_normalize_l2(upper[is_anchor].astype(np.float64))
    q = procrustes(own_n[is_anchor], up_n)
    mapped = own_n @ q
    mapped[is_anchor] = 0.5 * (mapped[is_anchor] + up_n)
    return row_normalize_l2(mapped).astype(np.float32)


def make_align_udf(dim: int) -> Callable[[pa.Table], pa.Table]:
    """Grouped Arrow function over one subgraph: ``id, part, vec, upper`` -> ``id, part, vec``."""

    def align_group(table: pa.Table) -> pa.Table:
        own, _ = arrow_to_vectors(table.column("vec"), dim)
        upper, anchor = arrow_to_vectors(table.column("upper"), dim)
        fused = align_subgraph(own, upper, anchor)
        return pa.table(
            {"id": table.column("id"), "part": table.column("part"), "vec": vectors_to_arrow(fused)}
        )

    return align_group


def _normalize_udf(dim: int) -> Callable[[pa.Table], pa.Table]:
    def normalize_group(table: pa.Table) -> pa.Table:
        own, _ = arrow_to_vectors(table.column("vec"), dim)
        return pa.table(
            {
                "id": table.column("id"),
                "part": table.column("part"),
                "vec": vectors_to_arrow(row_normalize_l2(own)),
            }
        )

    return normalize_group


def fuse(vectors: DataFrame, partitioning: Partitioning, config: Config) -> DataFrame:
    """One fused vector per node: ``id``, ``part`` (its leaf subgraph), ``vec``.

    Args:
        vectors: the embed stage's output (``id, level, part, vec``).
    """
    dim = config.embedding.dim
    top = len(partitioning.levels) - 1
    if config.run.mode is RunMode.LEAF_ONLY:
        top = 0
    fused = (
        vectors.where(F.col("level") == top)
        .select("id", "part", "vec")
        .groupBy("part")
        .applyInArrow(_normalize_udf(dim), VECTORS_SCHEMA)
    )
    # Each level reads the one above twice (join keys and vectors): cut the plan per level.
    fused = cut_lineage(fused, config.runtime)
    for level in range(top - 1, -1, -1):
        upper = fused.select("id", F.col("vec").alias("upper"))
        fused = (
            vectors.where(F.col("level") == level)
            .select("id", "part", "vec")
            .join(upper, "id", "left")
            .groupBy("part")
            .applyInArrow(make_align_udf(dim), VECTORS_SCHEMA)
        )
        fused = cut_lineage(fused, config.runtime)
    return fused
