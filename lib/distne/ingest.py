"""Ingest: read a user's edge list into a clean graph with dense long node ids.

The result is a :class:`Graph`: ``edges`` (``src``, ``dst``: dense longs, ``weight``: double;
each undirected edge stored once with ``src < dst``, no self-loops, no duplicates) and
``nodes`` (``id``: dense long in ``[0, n)``, ``node_id``: the user's id as given, long or string).
"""

from __future__ import annotations

import glob
import os
from typing import Any, NamedTuple

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from distne.config import ExtraColumns, IdType, InputConfig, InputFormat, RuntimeConfig
from distne.errors import InputError
from distne.graph import Graph, endpoints
from distne.sparkutil import cut_lineage


def local_paths(path: str) -> list[str] | None:
    """Files a local path/glob names, or None for a remote URI (s3://, abfss://, dbfs:/ ...)."""
    if "://" in path and not path.startswith("file://"):
        return None
    p = path.removeprefix("file://")
    if any(ch in p for ch in "*?["):
        return sorted(glob.glob(p))
    if os.path.isdir(p):
        return [p]
    return [p] if os.path.exists(p) else []


# Suffixes Spark decompresses when it reads text (the bytes are binary, the content is not).
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy", ".deflate")
SNIFF_BYTES = 8192


def looks_binary(path: str) -> bool:
    """Whether a local file has NUL bytes in its first ``SNIFF_BYTES`` (text never does)."""
    with open(path, "rb") as handle:
        return b"\0" in handle.read(SNIFF_BYTES)


def _data_files(paths: list[str]) -> list[str]:
    """The files Spark reads for local ``paths``: folders walked, names starting with ``.`` or
    ``_`` skipped (Spark's hidden files: checksums, ``_SUCCESS``, ``_delta_log``)."""
    out = []
    for p in paths:
        if not os.path.isdir(p):
            out.append(p)
            continue
        for folder, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            out += [os.path.join(folder, n) for n in sorted(names) if not n.startswith((".", "_"))]
    return out


def _kind(path: str) -> str:
    """A file's extension without a compression suffix (``a.tsv.gz`` -> ``.tsv``)."""
    name = os.path.basename(path)
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return os.path.splitext(name)[1].lower()


