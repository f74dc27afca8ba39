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

Two transports carry the same steps (``run.transport``):

- **barrier** (the default where Spark allows it): the whole program runs in one Spark stage in
  barrier execution mode, one task per Spark partition, all started together. Each task keeps
  its leaves' blocks and state in its Python worker from the first product to the last, and
  the tasks send halo rows and reduction partials straight to each other over TCP
  (:mod:`distne.engine.mesh`). One Spark job in all; nothing is pickled into the JVM between
  products. The stage's tasks must all run at once, so there are at most as many as the
  cluster has task slots. The leaves live in the tasks' Python memory where the whole graph's
  estimate fits the slots' worker budgets, and otherwise on the executors' local disks, one
  leaf in memory at a time (:mod:`distne.engine.store`). A lost task restarts the whole stage
  (Spark retries barrier stages as a unit).
- **shuffle**: leaf blocks, routes and state are RDDs keyed by leaf under one partitioner, so
  a union of them is read partition by partition without a shuffle and a product's one
  shuffle is the halo. Each product is one Spark job (which also returns the Gram matrix the
  next orthonormalisation needs); the state is cached by Spark between products, where it can
  spill to disk and where a lost executor's part is recomputed (or read back from a reliable
  checkpoint, ``runtime.lineage=checkpoint``). Slower (a job per product, the state pickled
  through the JVM each time), but it runs where barrier mode cannot (dynamic allocation) and
  survives lost executors without restarting the program.

