"""``distne.embed_graph``: a GraphFrame or an edges DataFrame in, vectors out, no table."""

import distne
import numpy as np
import pytest
from conftest import SAMPLE_PPI, graphframes_jar, make_config
from deltalake import DeltaTable
from distne.errors import InputError

pytestmark = pytest.mark.spark

SETTINGS = ["embedding.dim=16"]


def _ppi_edges(spark):
    return (
        spark.read.option("sep", "\t")
        .schema("src long, dst long")
        .csv(str(SAMPLE_PPI / "edges.tsv"))
    )


def _by_id(frame) -> dict:
    return {r["id"]: np.asarray(r["embedding"]) for r in frame.collect()}


@pytest.fixture(scope="module")
def from_frame(spark):
    """The PPI edges as a DataFrame, embedded by the API."""
    vectors = distne.embed_graph(spark, _ppi_edges(spark), make_config(*SETTINGS))
    assert vectors.columns == ["id", "subgraph_id", "embedding"]
    return _by_id(vectors)


def test_a_dataframe_of_edges_gets_the_vectors_a_run_writes(spark, tmp_path, from_frame):
    """The same edges through ``distne run`` (a text file, a Delta table) give the same
    vectors, bit for bit: the API is the pipeline without the write."""
    out = tmp_path / "emb"
    distne.run(
        spark,
        make_config(*SETTINGS, f"input.path={SAMPLE_PPI / 'edges.tsv'}", f"output.path={out}"),
    )
    table = DeltaTable(str(out)).to_pyarrow_table()
    written = dict(
        zip(
            table.column("node_id").to_pylist(),
            (np.asarray(v) for v in table.column("embedding").to_pylist()),
            strict=True,
        )
    )
    assert written.keys() == from_frame.keys() and len(written) == 3860
    assert all(np.array_equal(written[k], from_frame[k]) for k in written)
    assert all(v.shape == (16,) and np.isfinite(v).all() for v in written.values())


def test_settings_are_config_keys_with_double_underscores(spark, from_frame):
    """``embedding__dim=8`` is ``embedding.dim=8``; the rest of the config is the one given."""
    vectors = _by_id(
        distne.embed_graph(spark, _ppi_edges(spark), make_config(*SETTINGS), embedding__dim=8)
    )
    assert vectors.keys() == from_frame.keys()
    assert {v.shape for v in vectors.values()} == {(8,)}


@pytest.mark.skipif(
    graphframes_jar() is None,
    reason="GraphFrames' jar is not in the local Maven repository (setup.sh installs it)",
)
def test_a_graphframe_with_edge_attributes_and_a_lone_vertex(spark, from_frame):
    """A GraphFrame's edges carry attribute columns (ignored) and its vertices may include
    one without edges (no vector: nothing to embed it by); the others' vectors equal the
    DataFrame's."""
    from graphframes import GraphFrame
    from pyspark.sql import functions as F

    edges = _ppi_edges(spark).withColumn("relationship", F.lit("interacts"))
    lone = spark.createDataFrame([(10**9,)], "id long")
    vertices = edges.select(F.col("src").alias("id")).union(edges.select("dst")).union(lone)
    g = GraphFrame(vertices.distinct(), edges)
    assert g.inDegrees.count() > 0  # a working GraphFrame: its JVM side answers
    vectors = _by_id(distne.embed_graph(spark, g, make_config(*SETTINGS)))
    assert 10**9 not in vectors
    assert vectors.keys() == from_frame.keys()
    assert all(np.array_equal(vectors[k], from_frame[k]) for k in vectors)


def test_what_is_not_a_graph_is_refused_by_name(spark):
    with pytest.raises(
        InputError, match="expected a GraphFrame or a DataFrame of edges; found dict"
    ):
        distne.embed_graph(spark, {"src": [1], "dst": [2]})
    no_dst = spark.createDataFrame([(1, 2)], "src long, target long")
    with pytest.raises(InputError, match=r"input edges DataFrame: column\(s\) \['dst'\] missing"):
        distne.embed_graph(spark, no_dst)


@pytest.mark.skipif(
    graphframes_jar() is None,
    reason="GraphFrames' jar is not in the local Maven repository (setup.sh installs it)",
)
def test_connected_components_in_the_summary_match_networkx(spark, tmp_path):
    import networkx as nx

    pairs = [
        tuple(line.split()[:2]) for line in (SAMPLE_PPI / "edges.tsv").read_text().splitlines()
    ]
    g = nx.Graph((a, b) for a, b in pairs if a != b)
    want = sorted((len(c) for c in nx.connected_components(g)), reverse=True)
    summary = distne.run(
        spark,
        make_config(
            *SETTINGS,
            "runtime.components=true",
            f"input.path={SAMPLE_PPI / 'edges.tsv'}",
            f"output.path={tmp_path / 'emb'}",
        ),
    )
    assert summary.components == {"components": len(want), "largest": want[0]}
    assert "components       " in summary.render()
