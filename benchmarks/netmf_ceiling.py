"""What NetMF could gain over ProNE at best: the exact NetMF matrix (dense, so small graphs
only), its rank-``dim`` factorisation, with and without ProNE's spectral propagation, against
ProNE, on the validation splits of ``fastrp_validation.py``. No Spark.

    .venv/bin/python benchmarks/netmf_ceiling.py [--graphs ppi wikipedia-pos] [--windows 1 10]

NetMF (Qiu et al., WSDM 2018): ``M = vol(G) / (b T) * (sum_{r=1..T} P^r) D^-1`` with
``P = D^-1 A``, then ``log max(M, 1)`` entry-wise and the top ``dim`` singular pairs,
``U sqrt(S)``; ``T = 1`` is LINE's matrix, ``T = 10`` DeepWalk's. A sampled sparse version
(NetSMF, LightNE) approximates this matrix, so these figures bound what it can reach; the
propagation is ProNE's own (``Prone.spectral_propagation`` on the local backend). Dense
``n x n`` arithmetic: PPI and Wikipedia-POS take seconds, GitHub (37,700 nodes) would need
~11 GB per matrix and is not run.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
from distne.config import load_config
from distne.embedders import make_program
from distne.engine.local import LocalBackend
from distne.engine.program import build_block
from fastrp_validation import SEED, embed, score_table

DIM = 128


def netmf(a: sp.csr_matrix, window: int, negative: float = 1.0, dim: int = DIM) -> np.ndarray:
    """Exact NetMF vectors of the graph ``a`` (dense arithmetic)."""
    dense = a.toarray()
    deg = dense.sum(axis=1)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    p = inv[:, None] * dense
    total, power = np.zeros_like(dense), np.eye(len(dense))
    for _ in range(window):
        power = power @ p
        total += power
    m = np.log(np.maximum(deg.sum() / (negative * window) * total * inv[None, :], 1.0))
    u, s, _ = sp.linalg.svds(sp.csr_matrix(m), k=min(dim, len(m) - 1), random_state=SEED)
    return u * np.sqrt(s)


def propagated(a: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """``x`` through ProNE's spectral propagation (the default settings) on ``a``."""
    cfg = load_config(None, [])
    program = make_program(cfg.embedding, cfg.seed)
    c = a.tocoo()
    own = np.arange(a.shape[0], dtype=np.int64)
    r, col = c.row.astype(np.int64), c.col.astype(np.int64)
    backend = LocalBackend(build_block(0, own, r, col, None, c.data))
    backend.x = np.ascontiguousarray(x, dtype=np.float32)
    program.spectral_propagation(backend)
    return backend.x[:, :DIM].astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", nargs="+", default=["ppi", "wikipedia-pos"])
    ap.add_argument("--windows", nargs="+", type=int, default=[1, 10])
    args = ap.parse_args()
    runs = {"ProNE (default)": lambda m: embed(m, [])}
    for t in args.windows:
        runs[f"NetMF T={t}"] = lambda m, t=t: netmf(m, t)
        runs[f"NetMF T={t} + propagation"] = lambda m, t=t: propagated(m, netmf(m, t))
    score_table(args.graphs, runs)


if __name__ == "__main__":
    main()
