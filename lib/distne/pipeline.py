"""The whole run: ingest -> (partition) -> embed -> write.

The embedder runs on one of two backends (:mod:`distne.engine`): ``local`` (the whole graph in
one Python worker) when it fits, ``exchange`` (partitioned into leaf subgraphs, all embedded
at once in one frame) otherwise; :func:`plan_run` decides. The baselines (``procrustes``,
``leaf_only``) embed subgraphs apart and fuse them. Every stage is a library function taking
the Spark session and the config; :func:`run` wires them together, writes the table and
returns a summary; :func:`embed_graph` does the same for a GraphFrame or an edges DataFrame
and returns the vectors instead. Jobs and the CLI only call these.

Example (in a notebook, with the Delta connector on the cluster):
    >>> from distne.config import load_config
    >>> from distne.pipeline import run
    >>> cfg = load_config("conf/databricks.yaml", ["input.path=/Volumes/x/edges",
    ...                                            "output.path=/Volumes/x/emb"])
    >>> summary = run(spark, cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne import __version__
from distne.baselines.per_subgraph import embed_subgraphs
from distne.baselines.procrustes import fuse
from distne.config import Config, RunMode, Transport, load_config, to_dict
from distne.embedders import make_program
from distne.engine.exchange import (
    blocks_worth_keeping,
    dynamic_allocation,
    embed_exchange,
    exchange_disk_bytes,
    local_disk_free,
    pick_transport,
    task_slots,
)
from distne.engine.local import embed_groups, local_bytes
from distne.engine.program import Program
from distne.errors import InputError
from distne.graph import Graph
from distne.ingest import RawEdges, build_graph, edges_from_frame, read_edges
from distne.partition import Partitioning, partition
from distne.session import fit_shuffle_partitions
from distne.sparkutil import (
    Progress,
    cut_lineage,
    posix_path,
    releasing,
    remove_checkpoint_dir,
)
from distne.stages import RunFolder, open_run_folder
from distne.write import OutputState, check_target, write_target


@dataclass(frozen=True)
class Plan:
    """How a run embeds, decided from the graph's size, the config and the cluster."""

    mode: RunMode
    max_nodes: int | None  # the leaf bounds (None for local)
    max_edges: int | None
    # Worker budgets the whole graph needs, at least one per core: the leaf count when
    # max_nodes is unset, and the exchange's Spark partitions (a task holds its partition's
    # leaves at once, so each partition must fit a worker).
    partitions: int
    reason: str


def plan_run(config: Config, nodes: int, edges: int, parallelism: int, program: Program) -> Plan:
    """Pick the backend and, if unset, the leaf bound.

    ``auto`` runs locally when the whole graph fits one worker's budget (and under
    ``partition.max_nodes`` when that is set); otherwise it partitions. An unset
    ``partition.max_nodes`` gives at least one leaf per core, and enough leaves that each
    fits the budget: fewer, larger leaves mean a smaller halo.
    """
    need = local_bytes(nodes, edges, program)
    budget = config.run.worker_memory_gb * 2**30
    pc = config.partition
    mode = config.run.mode
    gb = f"{need / 2**30:.2f} GB estimated for the whole graph, budget {budget / 2**30:.1f} GB"
    reason = f"run.mode={mode.value}"
    if mode is RunMode.AUTO:
        fits = need <= budget
        reason = f"auto: {'fits' if fits else 'does not fit'} one worker ({gb})"
        if pc.max_nodes is not None and nodes > pc.max_nodes:
            fits = False
            reason = f"auto: {nodes:,} nodes > partition.max_nodes={pc.max_nodes:,}"
        if pc.max_edges is not None and 2 * edges > pc.max_edges:
            fits = False
            reason = f"auto: {2 * edges:,} edge rows > partition.max_edges={pc.max_edges:,}"
        mode = RunMode.LOCAL if fits else RunMode.EXCHANGE
    max_nodes, max_edges = pc.max_nodes, pc.max_edges
    partitions = max(parallelism, math.ceil(need / budget))
    if mode is RunMode.LOCAL:
        return Plan(mode, None, None, partitions, reason)
    if max_nodes is None:
        max_nodes = max(2, math.ceil(nodes / (pc.fill * partitions)))
        reason += f"; {partitions} leaves of at most {max_nodes:,} nodes"
    if max_edges is None:
        max_edges = leaf_edge_bound(nodes, edges, max_nodes)
    return Plan(mode, max_nodes, max_edges, partitions, reason)


