"""The test oracle: ProNE written plainly for one machine (numpy QR, scipy products, float64).

Independent of the engine: it orthonormalises by Householder QR where the engine whitens by
Gram matrices, takes the last SVD by a second randomized SVD, and never splits anything. The
engine's program must give the same vectors when the random test matrix is drawn per id
(``ids=``), which is how the tests use it. Not used by the package.

Two steps:
1. Sparse matrix factorisation: a randomized truncated SVD of the sparse matrix
   ``log(D^-1 A) - log(lambda * P_neg)`` restricted to the edges (negative sampling with
   the degree^0.75 distribution), giving an initial embedding ``U * sqrt(S)``.
2. Spectral propagation: a Chebyshev expansion of a band-pass filter of the normalised
   Laplacian (Bessel coefficients, centre ``mu``, width ``theta``) applied to that embedding,
   followed by one more SVD to orthogonalise.

Everything random comes from ``seed``; the same subgraph and seed give the same vectors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from distne.engine.program import id_gaussian
from scipy.special import iv


def _row_normalize_l1(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(abs(m).sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=np.float64), where=sums > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def row_normalize_l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def fix_signs(u: np.ndarray) -> np.ndarray:
    # An SVD is defined up to the sign of each singular vector; pin it so that equal inputs
    # give equal outputs across BLAS builds.
    if u.size == 0:
        return u
    idx = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[idx, np.arange(u.shape[1])])
    signs[signs == 0] = 1.0
    return u * signs


def randomized_svd(
    m: sp.spmatrix | np.ndarray,
    k: int,
    n_iter: int,
    rng: np.random.Generator,
    omega: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` left singular vectors and values of ``m`` (Halko, Martinsson, Tropp 2011).

    ``omega``, if given, is the ``(cols, p)`` test matrix; otherwise ``rng`` draws it with
    ``p = min(k + 10, rows, cols)``.

    Returns ``(U, s)`` with ``U`` of shape ``(rows, k')`` and ``k' = min(k, rows, cols)``.
    """
    rows, cols = m.shape
    k_eff = min(k, rows, cols)
    if k_eff == 0:
        return np.zeros((rows, 0)), np.zeros(0)
    if omega is None:
        omega = rng.standard_normal((cols, min(k_eff + 10, rows, cols)))
    y = m @ omega
    q, _ = np.linalg.qr(y)
    for _ in range(n_iter):
        z, _ = np.linalg.qr(m.T @ q)
        q, _ = np.linalg.qr(m @ z)
    b = np.asarray((m.T @ q).T)
    ub, s, _ = np.linalg.svd(b, full_matrices=False)
    u = fix_signs(q @ ub[:, :k_eff])
    return u, s[:k_eff]


def embedding_from_svd(u: np.ndarray, s: np.ndarray, dim: int) -> np.ndarray:
    emb = u * np.sqrt(s)
    if emb.shape[1] < dim:  # subgraph smaller than dim: pad with zero coordinates
        emb = np.hstack([emb, np.zeros((emb.shape[0], dim - emb.shape[1]))])
    return row_normalize_l2(emb)


def sparse_factorization(
    adj: sp.csr_matrix,
    dim: int,
    svd_iterations: int,
    rng: np.random.Generator,
    omega: np.ndarray | None = None,
) -> np.ndarray:
    """ProNE step 1: the initial embedding from the factorised sparse PMI-like matrix."""
    n = adj.shape[0]
    transition = _row_normalize_l1(adj)
    neg = np.asarray(transition.sum(axis=0)).ravel() ** 0.75
    total = neg.sum()
    neg = neg / total if total > 0 else neg
    mask = adj.copy()
    mask.data = np.ones_like(mask.data)
    neg_m = sp.csr_matrix(mask @ sp.diags(neg))
    transition.data[transition.data <= 0] = 1.0
    neg_m.data[neg_m.data <= 0] = 1.0
    transition.data = np.log(transition.data)
    neg_m.data = np.log(neg_m.data)
    f = sp.csr_matrix(transition - neg_m)
    if n == 0:
        return np.zeros((0, dim))
    u, s = randomized_svd(f, dim, svd_iterations, rng, omega)
    return embedding_from_svd(u, s, dim)


