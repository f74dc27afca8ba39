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


@pytest.mark.parametrize("string_ids", [False, True])
def test_top_k_by_cosine_matches_brute_force(spark, tmp_path, string_ids):
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs[7] = 0.0  # a zero vector has no direction: never a neighbour
    ids = [f"n{i}" if string_ids else i * 10 for i in range(300)]
    _table(spark, tmp_path / "emb", ids, vecs)
    queries = [ids[0], ids[42], ids[299]]
    got = nearest(spark, str(tmp_path / "emb"), [str(q) for q in queries], k=5)

    v = vecs.astype(np.float64)
    norms = np.linalg.norm(v, axis=1)
    for q in queries:
        i = ids.index(q)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = v @ v[i] / (norms * norms[i])
        cos[i] = -np.inf
        cos[7] = -np.inf
        want = np.argsort(-cos, kind="stable")[:5]
        hits = got[str(q)]
        assert [h["node_id"] for h in hits] == [ids[j] for j in want]
        np.testing.assert_allclose([h["score"] for h in hits], cos[want], rtol=1e-5)


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
