"""FastRP (Chen et al., CIKM 2019) as one engine program, run by either backend.

FastRP is a random projection of the powers of the transition matrix ``P = D^-1 A``:

    N_1 = P D^beta R,   N_k = P N_{k-1} (k = 2..q),   N = sum_k a_k N_k,

then every column of ``N`` standardised (zero mean, unit variance over the nodes), as the
authors' code does (``sklearn.preprocessing.scale``). ``R`` is an ``n x dim`` random
projection, ``D^beta`` scales each node's random row by its degree to the power ``beta``
(``embedding.degree_power``; negative: common nodes count less) and ``a_k`` are
``embedding.iteration_weights`` (``q`` of them).

In engine terms (:mod:`distne.engine.program`): ``q`` sparse products of width ``dim`` (the
first with ``P D^beta`` and the id-drawn Gaussian basis, the others with ``P``), one Gram
reduction (the column sums and sums of squares, from a column of ones kept beside the sum)
and one row-wise map. No orthonormalisation and no SVD: it is the cheapest program the
engine runs. The basis is the id-drawn Gaussian one (Johnson-Lindenstrauss, like the
authors' Gaussian option; their very sparse Achlioptas projection saves the first product's
multiplications on one machine, which the engine's products do not exploit), so the vectors
do not depend on how the rows are spread over machines.

The defaults are the authors' published tuned setting for their largest graph
(``weights = [1, 1, 7.81, 45.28]``, ``beta = -0.628``, the transition matrix, no
normalisation of the iterates), from their code's configurations.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from distne.config import EmbeddingConfig
from distne.engine.program import Backend, Product, at_both_ends, weighted_degrees


def _first(weight: float, last: bool, s: np.ndarray, mv: np.ndarray, deg: np.ndarray):
    """After ``N_1``: ``[N_1, a_1 N_1]`` (the iterate, the weighted sum so far)."""
    return _accumulate(weight, last, np.zeros_like(mv), mv)


def _next(d: int, weight: float, last: bool, s: np.ndarray, mv: np.ndarray, deg: np.ndarray):
    """After ``N_k = P N_{k-1}``: ``[N_k, sum + a_k N_k]``."""
    return _accumulate(weight, last, s[:, d : 2 * d], mv)


def _accumulate(weight: float, last: bool, total: np.ndarray, mv: np.ndarray) -> np.ndarray:
    total = total + weight * mv
    if last:  # the sum and a column of ones, whose Gram row holds the column sums
        return np.hstack([total, np.ones((len(mv), 1), mv.dtype)])
    return np.hstack([mv, total])


def _standardise(mean: np.ndarray, scale: np.ndarray, dim: int):
    def step(x: np.ndarray) -> np.ndarray:
        return (x[:, :dim].astype(np.float64) - mean) / scale

    return step


class FastRP:
    """FastRP with the settings of ``embedding.*``; ``seed`` draws the random projection."""

    values = ("p", "p0")

    def __init__(self, cfg: EmbeddingConfig, seed: int):
        self.dim = cfg.dim
        self.weights = tuple(cfg.iteration_weights)
        self.beta = cfg.degree_power
        self.seed = seed

    def edge_values(self, directed: DataFrame, keys: Sequence[str]) -> DataFrame:
        """``*keys, r, c, w, p, p0``: the weight, ``P[r, c] = w_rc / deg_r`` and
        ``(P D^beta)[r, c] = P[r, c] deg_c^beta``."""
        k = list(keys)
        p = F.col("weight") / F.col("deg_r")
        return at_both_ends(directed, weighted_degrees(directed, k), k).select(
            *k,
            "r",
            "c",
            F.col("weight").alias("w"),
            p.alias("p"),
            (p * F.pow("deg_c", F.lit(self.beta))).alias("p0"),
        )

    def products(self) -> int:
        return len(self.weights)

    def state_width(self) -> int:
        return 2 * self.dim + 1

    def run(self, backend: Backend) -> None:
        d, q = self.dim, len(self.weights)
        first = partial(_first, self.weights[0], q == 1)
        basis = Product("p0", None, first, omega=d, seed=self.seed)
        g = backend.product(basis, (0, d + 1) if q == 1 else None)
        for i in range(1, q):
            step = partial(_next, d, self.weights[i], i == q - 1)
            g = backend.product(Product("p", (0, d), step), (0, d + 1) if i == q - 1 else None)
        assert g is not None
        n = g[d, d]
        mean = g[d, :d] / n
        var = np.maximum(np.diag(g)[:d] / n - mean**2, 0.0)
        std = np.sqrt(var)
        # A column with no spread is left centred, as sklearn's scale does.
        backend.map_rows(_standardise(mean, np.where(std > 0, std, 1.0), d))