def spectral_propagation(
    adj: sp.csr_matrix,
    x: np.ndarray,
    order: int,
    mu: float,
    theta: float,
    dim: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """ProNE step 2: filter ``x`` by a Chebyshev band-pass of the normalised Laplacian."""
    n = adj.shape[0]
    if order <= 1 or n == 0:
        return x
    a_hat = sp.csr_matrix(sp.eye(n) + adj)
    lap = sp.eye(n) - _row_normalize_l1(a_hat)
    m = sp.csr_matrix(lap - mu * sp.eye(n))
    lx0 = x
    lx1 = m @ x
    lx1 = 0.5 * (m @ lx1) - x
    conv = iv(0, theta) * lx0 - 2 * iv(1, theta) * lx1
    for i in range(2, order):
        lx2 = m @ lx1
        lx2 = (m @ lx2 - 2 * lx1) - lx0
        conv = conv + (2 if i % 2 == 0 else -2) * iv(i, theta) * lx2
        lx0, lx1 = lx1, lx2
    mm = a_hat @ (x - conv)
    u, s = randomized_svd(np.asarray(mm), dim, 2, rng)
    return embedding_from_svd(u, s, dim)


def prone(
    adj: sp.csr_matrix,
    dim: int,
    order: int = 10,
    mu: float = 0.2,
    theta: float = 0.5,
    svd_iterations: int = 5,
    seed: int = 0,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Embed a symmetric weighted adjacency matrix with ProNE.

    Args:
        adj: ``(n, n)`` symmetric adjacency, no self-loops needed.
        dim: output dimension; subgraphs with fewer than ``dim`` nodes get zero-padded vectors.
        order, mu, theta: the spectral filter (ProNE's defaults are 10, 0.2, 0.5).
        svd_iterations: power iterations of the randomized SVD.
        seed: seeds every random draw.
        ids: node ids of the rows; if given, the randomized SVD's test matrix is drawn per id
            (:func:`id_gaussian`), as the exchange fusion draws it.

    Returns:
        ``(n, dim)`` float32 array of L2-normalised rows (zero rows for isolated nodes).

    Example:
        >>> import networkx as nx
        >>> a = nx.to_scipy_sparse_array(nx.karate_club_graph(), format="csr")
        >>> prone(sp.csr_matrix(a), dim=8).shape
        (34, 8)
    """
    adj = sp.csr_matrix(adj, dtype=np.float64)
    rng = np.random.default_rng(seed)
    omega = None
    if ids is not None:
        n = adj.shape[0]
        omega = id_gaussian(ids, min(min(dim, n) + 10, n), seed)
    x = sparse_factorization(adj, dim, svd_iterations, rng, omega)
    x = spectral_propagation(adj, x, order, mu, theta, dim, rng)
    return np.ascontiguousarray(x, dtype=np.float32)


def edge_values(adj: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(rows, cols, values)`` of ProNE's per-edge matrices, straight from the definition.

    ``values`` holds ``w`` (the weight), ``f`` (``F[r, c]``) and ``ft`` (``F[c, r]``), computed
    with scipy on the whole matrix, independently of the program's Spark expressions.
    """
    coo = sp.coo_matrix(adj)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    t = coo.data / deg[coo.row]
    neg = np.bincount(coo.col, weights=t, minlength=adj.shape[0]) ** 0.75
    with np.errstate(divide="ignore"):
        lneg = np.log(neg) - np.log(neg.sum())
    f = np.log(t) - lneg[coo.col]
    fm = sp.csr_matrix((f, (coo.row, coo.col)), shape=adj.shape)
    ft = np.asarray(fm.T[coo.row, coo.col]).ravel()
    return coo.row, coo.col, {"w": coo.data, "f": f, "ft": ft}


def local_block(adj: sp.csr_matrix, ids: np.ndarray | None = None):
    """The engine's in-memory block of a whole graph (its weights; programs derive the rest)."""
    from distne.engine.program import build_block

    ids = np.arange(adj.shape[0]) if ids is None else np.asarray(ids)
    coo = sp.coo_matrix(adj)
    return build_block(0, ids, ids[coo.row], ids[coo.col], None, coo.data)
