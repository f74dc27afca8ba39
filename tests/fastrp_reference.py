"""FastRP on one machine, written from the paper's definition with scipy: the oracle the
engine's FastRP program is tested against.

    N_1 = P D^beta R,  N_k = P N_{k-1},  N = sum_k a_k norm(N_k),  columns standardised,

with ``P = D^-1 A``, ``norm`` each row to unit length (or the identity) and ``R`` the id-drawn
Gaussian basis (the draw the engine shares across
machines; any other Gaussian draw would give other, equally valid, vectors).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from distne.engine.program import id_gaussian


def fastrp(
    adj: sp.csr_matrix,
    dim: int,
    weights: tuple[float, ...],
    beta: float,
    seed: int,
    ids: np.ndarray,
    normalize: bool = False,
) -> np.ndarray:
    """FastRP vectors of the nodes ``ids`` (rows and columns of ``adj``, in that order)."""
    adj = sp.csr_matrix(adj, dtype=np.float64)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    has = deg > 0
    inv = np.where(has, 1.0 / np.where(has, deg, 1.0), 0.0)
    scale = np.where(has, np.where(has, deg, 1.0) ** beta, 0.0)
    p = sp.diags(inv) @ adj
    r = id_gaussian(ids, dim, seed)
    n_k = p @ (scale[:, None] * r)

    def norm(u: np.ndarray) -> np.ndarray:
        if not normalize:
            return u
        lengths = np.linalg.norm(u, axis=1, keepdims=True)
        return u / np.where(lengths > 0, lengths, 1.0)

    total = weights[0] * norm(n_k)
    for a in weights[1:]:
        n_k = p @ n_k
        total = total + a * norm(n_k)
    std = total.std(axis=0)
    return (total - total.mean(axis=0)) / np.where(std > 0, std, 1.0)
