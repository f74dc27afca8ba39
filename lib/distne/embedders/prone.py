"""ProNE (Zhang et al., IJCAI 2019) as one engine program, run by either backend.

Two steps:
1. Sparse matrix factorisation: a randomized truncated SVD of the sparse matrix ``F`` with
   ``F[r, c] = log(w_rc / deg_r) - log(neg_c)`` on the edges, ``neg_c`` proportional to
   ``(sum_r w_rc / deg_r) ** 0.75`` (negative sampling with the degree^0.75 distribution),
   giving an initial embedding ``U * sqrt(S)``.
2. Spectral propagation: a Chebyshev expansion of a band-pass filter of the normalised
   Laplacian (Bessel coefficients, centre ``mu``, width ``theta``) applied to that embedding,
   then ``A_hat (x - conv)`` and its exact SVD (it has ``dim`` columns).

In engine terms (:mod:`distne.engine.program`): ``2 * svd_iterations + 2`` products with ``F``
or ``F^T``, ``2 * order - 1`` with the adjacency ``A``, Gram reductions for the
orthonormalisations (whitening ``Q = V G^{-1/2}``), column signs, and row-wise maps. The
randomized SVD's test matrix is the id-drawn basis, so the vectors do not depend on how the
rows are spread over machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.special import iv

from distne.config import EmbeddingConfig
from distne.engine.program import (
    Backend,
    Product,
    at_both_ends,
    top_pairs,
    weighted_degrees,
    whitening,
)


def row_normalize_l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embedding_from_svd(u: np.ndarray, s: np.ndarray, dim: int) -> np.ndarray:
    """``U sqrt(S)`` row-normalised, zero-padded to ``dim`` columns (graphs smaller than dim)."""
    emb = u * np.sqrt(s)
    if emb.shape[1] < dim:
        emb = np.hstack([emb, np.zeros((emb.shape[0], dim - emb.shape[1]))])
    return row_normalize_l2(emb)


# Row-wise steps. ``s`` is the state, ``mv`` the product, ``deg`` the weighted degree.
def _set(s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    return mv


def _keep_and_append(keep: int, s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    return np.hstack([s[:, :keep], mv])


def _laplacian(mu: float, v: np.ndarray, av: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``(L - mu I) v`` with ``L = I - D^-1 (I + A)`` and ``D = 1 + deg``."""
    inv = (1.0 / (1.0 + deg)).astype(v.dtype)[:, None]
    return (1.0 - mu) * v - (v + av) * inv


# The Chebyshev state is three blocks of ``d`` columns: lx0, lx1 (the last two terms of the
# recursion) and y = x - conv (the filtered signal so far, so x and conv need no blocks of
# their own); a half step adds a fourth (M lx1), which the full step folds back.
def _cheb_first(d: int, mu: float, s, mv, deg):
    x = s[:, :d]
    return np.hstack([x, _laplacian(mu, x, mv, deg), x])


def _cheb_second(d: int, mu: float, theta: float, s, mv, deg):
    lx0, lx1, y = s[:, :d], s[:, d : 2 * d], s[:, 2 * d : 3 * d]
    lx1 = 0.5 * _laplacian(mu, lx1, mv, deg) - lx0
    conv = float(iv(0, theta)) * lx0 - 2 * float(iv(1, theta)) * lx1
    return np.hstack([lx0, lx1, y - conv])


def _cheb_half(d: int, mu: float, s, mv, deg):
    lx1 = s[:, d : 2 * d]
    return np.hstack([s[:, : 3 * d], _laplacian(mu, lx1, mv, deg)])


def _cheb_full(d: int, mu: float, coef: float, last: bool, s, mv, deg):
    lx0, lx1, y, half = (s[:, i * d : (i + 1) * d] for i in range(4))
    lx2 = _laplacian(mu, half, mv, deg) - 2 * lx1 - lx0
    y = y - coef * lx2
    if last:  # only y = x - conv is read from here on
        return y
    return np.hstack([lx1, lx2, y])


def _a_hat(s, mv, deg):
    """``A_hat y = y + A y`` for the state ``y``."""
    return s + mv


def _finish(t: np.ndarray, signs: np.ndarray, sv: np.ndarray, dim: int, width: int):
    def step(x: np.ndarray) -> np.ndarray:
        u = (x[:, :width].astype(np.float64) @ t) * signs
        return embedding_from_svd(u, sv, dim)

    return step


