"""Ingest: read a user's edge list into a clean graph with dense long node ids.

The result is a :class:`Graph`: ``edges`` (``src``, ``dst``: dense longs, ``weight``: double;
each undirected edge stored once with ``src < dst``, no self-loops, no duplicates) and
``nodes`` (``id``: dense long in ``[0, n)``, ``node_id``: the user's id as given, long or string).
"""

from __future__ import annotations

import glob
import os

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import IdType, InputConfig, InputFormat
from distne.errors import InputError
from distne.graph import Graph, endpoints


def _local_paths(path: str) -> list[str] | None:
    """Files a local path/glob names, or None for a remote URI (s3://, abfss://, dbfs:/ ...)."""
    if "://" in path and not path.startswith("file://"):
        return None
    p = path.removeprefix("file://")
    if any(ch in p for ch in "*?["):
        return sorted(glob.glob(p))
    if os.path.isdir(p):
        return [p]
    return [p] if os.path.exists(p) else []


def detect_format(path: str) -> InputFormat:
    """The input format a path most likely holds, from its extension or a ``_delta_log``."""
    local = path.removeprefix("file://")
    if os.path.isdir(os.path.join(local, "_delta_log")):
        return InputFormat.DELTA
    lower = path.lower().rstrip("/")
    if lower.endswith(".csv") or lower.endswith(".csv.gz"):
        return InputFormat.CSV
    if lower.endswith(".parquet"):
        return InputFormat.PARQUET
    if os.path.isdir(local):
        files = [f for f in os.listdir(local) if not f.startswith((".", "_"))]
        if files and all(f.endswith(".parquet") for f in files):
            return InputFormat.PARQUET
        if files and all(f.endswith((".csv", ".csv.gz")) for f in files):
            return InputFormat.CSV
    return InputFormat.TEXT


def dense_index(node_ids: DataFrame, key_type: T.DataType, index_col: str) -> DataFrame:
    """``index_col`` (long, 0..n-1) and ``node_id`` for the distinct ``node_id`` values.

    zipWithIndex after a sort: dense, deterministic ids without a single-partition window.
    """
    ordered = node_ids.select("node_id").distinct().orderBy("node_id")
    schema = T.StructType(
        [T.StructField(index_col, T.LongType(), False), T.StructField("node_id", key_type, False)]
    )
    return node_ids.sparkSession.createDataFrame(
        ordered.rdd.zipWithIndex().map(lambda r: (r[1], r[0][0])), schema
    )


def _reject_rows(df: DataFrame, bad: Column, message: str, show: str | None = None) -> None:
    """Raise ``InputError(message + examples)`` if any row matches ``bad`` (3 shown at most)."""
    rows = df.where(bad).limit(3).collect()
    if rows:
        found = "; ".join(repr(r[show]) if show else repr(tuple(r)) for r in rows)
        raise InputError(f"{message} {found}.")


def _read_text(spark: SparkSession, path: str, cfg: InputConfig) -> DataFrame:
    lines = spark.read.text(path)
    stripped = F.trim(F.col("value"))
    body = lines.where((F.length(stripped) > 0) & ~stripped.startswith(cfg.comment))
    tokens = F.split(stripped, r"[\s,]+")
    parsed = body.select(
        F.col("value").alias("_line"),
        F.size(tokens).alias("_n"),
        F.get(tokens, 0).alias("src"),
        F.get(tokens, 1).alias("dst"),
        F.get(tokens, 2).alias("_w"),
    )
    need = 3 if cfg.weight_col else 2
    _reject_rows(
        parsed,
        F.col("_n") < need,
        f"input {path!r}: expected text lines 'src dst{' weight' if cfg.weight_col else ''}' "
        f"separated by whitespace, tab or comma (comments start with {cfg.comment!r}); "
        f"found lines with too few fields, e.g.",
        show="_line",
    )
    weight = F.col("_w").try_cast("double") if cfg.weight_col else F.lit(1.0)
    out = parsed.select("src", "dst", weight.alias("weight"), "_line")
    if cfg.weight_col:
        _reject_rows(
            out,
            F.col("weight").isNull(),
            f"input {path!r}: expected a numeric weight in the third field; found",
            show="_line",
        )
    return out.drop("_line")


def _read_columns(spark: SparkSession, path: str, fmt: InputFormat, cfg: InputConfig) -> DataFrame:
    if fmt is InputFormat.CSV:
        df = spark.read.option("header", True).option("inferSchema", False).csv(path)
    elif fmt is InputFormat.PARQUET:
        df = spark.read.parquet(path)
    else:
        df = spark.read.format("delta").load(path)
    wanted = [cfg.src_col, cfg.dst_col] + ([cfg.weight_col] if cfg.weight_col else [])
    missing = [c for c in wanted if c not in df.columns]
    if (
        missing
        and fmt is InputFormat.CSV
        and len(df.columns) >= 2
        and not cfg.weight_col
        and (cfg.src_col, cfg.dst_col) == ("src", "dst")
    ):
        # A CSV with its own header names and the default column settings: take the first two.
        df = df.withColumnsRenamed({df.columns[0]: "src", df.columns[1]: "dst"})
        missing = []
    if missing:
        raise InputError(
            f"input {path!r}: column(s) {missing} missing; found columns {df.columns}. "
            f"Set input.src_col / input.dst_col / input.weight_col to the names in the data."
        )
    weight = F.col(cfg.weight_col).try_cast("double") if cfg.weight_col else F.lit(1.0)
    out = df.select(
        F.col(cfg.src_col).cast("string").alias("src"),
        F.col(cfg.dst_col).cast("string").alias("dst"),
        weight.alias("weight"),
    )
    if cfg.weight_col:
        _reject_rows(
            out,
            F.col("weight").isNull(),
            f"input {path!r}: column {cfg.weight_col!r} must hold numbers; found null or "
            f"non-numeric values in rows like",
        )
    return out


