"""Evaluate: link prediction and node classification on an embeddings table.

Protocol (shared/DESIGN.md, so figures compare):
- Link prediction: score a pair by the cosine of its two vectors; ROC-AUC of held-out edges
  against as many non-edges. Reported on all pairs and, when the table has ``subgraph_id``,
  on the *cross* pairs: positives and negatives whose endpoints lie in different leaf
  subgraphs (the pairs a per-subgraph frame cannot score).
- Node classification: one-vs-rest logistic regression on L2-normalised vectors, 50% of
  labelled nodes for training, each test node predicted with as many labels as it truly has;
  Micro- and Macro-F1 averaged over two seeded splits.

Scores are computed in Spark; only (score, label) pairs and labelled nodes' vectors reach the
driver, each capped (``max_pairs``, ``max_labelled``) by a seeded sample.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import InputConfig
from distne.errors import InputError
from distne.ingest import dense_index, looks_binary, read_edges
from distne.sparkutil import hash_bucket, uniform


def read_embeddings(spark: SparkSession, path: str) -> DataFrame:
    """The embeddings table with ``node_id`` as string (ids compare as text across files)."""
    from distne.write import open_embeddings

    df = open_embeddings(spark, path)
    if "node_id" not in df.columns or "embedding" not in df.columns:
        raise InputError(
            f"embeddings {path!r}: expected columns node_id and embedding; found {df.columns}."
        )
    cols = [F.col("node_id").cast("string").alias("node_id"), "embedding"]
    if "subgraph_id" in df.columns:
        cols.append("subgraph_id")
    return df.select(*cols)


def _cosine(a: str, b: str) -> F.Column:
    dot = F.aggregate(
        F.zip_with(F.col(a), F.col(b), lambda x, y: x * y), F.lit(0.0), lambda s, v: s + v
    )
    na = F.sqrt(F.aggregate(F.col(a), F.lit(0.0), lambda s, v: s + v * v))
    nb = F.sqrt(F.aggregate(F.col(b), F.lit(0.0), lambda s, v: s + v * v))
    return F.when((na > 0) & (nb > 0), dot / (na * nb)).otherwise(F.lit(0.0))


def sample_non_edges(
    nodes: DataFrame, n: int, count: int, exclude: DataFrame, seed: int
) -> DataFrame:
    """``count`` uniformly random node pairs (``u < v`` by dense id) that are not in ``exclude``.

    Args:
        nodes: ``idx`` (dense 0..n-1) and ``node_id``.
        exclude: ``a``, ``b`` pairs of ``node_id`` (either orientation) to avoid.
    """
    spark = nodes.sparkSession
    draws = (
        spark.range(int(count * 1.3) + 100)
        .select(
            "id",
            hash_bucket(seed, n, F.col("id"), F.lit(0)).alias("i"),
            hash_bucket(seed, n, F.col("id"), F.lit(1)).alias("j"),
        )
        .where(F.col("i") != F.col("j"))
    )
    pairs = draws.select(
        "id", F.least("i", "j").alias("i"), F.greatest("i", "j").alias("j")
    ).dropDuplicates(["i", "j"])
    named = pairs.join(
        nodes.select(F.col("idx").alias("i"), F.col("node_id").alias("a")), "i"
    ).join(nodes.select(F.col("idx").alias("j"), F.col("node_id").alias("b")), "j")
    ex = exclude.select("a", "b").union(
        exclude.select(F.col("b").alias("a"), F.col("a").alias("b"))
    )
    return named.join(ex, ["a", "b"], "left_anti").orderBy("id").limit(count).select("a", "b")


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def link_prediction(
    spark: SparkSession,
    embeddings_path: str,
    test_edges_path: str,
    seed: int = 42,
    max_pairs: int = 2_000_000,
    subgraphs_path: str | None = None,
) -> dict[str, object]:
    """ROC-AUC of held-out edges against non-edges, scored by cosine similarity.

    ``test_edges_path`` holds pairs ``src, dst`` and optionally ``label`` (1 edge, 0 non-edge,
    as ``distne split`` writes them). Without labels, every pair is a positive and as many
    uniformly random node pairs of the table (minus the positives) are the negatives.
    ``subgraphs_path``, if given, is another distne table whose ``subgraph_id`` decides which
    pairs are cross pairs (instead of this table's own).
    """
    emb = read_embeddings(spark, embeddings_path)
    if subgraphs_path:
        other = read_embeddings(spark, subgraphs_path)
        if "subgraph_id" not in other.columns:
            raise InputError(
                f"subgraphs {subgraphs_path!r}: expected a subgraph_id column; "
                f"found {other.columns}."
            )
        emb = emb.select("node_id", "embedding").join(
            other.select("node_id", "subgraph_id"), "node_id"
        )
    has_sub = "subgraph_id" in emb.columns
    raw = _read_pairs(spark, test_edges_path)
    if "label" not in raw.columns:
        nodes = index_nodes(emb.select("node_id"))
        n = nodes.count()
        pos = raw.select("a", "b").distinct()
        neg = sample_non_edges(nodes, n, pos.count(), pos, seed)
        raw = pos.withColumn("label", F.lit(1)).union(neg.withColumn("label", F.lit(0)))
    total = raw.count()
    if total > max_pairs:
        raw = raw.where(uniform(seed, F.col("a"), F.col("b")) < max_pairs / total)
        total = raw.count()
    ea = emb.select(
        F.col("node_id").alias("a"),
        F.col("embedding").alias("ea"),
        *([F.col("subgraph_id").alias("sa")] if has_sub else []),
    )
    eb = emb.select(
        F.col("node_id").alias("b"),
        F.col("embedding").alias("eb"),
        *([F.col("subgraph_id").alias("sb")] if has_sub else []),
    )
    joined = raw.join(ea, "a").join(eb, "b")
    cross = (F.col("sa") != F.col("sb")) if has_sub else F.lit(False)
    rows = joined.select(_cosine("ea", "eb").alias("s"), "label", cross.alias("x")).collect()
    scores = np.array([r["s"] for r in rows], dtype=np.float64)
    labels = np.array([r["label"] for r in rows], dtype=np.int64)
    xs = np.array([r["x"] for r in rows], dtype=bool)
    result: dict[str, object] = {
        "pairs": len(rows),
        "positives": int(labels.sum()),
        "pairs_without_vectors": total - len(rows),
        "auc": _auc(labels, scores),
    }
    if has_sub:
        result["cross_pairs"] = int(xs.sum())
        result["cross_positives"] = int(labels[xs].sum())
        result["auc_cross"] = _auc(labels[xs], scores[xs]) if xs.any() else None
    return result


def index_nodes(node_ids: DataFrame) -> DataFrame:
    """``idx`` (dense 0..n-1) and ``node_id`` (string) for the distinct ids given."""
    return dense_index(node_ids, T.StringType(), "idx")


def _read_pairs(spark: SparkSession, path: str) -> DataFrame:
    """Test pairs as ``a, b`` (strings) and ``label`` if the file has one."""
    lower = path.lower().rstrip("/")
    is_csv = lower.endswith(".csv") or _is_csv_folder(path)
    if is_csv:
        df = spark.read.option("header", True).csv(path)
        if len(df.columns) < 2:
            raise InputError(
                f"test edges {path!r}: expected columns src,dst[,label]; found {df.columns}."
            )
        a, b = df.columns[0], df.columns[1]
        cols = [F.col(a).alias("a"), F.col(b).alias("b")]
        if "label" in df.columns:
            cols.append(F.col("label").cast("int").alias("label"))
        out = df.select(*cols)
    else:
        out = read_edges(spark, InputConfig(path=path)).frame.select(
            F.col("src").alias("a"), F.col("dst").alias("b")
        )
    if out.limit(1).count() == 0:
        raise InputError(f"test edges {path!r}: expected at least one pair; found none.")
    return out


def _is_csv_folder(path: str) -> bool:
    import os

    p = path.removeprefix("file://")
    if not os.path.isdir(p):
        return False
    files = [f for f in os.listdir(p) if not f.startswith((".", "_"))]
    return bool(files) and all(f.endswith(".csv") for f in files)


LABELS_TEXT = (
    "expected text (communities.tsv: one community's node ids per line, or an id,label CSV)"
)


def read_labels(path: str) -> dict[str, list[str]]:
    """Node labels from ``communities.tsv`` (one class per line: its members' ids) or a CSV
    ``id,label`` (a node may appear on several rows)."""
    import csv

    labels: dict[str, list[str]] = {}
    try:
        if looks_binary(path):
            raise InputError(f"labels {path!r}: {LABELS_TEXT}; found binary data (NUL byte).")
        with open(path, newline="") as fh:
            if path.lower().endswith(".csv"):
                reader = csv.reader(fh)
                header = next(reader, None)
                if not header or len(header) < 2:
                    raise InputError(
                        f"labels {path!r}: expected a header 'id,label'; found {header}."
                    )
                for lineno, row in enumerate(reader, start=2):
                    if len(row) < 2:
                        raise InputError(
                            f"labels {path!r} line {lineno}: expected 'id,label'; found {row}."
                        )
                    labels.setdefault(row[0].strip(), []).append(row[1].strip())
            else:
                for cls, line in enumerate(fh):
                    for node in line.split():
                        labels.setdefault(node, []).append(str(cls))
    except FileNotFoundError:
        raise InputError(f"labels {path!r}: no such file.") from None
    except IsADirectoryError:
        raise InputError(
            f"labels {path!r}: expected a file (communities.tsv or id,label CSV); found a folder."
        ) from None
    except UnicodeDecodeError as e:
        reason = f"found binary data ({e.reason})"
        raise InputError(f"labels {path!r}: {LABELS_TEXT}; {reason}.") from None
    if not labels:
        raise InputError(f"labels {path!r}: expected labelled nodes; found none.")
    return labels


def classify(
    vectors: np.ndarray,
    labels: list[list[str]],
    seed: int,
    train_ratio: float = 0.5,
    repeats: int = 2,
) -> dict[str, float]:
    """Micro/Macro-F1 of one-vs-rest logistic regression (the protocol above), pure numpy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    y = MultiLabelBinarizer().fit_transform(labels)
    micro, macro = [], []
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        perm = rng.permutation(len(x))
        cut = int(train_ratio * len(x))
        tr, te = perm[:cut], perm[cut:]
        keep = y[tr].sum(axis=0) > 0  # classes seen in training
        clf = OneVsRestClassifier(LogisticRegression(max_iter=1000), n_jobs=None)
        clf.fit(x[tr], y[tr][:, keep])
        proba = clf.predict_proba(x[te])
        pred = np.zeros_like(y[te])
        cols = np.flatnonzero(keep)
        for i, row in enumerate(proba):
            k = int(y[te][i].sum())
            if k:
                pred[i, cols[np.argsort(-row)[:k]]] = 1
        micro.append(f1_score(y[te], pred, average="micro", zero_division=0))
        macro.append(f1_score(y[te], pred, average="macro", zero_division=0))
    return {"micro_f1": float(np.mean(micro)), "macro_f1": float(np.mean(macro))}


def node_classification(
    spark: SparkSession,
    embeddings_path: str,
    labels_path: str,
    seed: int = 42,
    max_labelled: int = 200_000,
) -> dict[str, object]:
    """Micro/Macro-F1 of the protocol above on the labelled nodes found in the table."""
    labels = read_labels(labels_path)
    emb = read_embeddings(spark, embeddings_path)
    ids = sorted(labels)
    if len(ids) > max_labelled:
        rng = np.random.default_rng(seed)
        ids = sorted(rng.choice(ids, size=max_labelled, replace=False).tolist())
    wanted = spark.createDataFrame([(i,) for i in ids], "node_id string")
    rows = emb.join(F.broadcast(wanted), "node_id").select("node_id", "embedding").collect()
    if len(rows) < 4:
        raise InputError(
            f"labels {labels_path!r}: expected labelled nodes present in {embeddings_path!r}; "
            f"found {len(rows)} of {len(ids)} (do the ids match the edge list's?)."
        )
    rows.sort(key=lambda r: r["node_id"])
    x = np.array([r["embedding"] for r in rows], dtype=np.float64)
    y = [labels[r["node_id"]] for r in rows]
    return {"labelled_nodes": len(rows), **classify(x, y, seed)}
