"""Fusion by exchange: ProNE computed over all leaf subgraphs at once, in one coordinate system.

Embedding each leaf on its own gives each leaf its own frame, and no map between frames can
recover the structure that the cut edges carried. This method does not embed leaves
separately: it runs the whole-graph ProNE (:mod:`distne.embedders.prone`) with the graph's rows
spread over the leaf subgraphs. Every step of ProNE is one of three things:

- a *sparse product* ``Z = M V`` with ``M`` one of ``F`` (the log-proximity matrix of step 1),
  ``F^T`` or ``A`` (the adjacency, for the Laplacian filter of step 2). Row ``r`` of ``Z`` needs
  ``V`` at ``r``'s neighbours. Each leaf computes its own rows with scipy, where its block of
  edges is cached (they never move again); the only vectors that travel are the *halo*: for
  each cut edge, the other side's current block, sent once per (border node, neighbouring
  leaf);
- a *reduction* ``X^T Y`` to a ``p x p`` matrix (``p = dim + 10``): a partial sum per Spark
  partition, summed on the driver. This is how the randomized SVD orthonormalises (Gram
  whitening, twice) and how the last SVD is taken;
- a *row-wise* update with small matrices, done inside the next product.

The random test matrix of the randomized SVD is drawn per node id
(:func:`distne.embedders.prone.id_gaussian`), so no leaf needs another's random numbers. The
result equals single-machine ProNE on the whole graph with the same id-drawn test matrix up to
floating-point error (tests check this), whatever the partition: every vector is in one frame
by construction. The partition still matters for cost: the halo is proportional to border
nodes, which is what the partitioner minimises.

Transport: leaf blocks, routes and state are RDDs under one partitioner (:class:`Exchange`),
so a union of them is read partition by partition and a product's one shuffle is the halo.
There are ``2 * svd_iterations + 2`` products with ``F`` and ``2 * order - 1`` with ``A``, plus
one or two small reductions per orthonormalisation.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from pyspark import RDD, StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy.special import iv

from distne.config import Config
from distne.embedders.prone import embedding_from_svd, id_gaussian
from distne.fuse import FUSED_SCHEMA
from distne.sparkutil import cut_lineage, symmetric

# Values of an edge row r -> c: the adjacency weight, F[r, c] and F[c, r].
VALUES = ("w", "f", "ft")


@dataclass(frozen=True)
class Product:
    """One sparse product round.

    Attributes:
        value: which edge value is ``M`` (``w``, ``f`` or ``ft``).
        block: ``(start, width)`` of the state columns that ``V`` is, or None for the id-drawn
            Gaussian test matrix of width ``omega``.
        step: ``step(state, mv, degree) -> new state``, row-wise, with ``mv = M V``.
        pre: a matrix applied to that block before the product (an orthonormalisation).
    """

    value: str
    block: tuple[int, int] | None
    step: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    pre: np.ndarray | None = None
    omega: int = 0
    seed: int = 0


@dataclass
class LeafBlock:
    """One leaf's rows of every sparse matrix, built once and cached where the leaf lives.

    ``own`` are the leaf's node ids (sorted), ``halo`` the ids of its neighbours in other
    leaves (sorted) and ``halo_part`` their leaves. Edge ``i`` is row ``r[i]`` (into ``own``)
    to column ``c[i]`` (into ``own`` then ``halo``) with values ``w``, ``f``, ``ft``.
    """

    own: np.ndarray
    halo: np.ndarray
    halo_part: np.ndarray
    r: np.ndarray
    c: np.ndarray
    values: dict[str, np.ndarray]
    degree: np.ndarray

    def matrix(self, value: str) -> sp.csr_matrix:
        shape = (len(self.own), len(self.own) + len(self.halo))
        return sp.csr_matrix((self.values[value], (self.r, self.c)), shape=shape)


def _leaf_key(part: int) -> int:
    """The partition function of every exchange RDD: leaf ``part`` lives in ``part % N``."""
    return int(part)


def _build_block(key: tuple[pa.Scalar, ...], nodes: pa.Table, edges: pa.Table) -> pa.Table:
    """Cogrouped Arrow function: one leaf's nodes and out-edges -> its pickled LeafBlock."""
    own = np.sort(nodes.column("id").to_numpy())
    r_ids = edges.column("r").to_numpy()
    c_ids = edges.column("c").to_numpy()
    c_part = edges.column("part_c").to_numpy()
    part = int(key[0].as_py())
    outside = c_part != part
    halo, first = np.unique(c_ids[outside], return_index=True)
    halo_part = c_part[outside][first]
    cols = np.concatenate([own, halo])
    order = np.argsort(cols)
    c = order[np.searchsorted(cols[order], c_ids)]
    r = np.searchsorted(own, r_ids)
    w = edges.column("w").to_numpy()
    block = LeafBlock(
        own=own,
        halo=halo,
        halo_part=halo_part,
        r=r.astype(np.int64),
        c=c.astype(np.int64),
        values={v: edges.column(v).to_numpy().astype(np.float64) for v in VALUES},
        degree=np.bincount(r, weights=w, minlength=len(own)),
    )
    blob = pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL)
    return pa.table({"part": pa.array([part], pa.int64()), "blob": pa.array([blob], pa.binary())})


