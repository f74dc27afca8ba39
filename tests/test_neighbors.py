"""Nearest neighbours by cosine, against a brute-force numpy oracle."""

import numpy as np
import pytest
from distne.errors import InputError
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
