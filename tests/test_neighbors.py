"""Nearest neighbours by cosine, against a brute-force numpy oracle; exports read back."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from distne.errors import InputError, OutputError
from distne.export import ExportFormat, export
from distne.neighbors import nearest

pytestmark = pytest.mark.spark


def _table(spark, path, ids, vecs):
    rows = [(i, 0, [float(x) for x in v]) for i, v in zip(ids, vecs, strict=True)]
    schema = f"node_id {'long' if isinstance(ids[0], int) else 'string'}, subgraph_id long, "
    spark.createDataFrame(rows, schema + "embedding array<float>").repartition(3).write.format(
        "delta"
    ).save(str(path))


def _brute_force(vecs, i, k):
    """Indices of the ``k`` rows most like row ``i`` by cosine, and their cosines."""
    v = vecs.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = v @ v[i] / (norms * norms[i])
    cos[i] = -np.inf
    cos[~np.isfinite(cos)] = -np.inf
    want = np.argsort(-cos, kind="stable")[:k]
    return want, cos[want]


# Approximate with every cell probed searches every row: it must give the exact answer.
METHODS = [{"method": "exact"}, {"method": "approximate", "cells": 7, "probes": 7}]


@pytest.mark.parametrize("how", METHODS, ids=["exact", "approximate-all-cells"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_top_k_by_cosine_matches_brute_force(spark, tmp_path, string_ids, how):
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs[7] = 0.0  # a zero vector has no direction: never a neighbour
    ids = [f"n{i}" if string_ids else i * 10 for i in range(300)]
    _table(spark, tmp_path / "emb", ids, vecs)
    queries = [ids[0], ids[42], ids[299]]
    got = nearest(spark, str(tmp_path / "emb"), [str(q) for q in queries], k=5, **how)

    for q in queries:
        want, cos = _brute_force(vecs, ids.index(q), 5)
        hits = got[str(q)]
        assert [h["node_id"] for h in hits] == [ids[j] for j in want]
        np.testing.assert_allclose([h["score"] for h in hits], cos, rtol=1e-5)


def test_approximate_search_finds_the_neighbours_in_the_cells_it_probes(spark, tmp_path):
    """Six tight groups far apart, six cells: k-means puts each group in a cell of its own,
    so probing one cell finds each node's neighbours exactly; the batch answers every query
    in one search."""
    rng = np.random.default_rng(5)
    centres = np.eye(16)[:6] * 10
    vecs = np.concatenate([c + rng.normal(scale=0.5, size=(40, 16)) for c in centres])
    vecs = vecs.astype(np.float32)
    ids = list(range(len(vecs)))
    _table(spark, tmp_path / "emb", ids, vecs)
    asked = [str(i) for i in range(0, 240, 7)]
    got = nearest(spark, str(tmp_path / "emb"), asked, k=4, method="approximate", cells=6, probes=1)
    assert list(got) == asked
    for q in asked:
        want, cos = _brute_force(vecs, int(q), 4)
        assert [h["node_id"] for h in got[q]] == [ids[j] for j in want]
        np.testing.assert_allclose([h["score"] for h in got[q]], cos, rtol=1e-5)


def test_neighbors_cli_prints_each_asked_node_with_its_neighbours(spark, tmp_path, capsys):
    import json

    from distne import cli

    vecs = np.random.default_rng(9).normal(size=(50, 8)).astype(np.float32)
    _table(spark, tmp_path / "emb", list(range(50)), vecs)
    (tmp_path / "ids.txt").write_text("3\n17\n")
    argv = [
        "neighbors",
        "--embeddings",
        str(tmp_path / "emb"),
        "--nodes",
        str(tmp_path / "ids.txt"),
    ]
    assert cli.main([*argv, "-k", "3", "--method", "exact"], default_master="local[2]") == 0
    printed = json.loads(capsys.readouterr().out)
    assert [p["node_id"] for p in printed] == ["3", "17"]
    for p in printed:
        want, _ = _brute_force(vecs, int(p["node_id"]), 3)
        assert [h["node_id"] for h in p["neighbors"]] == list(want)


def test_ids_not_in_the_table_are_named(spark, tmp_path):
    _table(spark, tmp_path / "emb", [1, 2, 3], np.eye(3, dtype=np.float32))
    with pytest.raises(InputError, match=r"found no row for '9', '8'"):
        nearest(spark, str(tmp_path / "emb"), ["1", "9", "8"])
    assert nearest(spark, str(tmp_path / "emb"), ["1"], k=10)["1"][0]["score"] == 0.0


def _read_word2vec(path):
    lines = path.read_text().splitlines()
    rows, dim = (int(x) for x in lines[0].split())
    body = [line.split(" ") for line in lines[1:]]
    return rows, dim, {b[0]: np.array(b[1:], dtype=np.float64).astype(np.float32) for b in body}


@pytest.mark.parametrize("string_ids", [False, True])
def test_word2vec_export_reads_back_to_the_same_floats(spark, tmp_path, string_ids):
    """One file, header ``rows dim``, then one line per node: the numbers parse back to the
    table's float32 values exactly (tiny and huge magnitudes included)."""
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(200, 8)).astype(np.float32)
    vecs[0, :3] = [1e-30, -3.4e38, 0.0]
    ids = [f"n{i}" if string_ids else i for i in range(200)]
    _table(spark, tmp_path / "emb", ids, vecs)
    out = tmp_path / "vectors.txt"
    done = export(spark, str(tmp_path / "emb"), ExportFormat.WORD2VEC, str(out))
    assert (done["rows"], done["dim"]) == (200, 8)
    rows, dim, got = _read_word2vec(out)
    assert (rows, dim) == (200, 8) and len(got) == 200
    for i, v in zip(ids, vecs, strict=True):
        assert np.array_equal(got[str(i)], v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb", "vectors.txt"]


def test_exports_refuse_an_existing_path_and_ids_word2vec_cannot_hold(spark, tmp_path):
    _table(spark, tmp_path / "emb", ["a b", "c"], np.eye(2, dtype=np.float32))
    with pytest.raises(InputError, match="an id that is empty or holds whitespace: 'a b'"):
        export(spark, str(tmp_path / "emb"), ExportFormat.WORD2VEC, str(tmp_path / "v.txt"))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError, match="expected a path that does not exist yet"):
        export(spark, str(tmp_path / "emb"), ExportFormat.PARQUET, str(tmp_path / "taken"))
    export(spark, str(tmp_path / "emb"), ExportFormat.PARQUET, str(tmp_path / "pq"))
    t = pq.read_table(tmp_path / "pq").to_pydict()
    assert sorted(t["node_id"]) == ["a b", "c"] and t.keys() == {
        "node_id",
        "subgraph_id",
        "embedding",
    }