In both, a Spark partition holds the leaves ``part % N``.
"""

from __future__ import annotations

import itertools
import os
import pickle
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import RDD, BarrierTaskContext, StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.config import Config, ConfigError, Transport
from distne.engine.local import BYTES_PER_DIRECTED_EDGE, STATE_COPIES, directed_edges
from distne.engine.mesh import HALO, REQUEST, Mesh, listen
from distne.engine.program import (
    DTYPE,
    EdgeFn,
    LeafBlock,
    Product,
    Program,
    block_input,
    build_block,
    column_tops,
    gram_of,
    leaf_edge_map,
    leaf_product,
    leaf_step,
    prepared,
    signs_of,
    with_degree,
)
from distne.engine.snapshots import Resumable, ShuffleSnapshots, TaskFiles
from distne.engine.store import DiskStore, MemoryStore, release_freed, spark_local_dir
from distne.graph import VECTORS_SCHEMA, vectors_table
from distne.sparkutil import (
    cut_lineage,
    cut_rdd_lineage,
    posix_path,
    shuffles_let_go,
)


def _halo_rows(message: bytearray | str, width: int) -> np.ndarray:
    """A halo message's rows: its bytes, or its file mapped (unmapped once the caller's rows
    are copied out and the array dropped)."""
    if isinstance(message, str):
        return np.memmap(message, dtype=DTYPE, mode="r").reshape(-1, width)
    return np.frombuffer(message, dtype=DTYPE).reshape(-1, width)


def _leaf_key(part: int) -> int:
    """The partition function of every exchange RDD: leaf ``part`` lives in ``part % N``."""
    return int(part)


# A leaf's pickled block leaves the Arrow UDF in pieces of at most this many bytes: one row
# per piece. A whole block as one row (hundreds of MB at 10M edges) was copied several times
# by the JVM's row pickler on its way to the Python RDD and ran the 6 GB heap out of memory.
BLOCK_CHUNK = 16 * 2**20


def _build_block(key: tuple[pa.Scalar, ...], nodes: pa.Table, edges: pa.Table) -> pa.Table:
    """Cogrouped Arrow function: one leaf's nodes and out-edges -> its pickled LeafBlock, as
    ``(part, seq, chunk)`` rows."""
    part = int(key[0].as_py())
    block = build_block(
        part,
        nodes.column("id").to_numpy(),
        edges.column("r").to_numpy(),
        edges.column("c").to_numpy(),
        edges.column("part_c").to_numpy(),
        edges.column("weight").to_numpy(),
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


def _with_halo(block: tuple[int, int] | None, records: Iterator) -> Iterator:
    """Every leaf of one Spark partition: ``part, leaf, ids, x, v`` with ``v`` the input of a
    step over the state's columns ``block``, its halo rows received (None: no block, or no
    halo)."""
    got = _by_leaf(records)
    for part, states in got["S"].items():
        ids, x = states[0]
        leaf: LeafBlock = got["E"][part][0]
        v = None
        if block is not None and len(leaf.halo):
            v = block_input(leaf, x, block)
            for h_ids, h_rows in got["H"].get(part, []):
                v[len(leaf.own) + np.searchsorted(leaf.halo, h_ids)] = h_rows
        yield part, leaf, ids, x, v


def _compute(op: Product, records: Iterator) -> Iterator:
    for part, leaf, ids, x, v in _with_halo(op.block, records):
        yield part, ("S", (ids, leaf_product(op, leaf, x, v)))


def _derive(block: tuple[int, int], fn: EdgeFn, records: Iterator) -> Iterator:
    for part, leaf, _, x, v in _with_halo(block, records):
        yield part, ("E", leaf_edge_map(block, fn, leaf, x, v))


def _map_rows(fn: Callable[..., np.ndarray], records: Iterator) -> Iterator:
    for part, leaf, ids, x, _ in _with_halo(None, records):
        yield part, ("S", (ids, with_degree(fn, True, x, leaf)))


def _resolve_routes(records: Iterator) -> Iterator:
    """At each leaf: requests (requesting leaf, ids) -> (requesting leaf, row indices)."""
    got = _by_leaf(records)
    for part, blocks in got["E"].items():
        own = blocks[0].own
        routes = [(int(q), np.searchsorted(own, ids)) for q, ids in got["Q"].get(part, [])]
        yield part, ("R", routes)


def _leaf_blobs(spark: SparkSession, edges: DataFrame, leaf: DataFrame) -> tuple[DataFrame, int]:
    """Every leaf's pickled :class:`LeafBlock` as ``part, seq, blob`` rows; the leaf count.

    A block holds the weights alone: every other matrix is derived from them where the leaf
    lives (:meth:`~distne.engine.program.Program.prepare`), so the setup's shuffles are the
    two that find each edge's leaves and the one that groups the edges by leaf.
    """
    spark.sparkContext.setJobDescription("exchange setup")
    leaf_r = leaf.select(F.col("id").alias("r"), "part")
    leaf_c = leaf.select(F.col("id").alias("c"), F.col("part").alias("part_c"))
    table = directed_edges(edges).join(leaf_r, "r").join(leaf_c, "c")
    table = table.select("part", "r", "c", "weight", "part_c")
    # Fresh column references: ``table`` was joined with ``leaf`` and a cogroup of the two
    # would otherwise be an ambiguous self-join.
    own = leaf.select(F.col("id").alias("id"), (F.col("part") + 0).alias("part"))
    blobs = (
        own.groupBy("part")
        .cogroup(table.groupBy("part"))
        .applyInArrow(_build_block, "part long, seq int, blob binary")
    )
    leaves = leaf.agg(F.max("part")).first()[0] + 1  # parts are dense from 0
    return blobs, leaves


def leaf_blocks(
    spark: SparkSession, edges: DataFrame, leaf: DataFrame, partitions: int | None = None
) -> tuple[RDD, int]:
    """Every leaf's :class:`LeafBlock` as ``(part, ("E", block))``, in ``N`` Spark partitions.

    ``N`` is ``partitions`` (default: one per core), at most one per leaf; leaf ``part`` is in
    partition ``part % N``, under the partitioner every RDD of the shuffle transport shares.
    The RDD is cached; the caller unpersists it.
    """
    blobs, leaves = _leaf_blobs(spark, edges, leaf)
    n_parts = max(1, min(leaves, partitions or spark.sparkContext.defaultParallelism))
    blocks = (
        blobs.rdd.map(lambda row: (int(row["part"]), (int(row["seq"]), bytes(row["blob"]))))
        .groupByKey(n_parts, _leaf_key)
        .mapValues(lambda chunks: ("E", pickle.loads(b"".join(c for _, c in sorted(chunks)))))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    return blocks, n_parts


def slot_of(spark: SparkSession, part: Column, n: int) -> Column:
    """A key that ``repartition(n, key)`` sends to Spark partition ``part % n``.

    ``repartition(n, key)`` puts a row in partition ``pmod(hash(key), n)`` (Murmur3, the
    function ``F.hash`` computes; the hash of a long differs from that of an int). For each
    ``r < n`` this finds the smallest long ``k_r`` with ``pmod(hash(k_r), n) == r`` and keys
    leaf ``part`` by ``k_{part % n}``. The barrier tasks' mesh assumes that placement and
    checks it.
    """
    found: dict[int, int] = {}
    span = 64 * n
    while len(found) < n:
        rows = (
            spark.range(span)
            .groupBy(F.pmod(F.hash("id"), F.lit(n)).alias("r"))
            .agg(F.min("id").alias("k"))
            .collect()
        )
        found = {int(r["r"]): int(r["k"]) for r in rows}
        span *= 4
    keys = F.array(*[F.lit(found[r]).cast("long") for r in range(n)])
    return F.get(keys, (part % n).cast("int"))


def _write_blobs(spark: SparkSession, edges: DataFrame, leaf: DataFrame, folder: str) -> int:
    """Write :func:`_leaf_blobs` to ``folder``; the leaf count. A function of its own:
    nothing made here outlives it, so the shuffles behind the rows can be let go."""
    blobs, leaves = _leaf_blobs(spark, edges, leaf)
    blobs.write.mode("overwrite").parquet(folder)
    return leaves


def barrier_input(
    spark: SparkSession,
    edges: DataFrame,
    leaf: DataFrame,
    partitions: int,
    keep_at: str | None = None,
) -> tuple[RDD, int]:
    """The barrier stage's input: ``part, seq, blob`` rows, leaf ``part`` in Spark partition
    ``part % N`` (``N``: ``partitions``, at most one per leaf), sorted by ``part, seq``.

    Routed and sorted by Spark SQL (in the JVM, spilling as it needs): no Python shuffle of
    the blocks, and each task reassembles its leaves one at a time as their rows arrive
    (:func:`_assembled`) in the same Python worker that runs them.

    ``keep_at`` (a folder of the run folder): the blocks are written there first and the
    shuffle files that built them are let go (:func:`shuffles_let_go`): the joins and
    grouping of every directed edge take ~52 bytes per edge of local disk (~9 GB at 100M
    edges), which a barrier stage reading them kept until it ended, beside the state it
    grew. The stage then reads the blocks from the folder (~9 bytes an edge, routed by one
    more shuffle of that size); a lost executor's part is read again from there. Without it,
    the stage reads the setup's last shuffle.
    """
    if keep_at is None:
        blobs, leaves = _leaf_blobs(spark, edges, leaf)
    else:
        with shuffles_let_go(spark):
            leaves = _write_blobs(spark, edges, leaf, keep_at)
        blobs = spark.read.parquet(keep_at)
    n_parts = max(1, min(leaves, partitions))
    rows = blobs.repartition(n_parts, slot_of(spark, F.col("part"), n_parts))
    return rows.sortWithinPartitions("part", "seq").select("part", "seq", "blob").rdd, n_parts


def _assembled(rows: Iterator) -> Iterator[tuple[int, LeafBlock]]:
    """Leaves from ``part, seq, blob`` rows sorted by ``part, seq``, one leaf at a time."""
    for part, chunks in itertools.groupby(rows, key=lambda row: row[0]):
        yield int(part), pickle.loads(b"".join(row[2] for row in chunks))


# Output leaves the exchange as pickled ``(ids, rows)`` pieces of at most this many rows.
OUTPUT_ROWS = 65536


def _pieces(part: int, ids: np.ndarray, x: np.ndarray) -> Iterator[tuple[int, bytes]]:
    for i in range(0, len(ids), OUTPUT_ROWS):
        piece = (ids[i : i + OUTPUT_ROWS], np.ascontiguousarray(x[i : i + OUTPUT_ROWS]))
        yield part, pickle.dumps(piece, protocol=5)


PIECES_SCHEMA = "part long, blob binary"


def _vectors_frame(pieces: DataFrame) -> DataFrame:
    """``id, part, vec`` from ``part, blob`` rows of pickled ``(ids, rows)``, as Arrow batches."""

    def unpack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            parts = batch.column("part").to_pylist()
            for part, blob in zip(parts, batch.column("blob").to_pylist(), strict=True):
                ids, x = pickle.loads(blob)
                yield from vectors_table(ids, part, x).to_batches()

    return pieces.mapInArrow(unpack, VECTORS_SCHEMA)


class ShuffleExchange:
    """The shuffle transport's distributed state; implements the engine's Backend over leaves.

    ``blocks`` (each leaf's matrices and halo layout, cached), ``routes`` (which of a leaf's
    rows each other leaf needs) and ``state`` (each leaf's node ids and current
    ``n_leaf x width`` float32 matrix) share one partitioner: leaf ``part`` lives in Spark
    partition ``part % N``.
    """

    def __init__(self, spark: SparkSession, blocks: RDD, n_parts: int, config: Config):
        self.spark = spark
        self.config = config
        self.products_done = 0
        self.n_parts = n_parts
        self.blocks = blocks
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
        new state, if asked (saving the separate job a whitening would start with).
        """
        rdd = cut_rdd_lineage(rdd, self.config.runtime)
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

    def _inputs(self, block: tuple[int, int] | None) -> RDD:
        """Blocks and state, and the halo of the state's columns ``block`` if given."""
        inputs = self.blocks.union(self.state)
        if block is None:
            return inputs
        halo = (
            self.state.union(self.routes)
            .mapPartitions(partial(_send_halo, block), preservesPartitioning=False)
            .partitionBy(self.n_parts, _leaf_key)
        )
        return inputs.union(halo)

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        self.spark.sparkContext.setJobDescription(f"exchange product {op.value}")
        inputs = self._inputs(op.block)
        result = self._keep(
            inputs.mapPartitions(partial(_compute, op), preservesPartitioning=True), gram
        )
        self.products_done += 1
        return result

    def map_rows(self, fn: Callable[..., np.ndarray], degree: bool = False) -> None:
        self.spark.sparkContext.setJobDescription("exchange row update")
        if degree:
            rows = self._inputs(None).mapPartitions(
                partial(_map_rows, fn), preservesPartitioning=True
            )
        else:
            rows = self.state.mapValues(
                lambda t: ("S", (t[1][0], np.ascontiguousarray(fn(t[1][1]), np.float32)))
            )
        self._keep(rows)

    def edge_map(self, block: tuple[int, int], fn: EdgeFn) -> None:
        self.spark.sparkContext.setJobDescription("exchange edge map")
        derived = self._inputs(block).mapPartitions(
            partial(_derive, block, fn), preservesPartitioning=True
        )
        # Cached as the built blocks are; a lost part is derived again from them and the
        # (cut) state.
        blocks = derived.persist(StorageLevel.MEMORY_AND_DISK)
        blocks.count()
        self.blocks.unpersist()
        self.blocks = blocks

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

    def pieces(self, dim: int) -> RDD:
        """The state's first ``dim`` columns as ``(part, pickled (ids, rows))`` pieces."""
        return self.state.flatMap(lambda kv: _pieces(kv[0], kv[1][1][0], kv[1][1][1][:, :dim]))

    def restore(self, state: RDD) -> None:
        """Make a saved state (``part, ("S", (ids, rows))`` records) the state."""
        self._keep(state.partitionBy(self.n_parts, _leaf_key))

    def close(self) -> None:
        for rdd in (self.state, self.routes, self.blocks):
            rdd.unpersist()