# An unset partition.max_edges lets a leaf hold this many times the edge rows of max_nodes
# nodes of average degree: room for the uneven degrees of real graphs (PPI's METIS parts
# hold up to 2.8x), not for a leaf of hubs. A leaf's memory is mostly its state (ProNE at
# dim 128: 6 KB a node against 72 B an edge row), so 4x the edge rows is well under 2x the
# memory at the degrees of real graphs.
EDGE_SLACK = 4


def leaf_edge_bound(nodes: int, edges: int, max_nodes: int) -> int:
    """The default ``partition.max_edges``: ``EDGE_SLACK`` x the edge rows (``2 * edges``
    over ``nodes``) of ``max_nodes`` average nodes, and at least ``max_nodes``."""
    return max(max_nodes, math.ceil(EDGE_SLACK * 2 * edges * max_nodes / max(1, nodes)))


LOOP_ONLY = "only self-loops, no edge to embed them by: no row in the table"


@dataclass
class RunSummary:
    """What a run did; printed by the CLI and stored (without the table path) in Delta."""

    nodes: int = 0
    edges: int = 0
    dropped_loop_only: int = 0  # ids of the input with only self-loops (no vector)
    mode: str = ""
    plan: str = ""
    leaf_subgraphs: int = 0
    levels: int = 0
    dim: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    partition: dict[str, Any] = field(default_factory=dict)
    table_path: str = ""
    delta_version: int = -1
    resumed: str = ""  # the stage a rerun resumed from ("" for a run from the start)
    components: dict[str, int] = field(default_factory=dict)  # runtime.components

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"nodes            {self.nodes:,}",
            f"edges            {self.edges:,}",
            f"mode             {self.mode} ({self.plan})",
        ]
        if self.components:
            lines.append(f"components       {_say_components(self.components, self.nodes)}")
        if self.dropped_loop_only:
            lines.insert(2, f"dropped          {self.dropped_loop_only:,} ids ({LOOP_ONLY})")
        if self.partition:
            lines += [
                f"leaf subgraphs   {self.leaf_subgraphs:,} (max "
                f"{self.partition.get('max_nodes'):,} nodes and "
                f"{self.partition.get('max_edges') or 0:,} edge rows each, fill "
                f"{self.partition.get('fill_ratio')})",
                f"levels           {self.levels} ({self.partition.get('stop_reason')})",
            ]
        for lv in self.partition.get("per_level", []):
            lines.append(
                f"  level {lv['level']}: {lv['nodes']:,} nodes, {lv['subgraphs']} subgraphs, "
                f"largest {lv['max_subgraph_edges']:,} edge rows, "
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
        if self.resumed:
            lines.append(f"resumed from     {self.resumed} (an earlier attempt's stages)")
        lines.append(f"table            {self.table_path} (Delta version {self.delta_version})")
        return "\n".join(lines)


def _say_components(c: dict[str, int], nodes: int) -> str:
    share = c["largest"] / max(1, nodes)
    return f"{c['components']:,} connected, the largest {c['largest']:,} nodes ({share:.1%})"


def embeddings_table(graph: Graph, fused: DataFrame) -> DataFrame:
    """Join fused vectors back to the user's ids: ``node_id, subgraph_id, embedding``."""
    return fused.join(graph.nodes, "id").select(
        "node_id", F.col("part").alias("subgraph_id"), F.col("vec").alias("embedding")
    )


def _fit_shuffles(spark: SparkSession, edges: int, config: Config, progress: Progress) -> None:
    said = fit_shuffle_partitions(spark, edges, config.spark)
    if said:
        progress.log(f"spark: {said}")


def run(spark: SparkSession, config: Config) -> RunSummary:
    """Run the pipeline described by ``config``; return its summary.

    Raises:
        distne.errors.InputError: the input is missing, malformed or empty.
        distne.errors.OutputError: the output path holds something distne must not overwrite.
    """
    progress = Progress(spark, config.runtime.progress)
    summary = RunSummary(dim=config.embedding.dim)
    if config.runtime.checkpoint_dir:
        # A folder of this run's own under runtime.checkpoint_dir (Spark adds a fresh UUID).
        spark.sparkContext.setCheckpointDir(config.runtime.checkpoint_dir)
    if check_target(spark, config.output) is OutputState.INTERRUPTED:
        progress.log(
            f"output: {config.output.path} holds the leftovers of distne's own first write, "
            f"killed before it committed: the write will replace them"
        )
    t0 = time.perf_counter()
    stages = open_run_folder(spark, config) if config.runtime.resume else None
    graph, fused = _embed(
        spark,
        config,
        lambda: read_edges(spark, config.input, config.runtime),
        config.input.path or config.input.table or "",
        progress,
        summary,
        stages,
    )

    summary.table_path = config.output.table or config.output.path or ""
    metadata = {
        "version": __version__,
        "seed": config.seed,
        "config": to_dict(config),
        "nodes": summary.nodes,
        "edges": summary.edges,
        "mode": summary.mode,
        "plan": summary.plan,
        "partition": summary.partition,
        "seconds": dict(summary.seconds),
        "resumed": summary.resumed,
        "components": summary.components,
    }
    with progress.stage("write", summary.table_path) as t:
        summary.delta_version = write_target(
            spark, embeddings_table(graph, fused), config.output, metadata
        )
    summary.seconds["write"] = t["seconds"]
    if config.runtime.checkpoint_dir:
        # The table is committed: nothing reads this run's reliable checkpoints any more.
        remove_checkpoint_dir(spark)
    if stages is not None:
        if config.runtime.keep_stages:
            progress.log(f"resume: the stages are kept in {stages.path} (runtime.keep_stages)")
        else:
            stages.remove()
    summary.seconds["total"] = time.perf_counter() - t0
    return summary


def _embed(
    spark: SparkSession,
    config: Config,
    read: Callable[[], RawEdges],
    source: str,
    progress: Progress,
    summary: RunSummary,
    stages: RunFolder | None = None,
) -> tuple[Graph, DataFrame]:
    """Ingest (``read`` gives the validated edges), plan, partition and embed: the graph and
    its vectors ``id, part, vec``, filling ``summary``. With ``stages``, finished stages are
    taken from the run folder and new ones kept there."""
    program = make_program(config.embedding, config.seed)
    if config.runtime.components:
        from distne.components import check_available

        check_available(spark)
    kept = stages.finished() if stages is not None else []
    if "graph" in kept:
        assert stages is not None
        graph, summary.nodes, summary.edges = stages.load_graph()
        _fit_shuffles(spark, summary.edges, config, progress)
    else:
        with progress.stage("ingest", source) as t, releasing(spark, stages is not None):
            raw = read()
            _fit_shuffles(spark, raw.pairs, config, progress)
            graph = build_graph(raw.frame, config.input, raw.id_type, raw.loops)
            if stages is not None:
                for name in stages.claim():
                    progress.log(
                        f"resume: removed {stages.root}/{name}, the stages of a run "
                        f"with another input or config"
                    )
                graph, summary.nodes, summary.edges = stages.save_graph(graph)
            else:
                graph = Graph(
                    nodes=cut_lineage(graph.nodes, config.runtime),
                    edges=cut_lineage(graph.edges, config.runtime),
                    id_type=graph.id_type,
                    loop_only=graph.loop_only,
                )
                summary.nodes = graph.nodes.count()
                summary.edges = graph.edges.count()
        summary.seconds["ingest"] = t["seconds"]
    plan = plan_run(
        config, summary.nodes, summary.edges, spark.sparkContext.defaultParallelism, program
    )
    if "partition" in kept:
        assert stages is not None
        if not stages.partition_fits(plan.max_nodes, plan.max_edges):
            # Another plan (unset leaf bounds follow the cluster's parallelism): the kept
            # partition, and the exchange state computed on it, cannot be used (the partition
            # stage below drops them).
            progress.log(
                f"resume: the kept partition has other leaf bounds than this run's plan "
                f"(max_nodes={plan.max_nodes}, max_edges={plan.max_edges}); partitioning again"
            )
            kept.remove("partition")
    if kept:
        assert stages is not None
        _say_resumed(stages, kept, plan, program, progress, summary)
    progress.log(f"ingest: {summary.nodes:,} nodes, {summary.edges:,} edges")
    if config.runtime.components:
        from distne.components import components

        with progress.stage("components", "GraphFrames connected components") as t:
            summary.components = components(spark, graph, config.runtime)
        summary.seconds["components"] = t["seconds"]
        progress.log(f"components: {_say_components(summary.components, summary.nodes)}")
    summary.dropped_loop_only = graph.loop_only
    if graph.loop_only:
        progress.log(f"ingest: {graph.loop_only:,} ids dropped: {LOOP_ONLY}")
    summary.mode, summary.plan = plan.mode.value, plan.reason
    progress.log(f"mode: {plan.mode.value} ({plan.reason})")

    if plan.mode is RunMode.LOCAL:
        summary.leaf_subgraphs = 1
        with progress.stage("embed", "the whole graph in one worker") as t:
            fused = cut_lineage(_embed_whole(graph, program), config.runtime)
        summary.seconds["embed"] = t["seconds"]
    else:
        part_config = dataclasses.replace(
            config,
            partition=dataclasses.replace(
                config.partition, max_nodes=plan.max_nodes, max_edges=plan.max_edges
            ),
        )
        # The exchange embeds the leaves together: it needs no border levels.
        levels = None if plan.mode.is_baseline else 0
        bounds = f"max_nodes={plan.max_nodes}, max_edges={plan.max_edges}"
        if "partition" in kept and plan.mode is RunMode.EXCHANGE:
            assert stages is not None
            parts: Partitioning = stages.load_partition()
        else:
            # The exchange's partition is kept in the run folder (the baselines' is not).
            keep = stages is not None and plan.mode is RunMode.EXCHANGE
            if keep:
                assert stages is not None
                # A partition kept for other bounds, or what a damaged record left: made anew.
                stages.drop_partition()
            with progress.stage("partition", bounds) as t, releasing(spark, keep):
                parts = partition(
                    spark,
                    graph.nodes,
                    graph.edges,
                    part_config,
                    progress,
                    max_levels=levels,
                    counted=(summary.nodes, summary.edges),
                )
                if keep:
                    assert stages is not None
                    parts = stages.save_partition(parts)
            summary.seconds["partition"] = t["seconds"]
        summary.leaf_subgraphs = parts.leaf_count
        summary.levels = len(parts.levels)
        summary.partition = parts.summary()
        if plan.mode is RunMode.EXCHANGE:
            snapshots = stages.snapshots if stages is not None else None
            blocks = stages.exchange_blocks if stages is not None else None
            fused = _embed_exchange(
                spark, graph, parts, plan, config, program, progress, summary, snapshots, blocks
            )
        else:
            fused = _embed_baseline(spark, parts, config, progress, summary)

    return graph, fused


def embed_graph(
    spark: SparkSession, graph: Any, config: Config | None = None, **settings: Any
) -> DataFrame:
    """Embed a GraphFrame, or a DataFrame of edges, without writing a table.

    Returns a DataFrame ``id, subgraph_id, embedding`` (``embedding``: ``array<float>``),
    one row per node with an edge; vertices without one get no row (no edge to be embedded
    by). The edges are read from ``src`` and ``dst`` (a GraphFrame's own columns), weighted by
    the column ``input__weight_col`` names; other columns, such as a GraphFrame's edge
    attributes, are ignored unless ``input__extra_columns="error"``. Ingest, plan, partition
    and embed run as in :func:`run`, with the same validation and the same vectors.

    Args:
        spark: the session the DataFrames belong to.
        graph: a ``graphframes.GraphFrame`` (its ``edges`` are used) or an edges DataFrame.
        config: the base config (e.g. from ``distne.config.load_config``); its defaults when
            None.
        settings: config keys with ``__`` for each dot, e.g. ``embedding__dim=64, seed=7``.

    Example:
        >>> from graphframes import GraphFrame
        >>> import distne
        >>> g = GraphFrame(vertices, edges)  # doctest: +SKIP
        >>> vectors = distne.embed_graph(spark, g, embedding__dim=64)  # doctest: +SKIP
        >>> vectors.columns  # doctest: +SKIP
        ['id', 'subgraph_id', 'embedding']
    """
    edges = getattr(graph, "edges", graph)
    if not isinstance(edges, DataFrame):
        raise InputError(
            f"embed_graph: expected a GraphFrame or a DataFrame of edges; found "
            f"{type(graph).__name__}"
        )
    values = {key.replace("__", "."): value for key, value in settings.items()}
    values.setdefault("input.extra_columns", "ignore")
    # No table, so no run folder to keep stages in.
    values["runtime.resume"] = False
    cfg = (config or load_config(None)).with_settings(values)
    progress = Progress(spark, cfg.runtime.progress)
    summary = RunSummary(dim=cfg.embedding.dim)
    name = "graph.edges" if edges is not graph else "edges DataFrame"
    nodes, fused = _embed(
        spark,
        cfg,
        lambda: edges_from_frame(edges, cfg.input, name, cfg.runtime),
        name,
        progress,
        summary,
    )
    return embeddings_table(nodes, fused).withColumnRenamed("node_id", "id")


def _say_resumed(
    stages: RunFolder,
    kept: list[str],
    plan: Plan,
    program: Program,
    progress: Progress,
    summary: RunSummary,
) -> None:
    """Say what a rerun found kept; ``summary.resumed`` names the first stage that runs."""
    if "partition" not in kept or plan.mode is not RunMode.EXCHANGE:
        summary.resumed = "embed" if plan.mode is RunMode.LOCAL else "partition"
        what = "the ingested graph is"
    else:
        summary.resumed = "embed"
        what = "the ingested graph and the partition are"
        done = stages.exchange_kept()
        if done:
            summary.resumed = f"embed, product {done + 1} of {program.products()}"
            what = (
                f"the ingested graph, the partition and the exchange's state after {done} "
                f"products are"
            )
    progress.log(f"resuming from {summary.resumed}: {what} kept in {stages.path}")


def _embed_whole(graph: Graph, program: Program) -> DataFrame:
    """The local backend on the whole graph: one group, bounded by the plan's memory check."""
    zero = F.lit(0).cast("long").alias("part")
    return embed_groups(
        graph.nodes.select(zero, "id"),
        graph.edges.select(zero, "src", "dst", "weight"),
        ["part"],
        lambda _key: program,
    ).select("id", "part", "vec")


def _embed_exchange(
    spark: SparkSession,
    graph: Graph,
    parts: Partitioning,
    plan: Plan,
    config: Config,
    program: Program,
    progress: Progress,
    summary: RunSummary,
    snapshots: str | None = None,
    blocks: str | None = None,
) -> DataFrame:
    transport, spill, why = pick_transport(
        config,
        summary.nodes,
        summary.edges,
        program,
        parts.leaf_count,
        task_slots(spark),
        dynamic_allocation(spark),
    )
    summary.plan += f"; {why}"
    progress.log(f"exchange: {why}")
    saving = bool(snapshots and config.runtime.snapshot_every)
    free = local_disk_free(spark)
    if transport is not Transport.BARRIER or not blocks_worth_keeping(
        summary.edges, free[1] if free else None
    ):
        blocks = None  # the setup's shuffle files are few beside the free disk: they stay
    need = exchange_disk_bytes(
        summary.nodes, summary.edges, program, spill, saving, kept=blocks is not None
    )
    if free is not None and free[1] < need:
        what = "shuffle files" + (", leaves and state" if spill else "")
        what += ", a snapshot of the state" if saving else ""
        progress.log(
            f"exchange: warning: about {need / 1e9:.0f} GB of local disk needed ({what}), "
            f"{free[1] / 1e9:.0f} GB free in {free[0]}; the run may stop with 'No space left "
            f"on device' (the kept stages let a rerun resume): free space there, point "
            f"SPARK_LOCAL_DIRS (spark.local.dir) at a larger disk, or set "
            f"runtime.snapshot_every=0"
        )
    if snapshots and transport is Transport.BARRIER and posix_path(spark, snapshots) is None:
        progress.log(
            f"resume: {snapshots} is not on a local path, where the barrier tasks could save "
            f"the exchange's state; a rerun resumes from the partition"
        )
    backend: list[Any] = []

    def counter() -> tuple[str, int, int]:
        return "product", backend[0].products_done if backend else 0, program.products()

    detail = f"over {parts.leaf_count} leaves, exchanging borders"
    with progress.stage("embed", detail, counter=counter) as t:
        leaf = parts.membership.where(F.col("level") == 0).select("id", "part")
        fused = embed_exchange(
            spark,
            graph.edges,
            leaf,
            program,
            config,
            backend.append,
            plan.partitions,
            transport,
            spill,
            snapshots,
            blocks,
        )
    summary.seconds["embed"] = t["seconds"]
    return fused


def _embed_baseline(
    spark: SparkSession,
    parts: Partitioning,
    config: Config,
    progress: Progress,
    summary: RunSummary,
) -> DataFrame:
    total = sum(s.subgraphs for s in parts.levels)
    done = spark.sparkContext.accumulator(0)
    with progress.stage(
        "embed",
        f"{total} subgraphs over {len(parts.levels)} levels",
        counter=lambda: ("subgraphs", done.value, total),
    ) as t:
        vectors = cut_lineage(embed_subgraphs(parts, config, done), config.runtime)
    summary.seconds["embed"] = t["seconds"]
    progress.log(f"embed: {done.value}/{total} subgraphs embedded")
    with progress.stage("fuse", config.run.mode.value) as t:
        fused = fuse(vectors, parts, config)
    summary.seconds["fuse"] = t["seconds"]
    return fused
