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

from functools import partial

import numpy as np
from scipy.special import iv

from distne.config import EmbeddingConfig
from distne.engine.program import Backend, Columns, Kept, Product, top_pairs, whitening


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


# The steps of ``prepare``: per-node columns, then the edge values from them. A node without
# edges (in a baselines' subgraph) gets zeros, never read: no entry of any matrix is its.
def _inverse_degree(s: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``[1 / deg]``."""
    return np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)[:, None]


def _negatives(s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``[neg, 1]`` from ``mv = W D^-1 1``: ``neg = mv ** 0.75`` and a column of ones (the
    Gram entry of the two is ``sum(neg)``)."""
    return np.hstack([mv.astype(np.float64) ** 0.75, np.ones((len(mv), 1))])


def _log_terms(log_total: float, s: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``[log deg, lneg]`` with ``lneg = log neg - log sum(neg)``."""
    neg = s[:, :1].astype(np.float64)
    with np.errstate(divide="ignore"):
        terms = np.hstack([np.log(deg)[:, None], np.log(neg) - log_total])
    return np.where(deg[:, None] > 0, terms, 0.0)


def _f_values(w: np.ndarray, at_r: np.ndarray, at_c: np.ndarray) -> dict[str, np.ndarray]:
    """``F[r, c]`` and ``F[c, r]`` of every stored entry, from ``[log deg, lneg]`` at its ends."""
    lw = np.log(w, dtype=np.float64)
    f = lw - at_r[:, 0]
    f -= at_c[:, 1]
    ft = lw - at_c[:, 0]
    ft -= at_r[:, 1]
    return {"f": f, "ft": ft}


def _empty(s: np.ndarray) -> np.ndarray:
    return s[:, :0]


# Row-wise steps. ``s`` is the state, ``mv`` the product, ``deg`` the weighted degree.
def _set(s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    return mv


def _keep_and_append(keep: int, s: np.ndarray, mv: np.ndarray, deg: np.ndarray) -> Columns:
    return [Kept(0, keep), mv]


def _laplacian(mu: float, v: np.ndarray, av: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``(L - mu I) v`` with ``L = I - D^-1 (I + A)`` and ``D = 1 + deg``."""
    inv = (1.0 / (1.0 + deg)).astype(v.dtype)[:, None]
    return (1.0 - mu) * v - (v + av) * inv


# The Chebyshev state is three blocks of ``d`` columns: lx0, lx1 (the last two terms of the
# recursion) and y = x - conv (the filtered signal so far, so x and conv need no blocks of
# their own); a half step adds a fourth (M lx1), which the full step folds back. Each step
# names the blocks it keeps (Kept), so a store on disk writes only the new ones: 3 blocks per
# term instead of 7.
def _cheb_first(d: int, mu: float, s, mv, deg) -> Columns:
    return [Kept(0, d), _laplacian(mu, s[:, :d], mv, deg), Kept(0, d)]


def _cheb_second(d: int, mu: float, theta: float, s, mv, deg) -> Columns:
    lx0, lx1, y = s[:, :d], s[:, d : 2 * d], s[:, 2 * d : 3 * d]
    lx1 = 0.5 * _laplacian(mu, lx1, mv, deg) - lx0
    conv = float(iv(0, theta)) * lx0 - 2 * float(iv(1, theta)) * lx1
    return [Kept(0, d), lx1, y - conv]


def _cheb_half(d: int, mu: float, s, mv, deg) -> Columns:
    return [Kept(0, 3 * d), _laplacian(mu, s[:, d : 2 * d], mv, deg)]


def _cheb_full(d: int, mu: float, coef: float, last: bool, s, mv, deg) -> Columns:
    lx0, lx1, y, half = (s[:, i * d : (i + 1) * d] for i in range(4))
    lx2 = _laplacian(mu, half, mv, deg) - 2 * lx1 - lx0
    y = y - coef * lx2
    if last:  # only y = x - conv is read from here on
        return y
    return [Kept(d, d), lx2, y]


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

    def prepare(self, be: Backend) -> None:
        """``F`` and ``F^T`` from the weights, where the rows are.

        ``F[r, c] = log w_rc - log deg_r - lneg_c`` with ``lneg_c = log neg_c - log sum(neg)``
        and ``neg_c = (sum_r w_rc / deg_r) ** 0.75``: by symmetry ``sum_r w_rc / deg_r`` is
        row ``c`` of ``W D^-1 1``, one product of width 1; ``sum(neg)`` comes from its Gram
        matrix beside a column of ones; then both orientations are one edge map over the two
        per-node columns ``log deg`` and ``lneg``.
        """
        be.map_rows(_inverse_degree, degree=True)
        g = be.product(Product("w", (0, 1), _negatives), (0, 2))
        assert g is not None
        be.map_rows(partial(_log_terms, float(np.log(g[0, 1]))), degree=True)
        be.edge_map((0, 2), _f_values)
        be.map_rows(_empty)

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