class _MeshBackend:
    """The barrier transport inside one task: its leaves (in a :mod:`~distne.engine.store`).

    Implements the engine's Backend; every task runs the same program against its own
    instance, and the instances meet in the mesh (halo rows per product, partials per
    reduction). Leaves are visited in order, one at a time.
    """

    def __init__(self, mesh: Mesh, store: MemoryStore, n_parts: int, report):
        self.mesh = mesh
        self.store = store
        self.n_parts = n_parts
        self.report = report
        self.products_done = 0
        layout = store.layout
        # Halo layout, once. A task asks each leaf it borders for the rows any of its leaves
        # need, each row once, so a node bordering several leaves of one task travels to it
        # once (at 10M edges over 35 leaves and 2 tasks, 1.37M rows a product instead of
        # 3.05M). ``sources[p]``: per leaf ``q`` that ``p`` borders, the positions in ``p``'s
        # halo and in the rows ``q`` sends this task.
        where = {
            p: [
                (int(q), np.flatnonzero(layout[p].halo_part == q))
                for q in np.unique(layout[p].halo_part)
            ]
            for p in store.parts()
        }
        wanted: dict[int, list[np.ndarray]] = {}
        for p, pairs in where.items():
            for q, at in pairs:
                wanted.setdefault(q, []).append(layout[p].halo[at])
        asked = {q: np.unique(np.concatenate(ids)) for q, ids in wanted.items()}
        self.sources = {
            p: [(q, at, np.searchsorted(asked[q], layout[p].halo[at])) for q, at in pairs]
            for p, pairs in where.items()
        }
        mesh.next_round()
        for q, ids in asked.items():
            mesh.send(self._rank(q), REQUEST, mesh.rank, q, ids)
        # The graph is symmetric: a leaf is asked by the tasks of the leaves in its own halo.
        self.routes: dict[int, list[tuple[int, np.ndarray]]] = {}
        for q in store.parts():
            tasks = sorted({self._rank(p) for p in np.unique(layout[q].halo_part)})
            self.routes[q] = [
                (
                    t,
                    np.searchsorted(
                        layout[q].own, np.frombuffer(mesh.receive(REQUEST, t, q), np.int64)
                    ),
                )
                for t in tasks
            ]
        own = sum(len(b.own) for b in layout.values())
        self.n = int(mesh.allreduce(np.array([own], dtype=np.int64))[0])

    def _rank(self, part: int) -> int:
        return int(part) % self.n_parts

    def _with_halo(self, block: tuple[int, int] | None) -> Iterator:
        """This task's leaves in order, one at a time: ``part, leaf, x, v`` with ``v`` the
        input of a step over the state's columns ``block``, its halo rows received from the
        peers (None: no block, or no halo).

        Each leaf's rows for this task arrive in one message, kept until the task's last
        leaf has read them (a spilled one in its file, mapped only while a leaf reads it).
        """
        mesh, store = self.mesh, self.store
        mesh.next_round()
        if block is not None:
            start, width = block
            for q in store.parts():
                for task, idx in self.routes[q]:
                    mesh.send(task, HALO, q, task, store.rows(q, idx, start, width))
        got: dict[int, bytearray | str] = {}
        try:
            for p in store.parts():
                leaf, x = store.block(p), store.state(p)
                v = None
                if block is not None and len(leaf.halo):
                    v = block_input(leaf, x, block)
                    n, width = len(leaf.own), block[1]
                    for q, at, pos in self.sources[p]:
                        if q not in got:
                            got[q] = mesh.take(HALO, q, mesh.rank)
                        v[n + at] = _halo_rows(got[q], width)[pos]
                yield p, leaf, x, v
        finally:
            for message in got.values():
                if isinstance(message, str):
                    os.remove(message)

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        for p, leaf, x, v in self._with_halo(op.block):
            self.store.set_state(p, leaf_step(op, leaf, x, v))
        release_freed()
        self.products_done += 1
        self.report(self.products_done)
        return self.gram(*gram) if gram is not None else None

    def edge_map(self, block: tuple[int, int], fn: EdgeFn) -> None:
        for p, leaf, x, v in self._with_halo(block):
            self.store.set_block(p, leaf_edge_map(block, fn, leaf, x, v))
        release_freed()

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        cols = width if pre is None else pre.shape[1]
        total = np.zeros((cols, cols))
        for _, x in self.store.states():
            if len(x):
                total += gram_of((start, width), pre, x)
        return self.mesh.allreduce(total)

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        tops = [column_tops(start, width, pre, x) for _, x in self.store.states()]
        return signs_of(t for task in self.mesh.allgather(tops) for t in task)

    def map_rows(self, fn: Callable[..., np.ndarray], degree: bool = False) -> None:
        for p, x in self.store.states():
            self.store.set_state(p, with_degree(fn, degree, x, self.store.layout[p]))