def check_local_input(cfg: InputConfig) -> None:
    """What can be checked of a local input without Spark: it exists, its files are of one kind
    (a README or Parquet parts beside text would become node ids), and text is not binary.

    Remote paths (``s3://`` ...) are left to Spark. Raises :class:`InputError`.
    """
    if cfg.path and cfg.table:
        raise InputError(
            f"input: expected one of input.path and input.table; found both "
            f"({cfg.path!r} and {cfg.table!r})."
        )
    if cfg.table:
        return
    if not cfg.path:
        raise InputError(
            "no input given: set --input PATH (or input.path, or input.table for a catalog "
            "table, in the config)."
        )
    local = local_paths(cfg.path)
    if local is None:
        return
    if not local:
        raise InputError(f"input {cfg.path!r}: no such file, folder or glob match.")
    fmt = cfg.format if cfg.format is not InputFormat.AUTO else detect_format(cfg.path)
    if fmt is InputFormat.DELTA:
        return
    files = _data_files(local)
    if not files:
        raise InputError(
            f"input {cfg.path!r}: expected edge-list files; found a folder with none (names "
            f"starting with '.' or '_' are skipped, as Spark does)."
        )
    kinds: dict[str, list[str]] = {}
    for f in files:
        kinds.setdefault(_kind(f), []).append(os.path.basename(f))
    if len(kinds) > 1:
        found = "; ".join(
            f"{k or 'no extension'}: {', '.join(v[:3])}{', ...' if len(v) > 3 else ''}"
            for k, v in sorted(kinds.items())
        )
        raise InputError(
            f"input {cfg.path!r}: expected files of one kind (every file is read as edges); "
            f"found {found}. Point --input at one kind, e.g. a glob such as "
            f"'{cfg.path.rstrip('/')}/*.tsv', or move the other files away."
        )
    if fmt in (InputFormat.TEXT, InputFormat.CSV):
        for f in files:
            if not f.endswith(COMPRESSED) and looks_binary(f):
                raise InputError(
                    f"input {cfg.path!r}: expected a text edge list ('src dst [weight]' per "
                    f"line); found binary data in {os.path.basename(f)!r} (NUL bytes in its "
                    f"first {SNIFF_BYTES // 1024} KB). For Parquet files set "
                    f"input.format=parquet."
                )


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

    Dense, deterministic ids in the sort order of the ids, computed in the JVM: the sorted ids
    are materialised once with ``monotonically_increasing_id`` (partition index in the high
    bits, row within the partition in the low 33), and each partition's offset comes from its
    row count (one small row per partition to the driver). No single-partition window and no
    Python round trip per node.
    """
    spark = node_ids.sparkSession
    ordered = (
        node_ids.select(F.col("node_id").cast(key_type).alias("node_id"))
        .distinct()
        .orderBy("node_id")
        .select("node_id", F.monotonically_increasing_id().alias("_m"))
        .localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    )
    part = F.shiftright(F.col("_m"), 33)
    counts = sorted(
        (int(r["_p"]), int(r["n"]))
        for r in ordered.groupBy(part.alias("_p")).agg(F.count("*").alias("n")).collect()
    )
    offsets, total = [], 0
    for p, n in counts:
        offsets.append((p, total))
        total += n
    table = spark.createDataFrame(offsets or [(0, 0)], "_p long, _off long")
    low = F.col("_m").bitwiseAND(F.lit((1 << 33) - 1))
    return ordered.join(F.broadcast(table), part == F.col("_p")).select(
        (F.col("_off") + low).alias(index_col), "node_id"
    )


def _read_text(spark: SparkSession, path: str, cfg: InputConfig) -> DataFrame:
    """``src, dst`` (strings), ``weight`` (double, null if unparsable), ``_line``, ``_n``."""
    lines = spark.read.text(path)
    stripped = F.trim(F.col("value"))
    body = lines.where((F.length(stripped) > 0) & ~stripped.startswith(cfg.comment))
    tokens = F.split(stripped, r"[\s,]+")
    weight = F.get(tokens, 2).try_cast("double") if cfg.weight_col else F.lit(1.0)
    return body.select(
        F.get(tokens, 0).alias("src"),
        F.get(tokens, 1).alias("dst"),
        weight.alias("weight"),
        F.col("value").alias("_line"),
        F.size(tokens).alias("_n"),
    )


def _read_columns(spark: SparkSession, path: str, fmt: InputFormat, cfg: InputConfig) -> DataFrame:
    if fmt is InputFormat.CSV:
        df = spark.read.option("header", True).option("inferSchema", False).csv(path)
    elif fmt is InputFormat.PARQUET:
        df = spark.read.parquet(path)
    else:
        df = spark.read.format("delta").load(path)
    return _columns(df, repr(path), cfg, fmt is InputFormat.CSV)


def _columns(df: DataFrame, name: str, cfg: InputConfig, csv: bool = False) -> DataFrame:
    """``src, dst`` (the ids as strings), ``weight`` (double), ``_frac`` (an id with a
    fraction) from the columns ``cfg`` names in ``df``; :class:`InputError` if they are not
    there or hold no ids. ``name`` says which input ``df`` is, in messages."""
    wanted = [cfg.src_col, cfg.dst_col] + ([cfg.weight_col] if cfg.weight_col else [])
    missing = [c for c in wanted if c not in df.columns]
    if (
        missing
        and csv
        and len(df.columns) >= 2
        and not cfg.weight_col
        and (cfg.src_col, cfg.dst_col) == ("src", "dst")
    ):
        # A CSV with its own header names and the default column settings: take the first two.
        df = df.withColumnsRenamed({df.columns[0]: "src", df.columns[1]: "dst"})
        missing = []
    if missing:
        raise InputError(
            f"input {name}: column(s) {missing} missing; found columns {df.columns}. "
            f"Set input.src_col / input.dst_col / input.weight_col to the names in the data."
        )
    extra = [c for c in df.columns if c not in wanted]
    if extra and cfg.extra_columns is ExtraColumns.ERROR:
        raise InputError(
            f"input {name}: expected the columns {wanted}; found also {extra}, and nothing "
            f"says what they hold. "
            f"{_extra_hint(cfg, repr(extra[0]), 'input.weight_col to its name (numbers > 0)')}"
        )
    ends = (cfg.src_col, cfg.dst_col)
    for c in ends:
        kind = df.schema[c].dataType
        if not isinstance(kind, T.StringType | T.IntegralType | T.FractionalType):
            raise InputError(
                f"input {name}: column {c!r} holds {kind.simpleString()} values; expected "
                f"node ids, integers or strings. Convert the column, or set input.src_col / "
                f"input.dst_col to the id columns."
            )
    fractional = [c for c in ends if isinstance(df.schema[c].dataType, T.FractionalType)]

    def node_id(c: str) -> Column:
        col = F.col(c)
        if c not in fractional:
            return col.cast("string")
        # Whole numbers stored as floats (a common upcast) are integer ids: 7.0 is node "7".
        # Anything else keeps its text so that the check of ``_frac`` can show it.
        return F.when(col == F.floor(col), col.cast("long").cast("string")).otherwise(
            col.cast("string")
        )

    frac = F.lit(False)
    for c in fractional:
        frac = frac | F.coalesce(F.col(c) != F.floor(F.col(c)), F.lit(False))
    weight = F.col(cfg.weight_col).try_cast("double") if cfg.weight_col else F.lit(1.0)
    return df.select(
        node_id(cfg.src_col).alias("src"),
        node_id(cfg.dst_col).alias("dst"),
        weight.alias("weight"),
        frac.alias("_frac"),
    )


_INTEGER = r"^-?[0-9]{1,18}$"


def _extra_hint(cfg: InputConfig, what: str, weight_setting: str) -> str:
    """How to say what extra columns hold: a weight, or nothing the run needs."""
    weight = "" if cfg.weight_col else f"If {what} is an edge weight, set {weight_setting}; "
    keep = "src, dst and the weight" if cfg.weight_col else "src and dst"
    hint = f"{weight}to read only {keep}, set input.extra_columns=ignore."
    return hint[0].upper() + hint[1:]


class RawEdges(NamedTuple):
    """Validated edges as given: ``frame`` has ``src``, ``dst`` (strings, the user's ids) and
    ``weight`` (double), materialised where a ``runtime`` was given to read them; ``loops``
    rows are self-loops, ``pairs`` rows join two ids."""

    frame: DataFrame
    id_type: IdType
    loops: int
    pairs: int


def _validate(
    raw: DataFrame, cfg: InputConfig, text: bool, name: str, runtime: RuntimeConfig | None
) -> RawEdges:
    """Every check of the rows in one aggregate; the rows ``src, dst, weight``, the id type,
    the number of self-loop rows and the number of the others.

    With ``runtime``, the aggregate is observed (``DataFrame.observe``) while the rows are
    materialised (as ``runtime.lineage`` says), so the input is read and parsed once for both;
    the rows returned are the materialised ones. Without it, the aggregate is a pass of its
    own and the rows are returned as a plan (read again by whoever uses them).

    Raises :class:`InputError` for the first failed check, in the order below, with an example
    row: short text lines, unparsable weights, empty endpoints, weights that are not positive
    finite numbers, non-integer ids under ``input.id_type=long``, and no edge between two
    different nodes.
    """
    w = F.col("weight")
    example = F.col("_line") if text else F.struct("src", "dst", "weight")
    checks: list[tuple[Column, str]] = []
    if text:
        need = 3 if cfg.weight_col else 2
        checks.append(
            (
                F.col("_n") < need,
                f"input {name}: expected text lines 'src dst{' weight' if cfg.weight_col else ''}"
                f"' separated by whitespace, tab or comma (comments start with {cfg.comment!r}); "
                f"found lines with too few fields, e.g.",
            )
        )
        if cfg.extra_columns is ExtraColumns.ERROR:
            hint = _extra_hint(cfg, "the third field", "input.weight_col=weight (numbers > 0)")
            checks.append(
                (
                    F.col("_n") > need,
                    f"input {name}: expected {need} fields per line ('src dst"
                    f"{' weight' if cfg.weight_col else ''}'); found lines with more, and "
                    f"nothing says what the others hold. {hint} A line with more:",
                )
            )
    if cfg.weight_col:
        checks.append(
            (
                w.isNull(),
                f"input {name}: expected a numeric weight in the third field; found"
                if text
                else f"input {name}: column {cfg.weight_col!r} must hold numbers; found null "
                f"or non-numeric values in rows like",
            )
        )
    if not text:
        checks.append(
            (
                F.col("_frac"),
                f"input {name}: expected node ids, integers or strings; found numbers with a "
                f"fraction (or NaN, infinite) in rows like",
            )
        )
    empty = F.col("src").isNull() | F.col("dst").isNull() | (F.col("src") == "")
    checks.append(
        (
            empty | (F.col("dst") == ""),
            f"input {name}: expected a node id in both endpoint columns; found empty "
            f"endpoints in rows like",
        )
    )
    if cfg.weight_col:
        checks.append(
            (
                (w <= 0) | F.isnan(w) | (w == float("inf")),
                f"input {name}: edge weights must be positive finite numbers; found",
            )
        )
    is_int = F.col("src").rlike(_INTEGER) & F.col("dst").rlike(_INTEGER)
    src_l, dst_l = F.col("src").try_cast("long"), F.col("dst").try_cast("long")
    distinct_ends = F.coalesce(src_l != dst_l, F.col("src") != F.col("dst"))
    metrics = [
        *[
            F.first(F.when(bad, example), ignorenulls=True).alias(f"c{i}")
            for i, (bad, _) in enumerate(checks)
        ],
        F.count(F.when(~is_int, 1)).alias("non_int"),
        F.count(F.when(distinct_ends, 1)).alias("pairs"),
        F.count(F.when(~distinct_ends, 1)).alias("loops"),
    ]
    if runtime is None:
        frame = raw.select("src", "dst", "weight")
        row: Any = raw.agg(*metrics).first()
    else:
        seen = Observation()
        frame = cut_lineage(raw.observe(seen, *metrics).select("src", "dst", "weight"), runtime)
        row = seen.get
    assert row is not None
    for i, (_, message) in enumerate(checks):
        found = row[f"c{i}"]
        if found is not None:
            shown = repr(found) if text else repr(tuple(found))
            raise InputError(f"{message} {shown}.")
    if cfg.id_type is IdType.LONG and row["non_int"]:
        raise InputError(
            f"input {name}: input.id_type=long but some ids are not integers; "
            f"set input.id_type=string or auto."
        )
    if not row["pairs"]:
        raise InputError(
            f"input {name}: expected at least one edge between two different nodes; "
            f"found none (empty input, only comments, or only self-loops)."
        )
    id_type = cfg.id_type
    if id_type is IdType.AUTO:
        id_type = IdType.STRING if row["non_int"] else IdType.LONG
    return RawEdges(frame, id_type, int(row["loops"]), int(row["pairs"]))


def read_table(spark: SparkSession, name: str) -> DataFrame:
    """The catalog table ``name`` (``input.table``); :class:`InputError` if there is none."""
    try:
        return spark.read.table(name)
    except AnalysisException as e:
        raise InputError(
            f"input.table {name!r}: expected a table of edges; found none "
            f"({str(e).splitlines()[0]})."
        ) from None


def read_edges(
    spark: SparkSession, cfg: InputConfig, runtime: RuntimeConfig | None = None
) -> RawEdges:
    """The edges named by ``cfg``, validated in one pass (:class:`InputError` otherwise);
    with ``runtime``, materialised in that same pass (see :func:`_validate`)."""
    check_local_input(cfg)
    if cfg.table:
        return edges_from_frame(read_table(spark, cfg.table), cfg, repr(cfg.table), runtime)
    fmt = cfg.format if cfg.format is not InputFormat.AUTO else detect_format(cfg.path)
    text = fmt is InputFormat.TEXT
    raw = _read_text(spark, cfg.path, cfg) if text else _read_columns(spark, cfg.path, fmt, cfg)
    return _validate(raw, cfg, text, repr(cfg.path), runtime)


def edges_from_frame(
    edges: DataFrame,
    cfg: InputConfig,
    name: str = "edges",
    runtime: RuntimeConfig | None = None,
) -> RawEdges:
    """:func:`read_edges` for edges already in a DataFrame (a GraphFrame's ``edges``, a
    table): the columns ``cfg`` names (``src``, ``dst``, optionally a weight), validated in
    one pass; ``name`` says which DataFrame in messages."""
    return _validate(_columns(edges, name, cfg), cfg, False, name, runtime)


def build_graph(raw: DataFrame, cfg: InputConfig, id_type: IdType, loops: int = 0) -> Graph:
    """Clean validated raw edges and map the user's ids to dense longs ``0..n-1``.

    Self-loops are dropped, and with them ids that appear only in self-loops: they have no
    edge to be embedded by (their vector would be zero, their cosine undefined), so they are
    not nodes; ``Graph.loop_only`` counts them (computed only when ``loops``, the number of
    self-loop rows, is not zero). Parallel edges collapse into one (their weights summed, so a
    weighted multigraph keeps its total weight); undirected graphs store ``src < dst``.
    Dense ids follow the sort order of the user's ids, so the same input gives the same ids.

    ``raw`` is read three times (the ids, the edges, the self-loops): :func:`read_edges` with
    a ``runtime`` gives it materialised, so the input is parsed once in all.
    """
    key_type = T.LongType() if id_type is IdType.LONG else T.StringType()
    typed = raw.select(
        F.col("src").try_cast(key_type).alias("src"),
        F.col("dst").try_cast(key_type).alias("dst"),
        "weight",
    )
    nodes = dense_index(
        endpoints(typed.where(F.col("src") != F.col("dst")), "node_id"), key_type, "id"
    )
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
    loop_only = 0
    if loops:
        # Self-loop rows are few in real edge lists: the distinct ids among them are too.
        looped = typed.where(F.col("src") == F.col("dst")).select(F.col("src").alias("node_id"))
        loop_only = looped.distinct().join(nodes, "node_id", "left_anti").count()
    return Graph(nodes=nodes, edges=edges, id_type=id_type, loop_only=loop_only)


def ingest(spark: SparkSession, cfg: InputConfig, runtime: RuntimeConfig | None = None) -> Graph:
    """Read and clean the edge list named by ``cfg``; raise :class:`InputError` on bad input.

    ``runtime`` (the pipeline passes it): the input is read and parsed once, its rows
    materialised as ``runtime.lineage`` says (see :func:`_validate`).

    Example:
        >>> g = ingest(spark, InputConfig(path="data/sample/ppi/edges.tsv"))  # doctest: +SKIP
        >>> g.edges.columns
        ['src', 'dst', 'weight']
    """
    raw = read_edges(spark, cfg, runtime)
    return build_graph(raw.frame, cfg, raw.id_type, raw.loops)
