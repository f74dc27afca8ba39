"""The local backend: a program run on one graph held by one Python worker (numpy/scipy).

Used for the whole graph when it fits one worker's memory budget (``run.mode=local``, or
``auto`` on a small graph), and by the baselines for every subgraph at once, one group per
subgraph. A group is bounded by design: by the memory budget the pipeline checks before it
picks this backend, or by ``partition.max_nodes`` for the baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from distne.engine.program import (
    DTYPE,
    EdgeFn,
    LeafBlock,
    Product,
    Program,
    build_block,
    column_tops,
    gram_of,
    leaf_edge_map,
    leaf_product,
    prepared,
    signs_of,
    with_degree,
)
from distne.graph import symmetric, vectors_to_arrow

# What one directed edge costs in a leaf block (three float32 CSR values sharing one int32
# column index, plus the int64 arrays the block is built from, or the edge map's float64
# temporaries) and how many copies of the widest state a step holds at once (the state, the
# product, the new state).
BYTES_PER_DIRECTED_EDGE = 72
STATE_COPIES = 3


def local_bytes(nodes: int, edges: int, program: Program) -> int:
    """An estimate of the peak memory of running ``program`` on one worker, in bytes."""
    state = nodes * program.state_width() * np.dtype(DTYPE).itemsize * STATE_COPIES
    return 2 * edges * BYTES_PER_DIRECTED_EDGE + state


class LocalBackend:
    """The state of one graph (or subgraph) in memory; implements the engine's Backend."""

    def __init__(self, leaf: LeafBlock):
        self.leaf = leaf
        self.n = len(leaf.own)
        self.x = np.zeros((self.n, 0), dtype=DTYPE)
        self.products_done = 0

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        self.x = leaf_product(op, self.leaf, self.x, None)
        self.products_done += 1
        return gram_of(gram, None, self.x) if gram is not None else None

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        return gram_of((start, width), pre, self.x)

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        return signs_of([column_tops(start, width, pre, self.x)])

    def map_rows(self, fn: Callable[..., np.ndarray], degree: bool = False) -> None:
        self.x = with_degree(fn, degree, self.x, self.leaf)

    def edge_map(self, block: tuple[int, int], fn: EdgeFn) -> None:
        self.leaf = leaf_edge_map(block, fn, self.leaf, self.x)


def run_program(program: Program, leaf: LeafBlock) -> np.ndarray:
    """``program`` on one in-memory graph (its block holds ``w``): ``(len(leaf.own), dim)``
    float32, rows as ``own``."""
    backend = prepared(program, LocalBackend(leaf))
    program.run(backend)
    return backend.x[:, : program.dim]


def directed_edges(edges: DataFrame, keys: Sequence[str] = ()) -> DataFrame:
    """``*keys, r, c, weight``: both orientations of every edge given once as ``src, dst``."""
    return symmetric(edges, keys).withColumnsRenamed({"src": "r", "dst": "c"})


def embed_groups(
    nodes: DataFrame,
    edges: DataFrame,
    keys: Sequence[str],
    make_program: Callable[[tuple[int, ...]], Program],
    done: Callable[[], None] | None = None,
) -> DataFrame:
    """Run a program on every group of ``keys`` apart, each in one Python worker.

    Args:
        nodes: ``*keys, id``: every node of every group (isolated ones included).
        edges: ``*keys, src, dst, weight``: each edge of a group once.
        make_program: the program for one group, from the group's key values.
        done: called in the worker after each group (e.g. an accumulator's ``add(1)``).

    Returns:
        ``id, *keys, vec`` (keys as longs, ``vec`` the program's ``array<float>`` output).
    """
    k = list(keys)
    table = directed_edges(edges, k)

    def embed_group(key: tuple[pa.Scalar, ...], group_nodes: pa.Table, group_edges: pa.Table):
        key_values = tuple(int(s.as_py()) for s in key)
        leaf = build_block(
            0,
            group_nodes.column("id").to_numpy(),
            group_edges.column("r").to_numpy(),
            group_edges.column("c").to_numpy(),
            None,
            group_edges.column("weight").to_numpy(),
        )
        vecs = run_program(make_program(key_values), leaf)
        vecs = np.nan_to_num(vecs, nan=0.0, posinf=0.0, neginf=0.0)
        n = len(leaf.own)
        columns = {"id": pa.array(leaf.own, pa.int64())}
        for name, value in zip(k, key_values, strict=True):
            columns[name] = pa.array(np.full(n, value, dtype=np.int64))
        columns["vec"] = vectors_to_arrow(vecs)
        if done is not None:
            done()
        return pa.table(columns)

    schema = T.StructType(
        [T.StructField("id", T.LongType(), False)]
        + [T.StructField(name, T.LongType(), False) for name in k]
        + [T.StructField("vec", T.ArrayType(T.FloatType(), False), False)]
    )
    return (
        nodes.select(*k, "id")
        .groupBy(*k)
        .cogroup(table.select(*k, "r", "c", "weight").groupBy(*k))
        .applyInArrow(embed_group, schema)
    )