class _ProgressListener:
    """Where the barrier stage's first task reports finished products (read by progress lines).

    Best effort: a task that cannot reach it runs on without reporting.
    """

    def __init__(self, spark: SparkSession, token: bytes):
        self.products_done = 0
        self.host = spark.conf.get("spark.driver.host", socket.gethostname())
        self._server = socket.create_server(("", 0))
        self.port = self._server.getsockname()[1]
        self._token = token
        listen(self._server, self._serve)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if conn.recv(len(self._token), socket.MSG_WAITALL) != self._token:
                return
            while len(got := conn.recv(8, socket.MSG_WAITALL)) == 8:
                self.products_done = int.from_bytes(got, "big")

    def close(self) -> None:
        self._server.close()


def _reporter(rank: int, address: tuple[str, int], token: bytes) -> Callable[[int], None]:
    if rank != 0:
        return lambda done: None
    try:
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(token)
    except OSError:
        return lambda done: None

    def report(done: int) -> None:
        try:
            sock.sendall(done.to_bytes(8, "big"))
        except OSError:
            pass

    return report


def _barrier_task(
    program: Program,
    n_parts: int,
    token: bytes,
    progress: tuple[str, int],
    spill: bool,
    snapshots: tuple[str, int] | None,
    rows: Iterator,
) -> Iterator[tuple[int, bytes]]:
    """One task of the barrier stage: run ``program`` on this partition's leaves, with peers.

    ``spill``: keep the leaves and large halo messages on the executor's disk, one leaf in
    memory at a time (:class:`~distne.engine.store.DiskStore`). ``snapshots``: the folder and
    the products between snapshots of the state (:mod:`distne.engine.snapshots`); the task
    resumes from the newest one every task has.
    """
    ctx = BarrierTaskContext.get()
    rank = ctx.partitionId()
    store = DiskStore() if spill else MemoryStore()
    try:
        # The store visits leaves in part order, which fixes the order of every partial sum
        # (shuffle output order is not fixed).
        for part, block in _assembled(rows):
            if part % n_parts != rank:
                raise RuntimeError(
                    f"barrier task {rank} of {n_parts} received leaf {part}, which belongs to "
                    f"task {part % n_parts}: Spark's hash partitioning is not what "
                    f"distne.engine.exchange.slot_of expects"
                )
            store.add(part, block)
        release_freed()  # the pickled blocks and the rows they came in
        host = ctx.getTaskInfos()[rank].address.rsplit(":", 1)[0]
        mesh = Mesh(rank, ctx.allGather, host, token, store.spill_dir)
        try:
            backend: Any = prepared(
                program, _MeshBackend(mesh, store, n_parts, _reporter(rank, progress, token))
            )
            if snapshots is not None:
                root, every = snapshots
                saver = TaskFiles(
                    root,
                    rank,
                    n_parts,
                    store,
                    partial(_newest_common, mesh),
                    mesh.barrier,
                    backend.report,
                )
                backend = Resumable(backend, saver, every)
            program.run(backend)
            mesh.barrier()  # nobody closes a socket a peer still reads from
        except BaseException:
            mesh.close(goodbye=False)  # peers waiting on this task fail now, not at a timeout
            raise
        mesh.close()
        for part, x in store.states():
            yield from _pieces(part, store.layout[part].own, x[:, : program.dim])
    finally:
        store.close()


