"""Per-subgraph math without Spark: ProNE, the randomized SVD, adjacency building, Arrow I/O."""

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest
import scipy.linalg
import scipy.sparse as sp
from distne.config import EmbeddingConfig
from distne.embed import (
    adjacency,
    arrow_to_vectors,
    embed_subgraph,
    subgraph_seed,
    vectors_to_arrow,
)
from distne.embedders.prone import prone, randomized_svd


def test_randomized_svd_matches_dense_svd():
    # A graph-like matrix: community structure gives a decaying spectrum, as in ProNE's use.
    a, _ = _planted(k=12, size=25, p_in=0.4, p_out=0.01, seed=1)
    u, s = randomized_svd(a, 10, n_iter=8, rng=np.random.default_rng(0))
    exact = scipy.linalg.svd(a.toarray(), compute_uv=False)[:10]
    np.testing.assert_allclose(s, exact, rtol=1e-4)
    np.testing.assert_allclose(u.T @ u, np.eye(10), atol=1e-8)


def test_adjacency_matches_networkx_with_arbitrary_ids():
    g = nx.gnm_random_graph(40, 120, seed=3)
    ids = np.array(sorted(g.nodes)) * 7 + 1000  # sparse, non-contiguous ids
    rng = np.random.default_rng(1)
    ids = ids[rng.permutation(len(ids))]  # rows in any order
    mapping = {n: n * 7 + 1000 for n in g.nodes}
    src = np.array([mapping[u] for u, _ in g.edges])
    dst = np.array([mapping[v] for _, v in g.edges])
    a = adjacency(ids, src, dst, np.ones(len(src)))
    inv = {v: k for k, v in mapping.items()}
    oracle = nx.to_scipy_sparse_array(g, nodelist=[inv[i] for i in ids], format="csr")
    assert (a != oracle).nnz == 0


def _planted(k=4, size=40, p_in=0.3, p_out=0.01, seed=7):
    g = nx.planted_partition_graph(k, size, p_in, p_out, seed=seed)
    labels = np.repeat(np.arange(k), size)
    return sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=range(k * size))), labels


def test_prone_separates_planted_communities():
    a, labels = _planted()
    x = prone(a, dim=16, seed=0)
    sims = x @ x.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    diff = labels[:, None] != labels[None, :]
    assert sims[same].mean() > sims[diff].mean() + 0.3
    # nearest neighbour (excluding self) in the same community for nearly every node
    np.fill_diagonal(sims, -np.inf)
    assert (labels[sims.argmax(axis=1)] == labels).mean() > 0.95


def test_prone_is_deterministic_and_seed_sensitive():
    a, _ = _planted()
    x1, x2 = prone(a, dim=16, seed=3), prone(a, dim=16, seed=3)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, prone(a, dim=16, seed=4))


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tiny_subgraphs_give_finite_padded_vectors(n):
    g = nx.path_graph(n)
    a = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=range(n)))
    x = prone(a, dim=8, seed=0)
    assert x.shape == (n, 8) and x.dtype == np.float32
    assert np.isfinite(x).all()


def test_isolated_nodes_get_zero_rows_and_others_unit_rows():
    ids = np.array([1, 2, 3, 4, 99])
    x = embed_subgraph(
        ids, np.array([1, 2, 3]), np.array([2, 3, 4]), np.ones(3), EmbeddingConfig(dim=4), seed=1
    )
    norms = np.linalg.norm(x, axis=1)
    assert norms[-1] == 0.0
    np.testing.assert_allclose(norms[:-1], 1.0, atol=1e-5)


def test_subgraph_seeds_differ_per_key_and_repeat_per_run():
    assert subgraph_seed(1, 0, 5) == subgraph_seed(1, 0, 5)
    assert len({subgraph_seed(1, lv, p) for lv in range(3) for p in range(50)}) == 150


def test_arrow_vectors_round_trip_with_nulls():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    arr = vectors_to_arrow(x)
    assert arr.type == pa.list_(pa.field("element", pa.float32(), nullable=False))
    with_null = pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32()))
    back, valid = arrow_to_vectors(with_null, 2)
    np.testing.assert_array_equal(valid, [True, False, True])
    np.testing.assert_array_equal(back, [[1, 2], [0, 0], [3, 4]])
    back2, _ = arrow_to_vectors(arr, 3)
    np.testing.assert_array_equal(back2, x)


def test_id_gaussian_depends_on_id_and_seed_only():
    from distne.embedders.prone import id_gaussian

    ids = np.arange(20_000) * 3 + 11
    g = id_gaussian(ids, 16, seed=5)
    # The same id gets the same row whatever else is drawn with it.
    np.testing.assert_array_equal(id_gaussian(ids[::-7], 16, 5), g[::-7])
    assert not np.allclose(id_gaussian(ids[:10], 16, 6), g[:10])
    # Standard normal: mean 0, variance 1, and columns uncorrelated.
    assert abs(g.mean()) < 0.01 and abs(g.var() - 1) < 0.01
    c = np.corrcoef(g.T)
    assert np.abs(c - np.eye(16)).max() < 0.03


def test_prone_with_id_draws_ignores_row_order():
    g = nx.powerlaw_cluster_graph(300, 3, 0.3, seed=4)
    ids = np.array(sorted(g.nodes))
    a = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids.tolist()))
    x = prone(a, dim=8, order=4, seed=2, ids=ids)
    perm = np.random.default_rng(0).permutation(len(ids))
    a_p = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids[perm].tolist()))
    x_p = prone(a_p, dim=8, order=4, seed=2, ids=ids[perm])
    np.testing.assert_allclose(x_p, x[perm], atol=1e-5)
