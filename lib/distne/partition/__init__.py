"""Partition: recursive, bounded partitioning into leaf subgraphs and border levels.

Level 0 partitions the whole graph into parts of at most ``partition.max_nodes`` nodes (the
leaf subgraphs). Its *border nodes* (nodes with an edge into another part) induce the border
subgraph, which level 1 partitions again, and so on until the border fits in one subgraph,
stops shrinking, vanishes, or ``partition.max_levels`` is reached.

Each level's graph is split into ``k = ceil(n / (fill * max_nodes))`` parts by one of:

- ``multilevel`` (default, :mod:`distne.partition.multilevel`): coarsen in Spark until the graph is
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

The package: :mod:`~distne.partition.levels` (the recursion and its statistics),
:mod:`~distne.partition.multilevel` (coarsening and METIS), :mod:`~distne.partition.refine`
(label propagation), :mod:`~distne.partition.bounds` (the node and edge-row bounds).
"""

from distne.partition.bounds import greedy_chunks
from distne.partition.levels import (
    DEFAULT_MAX_LEVELS,
    LevelMethod,
    LevelStats,
    Partitioning,
    partition,
    partition_level,
    size_histogram,
)

__all__ = [
    "DEFAULT_MAX_LEVELS",
    "LevelMethod",
    "LevelStats",
    "Partitioning",
    "greedy_chunks",
    "partition",
    "partition_level",
    "size_histogram",
]
