"""The recursion over levels: leaves, then border levels, and the statistics of each."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.config import Config, PartitionMethod
from distne.graph import endpoints
from distne.partition.bounds import enforce_edge_bound, enforce_node_bound
from distne.partition.multilevel import coarse_partition
from distne.partition.parts import broadcastable
from distne.partition.refine import refine
from distne.sparkutil import Progress, cut_lineage, hash_bucket, label_ends

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
    dropped_edges: int = 0  # the coarse graph's lightest edges, left out of METIS's view


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


HISTOGRAM_BINS = 10


def size_histogram(sizes: Iterable[int], max_nodes: int) -> tuple[int, ...]:
    """Subgraph count per tenth of ``max_nodes``: bin ``i`` holds sizes in (i/10, (i+1)/10]."""
    bins = [0] * HISTOGRAM_BINS
    for size in sizes:
        bins[min(HISTOGRAM_BINS - 1, max(0, (size - 1) * HISTOGRAM_BINS // max_nodes))] += 1
    return tuple(bins)


def partition_level(
    spark: SparkSession,
    nodes: DataFrame,
    edges: DataFrame,
    n: int,
    m: int,
    config: Config,
    level: Level,
    progress: Progress | None = None,
) -> tuple[DataFrame, LevelMethod, dict[int, int], dict[int, int]]:
    """Partition one level's graph into parts of at most ``max_nodes`` nodes (and, if set,
    ``max_edges`` edge rows).

    Args:
        nodes: ``id`` of every node at this level.
        edges: ``src``, ``dst``, ``weight`` among those nodes, each pair once.
        n, m: numbers of nodes and edges (already counted by the caller).

    Returns:
        ``id``, ``part`` with parts numbered densely from 0, how the level was partitioned,
        and each part's nodes and edge rows.
    """
    pc = config.partition
    if n <= pc.max_nodes:
        one = nodes.select("id", F.lit(0).cast("long").alias("part"))
        if pc.max_edges is None or 2 * m <= pc.max_edges:
            return one, LevelMethod("one part"), {0: n}, {0: 2 * m}
        labels, sizes, rows = enforce_edge_bound(spark, one, edges, pc.max_edges, config)
        how = LevelMethod("one part, split by edges")
        return cut_lineage(labels, config.runtime), how, sizes, rows
    k = max(2, math.ceil(n / (pc.fill * pc.max_nodes)))
    seed = config.seed
    labels: DataFrame | None = None
    how = LevelMethod(pc.method.value)
    if pc.method is PartitionMethod.MULTILEVEL:
        coarse = coarse_partition(spark, nodes, edges, n, m, k, config, level, progress)
        how = LevelMethod(
            pc.method.value,
            coarse.steps,
            coarse.coarse_nodes,
            coarse.coarse_edges,
            coarse.dropped_edges,
        )
        if progress is not None and coarse.labels is not None:
            dropped = coarse.dropped_edges
            left_out = f", its {dropped} lightest edges left out" if dropped else ""
            progress.log(
                f"partition level {level}: {coarse.steps} coarsening steps to "
                f"{coarse.coarse_nodes} nodes and {coarse.coarse_edges} edges{left_out}"
            )
        if coarse.labels is None:
            # Coarsening stalled above partition.coarse_nodes: label propagation instead.
            how = dataclasses.replace(how, method="label_propagation (coarsening stalled)")
        elif coarse.steps == 0 and not coarse.dropped_edges:
            labels = coarse.labels  # METIS saw the whole level: nothing left to refine
        else:
            labels = refine(spark, coarse.labels, edges, n, config, level, progress)
    if labels is None:
        labels = nodes.select("id", hash_bucket(seed, k, F.lit(level), F.col("id")).alias("part"))
        labels = cut_lineage(labels, config.runtime)
        if pc.method is not PartitionMethod.HASH:
            labels = refine(spark, labels, edges, n, config, level, progress)
    labels = cut_lineage(enforce_node_bound(spark, labels, pc.max_nodes, seed), config.runtime)
    labels, sizes, rows = enforce_edge_bound(spark, labels, edges, pc.max_edges, config)
    return cut_lineage(labels, config.runtime), how, sizes, rows


def partition(
    spark: SparkSession,
    nodes: DataFrame,
    edges: DataFrame,
    config: Config,
    progress: Progress | None = None,
    max_levels: int | None = None,
    counted: tuple[int, int] | None = None,
) -> Partitioning:
    """Recursively partition a graph (``nodes``: ``id``; ``edges``: ``src``, ``dst``, ``weight``,
    each pair of nodes once, as :func:`~distne.ingest.ingest` gives them: ``src < dst``, or
    with ``input.directed`` each orientation once).

    ``partition.max_nodes`` must be set (the pipeline resolves it when the user did not).
    ``max_levels`` (default: ``partition.max_levels``, else 4) caps the border levels; 0 gives
    the leaves alone, which is what the exchange backend needs. ``counted``: the numbers of
    nodes and edges of a graph whose frames are already materialised (the pipeline's, after
    its ingest); without it the graph is materialised and counted here first.

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
    if counted is None:
        cur_nodes = cut_lineage(nodes.select("id"), config.runtime)
        cur_edges = cut_lineage(edges.select("src", "dst", "weight"), config.runtime)
        n, m = cur_nodes.count(), cur_edges.count()
    else:
        cur_nodes, cur_edges = nodes.select("id"), edges.select("src", "dst", "weight")
        n, m = counted
    memberships: list[DataFrame] = []
    level_edges: list[DataFrame] = []
    stats: list[LevelStats] = []
    level = 0
    while True:
        start = time.perf_counter()
        labels, how, sizes, rows = partition_level(
            spark, cur_nodes, cur_edges, n, m, config, level, progress
        )
        # The last level's border is counted, not kept: nothing partitions it.
        last = level >= max_levels
        tagged = label_ends(cur_edges, labels, ("ps", "pd"), broadcastable(n, pc))
        if not last:
            tagged = cut_lineage(tagged, config.runtime)
        inside = tagged.where(F.col("ps") == F.col("pd")).select(
            "src", "dst", "weight", F.col("ps").alias("part")
        )
        cut = tagged.where(F.col("ps") != F.col("pd"))
        if last:
            ends = cut.select(F.explode(F.array("src", "dst")).alias("id"))
            row = ends.agg(F.count("*"), F.countDistinct("id")).first()
            assert row is not None
            cut_edges, n_border = int(row[0]) // 2, int(row[1])  # both ends of every cut edge
        else:
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
        m = m_border = cur_edges.count()
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