def _by_leaf(records: Iterator[tuple[int, tuple[str, object]]]) -> dict[str, dict[int, list]]:
    """Records of one Spark partition, sorted by tag and leaf."""
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
        if op.block is None:
            v = id_gaussian(np.concatenate([leaf.own, leaf.halo]), op.omega, op.seed)
        else:
            start, width = op.block
            halo = np.zeros((len(leaf.halo), width))
            for h_ids, h_rows in got["H"].get(part, []):
                halo[np.searchsorted(leaf.halo, h_ids)] = h_rows
            v = np.vstack([x[:, start : start + width], halo])
            if op.pre is not None:
                v = v @ op.pre
        mv = np.asarray(leaf.matrix(op.value) @ v)
        yield part, ("S", (ids, op.step(x, mv, leaf.degree)))


class Exchange:
    """The distributed state of one run, as co-partitioned RDDs keyed by leaf.

    ``blocks`` (each leaf's edges and halo layout, cached), ``routes`` (which of a leaf's rows
    each other leaf needs) and ``state`` (each leaf's node ids and current ``n x width``
    matrix) share one partitioner, so a union of them is read partition by partition without
    a shuffle; the one shuffle per product is the halo.
    """

    def __init__(self, spark: SparkSession, edges: DataFrame, leaf: DataFrame, config: Config):
        self.spark = spark
        self.config = config
        sc = spark.sparkContext
        sym = symmetric(edges)
        directed = sym.select(F.col("src").alias("r"), F.col("dst").alias("c"), "weight")
        degree = directed.groupBy("r").agg(F.sum("weight").alias("deg"))
        # ProNE's F[r, c] = log(w / deg_r) - log(neg_c), neg_c = colsum_c^0.75 / total.
        trans = directed.join(degree, "r").select(
            "r", "c", "weight", (F.col("weight") / F.col("deg")).alias("t")
        )
        colsum = trans.groupBy("c").agg(F.pow(F.sum("t"), 0.75).alias("neg"))
        sc.setJobDescription("exchange setup")
        total = colsum.agg(F.sum("neg")).first()[0] or 1.0
        neg = colsum.select("c", (F.log(F.col("neg")) - F.lit(np.log(total))).alias("lneg"))
        f = trans.join(neg, "c").select("r", "c", "weight", (F.log("t") - F.col("lneg")).alias("f"))
        ft = f.select(F.col("c").alias("r"), F.col("r").alias("c"), F.col("f").alias("ft"))
        leaf_r = leaf.select(F.col("id").alias("r"), "part")
        leaf_c = leaf.select(F.col("id").alias("c"), F.col("part").alias("part_c"))
        table = (
            f.join(ft, ["r", "c"])
            .join(leaf_r, "r")
            .join(leaf_c, "c")
            .select("part", "r", "c", F.col("weight").alias("w"), "f", "ft", "part_c")
        )
        table = cut_lineage(table, config.runtime)
        blobs = (
            cut_lineage(leaf.select("id", "part"), config.runtime)
            .groupBy("part")
            .cogroup(table.groupBy("part"))
            .applyInArrow(_build_block, "part long, blob binary")
        )
        # One task per core and round: more partitions only add per-task overhead, since the
        # work of a round is spread over leaves, and a partition holds whole leaves.
        leaves = leaf.select("part").distinct().count()
        self.n_parts = max(1, min(leaves, sc.defaultParallelism))
        self.blocks = (
            blobs.rdd.map(lambda row: (int(row["part"]), ("E", pickle.loads(row["blob"]))))
            .partitionBy(self.n_parts, _leaf_key)
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
        self._keep(self.blocks.mapValues(lambda t: ("S", (t[1].own, np.zeros((len(t[1].own), 0))))))

    def _keep(self, rdd: RDD, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        """Make ``rdd`` the state: materialise it, cut its lineage, drop the previous one.

        The job that materialises it also returns the Gram matrix of columns ``gram`` of the
        new state, if asked (saving the separate job a whitening would start with).
        """
        rdd = rdd.persist(StorageLevel.MEMORY_AND_DISK)
        rdd.localCheckpoint()
        if gram is None:
            rdd.count()
            result = None
        else:
            result = self._sum(rdd, partial(_gram_of, gram, None))
        old = getattr(self, "state", None)
        self.state = rdd
        if old is not None:
            old.unpersist()
        return result

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        """Replace the state by ``op.step(state, M V, degree)`` on every leaf.

        Returns the Gram matrix of the new state's columns ``gram`` if asked.
        """
        self.spark.sparkContext.setJobDescription(f"exchange product {op.value}")
        inputs = self.blocks.union(self.state)
        if op.block is not None:
            halo = (
                self.state.union(self.routes)
                .mapPartitions(partial(_send_halo, op.block), preservesPartitioning=False)
                .partitionBy(self.n_parts, _leaf_key)
            )
            inputs = inputs.union(halo)
        return self._keep(
            inputs.mapPartitions(partial(_compute, op), preservesPartitioning=True), gram
        )

    def map_rows(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """A row-wise update of the state, with no exchange."""
        self.spark.sparkContext.setJobDescription("exchange row update")
        self._keep(self.state.mapValues(lambda t: ("S", (t[1][0], fn(t[1][1])))))

    @staticmethod
    def _sum(rdd: RDD, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``sum`` over leaves of ``fn(state rows)``: a small matrix on the driver."""

        def partials(records: Iterator) -> Iterator:
            acc = None
            for _, (_, (_, x)) in records:
                if len(x):
                    acc = fn(x) if acc is None else acc + fn(x)
            if acc is not None:
                yield acc

        # One small matrix per Spark partition: bounded by the partition count.
        return np.sum(rdd.mapPartitions(partials).collect(), axis=0)

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        self.spark.sparkContext.setJobDescription("exchange reduction")
        return self._sum(self.state, partial(_gram_of, (start, width), pre))

    def whitening(
        self,
        start: int,
        width: int,
        passes: int = 2,
        gram: np.ndarray | None = None,
    ) -> np.ndarray:
        """A matrix ``T`` such that the block times ``T`` has orthonormal columns.

        One pass (a Gram matrix and its inverse square root) already spans the same subspace,
        which is all a power iteration needs; a second pass restores orthonormality to machine
        precision where it matters (before an SVD). ``gram``, if given, is the block's Gram
        matrix, already computed.
        """
        g = self.gram(start, width) if gram is None else gram
        t = _inverse_sqrt(g)
        for _ in range(passes - 1):
            t = t @ _inverse_sqrt(self.gram(start, width, t))
        return t

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        """The sign of each column's largest-magnitude entry, over all rows (as fix_signs)."""

        def best(records: Iterator) -> Iterator:
            top = None
            for _, (_, (_, x)) in records:
                if not len(x):
                    continue
                u = x[:, start : start + width] @ pre
                cur = u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])]
                top = cur if top is None else np.where(np.abs(cur) > np.abs(top), cur, top)
            if top is not None:
                yield top

        self.spark.sparkContext.setJobDescription("exchange reduction")
        tops = np.array(self.state.mapPartitions(best).collect())
        winner = tops[np.argmax(np.abs(tops), axis=0), np.arange(tops.shape[1])]
        signs = np.sign(winner)
        signs[signs == 0] = 1.0
        return signs

    def vectors(self, dim: int) -> DataFrame:
        """``id, part, vec`` (float32) from the state."""

        def rows(kv: tuple[int, tuple[str, tuple[np.ndarray, np.ndarray]]]) -> Iterator:
            part, (_, (ids, x)) = kv
            x = np.nan_to_num(x[:, :dim].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
            for i, vec in zip(ids.tolist(), x.tolist(), strict=True):
                yield i, part, vec

        return self.spark.createDataFrame(self.state.flatMap(rows), FUSED_SCHEMA)

    def close(self) -> None:
        for rdd in (self.state, self.routes, self.blocks):
            rdd.unpersist()


def _gram_of(block: tuple[int, int], pre: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    b = x[:, block[0] : block[0] + block[1]]
    if pre is not None:
        b = b @ pre
    return b.T @ b


def _resolve_routes(records: Iterator) -> Iterator:
    """At each leaf: requests (requesting leaf, ids) -> (requesting leaf, row indices)."""
    got = _by_leaf(records)
    for part, blocks in got["E"].items():
        own = blocks[0].own
        routes = [(int(q), np.searchsorted(own, ids)) for q, ids in got["Q"].get(part, [])]
        yield part, ("R", routes)


def _inverse_sqrt(g: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((g + g.T) / 2)
    floor = max(vals.max(), 1e-300) * 1e-13
    return vecs @ np.diag(1.0 / np.sqrt(np.maximum(vals, floor))) @ vecs.T


# Row-wise steps. ``s`` is the state, ``mv`` the product, ``deg`` the weighted degree.
def _set(s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    return mv


def _keep_and_append(keep: int, s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    return np.hstack([s[:, :keep], mv])


def _laplacian(mu: float, v: np.ndarray, av: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``(L - mu I) v`` with ``L = I - D^-1 (I + A)`` and ``D = 1 + deg``."""
    return (1.0 - mu) * v - (v + av) / (1.0 + deg)[:, None]


def _cheb_first(d: int, mu: float, s, mv, deg):
    x = s[:, :d]
    lx1 = _laplacian(mu, x, mv, deg)
    return np.hstack([x, x, lx1, np.zeros_like(x)])  # x, lx0, lx1, conv


def _cheb_second(d: int, mu: float, theta: float, s, mv, deg):
    x, lx0, lx1 = s[:, :d], s[:, d : 2 * d], s[:, 2 * d : 3 * d]
    lx1 = 0.5 * _laplacian(mu, lx1, mv, deg) - x
    conv = iv(0, theta) * lx0 - 2 * iv(1, theta) * lx1
    return np.hstack([x, lx0, lx1, conv])


def _cheb_half(d: int, mu: float, s, mv, deg):
    # lx2' = M lx1, kept in a fifth block.
    lx1 = s[:, 2 * d : 3 * d]
    return np.hstack([s[:, : 4 * d], _laplacian(mu, lx1, mv, deg)])


def _cheb_full(d: int, mu: float, coef: float, s, mv, deg):
    x, lx0, lx1, conv, half = (s[:, i * d : (i + 1) * d] for i in range(5))
    lx2 = _laplacian(mu, half, mv, deg) - 2 * lx1 - lx0
    conv = conv + coef * lx2
    return np.hstack([x, lx1, lx2, conv, x - conv])


def _a_hat(d: int, s, mv, deg):
    y = s[:, 4 * d : 5 * d]
    return y + mv


def _finish(t: np.ndarray, signs: np.ndarray, sv: np.ndarray, dim: int, start: int, width: int):
    def step(x: np.ndarray) -> np.ndarray:
        u = (x[:, start : start + width] @ t) * signs
        return embedding_from_svd(u, sv, dim)

    return step


def _top_pairs(g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From ``G = B B^T``: the top ``k`` left singular vectors of ``B`` and singular values."""
    vals, vecs = np.linalg.eigh((g + g.T) / 2)
    order = np.argsort(vals)[::-1][:k]
    return vecs[:, order], np.sqrt(np.maximum(vals[order], 0.0))


class ProneExchange:
    """ProNE over the leaves of a partition, step by step as in ``embedders.prone.prone``."""

    def __init__(self, ex: Exchange, config: Config):
        self.ex = ex
        self.e = config.embedding
        self.seed = config.seed

    def sparse_factorization(self) -> None:
        """Step 1: state becomes the initial embedding (width dim)."""
        ex, dim = self.ex, self.e.dim
        k = min(dim, ex.n)
        p = min(k + 10, ex.n)
        block = (0, p)
        g = ex.product(Product("f", None, _set, omega=p, seed=self.seed), block)  # Y = F Omega
        t = ex.whitening(0, p, passes=1 if self.e.svd_iterations else 2, gram=g)
        for i in range(self.e.svd_iterations):
            g = ex.product(Product("ft", block, _set, pre=t), block)  # Z = F^T Q
            t = ex.whitening(0, p, passes=1, gram=g)
            g = ex.product(Product("f", block, _set, pre=t), block)  # Q = F Z
            last = i == self.e.svd_iterations - 1
            t = ex.whitening(0, p, passes=2 if last else 1, gram=g)
        # State [Q (un-whitened), F^T Q]; B = (F^T Q)^T, its left singular vectors U_b.
        g = ex.product(Product("ft", block, partial(_keep_and_append, p), pre=t), (p, p))
        ub, sv = _top_pairs(g, k)
        signs = ex.column_signs(0, p, t @ ub)
        ex.map_rows(_finish(t @ ub, signs, sv, dim, 0, p))

    def spectral_propagation(self) -> None:
        """Step 2: the Chebyshev band-pass filter, then an exact SVD of ``A_hat (x - conv)``."""
        ex, d = self.ex, self.e.dim
        mu, theta, order = self.e.mu, self.e.theta, self.e.order
        if order <= 1:
            return
        ex.product(Product("w", (0, d), partial(_cheb_first, d, mu)))
        ex.product(Product("w", (2 * d, d), partial(_cheb_second, d, mu, theta)))
        for i in range(2, order):
            ex.product(Product("w", (2 * d, d), partial(_cheb_half, d, mu)))
            coef = (2 if i % 2 == 0 else -2) * iv(i, theta)
            ex.product(Product("w", (4 * d, d), partial(_cheb_full, d, mu, coef)))
        if order == 2:
            ex.map_rows(lambda s: np.hstack([s[:, : 4 * d], s[:, :d] - s[:, 3 * d : 4 * d]]))
        g = ex.product(Product("w", (4 * d, d), partial(_a_hat, d)), (0, d))
        # mm has d columns: its randomized SVD with p = d is its exact SVD. Q = mm T, then
        # B = Q^T mm = T^T G, with G = mm^T mm; svd(B) = U_b S V^T; u = Q U_b.
        k = min(d, ex.n)
        t = ex.whitening(0, d, gram=g)
        ub, sv, _ = np.linalg.svd(t.T @ g, full_matrices=False)
        ub, sv = ub[:, :k], sv[:k]
        signs = ex.column_signs(0, d, t @ ub)
        ex.map_rows(_finish(t @ ub, signs, sv, d, 0, d))


def embed_exchange(
    spark: SparkSession, edges: DataFrame, leaf: DataFrame, config: Config
) -> DataFrame:
    """ProNE of the whole graph computed leaf by leaf: ``id, part, vec`` for every node.

    Args:
        edges: ``src, dst, weight``, each undirected edge once.
        leaf: ``id, part``: every node's leaf subgraph.
    """
    ex = Exchange(spark, edges, leaf, config)
    run = ProneExchange(ex, config)
    try:
        run.sparse_factorization()
        run.spectral_propagation()
        spark.sparkContext.setJobDescription("exchange output")
        return cut_lineage(ex.vectors(config.embedding.dim), config.runtime)
    finally:
        ex.close()
        spark.sparkContext.setJobDescription(None)