class Prone:
    """ProNE with the settings of ``embedding.*``; ``seed`` draws the randomized SVD's basis."""

    values = ("w", "f", "ft")

    def __init__(self, cfg: EmbeddingConfig, seed: int):
        self.dim = cfg.dim
        self.order = cfg.order
        self.mu = cfg.mu
        self.theta = cfg.theta
        self.svd_iterations = cfg.svd_iterations
        self.seed = seed

    @staticmethod
    def edge_values(directed: DataFrame, keys: Sequence[str]) -> DataFrame:
        """``*keys, r, c, w, f, ft``: the adjacency weight, ``F[r, c]`` and ``F[c, r]``.

        ``F[r, c] = log w_rc - log deg_r - lneg_c``, so both orientations come from two
        per-node columns (``log deg`` and ``lneg``) joined onto the edges at either end: node
        tables, not a join of the edge table with itself.
        """
        k = list(keys)
        degree = weighted_degrees(directed, k).withColumnRenamed("id", "r")
        trans = directed.join(degree, [*k, "r"]).select(
            *k, "c", (F.col("weight") / F.col("deg")).alias("t")
        )
        colsum = trans.groupBy(*k, "c").agg(F.pow(F.sum("t"), 0.75).alias("neg"))
        total = colsum.groupBy(*k).agg(F.log(F.sum("neg")).alias("ltotal"))
        with_total = colsum.join(total, k) if k else colsum.crossJoin(F.broadcast(total))
        # Every node with an edge has a degree and a column sum (the graph is symmetric).
        node = degree.join(
            with_total.select(
                *k, F.col("c").alias("r"), (F.log("neg") - F.col("ltotal")).alias("lneg")
            ),
            [*k, "r"],
        ).select(*k, F.col("r").alias("id"), F.log("deg").alias("ldeg"), "lneg")
        lw = F.log("weight")
        return at_both_ends(directed, node, k).select(
            *k,
            "r",
            "c",
            F.col("weight").alias("w"),
            (lw - F.col("ldeg_r") - F.col("lneg_c")).alias("f"),
            (lw - F.col("ldeg_c") - F.col("lneg_r")).alias("ft"),
        )

    def products(self) -> int:
        return 2 * self.svd_iterations + 2 + (2 * self.order - 1 if self.order > 1 else 0)

    def state_width(self) -> int:
        return max(2 * (self.dim + 10), 4 * self.dim)

    def run(self, backend: Backend) -> None:
        self.sparse_factorization(backend)
        self.spectral_propagation(backend)

    def sparse_factorization(self, be: Backend) -> None:
        """Step 1: the state becomes the initial embedding (``dim`` columns)."""
        k = min(self.dim, be.n)
        p = min(k + 10, be.n)
        block = (0, p)
        g = be.product(Product("f", None, _set, omega=p, seed=self.seed), block)  # Y = F Omega
        t = whitening(be, 0, p, passes=1 if self.svd_iterations else 2, gram=g)
        for i in range(self.svd_iterations):
            g = be.product(Product("ft", block, _set, pre=t), block)  # Z = F^T Q
            t = whitening(be, 0, p, passes=1, gram=g)
            g = be.product(Product("f", block, _set, pre=t), block)  # Q = F Z
            t = whitening(be, 0, p, passes=2 if i == self.svd_iterations - 1 else 1, gram=g)
        # State [Q (un-whitened), F^T Q]; B = (F^T Q)^T, its left singular vectors U_b.
        g = be.product(Product("ft", block, partial(_keep_and_append, p), pre=t), (p, p))
        ub, sv = top_pairs(g, k)
        signs = be.column_signs(0, p, t @ ub)
        be.map_rows(_finish(t @ ub, signs, sv, self.dim, p))

    def spectral_propagation(self, be: Backend) -> None:
        """Step 2: the Chebyshev band-pass filter, then an exact SVD of ``A_hat (x - conv)``."""
        d, mu, theta, order = self.dim, self.mu, self.theta, self.order
        if order <= 1:
            return
        be.product(Product("w", (0, d), partial(_cheb_first, d, mu)))
        be.product(Product("w", (d, d), partial(_cheb_second, d, mu, theta)))
        if order == 2:
            be.map_rows(lambda s: s[:, 2 * d : 3 * d])
        for i in range(2, order):
            be.product(Product("w", (d, d), partial(_cheb_half, d, mu)))
            coef = (2 if i % 2 == 0 else -2) * float(iv(i, theta))
            step = partial(_cheb_full, d, mu, coef, i == order - 1)
            be.product(Product("w", (3 * d, d), step))
        # The state is now y = x - conv (d columns): mm = A_hat y.
        g = be.product(Product("w", (0, d), _a_hat), (0, d))
        # mm has d columns: its randomized SVD with p = d is its exact SVD. Q = mm T, then
        # B = Q^T mm = T^T G, with G = mm^T mm; svd(B) = U_b S V^T; u = Q U_b.
        k = min(d, be.n)
        t = whitening(be, 0, d, gram=g)
        ub, sv, _ = np.linalg.svd(t.T @ g, full_matrices=False)
        ub, sv = ub[:, :k], sv[:k]
        signs = be.column_signs(0, d, t @ ub)
        be.map_rows(_finish(t @ ub, signs, sv, d, d))