def _newest_common(mesh: Mesh, mine: list[int]) -> int:
    """The newest snapshot whole for every task (0: none), the same answer on every task."""
    common = set.intersection(*(set(s) for s in mesh.allgather(mine)))
    return max(common, default=0)


def task_slots(spark: SparkSession) -> int:
    """How many tasks the cluster runs at once (what a barrier stage may have at most)."""
    cpus = int(spark.conf.get("spark.task.cpus", "1") or 1)
    return max(1, spark.sparkContext.defaultParallelism // cpus)


def barrier_bytes(nodes: int, edges: int, program: Program, leaves: int, tasks: int) -> int:
    """An estimate of the barrier transport's Python memory, all tasks together, in bytes.

    Every leaf's block and state stay in memory; a step replaces one leaf's state at a time,
    so besides the whole state each task holds a step's temporaries for one leaf.
    """
    row = program.state_width() * np.dtype(DTYPE).itemsize
    leaf_state = -(-nodes // max(1, leaves)) * row
    graph = 2 * edges * BYTES_PER_DIRECTED_EDGE
    return graph + nodes * row + tasks * (STATE_COPIES - 1) * leaf_state


# Local disk the exchange takes. The setup's shuffle files (edges joined to their leaves,
# grouped by leaf, the blocks routed to the tasks) took ~33 GB at 100M edges (86.6M
# undirected, 35 leaves), ~190 bytes per directed edge, when the setup also computed ProNE's
# edge values in Spark; without them (the programs derive their matrices in the workers) the
# setup writes 36.8 MB of shuffle at 1M edges where it wrote 134.9 MB (Spark's event log,
# same graph and leaves), so ~52 bytes, scaled from the 100M figure, not measured there. A
# block holds the weights alone: a float32 value and an int32 column per directed edge (~9
# bytes pickled; the blocks at 100M took ~25 with three matrices); with leaves on disk the
# store keeps every matrix the program derived, which share the column indices.
SHUFFLE_DISK_PER_DIRECTED_EDGE = 52
BLOCK_DISK_PER_DIRECTED_EDGE = 9


def setup_shuffle_bytes(edges: int) -> int:
    """About how much local disk the exchange setup's shuffle files take, for ``edges``
    undirected edges (all executors together)."""
    return 2 * edges * SHUFFLE_DISK_PER_DIRECTED_EDGE


# The setup's blocks go to the run folder, and its shuffle files are let go, once those files
# would take more than this share of the free local disk (or the disk cannot be seen).
KEEP_BLOCKS_ABOVE = 0.1


def blocks_worth_keeping(edges: int, free: int | None) -> bool:
    """Whether the exchange writes its leaf blocks to the run folder and lets the setup's
    shuffle files go (:func:`barrier_input`'s ``keep_at``), for ``edges`` undirected edges
    and ``free`` bytes of local disk (None: not visible from the driver, as on a cluster).

    Letting go costs a write and a read of the blocks, a routing shuffle and a wait for the
    driver's collector (~1.7 s of the embed stage at 1M edges) and saves the setup's shuffle
    files for the whole run (~52 bytes per directed edge, ~9 GB at 100M edges): worth it only
    where disk is scarce.
    """
    return free is None or setup_shuffle_bytes(edges) > KEEP_BLOCKS_ABOVE * free


def exchange_disk_bytes(
    nodes: int, edges: int, program: Program, spill: bool, snapshots: bool, kept: bool = True
) -> int:
    """About how much local disk (Spark's local dirs, all executors together) the exchange
    takes at its widest, for ``edges`` undirected edges over ``nodes`` nodes.

    ``kept`` (:func:`blocks_worth_keeping`): the larger of the setup (its shuffle files and
    the blocks they end in) and the program's run: the blocks (kept, and routed); with leaves
    on disk (``spill``) the store's copy of their matrices, the state at its widest
    (:meth:`Program.state_width`) and a product's halo waiting on disk; with ``snapshots`` on
    a local path, one more copy of the state (a snapshot keeps the state it saved while the
    store moves on). At 100M edges, ProNE: setup ~10.6 GB, run ~3 + 5 + 20 + 5 + 20 GB. Not
    ``kept``: the setup's shuffle files stay until the run ends, and the run reads its blocks
    from them.
    """
    row = np.dtype(DTYPE).itemsize
    state = nodes * program.state_width() * row
    blocks = 2 * edges * BLOCK_DISK_PER_DIRECTED_EDGE
    setup = setup_shuffle_bytes(edges) + blocks
    run = 2 * blocks if kept else setup  # kept: in the run folder, and routed to the tasks
    if spill:
        matrices = 2 * edges * (4 + 4 * len(program.values))  # one int32 column, float32 values
        run += matrices + state + nodes * program.dim * row
    if snapshots:
        run += state
    return max(setup, run)


def local_disk_free(spark: SparkSession) -> tuple[str, int] | None:
    """Spark's first local dir and its free bytes, where the driver can see it (a local
    master: the executors write to the driver's disk); None on a cluster."""
    if not spark.sparkContext.master.startswith("local"):
        return None
    folder = spark_local_dir(spark.conf.get("spark.local.dir", None))
    try:
        return folder, shutil.disk_usage(folder).free
    except OSError:
        return None


def dynamic_allocation(spark: SparkSession) -> bool:
    """Whether executors come and go (Spark then refuses barrier stages)."""
    return spark.conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true"


def pick_transport(
    config: Config,
    nodes: int,
    edges: int,
    program: Program,
    leaves: int,
    slots: int,
    dynamic: bool,
) -> tuple[Transport, bool, str]:
    """``run.transport``, with ``auto`` resolved; whether barrier tasks spill; and why.

    ``slots`` is :func:`task_slots`, ``dynamic`` :func:`dynamic_allocation`. ``auto`` takes
    barrier unless Spark refuses it (dynamic allocation). Barrier tasks keep their leaves in
    memory when the estimate (:func:`barrier_bytes`) fits the task slots' worker budgets, and
    on the executors' local disks otherwise (one leaf in memory at a time).
    """
    chosen = config.run.transport
    if chosen is Transport.BARRIER and dynamic:
        raise ConfigError(
            "run.transport=barrier needs Spark's barrier execution mode, which Spark refuses "
            "with dynamic allocation; found spark.dynamicAllocation.enabled=true. Use "
            "run.transport=shuffle (or auto), or disable dynamic allocation."
        )
    if chosen is Transport.SHUFFLE:
        return chosen, False, "run.transport=shuffle"
    if dynamic:
        return Transport.SHUFFLE, False, "shuffle transport: dynamic allocation is on"
    tasks = min(slots, leaves)
    need = barrier_bytes(nodes, edges, program, leaves, tasks)
    budget = config.run.worker_memory_gb * 2**30
    why = "run.transport=barrier" if chosen is Transport.BARRIER else "barrier transport"
    gb = f"{need / 2**30:.1f} GB estimated over {tasks} tasks"
    if need <= tasks * budget:
        return Transport.BARRIER, False, f"{why}: {gb}"
    return (
        Transport.BARRIER,
        True,
        (
            f"{why}, leaves on local disk: {gb}, more than {tasks} x run.worker_memory_gb, so "
            f"each task holds one leaf in memory at a time"
        ),
    )


def embed_exchange(
    spark: SparkSession,
    edges: DataFrame,
    leaf: DataFrame,
    program: Program,
    config: Config,
    on_start: Callable[[Any], None] | None = None,
    partitions: int | None = None,
    transport: Transport = Transport.BARRIER,
    spill: bool = False,
    snapshots: str | None = None,
    keep_blocks: str | None = None,
) -> DataFrame:
    """``program`` on the whole graph computed leaf by leaf: ``id, part, vec`` for every node.

    Args:
        edges: ``src, dst, weight``, each undirected edge once.
        leaf: ``id, part``: every node's leaf subgraph, parts numbered densely from 0.
        on_start: called once set up with an object whose ``products_done`` progress
            reports read.
        partitions: Spark partitions for the leaves (see :func:`leaf_blocks`); the barrier
            transport takes at most one per task slot.
        transport: ``barrier`` or ``shuffle`` (see the module docstring).
        spill: barrier only: tasks keep their leaves on the executors' local disks, one in
            memory at a time (:mod:`distne.engine.store`); same vectors, bounded memory.
        snapshots: where the state is saved every ``runtime.snapshot_every`` products and
            resumed from (:mod:`distne.engine.snapshots`): a Hadoop path; the barrier
            transport's tasks write it with plain file calls, so there it must resolve to
            the local file system (a local path, or one mounted on every worker), else no
            snapshots are taken.
        keep_blocks: barrier only: a folder (Hadoop path) where the leaf blocks are written
            so that the setup's shuffle files can go (see :func:`barrier_input`).

    Returns:
        The vectors, materialised (the exchange's cached state is released before returning).
    """
    # The barrier stage's output grows with nodes x dim and waits on disk, not in the
    # executors' heap (at 30M edges the output kept in memory ran a 4 GB heap out).
    if transport is Transport.BARRIER:
        slots = task_slots(spark)
        blocks, n_parts = barrier_input(
            spark, edges, leaf, min(partitions or slots, slots), keep_blocks
        )
    else:
        blocks, n_parts = leaf_blocks(spark, edges, leaf, partitions)
    sc = spark.sparkContext
    state: ShuffleExchange | None = None
    try:
        if transport is Transport.BARRIER:
            token = secrets.token_bytes(32)
            listener = _ProgressListener(spark, token)
            if on_start is not None:
                on_start(listener)
            sc.setJobDescription(f"exchange: {program.products()} products in one barrier stage")
            where = (listener.host, listener.port)
            every = config.runtime.snapshot_every
            local = posix_path(spark, snapshots) if snapshots and every else None
            saved = (local, every) if local else None
            task = partial(_barrier_task, program, n_parts, token, where, spill, saved)
            try:
                # The pieces leave the barrier stage through a shuffle: that makes it a map
                # stage, which Spark runs again as a whole when a task or an executor is lost
                # (a failed barrier *result* stage aborts the job), and the rerun resumes from
                # the newest snapshot. The next stage unpacks them into vectors (in the same
                # stage as the barrier tasks it would take a second Python worker per task).
                pieces = spark.createDataFrame(blocks.barrier().mapPartitions(task), PIECES_SCHEMA)
                return cut_lineage(_vectors_frame(pieces.repartition(n_parts)), config.runtime)
            finally:
                listener.close()
        state = ShuffleExchange(spark, blocks, n_parts, config)
        if on_start is not None:
            on_start(state)
        prepared(program, state)
        every = config.runtime.snapshot_every
        if snapshots and every:
            program.run(Resumable(state, ShuffleSnapshots(spark, snapshots, state), every))
        else:
            program.run(state)
        # The pieces are materialised as a frame of their own and unpacked into vectors by
        # the next stage: turning an RDD into a frame runs Python, and in the stage that
        # unpacks it would take a second Python worker per task.
        pieces = spark.createDataFrame(state.pieces(program.dim), PIECES_SCHEMA)
        pieces = cut_lineage(pieces, config.runtime)
        sc.setJobDescription("exchange output")
        return cut_lineage(_vectors_frame(pieces), config.runtime)
    finally:
        if state is not None:
            state.close()  # the blocks it derived too
        blocks.unpersist()
        sc.setJobDescription(None)
