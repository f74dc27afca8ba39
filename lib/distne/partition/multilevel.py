"""Multilevel partitioning of one level's graph: coarsen in Spark, partition exactly, project.

This is the shape of ParMETIS and ParHIP (Meyerhenke, Sanders, Schulz 2017): the graph is
contracted in parallel until it is small enough for one machine, one machine partitions the
small graph with a strong sequential algorithm (METIS), and the answer is projected back and
refined where the data lives.

Coarsening step (all in Spark, cost linear in the current coarse edges):

1. *Size-constrained label-propagation clustering.* Every node starts as its own cluster. In
   each of ``partition.cluster_rounds`` rounds, a random half of the nodes is active (so two
   neighbours do not swap clusters forever); an active node wants the neighbouring cluster that
   holds most of its edge weight, and joins it with a probability that keeps the cluster's
   node weight under ``cap``. Clusters therefore follow dense regions, which is what keeps the
   coarse graph's cut close to the fine graph's.
2. *Leftovers.* Nodes still alone (a star's leaves once the hub's cluster is full, isolated
   nodes, nodes never active) are grouped with the other leftovers that share their heaviest
   neighbouring cluster (two-hop clustering), in chunks of about ``cap``; isolated nodes are
   grouped among themselves. Without this a power-law graph stops shrinking.
3. *Contraction.* Clusters become nodes weighted by how many original nodes they hold; edges
   between clusters are summed, edges inside vanish.

Steps repeat until the coarse graph has at most ``partition.coarse_nodes`` nodes and
``partition.coarse_edges`` edges. A graph already within the node bound and at most twice the
edge bound instead keeps its heaviest edges up to the bound (:func:`heaviest_edges`): another
step would shrink it little, and its lightest edges are those METIS cares least about. Because a
cluster holds at most ``cap`` (a tenth of a part) original nodes, the coarse graph still has
about ten nodes per part, enough for METIS to balance. The driver then holds the coarse graph
(bounded by ``partition.coarse_nodes`` nodes and ``partition.coarse_edges`` edges, not by the
input) and partitions it into ``k``
parts with METIS, allowing parts up to ``max_nodes``. The caller refines and enforces the
hard bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.config import Config, RuntimeConfig
from distne.graph import symmetric
from distne.partition.parts import broadcastable
from distne.sparkutil import Progress, cut_lineage, label_ends, node_side, uniform

# A cluster holds at most this share of a part's target size, so a part is made of at least
# this many coarse nodes and METIS can still balance parts.
CLUSTERS_PER_PART = 10
# A coarsening step that keeps more than this share of nodes has stalled.
STALL = 0.95
MAX_STEPS = 30
# A coarse graph within partition.coarse_nodes and at most this many times
# partition.coarse_edges keeps its heaviest edges instead of coarsening again (see
# :func:`heaviest_edges`).
SPARSIFY_FROM = 2.0
# Edges are ranked by weight in buckets this fine: 16 per doubling of the weight.
BUCKETS_PER_OCTAVE = 16


@dataclass(frozen=True)
class CoarseResult:
    """The coarse partition projected to the level's nodes, and how it was reached.

    ``labels`` (``id``, ``part``) is None when coarsening stalled above
    ``partition.coarse_nodes`` or ``partition.coarse_edges``: the caller must then use another
    method.
    """

    labels: DataFrame | None
    steps: int
    coarse_nodes: int
    coarse_edges: int
    dropped_edges: int = 0


def _cluster_weights(sym: DataFrame, labels: DataFrame, broadcast: bool) -> DataFrame:
    """``src``, ``nc``, ``s``: the edge weight from each node into each neighbouring cluster.

    ``broadcast``: the labels are few enough for the driver (:func:`broadcastable`)."""
    return (
        sym.join(node_side(labels.withColumnsRenamed({"id": "dst", "c": "nc"}), broadcast), "dst")
        .groupBy("src", "nc")
        .agg(F.sum("weight").alias("s"))
    )


def _cluster_round(
    labels: DataFrame,
    weights: DataFrame,
    sym: DataFrame,
    cap: float,
    salt: tuple[int, int, int, int],
    broadcast: bool = False,
    singletons: bool = False,
) -> DataFrame:
    """One synchronous round of size-constrained label-propagation clustering.

    ``singletons``: every node is its own cluster (``c = id``) and ``sym`` holds each pair of
    nodes once, so each node's weight into each neighbouring cluster is an edge's weight and
    a cluster's size its node's: the same numbers without a join and an aggregate of the
    edges."""
    seed, level, step, round_ = salt
    lw = labels.join(weights, "id")
    if singletons:
        size = weights.select(F.col("id").alias("target"), F.col("w").alias("cw"))
        nbr = sym.select("src", F.col("dst").alias("nc"), F.col("weight").alias("s"))
    else:
        size = lw.groupBy("c").agg(F.sum("w").alias("cw")).withColumnRenamed("c", "target")
        nbr = _cluster_weights(sym, labels, broadcast)
    tie = uniform(seed, level, step, round_, F.col("src"), F.col("nc"))
    best = (
        nbr.join(lw.withColumnRenamed("id", "src"), "src")
        .groupBy("src", "c", "w")
        .agg(
            F.max(F.struct(F.col("s"), tie.alias("t"), F.col("nc"))).alias("b"),
            F.sum(F.when(F.col("nc") == F.col("c"), F.col("s")).otherwise(0.0)).alias("s_cur"),
        )
    )
    active = uniform(seed + 1, level, step, round_, F.col("src")) < 0.5
    wants = best.where(
        active & (F.col("b.nc") != F.col("c")) & (F.col("b.s") > F.col("s_cur"))
    ).select(F.col("src").alias("id"), "w", F.col("b.nc").alias("target"))
    # Admit movers into a cluster with the probability that fills it to ``cap`` on average.
    room = (
        wants.groupBy("target")
        .agg(F.sum("w").alias("dw"))
        .join(size, "target")
        .select("target", ((F.lit(cap) - F.col("cw")) / F.col("dw")).alias("prob"))
    )
    moves = (
        wants.join(room, "target")
        .where(uniform(seed + 2, level, step, round_, F.col("id")) < F.col("prob"))
        .select("id", F.col("target").alias("moved"))
    )
    return labels.join(moves, "id", "left").select(
        "id", F.coalesce(F.col("moved"), F.col("c")).alias("c")
    )


def _group_leftovers(
    labels: DataFrame,
    weights: DataFrame,
    sym: DataFrame,
    cap: float,
    salt: tuple[int, int, int],
    runtime: RuntimeConfig,
    broadcast: bool = False,
) -> DataFrame:
    """Group nodes left alone in their cluster by their heaviest neighbouring cluster.

    ``runtime``: how to keep the lone nodes' keys, which are read three times (unkept, each
    read would recompute them from the edges)."""
    seed, level, step = salt
    lw = labels.join(weights, "id")
    single = lw.groupBy("c").agg(F.count("*").alias("members")).where("members = 1")
    alone = lw.join(single.select("c"), "c")
    tie = uniform(seed + 3, level, step, F.col("src"), F.col("nc"))
    lone_sym = sym.join(alone.select(F.col("id").alias("src")), "src", "left_semi")
    key = (
        _cluster_weights(lone_sym, labels, broadcast)
        .groupBy("src")
        .agg(F.max(F.struct(F.col("s"), tie.alias("t"), F.col("nc"))).alias("b"))
        .select(F.col("src").alias("id"), F.col("b.nc").alias("key"))
    )
    keyed = alone.join(key, "id", "left").select(
        "id", "c", "w", F.coalesce(F.col("key"), F.lit(-1).cast("long")).alias("key")
    )
    # Read three times below: kept once instead of computed three times from the edges.
    keyed = cut_lineage(keyed, runtime)
    group_w = keyed.groupBy("key").agg(F.sum("w").alias("gw"))
    buckets = F.greatest(F.lit(1), F.ceil(F.col("gw") / F.lit(cap))).cast("long")
    keyed = keyed.join(group_w, "key").withColumn(
        "bucket", F.pmod(F.xxhash64(F.lit(seed), F.lit(level), F.lit(step), F.col("id")), buckets)
    )
    # A lone node's cluster label belongs to it alone, so the smallest label in a group names
    # the group without colliding with any other cluster.
    named = keyed.groupBy("key", "bucket").agg(F.min("c").alias("gc"))
    regrouped = keyed.join(named, ["key", "bucket"]).select("id", "gc")
    return labels.join(regrouped, "id", "left").select(
        "id", F.coalesce(F.col("gc"), F.col("c")).alias("c")
    )


def _contract(
    labels: DataFrame, weights: DataFrame, edges: DataFrame, broadcast: bool = False
) -> tuple[DataFrame, DataFrame]:
    """Clusters become weighted nodes; edges between clusters are summed."""
    nodes = (
        labels.join(weights, "id")
        .groupBy("c")
        .agg(F.sum("w").alias("w"))
        .withColumnRenamed("c", "id")
    )
    tagged = label_ends(edges, labels, ("cs", "cd"), broadcast)
    coarse = (
        tagged.where(F.col("cs") != F.col("cd"))
        .select(F.least("cs", "cd").alias("src"), F.greatest("cs", "cd").alias("dst"), "weight")
        .groupBy("src", "dst")
        .agg(F.sum("weight").alias("weight"))
    )
    return nodes, coarse


def heaviest_edges(edges: DataFrame, keep: int, seed: int, salt: tuple[int, ...]) -> DataFrame:
    """About ``keep`` of the heaviest ``edges`` (``src, dst, weight``), never many more.

    For a coarse graph whose nodes are already few but whose edges are not: one more
    coarsening step shrinks such a graph little (at 100M edges, 30,138 nodes and 17.3M edges
    became 11,831 nodes and 15.9M edges in ~165 s), while METIS cares least about its
    lightest edges. Weights are ranked in buckets of ``2^(1/16)`` (one small aggregate to the
    driver: the number of buckets grows with the range of the weights, not with the graph);
    the buckets above the boundary are kept whole and the boundary bucket is sampled by a hash
    of the edge and the seed, so the same input and seed keep the same edges.
    """
    bucket = F.floor(F.log2("weight") * BUCKETS_PER_OCTAVE).cast("long")
    counts = sorted(
        (
            (int(r["b"]), int(r["n"]))
            for r in edges.groupBy(bucket.alias("b")).agg(F.count("*").alias("n")).collect()
        ),
        reverse=True,
    )
    above = 0
    for b, n in counts:
        if above + n > keep:
            share = (keep - above) / n
            pick = uniform(seed, *salt, F.col("src"), F.col("dst")) < F.lit(share)
            return edges.where((bucket > b) | ((bucket == b) & pick))
        above += n
    return edges


def _integer_weights(w: np.ndarray) -> np.ndarray:
    """METIS takes integer edge weights: keep integral weights, scale the others."""
    if w.size and np.allclose(w, np.rint(w)) and w.max() < 2**30:
        return np.maximum(1, np.rint(w)).astype(np.int64)
    scaled = w / np.median(w) * 100 if w.size else w
    return np.clip(np.rint(scaled), 1, 2**30).astype(np.int64)


def metis_parts(
    ids: np.ndarray,
    weights: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    eweights: np.ndarray,
    k: int,
    max_part_weight: int,
    seed: int,
) -> np.ndarray:
    """Partition a weighted graph held in memory into ``k`` parts with METIS.

    Args:
        ids: sorted node ids; ``weights`` their node weights.
        src, dst, eweights: each undirected edge once, as ids.
        max_part_weight: the largest part weight allowed (METIS's imbalance is set from it).

    Returns:
        The part of each node, aligned with ``ids``.
    """
    import pymetis

    n = len(ids)
    s = np.searchsorted(ids, src)
    d = np.searchsorted(ids, dst)
    rows = np.concatenate([s, d])
    cols = np.concatenate([d, s])
    ew = np.concatenate([eweights, eweights])
    order = np.lexsort((cols, rows))
    xadj = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=xadj[1:])
    vw = np.maximum(1, np.rint(weights)).astype(np.int64)
    imbalance = max_part_weight * k / max(1, int(vw.sum())) - 1.0
    options = pymetis.Options(seed=seed, ufactor=int(min(5000, max(1, 1000 * imbalance))))
    _, parts = pymetis.part_graph(
        k,
        pymetis.CSRAdjacency(xadj, cols[order]),
        vweights=vw,
        eweights=ew[order],
        # k-way always: pymetis picks recursive bisection for small k, whose imbalance
        # compounds over the bisections (PPI into 5 parts: 1,226 nodes allowed 1,000).
        recursive=False,
        options=options,
    )
    return np.asarray(parts, dtype=np.int64)


def _metis_on_driver(
    weights: DataFrame, edges: DataFrame, k: int, max_nodes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Collect the (bounded) coarse graph and split it with METIS: sorted ids and their parts."""
    node_t = weights.toArrow()
    edge_t = edges.toArrow()
    ids = node_t.column("id").to_numpy()
    order = np.argsort(ids)
    ids = ids[order]
    w = node_t.column("w").to_numpy()[order]
    parts = metis_parts(
        ids,
        w,
        edge_t.column("src").to_numpy(),
        edge_t.column("dst").to_numpy(),
        _integer_weights(edge_t.column("weight").to_numpy()),
        k,
        max_nodes,
        seed,
    )
    return ids, parts


def coarse_partition(
    spark: SparkSession,
    nodes: DataFrame,
    edges: DataFrame,
    n: int,
    m: int,
    k: int,
    config: Config,
    level: int,
    progress: Progress | None = None,
) -> CoarseResult:
    """Coarsen ``nodes``/``edges`` (``n`` nodes, ``m`` edges, counted by the caller) in Spark,
    split the result into ``k`` parts.

    Returns the parts projected to every node (before refinement), or ``labels=None`` when the
    graph would not coarsen below ``partition.coarse_nodes``.
    """
    pc = config.partition
    rt = config.runtime
    seed = config.seed
    cap = math.floor(pc.fill * pc.max_nodes / CLUSTERS_PER_PART)
    if cap < 2 and n > pc.coarse_nodes:
        # Clusters of one node: nothing can merge, the graph cannot coarsen.
        return CoarseResult(None, 0, n, m)
    weights = nodes.select("id", F.lit(1.0).alias("w"))
    cur_edges = edges.select("src", "dst", "weight")
    mapping = nodes.select("id", F.col("id").alias("c"))
    n_c, m_c = n, m

    def too_big() -> bool:
        return n_c > pc.coarse_nodes or m_c > pc.coarse_edges

    step = 0
    dropped = passes = 0
    while too_big() and step < MAX_STEPS and passes < 5:
        if n_c <= pc.coarse_nodes and m_c <= SPARSIFY_FROM * pc.coarse_edges:
            passes += 1
            # A 2% margin keeps the sampled count under the bound; if it is not, this repeats.
            keep = max(1, int(0.98 * pc.coarse_edges))
            pick = (level, step, passes)
            cur_edges = cut_lineage(heaviest_edges(cur_edges, keep, seed, pick), rt)
            kept = cur_edges.count()
            dropped += m_c - kept
            m_c = kept
            continue
        sym = cut_lineage(symmetric(cur_edges), rt)
        labels = weights.select("id", F.col("id").alias("c"))
        small = broadcastable(n_c, pc)
        for r in range(pc.cluster_rounds):
            if progress is not None:
                progress.note = (
                    f"level {level}: coarsening step {step + 1} ({n_c:,} nodes), "
                    f"clustering round {r + 1}/{pc.cluster_rounds}"
                )
            salt_r = (seed, level, step, r)
            # Each pair of nodes is one edge of ``cur_edges`` unless a directed input gave
            # both orientations (a contracted graph sums them into one).
            singletons = r == 0 and (step > 0 or not config.input.directed)
            labels = cut_lineage(
                _cluster_round(labels, weights, sym, cap, salt_r, small, singletons), rt
            )
        salt = (seed, level, step)
        labels = cut_lineage(_group_leftovers(labels, weights, sym, cap, salt, rt, small), rt)
        weights, cur_edges = _contract(labels, weights, cur_edges, small)
        weights = cut_lineage(weights, rt)
        cur_edges = cut_lineage(cur_edges, rt)
        mapping = cut_lineage(
            mapping.join(
                labels.select(F.col("id").alias("c"), F.col("c").alias("next")), "c"
            ).select("id", F.col("next").alias("c")),
            rt,
        )
        shrunk_to = weights.count()
        m_c = cur_edges.count()
        step += 1
        stalled = shrunk_to > STALL * n_c
        n_c = shrunk_to
        if stalled:
            break
    if too_big():
        return CoarseResult(None, step, n_c, m_c, dropped)
    # The coarse graph is bounded by partition.coarse_nodes and coarse_edges (checked above).
    if progress is not None:
        progress.note = f"level {level}: METIS on the driver ({n_c:,} nodes, {m_c:,} edges)"
    ids, parts = _metis_on_driver(weights, cur_edges, k, pc.max_nodes, seed)
    # Arrow's allocator keeps freed buffers for reuse; the driver has no further use for them.
    pa.default_memory_pool().release_unused()
    # From an Arrow table: a pandas frame would go row by row through schema inference
    # (~3 s for the 100k coarse nodes of a 1M-edge graph).
    table = spark.createDataFrame(pa.table({"c": ids.astype(np.int64), "part": parts}))
    labels = mapping.join(F.broadcast(table), "c").select("id", "part")
    return CoarseResult(cut_lineage(labels, rt), step, n_c, m_c, dropped)
