"""How FastRP's defaults were chosen: a grid of its settings against ProNE on validation splits
of the shared graphs, with the engine's own programs on one machine (no Spark).

    .venv/bin/python benchmarks/fastrp_validation.py [--graphs ppi wikipedia-pos ...]

Per graph: 10% of the edges held out (seed 7, one edge of every node kept, as many non-edges
sampled; not the split of ``benchmarks/embedders.py``), every setting embedded on the rest
and scored by the AUC of cosine similarity; node classification (the protocol of
``distne.evaluation.metrics.classify``) on the whole graph's vectors of a seeded half of the
labelled nodes. The programs run on the local backend's ``run_program`` (each derives its
matrices from the weights), so the figures are those of the shipped code. Prints one Markdown
table.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from distne.config import load_config
from distne.embedders import make_program
from distne.engine.local import run_program
from distne.engine.program import build_block
from distne.evaluation.metrics import classify

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "ppi": ("edges.tsv", "communities.tsv"),
    "wikipedia-pos": ("edges.tsv", "communities.tsv"),
    "ca-astroph": ("edges.tsv", None),
    "github-musae": ("edges.csv", "labels.csv"),
}
SEED = 7
GRID = {
    "normalize_iterates": (False, True),
    "degree_power": (-0.628, 0.0, 0.3),
    "iteration_weights": ((1.0, 1.0, 7.81, 45.28), (0.0, 0.0, 1.0, 1.0)),
}


def load(name: str) -> tuple[np.ndarray, sp.csr_matrix, dict[int, list[str]]]:
    """Node ids, the symmetric 0/1 adjacency (self-loops dropped) and the labels by id."""
    edges_file, labels_file = FILES[name]
    folder = DATA / name
    csv = edges_file.endswith(".csv")
    e = np.loadtxt(folder / edges_file, delimiter="," if csv else None, skiprows=int(csv))
    e = e[:, :2].astype(np.int64)
    e = e[e[:, 0] != e[:, 1]]
    ids, at = np.unique(e, return_inverse=True)
    at = at.reshape(-1, 2)
    n = len(ids)
    a = sp.coo_matrix((np.ones(len(at)), (at[:, 0], at[:, 1])), shape=(n, n)).tocsr()
    labels: dict[int, list[str]] = {}
    if labels_file == "communities.tsv":
        for c, line in enumerate((folder / labels_file).read_text().splitlines()):
            for t in line.split():
                labels.setdefault(int(t), []).append(str(c))
    elif labels_file:
        for line in (folder / labels_file).read_text().splitlines()[1:]:
            node, label = line.strip().split(",")
            labels[int(node)] = [label]
    return ids, sp.csr_matrix(((a + a.T) > 0).astype(np.float64)), labels


def split(a: sp.csr_matrix, rng: np.random.Generator, fraction: float = 0.1):
    """Training adjacency, held-out edges and as many sampled non-edges."""
    u = sp.triu(a, 1).tocoo()
    m = len(u.row)
    seen = np.zeros(a.shape[0], bool)
    kept = np.zeros(m, bool)
    for k in rng.permutation(m):  # one edge of every node stays
        i, j = u.row[k], u.col[k]
        if not (seen[i] and seen[j]):
            kept[k] = seen[i] = seen[j] = True
    held = rng.choice(np.flatnonzero(~kept), size=int(fraction * m), replace=False)
    train = np.ones(m, bool)
    train[held] = False
    t = sp.coo_matrix((np.ones(train.sum()), (u.row[train], u.col[train])), shape=a.shape)
    edges = set(zip(u.row.tolist(), u.col.tolist(), strict=True))
    non = []
    while len(non) < len(held):
        i, j = sorted(rng.integers(a.shape[0], size=2).tolist())
        if i != j and (i, j) not in edges:
            non.append((i, j))
    pos = np.stack([u.row[held], u.col[held]], axis=1)
    return sp.csr_matrix(t + t.T), pos, np.array(non)


def auc(x: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = np.concatenate([(x[p[:, 0]] * x[p[:, 1]]).sum(1) for p in (pos, neg)])
    rank = np.empty(len(s))
    rank[np.argsort(s)] = np.arange(1, len(s) + 1)
    return float((rank[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def embed(a: sp.csr_matrix, settings: list[str]) -> np.ndarray:
    """The program ``settings`` configure, on the local backend (the shipped code, its
    matrices derived by the program itself)."""
    cfg = load_config(None, settings)
    program = make_program(cfg.embedding, cfg.seed)
    c = a.tocoo()
    own = np.arange(a.shape[0], dtype=np.int64)
    block = build_block(0, own, c.row.astype(np.int64), c.col.astype(np.int64), None, c.data)
    return run_program(program, block).astype(np.float64)


def score_table(graphs: list[str], runs: dict[str, Callable[[sp.csr_matrix], np.ndarray]]):
    """Print one Markdown row per graph and run: the AUC of the vectors ``runs[name]`` makes
    from the graph's training edges, and the F1 of those it makes from the whole graph on a
    seeded half of the labelled nodes (none for a graph without labels)."""
    print("| graph | run | AUC | Micro-F1 | Macro-F1 |\n|---|---|---|---|---|")
    for graph in graphs:
        ids, a, labels = load(graph)
        rng = np.random.default_rng(SEED)
        train, pos, neg = split(a, rng)
        labelled = np.array([i for i, node in enumerate(ids) if int(node) in labels])
        half = np.sort(rng.permutation(labelled)[: len(labelled) // 2]) if len(labelled) else []
        for name, vectors in runs.items():
            score = auc(vectors(train), pos, neg)
            f1 = {}
            if len(half):
                f1 = classify(vectors(a)[half], [labels[int(ids[i])] for i in half], SEED)
            micro, macro = (f"{f1[k]:.4f}" if f1 else "—" for k in ("micro_f1", "macro_f1"))
            print(f"| {graph} | {name} | {score:.4f} | {micro} | {macro} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", nargs="+", default=list(FILES))
    args = ap.parse_args()
    settings = {"ProNE (default)": []}
    for normalize, beta, weights in itertools.product(*GRID.values()):
        name = f"FastRP norm={normalize} beta={beta} weights={list(weights)}"
        settings[name] = [
            "embedding.method=fastrp",
            f"embedding.normalize_iterates={str(normalize).lower()}",
            f"embedding.degree_power={beta}",
            f"embedding.iteration_weights={list(weights)}",
        ]
    score_table(args.graphs, {k: partial(embed, settings=v) for k, v in settings.items()})


if __name__ == "__main__":
    main()
