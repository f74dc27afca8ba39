"""The exchange backend: a program run over all leaf subgraphs at once, in one coordinate system.

Embedding each leaf on its own gives each leaf its own frame, and no map between frames can
recover the structure the cut edges carried. This backend does not embed leaves separately:
it runs the program on the whole graph with its rows spread over the leaves. Each step of a
program (:mod:`distne.engine.program`) splits over the leaves exactly:

- a *sparse product*: each leaf computes its own rows with its block of the matrix (cached
  where the leaf lives; edges never move again); the only rows that travel are the *halo*,
  for each cut edge the other side's rows of the block being multiplied, sent once per
  (border node, neighbouring leaf), as float32;
- a *reduction*: one small partial per leaf, summed on the driver (float64);
- a *row-wise map*: done where the rows are.

The result equals the local backend on the whole graph up to float32 rounding (tests check
it), whatever the partition. The partition matters for cost only: the halo is proportional to
border nodes, which is what the partitioner minimises.

Transport: leaf blocks, routes and state are RDDs keyed by leaf under one partitioner, so a
union of them is read partition by partition without a shuffle and a product's one shuffle is
the halo. A Spark partition holds the leaves ``part % N``; the pipeline picks ``N`` so that a
partition's leaves fit one worker's memory budget (at least one partition per core, at most
one per leaf): a task holds its partition's leaves at once, so that is the Python worker's
bound. More partitions than that only add per-task overhead (about 80 ms a task locally).
Each product is one Spark job (the job that materialises it also returns the Gram matrix the
next orthonormalisation needs), so the job count depends on the program, not on the leaves.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import pyarrow as pa
from pyspark import RDD, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.config import Config, LineageCut
from distne.engine.local import directed_edges
from distne.engine.program import (
    LeafBlock,
    Product,
    Program,
    build_block,
    column_tops,
    gram_of,
    leaf_product,
    signs_of,
)
from distne.graph import VECTORS_SCHEMA, vectors_table
from distne.sparkutil import cut_lineage


def _leaf_key(part: int) -> int:
    """The partition function of every exchange RDD: leaf ``part`` lives in ``part % N``."""
    return int(part)


# A leaf's pickled block leaves the Arrow UDF in pieces of at most this many bytes: one row
# per piece. A whole block as one row (hundreds of MB at 10M edges) was copied several times
# by the JVM's row pickler on its way to the Python RDD and ran the 6 GB heap out of memory.
BLOCK_CHUNK = 16 * 2**20


def _block_udf(values: tuple[str, ...]):
    def build(key: tuple[pa.Scalar, ...], nodes: pa.Table, edges: pa.Table) -> pa.Table:
        """Cogrouped Arrow function: one leaf's nodes and out-edges -> its pickled LeafBlock,
        as ``(part, seq, chunk)`` rows."""
        part = int(key[0].as_py())
        block = build_block(
            part,
            nodes.column("id").to_numpy(),
            edges.column("r").to_numpy(),
            edges.column("c").to_numpy(),
            edges.column("part_c").to_numpy(),
            {v: edges.column(v).to_numpy() for v in values},
            edges.column("w").to_numpy(),
        )
        blob = pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL)
        chunks = [blob[i : i + BLOCK_CHUNK] for i in range(0, len(blob), BLOCK_CHUNK)]
        return pa.table(
            {
                "part": pa.array([part] * len(chunks), pa.int64()),
                "seq": pa.array(range(len(chunks)), pa.int32()),
                "blob": pa.array(chunks, pa.binary()),
            }
        )

    return build


def _by_leaf(records: Iterator[tuple[int, tuple[str, object]]]) -> dict[str, dict[int, list]]:
    """Records of one Spark partition (its leaves), sorted by tag and leaf."""
    out: dict[str, dict[int, list]] = {"E": {}, "S": {}, "R": {}, "H": {}, "Q": {}}
    for part, (tag, payload) in records:
        out[tag].setdefault(part, []).append(payload)
    return out


def _send_halo(block: tuple[int, int], records: Iterator) -> Iterator:
    """For every leaf: its border rows of ``block``, addressed to each leaf that needs them."""
    start, width = block
    got = _by_leaf(records)
    for part, states in got["S"].items():
        ids, x = states[0]
        for routes in got["R"].get(part, []):
            for target, idx in routes:
                yield target, ("H", (ids[idx], x[idx, start : start + width]))


def _compute(op: Product, records: Iterator) -> Iterator:
    got = _by_leaf(records)
    for part, states in got["S"].items():
        ids, x = states[0]
        leaf: LeafBlock = got["E"][part][0]
        halo = None
        if op.block is not None and len(leaf.halo):
            halo = np.zeros((len(leaf.halo), op.block[1]), dtype=x.dtype)
            for h_ids, h_rows in got["H"].get(part, []):
                halo[np.searchsorted(leaf.halo, h_ids)] = h_rows
        yield part, ("S", (ids, leaf_product(op, leaf, x, halo)))


def _resolve_routes(records: Iterator) -> Iterator:
    """At each leaf: requests (requesting leaf, ids) -> (requesting leaf, row indices)."""
    got = _by_leaf(records)
    for part, blocks in got["E"].items():
        own = blocks[0].own
        routes = [(int(q), np.searchsorted(own, ids)) for q, ids in got["Q"].get(part, [])]
        yield part, ("R", routes)


class Exchange:
    """The distributed state of one run; implements the engine's Backend over leaves.

    ``partitions``: Spark partitions for the leaves (default: one per core), at most one per
    leaf.

    ``blocks`` (each leaf's matrices and halo layout, cached), ``routes`` (which of a leaf's
    rows each other leaf needs) and ``state`` (each leaf's node ids and current
    ``n_leaf x width`` float32 matrix) share one partitioner: leaf ``part`` lives in Spark
    partition ``part % N``.
    """

    def __init__(
        self,
        spark: SparkSession,
        edges: DataFrame,
        leaf: DataFrame,
        program_class: type,
        config: Config,
        partitions: int | None = None,
    ):
        self.spark = spark
        self.config = config
        self.products_done = 0
        sc = spark.sparkContext
        sc.setJobDescription("exchange setup")
        values = tuple(program_class.values)
        table = program_class.edge_values(directed_edges(edges), [])
        leaf_r = leaf.select(F.col("id").alias("r"), "part")
        leaf_c = leaf.select(F.col("id").alias("c"), F.col("part").alias("part_c"))
        table = (
            table.join(leaf_r, "r").join(leaf_c, "c").select("part", "r", "c", *values, "part_c")
        )
        # Fresh column references: ``table`` was joined with ``leaf`` and a cogroup of the two
        # would otherwise be an ambiguous self-join.
        own = leaf.select(F.col("id").alias("id"), (F.col("part") + 0).alias("part"))
        blobs = (
            own.groupBy("part")
            .cogroup(table.groupBy("part"))
            .applyInArrow(_block_udf(values), "part long, seq int, blob binary")
        )
        leaves = leaf.agg(F.max("part")).first()[0] + 1  # parts are dense from 0
        self.n_parts = max(1, min(leaves, partitions or sc.defaultParallelism))
        self.blocks = (
            blobs.rdd.map(lambda row: (int(row["part"]), (int(row["seq"]), bytes(row["blob"]))))
            .groupByKey(self.n_parts, _leaf_key)
            .mapValues(lambda chunks: ("E", pickle.loads(b"".join(c for _, c in sorted(chunks)))))
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        self.n = self.blocks.map(lambda kv: len(kv[1][1].own)).sum()

        def wanted(kv: tuple[int, tuple[str, LeafBlock]]) -> Iterator:
            part, (_, b) = kv
            for owner in np.unique(b.halo_part):
                yield int(owner), (part, b.halo[b.halo_part == owner])

        # Which of its rows each leaf must send: built once (one shuffle of id lists).
        requests = self.blocks.flatMap(wanted).partitionBy(self.n_parts, _leaf_key)
        self.routes = (
            self.blocks.union(requests.mapValues(lambda req: ("Q", req)))
            .mapPartitions(_resolve_routes, preservesPartitioning=True)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        self._keep(
            self.blocks.mapValues(
                lambda t: ("S", (t[1].own, np.zeros((len(t[1].own), 0), np.float32)))
            )
        )

    def _keep(self, rdd: RDD, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        """Make ``rdd`` the state: materialise it, cut its lineage, drop the previous one.

        The job that materialises it also returns the Gram matrix of columns ``gram`` of the
        new state, if asked (saving the separate job a whitening would start with). The cut
        follows ``runtime.lineage``: reliable checkpoints survive a lost executor.
        """
        rdd = rdd.persist(StorageLevel.MEMORY_AND_DISK)
        if self.config.runtime.lineage is LineageCut.CHECKPOINT:
            rdd.checkpoint()
        else:
            rdd.localCheckpoint()
        if gram is None:
            rdd.count()
            result = None
        else:
            result = self._sum(rdd, partial(gram_of, gram, None))
        old = getattr(self, "state", None)
        self.state = rdd
        if old is not None:
            old.unpersist()
        return result

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        self.spark.sparkContext.setJobDescription(f"exchange product {op.value}")
        inputs = self.blocks.union(self.state)
        if op.block is not None:
            halo = (
                self.state.union(self.routes)
                .mapPartitions(partial(_send_halo, op.block), preservesPartitioning=False)
                .partitionBy(self.n_parts, _leaf_key)
            )
            inputs = inputs.union(halo)
        result = self._keep(
            inputs.mapPartitions(partial(_compute, op), preservesPartitioning=True), gram
        )
        self.products_done += 1
        return result

    def map_rows(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.spark.sparkContext.setJobDescription("exchange row update")
        self._keep(
            self.state.mapValues(
                lambda t: ("S", (t[1][0], np.ascontiguousarray(fn(t[1][1]), np.float32)))
            )
        )

    @staticmethod
    def _sum(rdd: RDD, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``sum`` over leaves of ``fn(state rows)``: a small matrix on the driver."""

        def partials(records: Iterator) -> Iterator:
            for _, (_, (_, x)) in records:
                if len(x):
                    yield fn(x)

        # One small matrix per leaf: bounded by the leaf count, not by the graph.
        return np.sum(rdd.mapPartitions(partials).collect(), axis=0)

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        self.spark.sparkContext.setJobDescription("exchange reduction")
        return self._sum(self.state, partial(gram_of, (start, width), pre))

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        self.spark.sparkContext.setJobDescription("exchange reduction")
        tops = self.state.map(lambda kv: column_tops(start, width, pre, kv[1][1][1])).collect()
        return signs_of(tops)

    def vectors(self, dim: int) -> DataFrame:
        """``id, part, vec`` from the state, as Arrow batches (one flat buffer per leaf)."""
        blobs = self.state.map(
            lambda kv: (kv[0], pickle.dumps((kv[1][1][0], kv[1][1][1][:, :dim]), protocol=5))
        )
        frame = self.spark.createDataFrame(blobs, "part long, blob binary")

        def unpack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for batch in batches:
                parts = batch.column("part").to_pylist()
                for part, blob in zip(parts, batch.column("blob").to_pylist(), strict=True):
                    ids, x = pickle.loads(blob)
                    yield from vectors_table(ids, part, x).to_batches()

        return frame.mapInArrow(unpack, VECTORS_SCHEMA)

    def close(self) -> None:
        for rdd in (self.state, self.routes, self.blocks):
            rdd.unpersist()


def embed_exchange(
    spark: SparkSession,
    edges: DataFrame,
    leaf: DataFrame,
    program: Program,
    config: Config,
    on_start: Callable[[Exchange], None] | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """``program`` on the whole graph computed leaf by leaf: ``id, part, vec`` for every node.

    Args:
        edges: ``src, dst, weight``, each undirected edge once.
        leaf: ``id, part``: every node's leaf subgraph, parts numbered densely from 0.
        on_start: called with the backend once it is set up (progress reports read
            ``products_done`` from it).
        partitions: Spark partitions for the leaves (see :class:`Exchange`).

    Returns:
        The vectors, materialised (the exchange's cached state is released before returning).
    """
    ex = Exchange(spark, edges, leaf, type(program), config, partitions)
    if on_start is not None:
        on_start(ex)
    try:
        program.run(ex)
        spark.sparkContext.setJobDescription("exchange output")
        return cut_lineage(ex.vectors(program.dim), config.runtime)
    finally:
        ex.close()
        spark.sparkContext.setJobDescription(None)
