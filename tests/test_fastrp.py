"""FastRP on the engine: the local backend and the exchange over any leaves equal a plain
scipy FastRP of the whole graph (tests/fastrp_reference.py); its settings are checked."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import embed_over_leaves, embed_whole, make_config
from distne.config import ConfigError, EmbedderKind, Transport
from distne.embedders import make_program
from fastrp_reference import fastrp


def _graph():
    g = nx.powerlaw_cluster_graph(300, 3, 0.3, seed=5)
    g.add_node(1000)  # an isolated node: a zero row before standardising
    for u, v in g.edges:
        g[u][v]["weight"] = 1.0 + (u + v) % 4
    return g


def _case(*settings: str):
    """The graph, a FastRP config with ``settings``, its node ids and the oracle's vectors."""
    g = _graph()
    cfg = make_config(
        "embedding.method=fastrp",
        "embedding.dim=16",
        "embedding.iteration_weights=[0.5, 1.0, 4.0]",
        "embedding.degree_power=-0.5",
        *settings,
    )
    ids = np.array(sorted(g.nodes))
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids.tolist(), format="csr"))
    e = cfg.embedding
    want = fastrp(
        adj, e.dim, e.iteration_weights, e.degree_power, cfg.seed, ids, e.normalize_iterates
    )
    return g, cfg, ids, want


@pytest.fixture(scope="module")
def case():
    return _case()  # iterates normalised, the default


@pytest.mark.spark
@pytest.mark.parametrize("normalize", [True, False])
def test_local_backend_equals_plain_fastrp(spark, normalize):
    g, cfg, ids, want = _case(f"embedding.normalize_iterates={str(normalize).lower()}")
    assert cfg.embedding.normalize_iterates is normalize
    got_ids, got = embed_whole(spark, g, make_program(cfg.embedding, cfg.seed))
    assert (got_ids == ids).all()
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(got.mean(axis=0), 0, atol=1e-4)  # standardised columns
    np.testing.assert_allclose(got.std(axis=0), 1, atol=1e-4)


@pytest.mark.spark
@pytest.mark.parametrize(
    "leaves, transport",
    [(1, Transport.BARRIER), (7, Transport.BARRIER), (7, Transport.SHUFFLE)],
)
def test_exchange_equals_plain_fastrp_whatever_the_leaves(spark, case, leaves, transport):
    g, cfg, ids, want = case
    got_ids, got = embed_over_leaves(spark, g, cfg, leaves, transport=transport)
    assert (got_ids == ids).all()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_fastrp_settings_are_read_and_checked():
    cfg = make_config("embedding.method=fastrp", "embedding.iteration_weights=[0, 1, 2]")
    assert cfg.embedding.method is EmbedderKind.FASTRP
    assert cfg.embedding.iteration_weights == (0.0, 1.0, 2.0)
    assert make_program(cfg.embedding, cfg.seed).products() == 3
    with pytest.raises(ConfigError, match=r"embedding.order is a setting of .*=prone"):
        make_config("embedding.method=fastrp", "embedding.order=4")
    with pytest.raises(ConfigError, match=r"embedding.degree_power is a setting of .*fastrp"):
        make_config("embedding.degree_power=-0.5")  # the default method is prone
    with pytest.raises(ConfigError, match=r"embedding.iteration_weights must be a non-empty"):
        make_config("embedding.method=fastrp", "embedding.iteration_weights=[]")
    with pytest.raises(ConfigError, match=r"embedding.iteration_weights must be .*not all zero"):
        make_config("embedding.method=fastrp", "embedding.iteration_weights=[0, 0]")
    with pytest.raises(ConfigError, match=r"embedding.normalize_iterates is a setting of .*fastrp"):
        make_config("embedding.normalize_iterates=false")
    with pytest.raises(ConfigError, match=r"embedding.iteration_weights\[1\] must be a number"):
        make_config("embedding.method=fastrp", "embedding.iteration_weights=[1, x]")
    with pytest.raises(ConfigError, match=r"embedding.degree_power must be a finite number"):
        make_config("embedding.method=fastrp", "embedding.degree_power=.nan")


@pytest.mark.spark
@pytest.mark.slow
def test_a_fastrp_run_writes_the_same_vectors_partitioned_or_whole(spark, tmp_path):
    from conftest import SAMPLE_PPI
    from deltalake import DeltaTable
    from distne.pipeline import run

    def vectors(out, *sets):
        cfg = make_config(
            f"input.path={SAMPLE_PPI / 'edges.tsv'}",
            f"output.path={out}",
            "embedding.method=fastrp",
            "embedding.dim=32",
            *sets,
        )
        summary = run(spark, cfg)
        t = DeltaTable(str(out)).to_pyarrow_table()
        ids = np.array(t.column("node_id").to_pylist())
        order = np.argsort(ids)
        return summary, ids[order], np.array(t.column("embedding").to_pylist())[order]

    whole, ids, x = vectors(tmp_path / "whole", "run.mode=local")
    parts, ids_p, x_p = vectors(tmp_path / "parts", "partition.max_nodes=500")
    assert whole.mode == "local" and parts.mode == "exchange" and parts.leaf_subgraphs >= 8
    assert (ids == ids_p).all() and len(ids) == whole.nodes
    np.testing.assert_allclose(x_p, x, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-3)
