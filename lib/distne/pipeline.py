"""The whole run: ingest -> partition -> embed -> fuse -> write.

Every stage is a library function taking the Spark session and the config; :func:`run`
wires them together and returns a summary. Jobs and the CLI only call :func:`run`.

Example (in a notebook, with the Delta connector on the cluster):
    >>> from distne.config import load_config
    >>> from distne.pipeline import run
    >>> cfg = load_config("conf/databricks.yaml", ["input.path=/Volumes/x/edges",
    ...                                            "output.path=/Volumes/x/emb"])
    >>> summary = run(spark, cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne import __version__
from distne.config import Config, FusionMethod, to_dict
from distne.embed import embed
from distne.exchange import embed_exchange
from distne.fuse import fuse
from distne.ingest import Graph, ingest
from distne.partition import Partitioning, partition
from distne.sparkutil import Progress, cut_lineage
from distne.write import check_output, write_embeddings


@dataclass
class RunSummary:
    """What a run did; printed by the CLI and stored (without the table path) in Delta."""

    nodes: int = 0
    edges: int = 0
    leaf_subgraphs: int = 0
    levels: int = 0
    dim: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    partition: dict[str, Any] = field(default_factory=dict)
    table_path: str = ""
    delta_version: int = -1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"nodes            {self.nodes:,}",
            f"edges            {self.edges:,}",
            f"leaf subgraphs   {self.leaf_subgraphs:,} (max {self.partition.get('max_nodes')} "
            f"nodes each, fill {self.partition.get('fill_ratio')})",
            f"levels           {self.levels} ({self.partition.get('stop_reason')})",
        ]
        for lv in self.partition.get("per_level", []):
            lines.append(
                f"  level {lv['level']}: {lv['nodes']:,} nodes, {lv['subgraphs']} subgraphs, "
                f"cut {lv['cut_fraction']:.1%} of {lv['edges']:,} edges, "
                f"{lv['border_nodes']:,} border nodes, {lv['seconds']:.1f}s"
                + (f" ({lv['method']['method']})" if lv.get("method") else "")
            )
        if self.partition.get("leaf_size_histogram"):
            lines.append(
                "leaf sizes       "
                + " ".join(str(c) for c in self.partition["leaf_size_histogram"])
                + " (subgraphs per tenth of max_nodes, smallest first)"
            )
        lines.append(
            "time per stage   " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        )
        lines.append(f"table            {self.table_path} (Delta version {self.delta_version})")
        return "\n".join(lines)


def embeddings_table(graph: Graph, fused: DataFrame) -> DataFrame:
    """Join fused vectors back to the user's ids: ``node_id, subgraph_id, embedding``."""
    return fused.join(graph.nodes, "id").select(
        "node_id", F.col("part").alias("subgraph_id"), F.col("vec").alias("embedding")
    )


def run(spark: SparkSession, config: Config) -> RunSummary:
    """Run the pipeline described by ``config``; return its summary.

    Raises:
        distne.errors.InputError: the input is missing, malformed or empty.
        distne.errors.OutputError: the output path holds something distne must not overwrite.
    """
    progress = Progress(spark, config.runtime.progress)
    summary = RunSummary(dim=config.embedding.dim)
    if config.runtime.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(config.runtime.checkpoint_dir)
    check_output(spark, config.output.path, config.output.mode)
    t0 = time.perf_counter()

    with progress.stage("ingest", config.input.path or "") as t:
        graph = ingest(spark, config.input)
        graph = Graph(
            nodes=cut_lineage(graph.nodes, config.runtime),
            edges=cut_lineage(graph.edges, config.runtime),
            id_type=graph.id_type,
        )
        summary.nodes = graph.nodes.count()
        summary.edges = graph.edges.count()
    summary.seconds["ingest"] = t["seconds"]
    progress.log(f"ingest: {summary.nodes:,} nodes, {summary.edges:,} edges")

    exchange = config.fusion.method is FusionMethod.EXCHANGE
    # Exchange fusion embeds the leaves together: border levels would go unused.
    part_config = (
        dataclasses.replace(config, partition=dataclasses.replace(config.partition, max_levels=0))
        if exchange
        else config
    )
    with progress.stage("partition", f"max_nodes={config.partition.max_nodes}") as t:
        parts: Partitioning = partition(spark, graph.nodes, graph.edges, part_config, progress)
    summary.seconds["partition"] = t["seconds"]
    summary.leaf_subgraphs = parts.leaf_count
    summary.levels = len(parts.levels)
    summary.partition = {**parts.summary(), "max_nodes": config.partition.max_nodes}

    if exchange:
        with progress.stage(
            "embed", f"ProNE over {parts.leaf_count} leaves, exchanging borders"
        ) as t:
            leaf = parts.membership.where(F.col("level") == 0).select("id", "part")
            fused = embed_exchange(spark, graph.edges, leaf, config)
        summary.seconds["embed"] = t["seconds"]
    else:
        total = sum(s.subgraphs for s in parts.levels)
        done = spark.sparkContext.accumulator(0)
        with progress.stage(
            "embed",
            f"{total} subgraphs over {len(parts.levels)} levels",
            counter=lambda: f"subgraphs {done.value}/{total}",
        ) as t:
            vectors = cut_lineage(embed(parts, config, done), config.runtime)
        summary.seconds["embed"] = t["seconds"]
        progress.log(f"embed: {done.value}/{total} subgraphs embedded")

        with progress.stage("fuse", config.fusion.method.value) as t:
            fused = fuse(vectors, parts, config)
        summary.seconds["fuse"] = t["seconds"]

    assert config.output.path is not None
    summary.table_path = config.output.path
    metadata = {
        "version": __version__,
        "seed": config.seed,
        "config": to_dict(config),
        "nodes": summary.nodes,
        "edges": summary.edges,
        "partition": summary.partition,
        "seconds": dict(summary.seconds),
    }
    with progress.stage("write", config.output.path) as t:
        summary.delta_version = write_embeddings(
            spark, embeddings_table(graph, fused), config.output.path, config.output.mode, metadata
        )
    summary.seconds["write"] = t["seconds"]
    summary.seconds["total"] = time.perf_counter() - t0
    return summary
