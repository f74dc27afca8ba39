"""Fusion by exchange: ProNE computed over all leaf subgraphs at once, in one coordinate system.

Embedding each leaf on its own gives each leaf its own frame, and no map between frames can
recover the structure that the cut edges carried. This method does not embed leaves
separately: it runs the whole-graph ProNE (:mod:`distne.embedders.prone`) with the graph's rows
spread over the leaf subgraphs. Every step of ProNE is one of three things:

- a *sparse product* ``Z = M V`` with ``M`` one of ``F`` (the log-proximity matrix of step 1),
  ``F^T`` or ``A`` (the adjacency, for the Laplacian filter of step 2). Row ``r`` of ``Z`` needs
  ``V`` at ``r``'s neighbours. Each leaf computes its own rows in one grouped Arrow UDF (its
  edges are cached, partitioned by leaf, and never move again); the only vectors that travel
  are the *halo*: for each cut edge, the other side's current block, sent once per
  (border node, neighbouring leaf);
- a *reduction* ``X^T Y`` to a ``p x p`` matrix (``p = dim + 10``): a partial sum per Spark
  partition, summed on the driver. This is how the randomized SVD orthonormalises (Gram
  whitening, twice) and how the last SVD is taken;
- a *row-wise* update with small matrices, done inside the next product's UDF.

The random test matrix of the randomized SVD is drawn per node id
(:func:`distne.embedders.prone.id_gaussian`), so no leaf needs another's random numbers. The
result equals single-machine ProNE on the whole graph with the same id-drawn test matrix up to
floating-point error (tests check this), whatever the partition: every vector is in one frame
by construction. The partition still matters for cost: the halo is proportional to border
nodes, which is what the partitioner minimises.

Cost per product: the leaf's edges (read from cache, no shuffle), one shuffle of the nodes'
state (``n x width`` doubles) and one of the halo. There are ``2 * svd_iterations + 2``
products with ``F`` and ``2 * order - 1`` with ``A``, plus two small reductions per
orthonormalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy.special import iv

from distne.config import Config
from distne.embed import vectors_to_arrow
from distne.embedders.prone import embedding_from_svd, id_gaussian
from distne.sparkutil import cut_lineage, symmetric

STATE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), False),
        T.StructField("part", T.LongType(), False),
        T.StructField("x", T.ArrayType(T.DoubleType(), False), False),
    ]
)
_DOUBLES = pa.list_(pa.field("element", pa.float64(), nullable=False))
PARTIAL_SCHEMA = T.StructType([T.StructField("m", T.ArrayType(T.DoubleType(), False), False)])

# Values of an edge row r -> c: the adjacency weight, F[r, c] and F[c, r].
VALUES = ("w", "f", "ft")


def _matrix(col: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(arr) == 0 or width == 0:
        return np.zeros((len(arr), width))
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), width)


def _doubles(x: np.ndarray) -> pa.ListArray:
    n, w = x.shape
    flat = pa.array(np.ascontiguousarray(x, dtype=np.float64).ravel(), type=pa.float64())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * w, pa.int32())
    return pa.ListArray.from_arrays(offsets, flat, type=_DOUBLES)


@dataclass(frozen=True)
class Product:
    """One sparse product round.

    Attributes:
        value: which edge value is ``M`` (``w``, ``f`` or ``ft``).
        block: ``(start, width)`` of the state columns that ``V`` is, or None for the id-drawn
            Gaussian test matrix of width ``omega``.
        pre: a matrix applied to that block before the product (an orthonormalisation).
        step: ``step(state, mv, degree) -> new state``, row-wise, with ``mv = M V``.
    """

    value: str
    block: tuple[int, int] | None
    step: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    pre: np.ndarray | None = None
    omega: int = 0
    seed: int = 0

    def input_width(self) -> int:
        if self.block is None:
            return self.omega
        return self.block[1] if self.pre is None else self.pre.shape[1]


def _product_udf(op: Product) -> Callable[[pa.Table, pa.Table], pa.Table]:
    def run(edges: pa.Table, rows: pa.Table) -> pa.Table:
        is_own = ~np.asarray(rows.column("x").is_null().to_numpy(zero_copy_only=False), bool)
        row_ids = rows.column("id").to_numpy()
        own_ids = row_ids[is_own]
        if len(own_ids) == 0:
            return pa.table({"id": [], "part": [], "x": []}, schema=_ARROW_STATE)
        part = rows.column("part").to_numpy()[is_own][0]
        state = _matrix(rows.column("x").filter(pa.array(is_own)), _width(rows, is_own))
        order = np.argsort(own_ids)
        own_ids, state = own_ids[order], state[order]
        src = edges.column("r").to_numpy()
        dst = edges.column("c").to_numpy()
        val = edges.column(op.value).to_numpy()
        w = edges.column("w").to_numpy()
        r = np.searchsorted(own_ids, src)
        degree = np.bincount(r, weights=w, minlength=len(own_ids))
        if op.block is None:
            cols, inverse = np.unique(dst, return_inverse=True)
            v = id_gaussian(cols, op.omega, op.seed)
        else:
            start, width = op.block
            halo = ~is_own
            halo_ids = row_ids[halo]
            halo_v = _matrix(rows.column("h").filter(pa.array(halo)), width)
            cols = np.concatenate([own_ids, halo_ids])
            v = np.vstack([state[:, start : start + width], halo_v])
            sort = np.argsort(cols)
            cols, v = cols[sort], v[sort]
            inverse = np.searchsorted(cols, dst)
            if op.pre is not None:
                v = v @ op.pre
        m = sp.csr_matrix((val, (r, inverse)), shape=(len(own_ids), len(cols)))
        new = op.step(state, np.asarray(m @ v), degree)
        n = len(own_ids)
        return pa.table(
            {
                "id": pa.array(own_ids, pa.int64()),
                "part": pa.array(np.full(n, part, dtype=np.int64)),
                "x": _doubles(new),
            },
            schema=_ARROW_STATE,
        )

    return run


_ARROW_STATE = pa.schema(
    [
        pa.field("id", pa.int64(), False),
        pa.field("part", pa.int64(), False),
        pa.field("x", _DOUBLES, False),
    ]
)


def _width_of(x: pa.ChunkedArray | pa.Array) -> int:
    """Row width of a list column whose rows all have one length."""
    arr = x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x
    return len(arr.flatten()) // len(arr) if len(arr) else 0


def _width(rows: pa.Table, is_own: np.ndarray) -> int:
    return _width_of(rows.column("x").filter(pa.array(is_own)))


class Exchange:
    """The distributed state of one run: leaf edges (cached), halo routes, node state."""

    def __init__(self, spark: SparkSession, edges: DataFrame, leaf: DataFrame, config: Config):
        self.spark = spark
        self.config = config
        rt = config.runtime
        sym = symmetric(edges)
        leaf_r = leaf.select(F.col("id").alias("r"), F.col("part"))
        leaf_c = leaf.select(F.col("id").alias("c"), F.col("part").alias("part_c"))
        directed = sym.select(F.col("src").alias("r"), F.col("dst").alias("c"), "weight")
        degree = directed.groupBy("r").agg(F.sum("weight").alias("deg"))
        # ProNE's F[r, c] = log(w / deg_r) - log(neg_c), neg_c = colsum_c^0.75 / total.
        trans = directed.join(degree, "r").select(
            "r", "c", "weight", (F.col("weight") / F.col("deg")).alias("t")
        )
        colsum = trans.groupBy("c").agg(F.pow(F.sum("t"), 0.75).alias("neg"))
        total = colsum.agg(F.sum("neg")).first()[0] or 1.0
        neg = colsum.select("c", (F.log(F.col("neg")) - F.lit(np.log(total))).alias("lneg"))
        f = trans.join(neg, "c").select("r", "c", "weight", (F.log("t") - F.col("lneg")).alias("f"))
        ft = f.select(F.col("c").alias("r"), F.col("r").alias("c"), F.col("f").alias("ft"))
        table = (
            f.join(ft, ["r", "c"])
            .join(leaf_r, "r")
            .join(leaf_c, "c")
            .select("part", "r", "c", F.col("weight").alias("w"), "f", "ft", "part_c")
        )
        spark.sparkContext.setJobDescription("exchange setup")
        table = cut_lineage(table, rt)
        self.edges = table.select("part", "r", "c", "w", "f", "ft").repartition("part").cache()
        # Which node's block each leaf needs from elsewhere: one row per (leaf, border node).
        self.routes = cut_lineage(
            table.where(F.col("part") != F.col("part_c"))
            .select("part", F.col("c").alias("id"))
            .distinct(),
            rt,
        )
        self.state = cut_lineage(
            leaf.select("id", "part", F.array().cast("array<double>").alias("x")), rt
        )
        self.n = leaf.count()

    def product(self, op: Product) -> None:
        """Replace the state by ``op.step(state, M V, degree)`` on every leaf."""
        self.spark.sparkContext.setJobDescription(f"exchange product {op.value}")
        own = self.state.select("part", "id", "x", F.lit(None).cast("array<double>").alias("h"))
        rows = own
        if op.block is not None:
            start, width = op.block
            halo = self.routes.join(
                self.state.select("id", F.slice("x", start + 1, width).alias("h")), "id"
            ).select("part", "id", F.lit(None).cast("array<double>").alias("x"), "h")
            rows = own.unionByName(halo)
        out = (
            self.edges.groupBy("part")
            .cogroup(rows.groupBy("part"))
            .applyInArrow(_product_udf(op), STATE_SCHEMA)
        )
        self.state = cut_lineage(out, self.config.runtime)

    def reduce(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``sum`` over Spark partitions of ``fn(state rows)``: a small matrix on the driver."""

        def partials(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            acc = None
            for b in batches:
                x = b.column("x")
                if len(x) == 0:
                    continue
                part = fn(_matrix(x, _width_of(x)))
                acc = part if acc is None else acc + part
            if acc is not None:
                yield pa.RecordBatch.from_pydict({"m": _doubles(acc.reshape(1, -1))})

        # One row per Spark partition, each a p x p matrix: bounded by the partition count.
        self.spark.sparkContext.setJobDescription("exchange reduction")
        rows = self.state.select("x").mapInArrow(partials, PARTIAL_SCHEMA).collect()
        return np.sum([np.asarray(r["m"]) for r in rows], axis=0)

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        def local(x: np.ndarray) -> np.ndarray:
            b = x[:, start : start + width]
            if pre is not None:
                b = b @ pre
            return (b.T @ b).ravel()

        k = width if pre is None else pre.shape[1]
        return self.reduce(local).reshape(k, k)

    def whitening(
        self, start: int, width: int, pre: np.ndarray | None = None, passes: int = 2
    ) -> np.ndarray:
        """A matrix ``T`` such that the block times ``T`` has orthonormal columns.

        One pass (a Gram matrix and its inverse square root) already spans the same subspace,
        which is all a power iteration needs; a second pass restores orthonormality to machine
        precision where it matters (before an SVD).
        """
        t = np.eye(width) if pre is None else pre
        for _ in range(passes):
            t = t @ _inverse_sqrt(self.gram(start, width, t))
        return t

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        """The sign of each column's largest-magnitude entry, over all rows (as fix_signs)."""

        def local(x: np.ndarray) -> np.ndarray:
            u = x[:, start : start + width] @ pre
            idx = np.argmax(np.abs(u), axis=0)
            top = u[idx, np.arange(u.shape[1])]
            big = np.zeros((2, u.shape[1]))
            big[0] = np.abs(top)
            big[1] = top
            return big.ravel()

        # Partials cannot simply be summed; collect them (one per Spark partition) and pick.
        def partials(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            best = None
            for b in batches:
                x = b.column("x")
                if len(x) == 0:
                    continue
                cur = local(_matrix(x, _width_of(x))).reshape(2, -1)
                if best is None:
                    best = cur
                else:
                    take = cur[0] > best[0]
                    best[:, take] = cur[:, take]
            if best is not None:
                yield pa.RecordBatch.from_pydict({"m": _doubles(best.reshape(1, -1))})

        self.spark.sparkContext.setJobDescription("exchange reduction")
        rows = self.state.select("x").mapInArrow(partials, PARTIAL_SCHEMA).collect()
        parts = np.array([np.asarray(r["m"]).reshape(2, -1) for r in rows])
        winner = np.argmax(parts[:, 0, :], axis=0)
        signs = np.sign(parts[winner, 1, np.arange(parts.shape[2])])
        signs[signs == 0] = 1.0
        return signs


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


def _cheb_first(d: int, mu: float, theta: float, s, mv, deg):
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


class ProneExchange:
    """ProNE over the leaves of a partition, step by step as in ``embedders.prone.prone``."""

    def __init__(self, ex: Exchange, config: Config):
        self.ex = ex
        self.e = config.embedding
        self.seed = config.seed

    def _svd_top(self, start: int, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For the block ``B^T`` (rows x p) and ``Q`` before it: ``U_b`` and singular values."""
        g = self.ex.gram(start, width)
        vals, vecs = np.linalg.eigh((g + g.T) / 2)
        order = np.argsort(vals)[::-1]
        return vecs[:, order[:k]], np.sqrt(np.maximum(vals[order[:k]], 0.0))

    def sparse_factorization(self) -> None:
        """Step 1: state becomes the initial embedding (width dim)."""
        ex, dim = self.ex, self.e.dim
        k = min(dim, ex.n)
        p = min(k + 10, ex.n)
        ex.product(Product("f", None, _set, omega=p, seed=self.seed))  # Y = F Omega
        t = ex.whitening(0, p, passes=1 if self.e.svd_iterations else 2)
        for i in range(self.e.svd_iterations):
            ex.product(Product("ft", (0, p), _set, pre=t))  # Z = F^T Q
            t = ex.whitening(0, p, passes=1)
            ex.product(Product("f", (0, p), _set, pre=t))  # Q = F Z
            t = ex.whitening(0, p, passes=2 if i == self.e.svd_iterations - 1 else 1)
        # State [Q (un-whitened), F^T Q]; B = (F^T Q)^T, its left singular vectors U_b.
        ex.product(Product("ft", (0, p), partial(_keep_and_append, p), pre=t))
        ub, sv = self._top_pairs(p, p, k)
        signs = ex.column_signs(0, p, t @ ub)
        self._map(_finish(t @ ub, signs, sv, dim, 0, p))

    def _top_pairs(self, start: int, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._svd_top(start, width, k)

    def _map(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        """A row-wise update of the state, with no exchange."""

        def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                x = b.column("x")
                new = fn(_matrix(x, _width_of(x))) if len(x) else np.zeros((0, 0))
                yield pa.RecordBatch.from_pydict(
                    {"id": b.column("id"), "part": b.column("part"), "x": _doubles(new)},
                    schema=_ARROW_STATE,
                )

        self.ex.spark.sparkContext.setJobDescription("exchange row update")
        self.ex.state = cut_lineage(
            self.ex.state.mapInArrow(apply, STATE_SCHEMA), self.ex.config.runtime
        )

    def spectral_propagation(self) -> None:
        """Step 2: the Chebyshev band-pass filter, then an exact SVD of ``A_hat (x - conv)``."""
        ex, d = self.ex, self.e.dim
        mu, theta, order = self.e.mu, self.e.theta, self.e.order
        if order <= 1:
            return
        ex.product(Product("w", (0, d), partial(_cheb_first, d, mu, theta)))
        ex.product(Product("w", (2 * d, d), partial(_cheb_second, d, mu, theta)))
        for i in range(2, order):
            ex.product(Product("w", (2 * d, d), partial(_cheb_half, d, mu)))
            coef = (2 if i % 2 == 0 else -2) * iv(i, theta)
            ex.product(Product("w", (4 * d, d), partial(_cheb_full, d, mu, coef)))
        if order == 2:
            self._map(lambda s: np.hstack([s[:, : 4 * d], s[:, :d] - s[:, 3 * d : 4 * d]]))
        ex.product(Product("w", (4 * d, d), partial(_a_hat, d)))
        # mm has d columns: its randomized SVD with p = d is its exact SVD. Q = mm T, then
        # B = Q^T mm = T^T G, with G = mm^T mm; svd(B) = U_b S V^T; u = Q U_b.
        k = min(d, ex.n)
        t = ex.whitening(0, d)
        g = ex.gram(0, d)
        ub, sv, _ = np.linalg.svd(t.T @ g, full_matrices=False)
        ub, sv = ub[:, :k], sv[:k]
        signs = ex.column_signs(0, d, t @ ub)
        self._map(_finish(t @ ub, signs, sv, d, 0, d))

    def vectors(self) -> DataFrame:
        """``id, part, vec`` (float32) from the final state."""
        dim = self.e.dim

        def to_float(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                x = b.column("x")
                vecs = _matrix(x, dim) if len(x) else np.zeros((0, dim))
                vecs = np.nan_to_num(vecs, nan=0.0, posinf=0.0, neginf=0.0)
                yield pa.RecordBatch.from_pydict(
                    {"id": b.column("id"), "part": b.column("part"), "vec": vectors_to_arrow(vecs)}
                )

        schema = T.StructType(
            [
                T.StructField("id", T.LongType(), False),
                T.StructField("part", T.LongType(), False),
                T.StructField("vec", T.ArrayType(T.FloatType(), False), False),
            ]
        )
        return self.ex.state.mapInArrow(to_float, schema)


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
        return cut_lineage(run.vectors(), config.runtime)
    finally:
        ex.edges.unpersist()
        spark.sparkContext.setJobDescription(None)
