"""Per-subgraph embedders: pure functions over a scipy sparse matrix, chosen from a registry.

An embedder takes the symmetric adjacency of one subgraph (``scipy.sparse.csr_matrix``, n x n)
and returns an ``(n, dim)`` float32 array. It runs inside one Python worker on a subgraph whose
size the partitioner bounds, so it may hold the whole subgraph in memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from distne.config import EmbedderKind, EmbeddingConfig
from distne.embedders.prone import prone

Embedder = Callable[[sp.csr_matrix, EmbeddingConfig, int], np.ndarray]

_REGISTRY: dict[EmbedderKind, Embedder] = {
    EmbedderKind.PRONE: lambda adj, cfg, seed: prone(
        adj,
        dim=cfg.dim,
        order=cfg.order,
        mu=cfg.mu,
        theta=cfg.theta,
        svd_iterations=cfg.svd_iterations,
        seed=seed,
    ),
}


def get_embedder(kind: EmbedderKind) -> Embedder:
    """The embedder registered for ``kind``."""
    return _REGISTRY[kind]
