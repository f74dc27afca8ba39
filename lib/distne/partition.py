"""Partition: recursive, bounded partitioning into leaf subgraphs and border levels.

Level 0 partitions the whole graph into parts of at most ``partition.max_nodes`` nodes (the
leaf subgraphs). Its *border nodes* (nodes with an edge into another part) induce the border
subgraph, which level 1 partitions again, and so on until the border fits in one subgraph,
stops shrinking, vanishes, or ``partition.max_levels`` is reached.

Each level's graph is split into ``k = ceil(n / (fill * max_nodes))`` parts by one of:

- ``multilevel`` (default, :mod:`distne.multilevel`): coarsen in Spark until the graph is
  small, partition that coarse graph with METIS on the driver, project back;
- ``label_propagation``: start from a seeded hash;
- ``hash``: the seeded hash alone (a baseline).

Then size-constrained label propagation refines the parts (in the spirit of Spinner, Martella
et al. 2017): in each round a node wants the part holding most of its edge weight, and each
part admits the movers that gain most up to its free room, so no part grows past
``max_nodes``. A final repair splits any part still over ``max_nodes`` (only a hash start can
produce one), so the bound is hard. Then any part whose *edge rows* (the sum of its nodes'
degrees: the rows of its blocks in the embedder) exceed ``partition.max_edges`` is split in
id order into parts within it, so a part full of hubs cannot outgrow a worker; a node whose
degree alone exceeds the bound gets a part of its own. Only per-part counts (one row per part)
and, for multilevel, the bounded coarse graph reach the driver.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import Config, PartitionMethod
from distne.graph import endpoints, symmetric
from distne.multilevel import coarse_partition
from distne.sparkutil import Progress, cut_lineage, hash_bucket, uniform

Level = int

# Border levels below the leaves when partition.max_levels is unset (the baselines' recursion).
DEFAULT_MAX_LEVELS = 4


@dataclass(frozen=True)
class LevelMethod:
    """How one level was partitioned: the method that ran and, for multilevel, its coarse graph."""

    method: str
    coarsening_steps: int = 0
    coarse_nodes: int = 0
    coarse_edges: int = 0


@dataclass(frozen=True)
class LevelStats:
    """What one level of the recursion produced."""

    level: Level
    nodes: int
    edges: int
    subgraphs: int
    max_subgraph_nodes: int
    min_subgraph_nodes: int
    max_subgraph_edges: int  # edge rows: the sum of the part's degrees
    cut_edges: int
    border_nodes: int
    seconds: float
    size_histogram: tuple[int, ...] = ()
    method: LevelMethod | None = None

    @property
    def cut_fraction(self) -> float:
        return self.cut_edges / self.edges if self.edges else 0.0


@dataclass(frozen=True)
class Partitioning:
    """The recursive partition of a graph.

    Attributes:
        membership: ``id``, ``level``, ``part``: one row per node and level it belongs to.
            Every node has exactly one level-0 row (its leaf subgraph); a node has a level
            ``l+1`` row iff it is a border node at level ``l``.
        level_edges: per level, ``src``, ``dst``, ``weight``, ``part``: the edges inside one
            subgraph of that level (both endpoints in part ``part``).
        levels: statistics per level.
        stop_reason: why the recursion ended.
    """

    membership: DataFrame
    level_edges: list[DataFrame]
    levels: list[LevelStats]
    stop_reason: str
    max_nodes: int
    max_edges: int | None = None

    @property
    def leaf_count(self) -> int:
        return self.levels[0].subgraphs

    def summary(self) -> dict[str, object]:
        lv0 = self.levels[0]
        return {
            "leaf_subgraphs": lv0.subgraphs,
            "max_nodes": self.max_nodes,
            "max_edges": self.max_edges,
            "levels": len(self.levels),
            "fill_ratio": round(lv0.nodes / (lv0.subgraphs * self.max_nodes), 4),
            "leaf_size_histogram": list(lv0.size_histogram),
            "histogram_bins": f"subgraphs per tenth of max_nodes={self.max_nodes}, smallest first",
            "stop_reason": self.stop_reason,
            "per_level": [
                {
                    **asdict(s),
                    "cut_fraction": round(s.cut_fraction, 4),
                    "fill_ratio": round(s.nodes / (s.subgraphs * self.max_nodes), 4),
                }
                for s in self.levels
            ],
        }


def _small_table(spark: SparkSession, rows: list[tuple[int, float]], name: str) -> DataFrame:
    schema = T.StructType(
        [T.StructField("part", T.LongType(), False), T.StructField(name, T.DoubleType(), False)]
    )
    return F.broadcast(spark.createDataFrame(rows, schema))


HISTOGRAM_BINS = 10


def size_histogram(sizes: Iterable[int], max_nodes: int) -> tuple[int, ...]:
    """Subgraph count per tenth of ``max_nodes``: bin ``i`` holds sizes in (i/10, (i+1)/10]."""
    bins = [0] * HISTOGRAM_BINS
    for size in sizes:
        bins[min(HISTOGRAM_BINS - 1, max(0, (size - 1) * HISTOGRAM_BINS // max_nodes))] += 1
    return tuple(bins)


def _part_sizes(labels: DataFrame) -> dict[int, int]:
    # One row per part: a per-subgraph summary, bounded by nodes / max_nodes.
    return {
        int(r["part"]): int(r["n"])
        for r in labels.groupBy("part").agg(F.count("*").alias("n")).collect()
    }


def _label_propagation_round(
    spark: SparkSession,
    labels: DataFrame,
    sym: DataFrame,
    capacity: int,
    seed: int,
    level: int,
    round_: int,
) -> DataFrame:
    """The nodes that move this round: ``id``, ``moved`` (their new part)."""
    sizes = _part_sizes(labels)
    nbr = sym.join(labels.withColumnsRenamed({"id": "dst", "part": "nbr_part"}), "dst")
    score = nbr.groupBy("src", "nbr_part").agg(F.sum("weight").alias("w"))
    cur = labels.withColumnsRenamed({"id": "src", "part": "cur"})
    tie = uniform(seed, F.lit(level), F.lit(round_), F.col("src"), F.col("nbr_part"))
    best = (
        score.join(cur, "src")
        .groupBy("src", "cur")
        .agg(
            F.max(F.struct(F.col("w"), tie.alias("t"), F.col("nbr_part"))).alias("b"),
            F.sum(F.when(F.col("nbr_part") == F.col("cur"), F.col("w")).otherwise(0.0)).alias(
                "w_cur"
            ),
        )
        .select(
            "src", "cur", F.col("b.nbr_part").alias("target"), F.col("b.w").alias("w_best"), "w_cur"
        )
    )
    wants = best.where((F.col("target") != F.col("cur")) & (F.col("w_best") > F.col("w_cur")))
    # Each part admits its most-wanting movers up to its free room, so no part grows past
    # ``capacity`` (leaving nodes are not counted as freeing room: a conservative bound). The
    # window holds one part's candidates; Spark sorts it out of core, no Python worker sees it.
    room = _small_table(
        spark, [(p, float(max(0, capacity - s))) for p, s in sizes.items()], "room"
    ).withColumnRenamed("part", "target")
    order = Window.partitionBy("target").orderBy(
        F.desc("gain"), uniform(seed + 1, F.lit(level), F.lit(round_), F.col("src")), "src"
    )
    return (
        wants.withColumn("gain", F.col("w_best") - F.col("w_cur"))
        .withColumn("rank", F.row_number().over(order))
        .join(room, "target")
        .where(F.col("rank") <= F.col("room"))
        .select(F.col("src").alias("id"), F.col("target").alias("moved"))
    )


def _enforce_bound(spark: SparkSession, labels: DataFrame, max_nodes: int, seed: int) -> DataFrame:
    """Renumber parts densely from 0 and split any part over ``max_nodes`` into full chunks."""
    sizes = sorted(_part_sizes(labels).items())
    dense: list[tuple[int, float]] = []
    overflow_base: list[tuple[int, float]] = []
    next_id = len(sizes)
    for new_id, (part, size) in enumerate(sizes):
        dense.append((part, float(new_id)))
        if size > max_nodes:
            overflow_base.append((part, float(next_id)))
            next_id += math.ceil((size - max_nodes) / max_nodes)
    mapped = labels.join(_small_table(spark, dense, "dense"), "part")
    if not overflow_base:
        return mapped.select("id", F.col("dense").cast("long").alias("part"))
    base = _small_table(spark, overflow_base, "base")
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


def _bound_edges(
    spark: SparkSession,
    labels: DataFrame,
    edges: DataFrame,
    max_edges: int | None,
    config: Config,
) -> tuple[DataFrame, dict[int, int]]:
    """Split parts with more than ``max_edges`` edge rows; the labels and each part's rows.

    ``labels`` has dense parts from 0. Split parts keep their number for their first chunk;
    the other chunks are numbered after the last part.
    """
    ends = edges.select(F.col("src").alias("id")).unionAll(edges.select(F.col("dst").alias("id")))
    degree = ends.groupBy("id").agg(F.count("*").alias("rows"))
    node_rows = labels.join(degree, "id", "left").select(
        "id", "part", F.coalesce(F.col("rows"), F.lit(0)).cast("long").alias("rows")
    )
    # One row per part.
    sums = {
        int(r["part"]): int(r["rows"])
        for r in node_rows.groupBy("part").agg(F.sum("rows").alias("rows")).collect()
    }
    heavy = sorted(p for p, rows in sums.items() if max_edges is not None and rows > max_edges)
    if not heavy:
        return labels, sums
    assert max_edges is not None
    which = _small_table(spark, [(p, 0.0) for p in heavy], "heavy").select("part")
    # A group is one part, at most max_nodes rows: bounded by design.
    chunks = cut_lineage(
        node_rows.join(which, "part")
        .groupBy("part")
        .applyInArrow(_chunk_udf(max_edges), "id long, part long, chunk long, rows long"),
        config.runtime,
    )
    # One row per new part.
    pieces = sorted(
        (int(r["part"]), int(r["chunk"]), int(r["rows"]))
        for r in chunks.groupBy("part", "chunk").agg(F.sum("rows").alias("rows")).collect()
    )
    next_id = len(sums)
    renumber: list[tuple[int, float]] = []
    for part, chunk, rows in pieces:
        new = part if chunk == 0 else next_id
        next_id += chunk != 0
        renumber.append((part * len(pieces) + chunk, float(new)))
        sums[new] = rows
    key = F.col("part") * len(pieces) + F.col("chunk")
    moved = chunks.withColumn("key", key).join(
        _small_table(spark, renumber, "new").withColumnRenamed("part", "key"), "key"
    )
    kept = labels.join(which, "part", "left_anti").select("id", "part")
    return kept.union(moved.select("id", F.col("new").cast("long").alias("part"))), sums


# Refinement stops when a round moves at most this share of the level's nodes.
SETTLED = 0.002


def _refine(
    spark: SparkSession,
    labels: DataFrame,
    edges: DataFrame,
    n: int,
    config: Config,
    level: Level,
) -> DataFrame:
    """Up to ``partition.iterations`` label-propagation rounds; stop early once few nodes move."""
    pc = config.partition
    sym = cut_lineage(symmetric(edges), config.runtime)
    for r in range(pc.iterations):
        moves = cut_lineage(
            _label_propagation_round(spark, labels, sym, pc.max_nodes, config.seed, level, r),
            config.runtime,
        )
        labels = cut_lineage(
            labels.join(moves, "id", "left").select(
                "id", F.coalesce(F.col("moved"), F.col("part")).alias("part")
            ),
            config.runtime,
        )
        if moves.count() <= SETTLED * n:
            break
    return labels


def partition_level(
    spark: SparkSession,
    nodes: DataFrame,
    edges: DataFrame,
    n: int,
    m: int,
    config: Config,
    level: Level,
) -> tuple[DataFrame, LevelMethod, dict[int, int]]:
    """Partition one level's graph into parts of at most ``max_nodes`` nodes (and, if set,
    ``max_edges`` edge rows).

    Args:
        nodes: ``id`` of every node at this level.
        edges: ``src``, ``dst``, ``weight`` among those nodes, each pair once.
        n, m: numbers of nodes and edges (already counted by the caller).

    Returns:
        ``id``, ``part`` with parts numbered densely from 0, how the level was partitioned,
        and each part's edge rows.
    """
    pc = config.partition
    if n <= pc.max_nodes:
        one = nodes.select("id", F.lit(0).cast("long").alias("part"))
        if pc.max_edges is None or 2 * m <= pc.max_edges:
            return one, LevelMethod("one part"), {0: 2 * m}
        labels, rows = _bound_edges(spark, one, edges, pc.max_edges, config)
        return cut_lineage(labels, config.runtime), LevelMethod("one part, split by edges"), rows
    k = max(2, math.ceil(n / (pc.fill * pc.max_nodes)))
    seed = config.seed
    labels: DataFrame | None = None
    how = LevelMethod(pc.method.value)
    if pc.method is PartitionMethod.MULTILEVEL:
        coarse = coarse_partition(spark, nodes, edges, n, m, k, config, level)
        how = LevelMethod(pc.method.value, coarse.steps, coarse.coarse_nodes, coarse.coarse_edges)
        if coarse.labels is None:
            # Coarsening stalled above partition.coarse_nodes: label propagation instead.
            how = dataclasses.replace(how, method="label_propagation (coarsening stalled)")
        elif coarse.steps == 0:
            labels = coarse.labels  # METIS saw the whole level: nothing left to refine
        else:
            labels = _refine(spark, coarse.labels, edges, n, config, level)
    if labels is None:
        labels = nodes.select("id", hash_bucket(seed, k, F.lit(level), F.col("id")).alias("part"))
        labels = cut_lineage(labels, config.runtime)
        if pc.method is not PartitionMethod.HASH:
            labels = _refine(spark, labels, edges, n, config, level)
    labels = cut_lineage(_enforce_bound(spark, labels, pc.max_nodes, seed), config.runtime)
    labels, rows = _bound_edges(spark, labels, edges, pc.max_edges, config)
    return cut_lineage(labels, config.runtime), how, rows


def partition(
    spark: SparkSession,
    nodes: DataFrame,
    edges: DataFrame,
    config: Config,
    progress: Progress | None = None,
    max_levels: int | None = None,
) -> Partitioning:
    """Recursively partition a graph (``nodes``: ``id``; ``edges``: ``src``, ``dst``, ``weight``).

    ``partition.max_nodes`` must be set (the pipeline resolves it when the user did not).
    ``max_levels`` (default: ``partition.max_levels``, else 4) caps the border levels; 0 gives
    the leaves alone, which is what the exchange backend needs.

    Example:
        >>> p = partition(spark, graph.nodes, graph.edges, config)  # doctest: +SKIP
        >>> p.leaf_count, [s.border_nodes for s in p.levels]
    """
    progress = progress or Progress(spark, enabled=False)
    pc = config.partition
    if pc.max_nodes is None:
        raise ValueError("partition(): partition.max_nodes must be resolved before partitioning")
    if max_levels is None:
        max_levels = DEFAULT_MAX_LEVELS if pc.max_levels is None else pc.max_levels
    cur_nodes = cut_lineage(nodes.select("id"), config.runtime)
    cur_edges = cut_lineage(edges.select("src", "dst", "weight"), config.runtime)
    n = cur_nodes.count()
    memberships: list[DataFrame] = []
    level_edges: list[DataFrame] = []
    stats: list[LevelStats] = []
    level = 0
    while True:
        start = time.perf_counter()
        m = cur_edges.count()
        labels, how, rows = partition_level(spark, cur_nodes, cur_edges, n, m, config, level)
        sizes = _part_sizes(labels)
        tagged = cur_edges.join(labels.withColumnsRenamed({"id": "src", "part": "ps"}), "src").join(
            labels.withColumnsRenamed({"id": "dst", "part": "pd"}), "dst"
        )
        tagged = cut_lineage(tagged, config.runtime)
        inside = tagged.where(F.col("ps") == F.col("pd")).select(
            "src", "dst", "weight", F.col("ps").alias("part")
        )
        cut = tagged.where(F.col("ps") != F.col("pd"))
        border = cut_lineage(endpoints(cut), config.runtime)
        cut_edges = cut.count()
        n_border = border.count()
        memberships.append(labels.select("id", F.lit(level).alias("level"), "part"))
        level_edges.append(inside)
        stats.append(
            LevelStats(
                level=level,
                nodes=n,
                edges=m,
                subgraphs=len(sizes),
                max_subgraph_nodes=max(sizes.values()),
                min_subgraph_nodes=min(sizes.values()),
                max_subgraph_edges=max(rows.values()),
                cut_edges=cut_edges,
                border_nodes=n_border,
                seconds=round(time.perf_counter() - start, 3),
                size_histogram=size_histogram(sizes.values(), pc.max_nodes),
                method=how,
            )
        )
        progress.log(
            f"partition level {level}: {n} nodes, {len(sizes)} subgraphs, "
            f"{cut_edges}/{m} edges cut, {n_border} border nodes"
        )
        if n_border == 0:
            reason = "no border nodes"
            break
        if level >= max_levels:
            reason = f"reached {max_levels} border levels"
            break
        if n_border >= 0.95 * n:
            reason = f"border stopped shrinking ({n_border} of {n} nodes)"
            break
        cur_edges = cut_lineage(
            tagged.select("src", "dst", "weight")
            .join(border.withColumnRenamed("id", "src"), "src", "left_semi")
            .join(border.withColumnRenamed("id", "dst"), "dst", "left_semi"),
            config.runtime,
        )
        cur_nodes = border
        n = n_border
        level += 1
        m_border = cur_edges.count()
        if n <= pc.max_nodes and (pc.max_edges is None or 2 * m_border <= pc.max_edges):
            # The border fits in one subgraph: it is the top level, in one frame.
            start = time.perf_counter()
            labels = cur_nodes.select("id", F.lit(0).cast("long").alias("part"))
            memberships.append(labels.select("id", F.lit(level).alias("level"), "part"))
            level_edges.append(
                cur_edges.select("src", "dst", "weight", F.lit(0).cast("long").alias("part"))
            )
            stats.append(
                LevelStats(
                    level=level,
                    nodes=n,
                    edges=m_border,
                    subgraphs=1,
                    max_subgraph_nodes=n,
                    min_subgraph_nodes=n,
                    max_subgraph_edges=2 * m_border,
                    cut_edges=0,
                    border_nodes=0,
                    seconds=round(time.perf_counter() - start, 3),
                    size_histogram=size_histogram([n], pc.max_nodes),
                    method=LevelMethod("one part"),
                )
            )
            progress.log(f"partition level {level}: {n} border nodes fit one subgraph")
            reason = "border fits in one subgraph"
            break
    membership = memberships[0]
    for extra in memberships[1:]:
        membership = membership.union(extra)
    return Partitioning(
        membership=cut_lineage(membership, config.runtime),
        level_edges=level_edges,
        levels=stats,
        stop_reason=reason,
        max_nodes=pc.max_nodes,
        max_edges=pc.max_edges,
    )