def read_edges(spark: SparkSession, cfg: InputConfig) -> DataFrame:
    """Raw edges as given: ``src``, ``dst`` (strings, the user's ids) and ``weight`` (double)."""
    if not cfg.path:
        raise InputError("no input given: set --input PATH (or input.path in the config).")
    local = _local_paths(cfg.path)
    if local is not None and not local:
        raise InputError(f"input {cfg.path!r}: no such file, folder or glob match.")
    fmt = cfg.format if cfg.format is not InputFormat.AUTO else detect_format(cfg.path)
    if fmt is InputFormat.TEXT:
        raw = _read_text(spark, cfg.path, cfg)
    else:
        raw = _read_columns(spark, cfg.path, fmt, cfg)
    empty = (
        F.col("src").isNull() | F.col("dst").isNull() | (F.col("src") == "") | (F.col("dst") == "")
    )
    _reject_rows(
        raw,
        empty,
        f"input {cfg.path!r}: expected a node id in both endpoint columns; found empty "
        f"endpoints in rows like",
    )
    if cfg.weight_col:
        _reject_rows(
            raw, F.col("weight") <= 0, f"input {cfg.path!r}: edge weights must be positive; found"
        )
    return raw


def _resolve_id_type(raw: DataFrame, cfg: InputConfig) -> IdType:
    if cfg.id_type is not IdType.AUTO:
        return cfg.id_type
    is_long = F.col("v").rlike(r"^-?[0-9]{1,18}$")
    ids = raw.select(F.col("src").alias("v")).union(raw.select(F.col("dst").alias("v")))
    non_int = ids.where(~is_long).limit(1).count()
    return IdType.STRING if non_int else IdType.LONG


def build_graph(spark: SparkSession, raw: DataFrame, cfg: InputConfig) -> Graph:
    """Clean raw edges and map the user's ids to dense longs ``0..n-1``.

    Self-loops are dropped; parallel edges collapse into one (their weights summed, so a
    weighted multigraph keeps its total weight); undirected graphs store ``src < dst``.
    Dense ids follow the sort order of the user's ids, so the same input gives the same ids.
    """
    id_type = _resolve_id_type(raw, cfg)
    key_type = T.LongType() if id_type is IdType.LONG else T.StringType()
    typed = raw.select(
        F.col("src").try_cast(key_type).alias("src"),
        F.col("dst").try_cast(key_type).alias("dst"),
        "weight",
    )
    if id_type is IdType.LONG:
        bad = typed.where(F.col("src").isNull() | F.col("dst").isNull()).limit(1).count()
        if bad:
            raise InputError(
                f"input {cfg.path!r}: input.id_type=long but some ids are not integers; "
                f"set input.id_type=string or auto."
            )
    nodes = dense_index(endpoints(typed, "node_id"), key_type, "id")
    m = nodes.select(F.col("node_id").alias("_k"), F.col("id").alias("_id"))
    edges = (
        typed.join(m.withColumnsRenamed({"_id": "s"}), typed["src"] == F.col("_k"))
        .drop("_k")
        .join(m.withColumnsRenamed({"_id": "d"}), F.col("dst") == F.col("_k"))
        .select("s", "d", "weight")
        .where(F.col("s") != F.col("d"))
    )
    if not cfg.directed:
        edges = edges.select(
            F.least("s", "d").alias("s"), F.greatest("s", "d").alias("d"), "weight"
        )
    # Directed input keeps both orientations as separate rows; every later stage reads the
    # edge set as symmetric (a mutual pair then weighs twice), since the embedders factor a
    # symmetric matrix.
    edges = edges.groupBy(F.col("s").alias("src"), F.col("d").alias("dst")).agg(
        F.sum("weight").alias("weight")
    )
    return Graph(nodes=nodes, edges=edges, id_type=id_type)


def ingest(spark: SparkSession, cfg: InputConfig) -> Graph:
    """Read and clean the edge list named by ``cfg``; raise :class:`InputError` on bad input.

    Example:
        >>> g = ingest(spark, InputConfig(path="data/sample/ppi/edges.tsv"))  # doctest: +SKIP
        >>> g.edges.columns
        ['src', 'dst', 'weight']
    """
    raw = read_edges(spark, cfg)
    graph = build_graph(spark, raw, cfg)
    if graph.edges.limit(1).count() == 0:
        raise InputError(
            f"input {cfg.path!r}: expected at least one edge between two different nodes; "
            f"found none (empty input, only comments, or only self-loops)."
        )
    return graph
