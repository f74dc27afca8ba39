"""Exchange fusion: ProNE over leaf subgraphs equals single-machine ProNE on the whole graph."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import make_config
from distne.embedders.prone import prone
from distne.exchange import embed_exchange

pytestmark = pytest.mark.spark


def _frames(spark, g, parts):
    edges = spark.createDataFrame(
        [
            (int(min(u, v)), int(max(u, v)), float(d.get("weight", 1.0)))
            for u, v, d in g.edges(data=True)
        ],
        "src long, dst long, weight double",
    )
    leaf = spark.createDataFrame([(int(n), int(parts[n])) for n in g.nodes], "id long, part long")
    return edges, leaf


def _whole(g, cfg):
    ids = np.array(sorted(g.nodes))
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids.tolist(), format="csr"))
    e = cfg.embedding
    x = prone(adj, e.dim, e.order, e.mu, e.theta, e.svd_iterations, cfg.seed, ids=ids)
    return ids, x


def _exchanged(spark, g, parts, cfg):
    edges, leaf = _frames(spark, g, parts)
    rows = sorted(embed_exchange(spark, edges, leaf, cfg).collect(), key=lambda r: r["id"])
    return np.array([r["id"] for r in rows]), np.array([r["vec"] for r in rows])


@pytest.mark.parametrize("leaves", [1, 7])
def test_equals_whole_graph_prone(spark, leaves):
    g = nx.powerlaw_cluster_graph(400, 3, 0.3, seed=3)
    g.add_node(1000)  # an isolated node
    for u, v in g.edges:
        g[u][v]["weight"] = 1.0 + (u * v) % 3
    parts = {n: (n * 7919) % leaves for n in g.nodes}
    cfg = make_config("embedding.dim=12")
    ids, want = _whole(g, cfg)
    got_ids, got = _exchanged(spark, g, parts, cfg)
    assert (got_ids == ids).all()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=2e-4)
