"""FastRP (Chen et al., CIKM 2019) as one engine program, run by either backend.

FastRP is a random projection of the powers of the transition matrix ``P = D^-1 A``:

    N_1 = P D^beta R,   N_k = P N_{k-1} (k = 2..q),   N = sum_k a_k norm(N_k),

then every column of ``N`` standardised (zero mean, unit variance over the nodes), as the
authors' code does (``sklearn.preprocessing.scale``). ``R`` is an ``n x dim`` random
projection, ``D^beta`` scales each node's random row by its degree to the power ``beta``
(``embedding.degree_power``), ``a_k`` are ``embedding.iteration_weights`` (``q`` of them) and
``norm`` scales every row of an iterate to unit length (``embedding.normalize_iterates``, the
authors' ``normalization`` option; the identity when off). The propagation itself goes on
with the iterates as they are: only what enters the sum is normalised.

In engine terms (:mod:`distne.engine.program`): ``q`` sparse products of width ``dim`` (the
first with ``W D^beta`` and the id-drawn Gaussian basis, the others with ``W``; each row then
divided by its node's degree, which makes them products with ``P``), one Gram
reduction (the column sums and sums of squares, from a column of ones kept beside the sum)
and one row-wise map. No orthonormalisation and no SVD: it is the cheapest program the
engine runs. The basis is the id-drawn Gaussian one (Johnson-Lindenstrauss, like the
authors' Gaussian option; their very sparse Achlioptas projection saves the first product's
multiplications on one machine, which the engine's products do not exploit), so the vectors
do not depend on how the rows are spread over machines.

The defaults (``weights = [0, 0, 1, 1]``, ``beta = 0.3``, iterates normalised) were chosen on
validation splits of the shared graphs (docs/design.md): the authors' tuned setting for
their largest graph (``[1, 1, 7.81, 45.28]``, ``beta = -0.628``, not normalised) fell more
than 0.03 behind ProNE on two of them.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from distne.config import EmbeddingConfig
from distne.embedders.prone import row_normalize_l2
from distne.engine.program import Backend, Product


def _degree_power(beta: float, s: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``[deg^beta]`` (a node without edges: zero, never read)."""
    return np.where(deg > 0, np.power(np.where(deg > 0, deg, 1.0), beta), 0.0)[:, None]


def _scaled_by_column(w: np.ndarray, at_r: np.ndarray, at_c: np.ndarray) -> dict[str, np.ndarray]:
    """``w0 = w_rc deg_c^beta``."""
    return {"w0": w.astype(np.float64) * at_c[:, 0]}


def _first(weight: float, unit: bool, last: bool, s: np.ndarray, mv: np.ndarray, deg: np.ndarray):
    """After ``N_1 = D^-1 (W D^beta) R``: ``[N_1, a_1 norm(N_1)]`` (the iterate, the weighted
    sum so far)."""
    n_1 = _by_degree(mv, deg)
    return _accumulate(weight, unit, last, np.zeros_like(n_1), n_1)


def _next(
    d: int, weight: float, unit: bool, last: bool, s: np.ndarray, mv: np.ndarray, deg: np.ndarray
):
    """After ``N_k = D^-1 W N_{k-1}``: ``[N_k, sum + a_k norm(N_k)]``."""
    return _accumulate(weight, unit, last, s[:, d : 2 * d], _by_degree(mv, deg))


def _by_degree(mv: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """``D^-1 mv``: each row over its node's weighted degree (a node without edges: zero)."""
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return mv * inv.astype(mv.dtype)[:, None]


def _accumulate(
    weight: float, unit: bool, last: bool, total: np.ndarray, mv: np.ndarray
) -> np.ndarray:
    if weight:
        total = total + weight * (row_normalize_l2(mv) if unit else mv)
    if last:  # the sum and a column of ones, whose Gram row holds the column sums
        return np.hstack([total, np.ones((len(mv), 1), mv.dtype)])
    return np.hstack([mv, total])


def _standardise(mean: np.ndarray, scale: np.ndarray, dim: int):
    def step(x: np.ndarray) -> np.ndarray:
        return (x[:, :dim].astype(np.float64) - mean) / scale

    return step


class FastRP:
    """FastRP with the settings of ``embedding.*``; ``seed`` draws the random projection."""

    values = ("w", "w0")

    def __init__(self, cfg: EmbeddingConfig, seed: int):
        self.dim = cfg.dim
        self.weights = tuple(cfg.iteration_weights)
        self.beta = cfg.degree_power
        self.unit = cfg.normalize_iterates
        self.seed = seed

    def prepare(self, backend: Backend) -> None:
        """``W D^beta`` (``w0``): each entry ``w_rc deg_c^beta``, one edge map over the column
        ``deg^beta``.

        ``P = D^-1 W`` is never a matrix of its own: its row scaling needs only the degree of
        each row's own node, which every block holds, so the steps apply it.
        """
        backend.map_rows(partial(_degree_power, self.beta), degree=True)
        backend.edge_map((0, 1), _scaled_by_column)
        backend.map_rows(lambda s: s[:, :0])

    def products(self) -> int:
        return len(self.weights)

    def state_width(self) -> int:
        return 2 * self.dim + 1

    def run(self, backend: Backend) -> None:
        d, q = self.dim, len(self.weights)
        first = partial(_first, self.weights[0], self.unit, q == 1)
        basis = Product("w0", None, first, omega=d, seed=self.seed)
        g = backend.product(basis, (0, d + 1) if q == 1 else None)
        for i in range(1, q):
            step = partial(_next, d, self.weights[i], self.unit, i == q - 1)
            g = backend.product(Product("w", (0, d), step), (0, d + 1) if i == q - 1 else None)
        assert g is not None
        n = g[d, d]
        mean = g[d, :d] / n
        var = np.maximum(np.diag(g)[:d] / n - mean**2, 0.0)
        std = np.sqrt(var)
        # A column with no spread is left centred, as sklearn's scale does.
        backend.map_rows(_standardise(mean, np.where(std > 0, std, 1.0), d))
