"""The engine's math without Spark: ProNE as a program on the local backend, against a plain
single-machine ProNE (tests/prone_reference.py), scipy and networkx."""

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest
import scipy.linalg
import scipy.sparse as sp
from distne.baselines.per_subgraph import subgraph_seed
from distne.config import EmbeddingConfig
from distne.embedders import make_program
from distne.engine.local import run_program
from distne.engine.program import build_block, id_gaussian
from distne.graph import arrow_to_vectors, vectors_to_arrow
from prone_reference import local_block, prone, randomized_svd


def _planted(k=4, size=40, p_in=0.3, p_out=0.01, seed=7):
    g = nx.planted_partition_graph(k, size, p_in, p_out, seed=seed)
    labels = np.repeat(np.arange(k), size)
    return sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=range(k * size))), labels


def _embed(adj, dim, seed=0, ids=None, **kw):
    return run_program(make_program(EmbeddingConfig(dim=dim, **kw), seed), local_block(adj, ids))


def test_reference_randomized_svd_matches_dense_svd():
    # The oracle itself: a graph-like matrix with a decaying spectrum, as in ProNE's use.
    a, _ = _planted(k=12, size=25, p_in=0.4, p_out=0.01, seed=1)
    u, s = randomized_svd(a, 10, n_iter=8, rng=np.random.default_rng(0))
    exact = scipy.linalg.svd(a.toarray(), compute_uv=False)[:10]
    np.testing.assert_allclose(s, exact, rtol=1e-4)
    np.testing.assert_allclose(u.T @ u, np.eye(10), atol=1e-8)


@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_program_equals_plain_prone_on_one_machine(order):
    g = nx.powerlaw_cluster_graph(300, 3, 0.3, seed=4)
    for u, v in g.edges:
        g[u][v]["weight"] = 1.0 + (u + v) % 4
    ids = np.array(sorted(g.nodes)) * 5 + 7  # sparse ids: the basis is drawn per id
    a = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=sorted(g.nodes)))
    cfg = dict(order=order, svd_iterations=3)
    want = prone(a, 16, order=order, svd_iterations=3, seed=2, ids=ids)
    got = _embed(a, 16, seed=2, ids=ids, **cfg)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_block_matrix_matches_networkx_with_arbitrary_ids():
    g = nx.gnm_random_graph(40, 120, seed=3)
    mapping = {n: n * 7 + 1000 for n in g.nodes}  # sparse, non-contiguous ids
    src = np.array([mapping[u] for u, v in g.edges] + [mapping[v] for u, v in g.edges])
    dst = np.array([mapping[v] for u, v in g.edges] + [mapping[u] for u, v in g.edges])
    rng = np.random.default_rng(1)
    own = np.array(list(mapping.values()))[rng.permutation(40)]  # rows given in any order
    ones = np.ones(len(src))
    b = build_block(0, own, src, dst, None, ones)
    oracle = nx.to_scipy_sparse_array(g, nodelist=sorted(g.nodes), format="csr")
    assert (b.own == np.sort(own)).all() and len(b.halo) == 0
    assert (b.matrices["w"] != oracle).nnz == 0
    np.testing.assert_array_equal(b.degree, np.asarray(oracle.sum(axis=1)).ravel())


def test_block_puts_outside_neighbours_in_the_halo():
    # Leaf 0 holds nodes 1, 2; node 3 lives in leaf 5. Edges 1-2, 2-3 (out-edges of 1 and 2).
    src, dst = np.array([1, 2, 2]), np.array([2, 1, 3])
    ones = np.ones(3)
    b = build_block(0, np.array([2, 1]), src, dst, np.array([0, 0, 5]), ones)
    assert b.halo.tolist() == [3] and b.halo_part.tolist() == [5]
    np.testing.assert_array_equal(b.matrices["w"].toarray(), [[0, 1, 0], [1, 0, 1]])


def test_prone_separates_planted_communities():
    a, labels = _planted()
    x = _embed(a, 16)
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
    x1, x2 = _embed(a, 16, seed=3), _embed(a, 16, seed=3)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, _embed(a, 16, seed=4))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_tiny_graphs_give_finite_padded_vectors(n):
    a = sp.csr_matrix(nx.to_scipy_sparse_array(nx.path_graph(n), nodelist=range(n)))
    x = _embed(a, 8)
    assert x.shape == (n, 8) and x.dtype == np.float32
    assert np.isfinite(x).all()


def test_isolated_nodes_get_zero_rows_and_others_unit_rows():
    ids = np.array([1, 2, 3, 4, 99])
    src, dst = np.array([1, 2, 3, 2, 3, 4]), np.array([2, 3, 4, 1, 2, 3])
    ones = np.ones(6)
    block = build_block(0, ids, src, dst, None, ones)
    x = run_program(make_program(EmbeddingConfig(dim=4), 1), block)
    norms = np.linalg.norm(np.nan_to_num(x), axis=1)
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
    ids = np.arange(20_000) * 3 + 11
    g = id_gaussian(ids, 16, seed=5)
    # The same id gets the same row whatever else is drawn with it.
    np.testing.assert_array_equal(id_gaussian(ids[::-7], 16, 5), g[::-7])
    assert not np.allclose(id_gaussian(ids[:10], 16, 6), g[:10])
    # Standard normal: mean 0, variance 1, and columns uncorrelated.
    assert abs(g.mean()) < 0.01 and abs(g.var() - 1) < 0.01
    c = np.corrcoef(g.T)
    assert np.abs(c - np.eye(16)).max() < 0.03


def test_index_of_finds_every_id_by_table_or_by_search():
    """``index_of`` looks compact ids up in a table and searches spread ones: both give each
    id's position among the keys, as a dictionary does."""
    from distne.engine.program import index_of

    rng = np.random.default_rng(3)
    compact = rng.permutation(np.arange(50, 3000))  # a whole graph's dense ids, any order
    spread = rng.choice(10**12, 4000, replace=False)  # a leaf's ids among many
    for keys in (compact, spread, np.array([7], dtype=np.int64)):
        ids = rng.choice(keys, 10000)
        where = {int(k): i for i, k in enumerate(keys)}
        np.testing.assert_array_equal(index_of(keys, ids), [where[int(x)] for x in ids])
    assert len(index_of(np.array([], dtype=np.int64), np.array([], dtype=np.int64))) == 0
