"""Embed every subgraph of every level apart, in parallel, one Arrow UDF group per subgraph.

Each group is one subgraph (a ``(level, part)`` key): its node ids on one side and its inside
edges on the other. The partitioner bounds a group to ``partition.max_nodes`` nodes, so one
Python worker always holds one bounded subgraph; the embedder is the same program the default
path runs (:mod:`distne.engine.local`), with a seed derived per subgraph.
"""

from __future__ import annotations

import numpy as np
from pyspark import Accumulator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from distne.config import Config
from distne.embedders import make_program
from distne.engine.local import embed_groups
from distne.partition import Partitioning


def subgraph_seed(seed: int, level: int, part: int) -> int:
    """The seed of one subgraph's embedder, derived from the run's seed and the subgraph key."""
    return int(np.random.SeedSequence([seed, level, part]).generate_state(1)[0])


def embed_subgraphs(
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
    cfg, seed = config.embedding, config.seed
    return embed_groups(
        nodes.withColumn("level", F.col("level").cast("long")),
        edges.withColumn("level", F.col("level").cast("long")),
        ["level", "part"],
        lambda key: make_program(cfg, subgraph_seed(seed, key[0], key[1])),
        done=(lambda: done.add(1)) if done is not None else None,
    )
