"""Typed, validated run configuration.

One frozen dataclass tree, loaded from YAML (``conf/*.yaml``) and overridden with dotted keys
from the command line (``--set partition.max_nodes=50000``). Every field carries its help text
in ``metadata["help"]``; ``distne config --show`` prints them.

Example:
    >>> cfg = load_config(None, ["embedding.dim=64", "seed=7"])
    >>> cfg.embedding.dim, cfg.seed
    (64, 7)
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from distne.errors import DistneError

# A catalog table name: one to three parts, each plain (letters, digits, _) or `quoted`.
_PART = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
TABLE_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")


class ConfigError(DistneError, ValueError):
    """A configuration value is missing, unknown or out of range."""


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


class InputFormat(str, enum.Enum):
    AUTO = "auto"
    TEXT = "text"
    CSV = "csv"
    PARQUET = "parquet"
    DELTA = "delta"


class IdType(str, enum.Enum):
    AUTO = "auto"
    LONG = "long"
    STRING = "string"


class ExtraColumns(str, enum.Enum):
    ERROR = "error"
    IGNORE = "ignore"


class PartitionMethod(str, enum.Enum):
    MULTILEVEL = "multilevel"
    LABEL_PROPAGATION = "label_propagation"
    HASH = "hash"


class EmbedderKind(str, enum.Enum):
    PRONE = "prone"
    FASTRP = "fastrp"


class RunMode(str, enum.Enum):
    AUTO = "auto"
    LOCAL = "local"
    EXCHANGE = "exchange"
    PROCRUSTES = "procrustes"
    LEAF_ONLY = "leaf_only"

    @property
    def is_baseline(self) -> bool:
        """Embeds every subgraph apart (the seed paper's design, kept for comparison)."""
        return self in (RunMode.PROCRUSTES, RunMode.LEAF_ONLY)


class Transport(str, enum.Enum):
    AUTO = "auto"
    BARRIER = "barrier"
    SHUFFLE = "shuffle"


class LineageCut(str, enum.Enum):
    LOCAL_CHECKPOINT = "local_checkpoint"
    CHECKPOINT = "checkpoint"


class WriteMode(str, enum.Enum):
    OVERWRITE = "overwrite"
    ERROR = "error"


@dataclass(frozen=True)
class InputConfig:
    path: str | None = _help(
        "Edge list: a file, folder or glob (text, CSV, Parquet) or a Delta table path.",
        default=None,
    )
    table: str | None = _help(
        "A catalog table of edges (catalog.schema.name, or a name in the current schema) "
        "instead of input.path; its columns are read as a Parquet file's.",
        default=None,
    )
    format: InputFormat = _help(
        "auto picks by extension/folder: .csv -> csv, .parquet -> parquet, a folder holding "
        "_delta_log -> delta, anything else -> whitespace/tab separated text.",
        default=InputFormat.AUTO,
    )
    src_col: str = _help("Source column (CSV/Parquet/Delta).", default="src")
    dst_col: str = _help("Destination column (CSV/Parquet/Delta).", default="dst")
    weight_col: str | None = _help(
        "Optional edge weight column; unset means weight 1.", default=None
    )
    extra_columns: ExtraColumns = _help(
        "What to do with columns (or text fields) beyond src, dst and input.weight_col: error "
        "(a third field may be a weight the run would silently drop) or ignore them.",
        default=ExtraColumns.ERROR,
    )
    directed: bool = _help("Treat edges as directed; default undirected.", default=False)
    comment: str = _help("Comment prefix for text edge lists.", default="#")
    id_type: IdType = _help(
        "Type of the user's node ids in the output: auto (long if every id is an integer).",
        default=IdType.AUTO,
    )


@dataclass(frozen=True)
class PartitionConfig:
    max_nodes: int | None = _help(
        "Hard upper bound on nodes per leaf subgraph. Unset: chosen per run from the graph and "
        "run.worker_memory_gb (at least one leaf per core, each leaf within the budget).",
        default=None,
    )
    max_edges: int | None = _help(
        "Hard upper bound on edge rows per leaf subgraph (the sum of its nodes' degrees: the "
        "rows of its blocks), so a leaf of hubs cannot outgrow a worker. Parts over it are "
        "split in id order; a single node of higher degree gets a leaf of its own. Unset: "
        "4x the edge rows of max_nodes nodes of the graph's average degree.",
        default=None,
    )
    method: PartitionMethod = _help(
        "multilevel (coarsen in Spark, METIS on the coarse graph, refine; fewest cut edges), "
        "label_propagation (size-constrained, from a hash start) or hash (baseline).",
        default=PartitionMethod.MULTILEVEL,
    )
    iterations: int = _help(
        "Label-propagation rounds per level (label_propagation), or refinement rounds after "
        "projecting the coarse partition back (multilevel).",
        default=8,
    )
    coarse_nodes: int = _help(
        "multilevel: coarsen until the graph has at most this many nodes; that coarse graph is "
        "what the driver holds and partitions with METIS (a level graph within this bound and "
        "partition.coarse_edges goes to METIS whole, without coarsening or refinement). Node "
        "tables within this bound are also broadcast to the edges' joins.",
        default=2_000_000,
    )
    coarse_edges: int = _help(
        "multilevel: coarsen until the coarse graph also has at most this many edges. The "
        "driver's Python process holds them and METIS partitions them: about 3 GB at 10M "
        "edges and 1M nodes, 25 s (measured); lower it for a small driver.",
        default=10_000_000,
    )
    cluster_rounds: int = _help(
        "multilevel: size-constrained label-propagation rounds per coarsening step.", default=4
    )
    fill: float = _help(
        "Target fill of a part when choosing the number of parts (parts = n / (fill*max_nodes)).",
        default=0.8,
    )
    max_levels: int | None = _help(
        "run.mode=procrustes|leaf_only only: most border levels below the leaves (unset: 4); "
        "recursion also stops when the border fits in one subgraph or stops shrinking.",
        default=None,
    )


@dataclass(frozen=True)
class EmbeddingConfig:
    dim: int = _help("Dimension of the output vectors.", default=128)
    method: EmbedderKind = _help(
        "The embedder program (run by the local and the exchange backend alike): prone "
        "(sparse factorisation and spectral propagation) or fastrp (random projection of "
        "powers of the transition matrix: a few products, fastest).",
        default=EmbedderKind.PRONE,
    )
    order: int = _help("ProNE: Chebyshev expansion order of the spectral filter.", default=10)
    mu: float = _help("ProNE: band-pass filter centre.", default=0.2)
    theta: float = _help("ProNE: band-pass filter width (Bessel argument).", default=0.5)
    svd_iterations: int = _help("ProNE: power iterations of the randomized SVD.", default=5)
    iteration_weights: tuple[float, ...] = _help(
        "FastRP: the weight of each power of the transition matrix in the sum (their count "
        "is the number of powers). The default was chosen on validation splits of the "
        "shared graphs (docs/design.md); the authors' tuned setting for their largest graph "
        "is [1, 1, 7.81, 45.28] with degree_power=-0.628 and normalize_iterates=false.",
        default=(0.0, 0.0, 1.0, 1.0),
    )
    degree_power: float = _help(
        "FastRP: beta, the power of its degree each node's random vector is scaled by "
        "(negative: common nodes count less).",
        default=0.3,
    )
    normalize_iterates: bool = _help(
        "FastRP: scale every node's row of each power to unit length before it is weighted "
        "into the sum (the authors' 'normalization' option), so that each power counts "
        "alike for every node whatever its degree.",
        default=True,
    )


@dataclass(frozen=True)
class RunModeConfig:
    mode: RunMode = _help(
        "auto: local when the whole graph fits one worker (run.worker_memory_gb, and "
        "partition.max_nodes if set), exchange otherwise. local: the embedder on the whole "
        "graph in one Python worker. exchange: partition into leaf subgraphs and run the "
        "embedder over all of them at once, exchanging border rows (one frame; the same "
        "vectors as local). Baselines: procrustes (embed every subgraph alone, align each to "
        "its border level through shared border nodes), leaf_only (leaf vectors alone, no "
        "common frame).",
        default=RunMode.AUTO,
    )
    worker_memory_gb: float = _help(
        "Memory one Python worker may use for the embedder: the local backend's limit in auto "
        "mode, and what sizes leaves when partition.max_nodes is unset.",
        default=2.0,
    )
    transport: Transport = _help(
        "How the exchange moves border rows. barrier: the whole embedder in one Spark stage "
        "in barrier execution mode, tasks sending rows to each other over TCP (fast; needs "
        "every task running at once and no dynamic allocation; a lost task restarts the "
        "stage; leaves stay in memory when the graph's estimate fits the task slots' "
        "run.worker_memory_gb, on the executors' local disks, one in memory at a time, when "
        "not). shuffle: one Spark job per sparse product, state cached by Spark (slower; "
        "recovers lost executors per product). auto: barrier, or shuffle under dynamic "
        "allocation.",
        default=Transport.AUTO,
    )


@dataclass(frozen=True)
class OutputConfig:
    path: str | None = _help("Delta table path for the embeddings.", default=None)
    table: str | None = _help(
        "A catalog table for the embeddings (catalog.schema.name, schema.name or name; a "
        "managed Delta table, created or replaced) instead of output.path. The run folder "
        "then goes under runtime.checkpoint_dir, or the session's warehouse folder.",
        default=None,
    )
    mode: WriteMode = _help(
        "overwrite replaces an existing distne table atomically (a new Delta version); "
        "error refuses to touch an existing table.",
        default=WriteMode.OVERWRITE,
    )


@dataclass(frozen=True)
class SparkConfig:
    master: str | None = _help(
        "Spark master for the embedded default (local[*]); leave unset under spark-submit.",
        default=None,
    )
    app_name: str = _help("Spark application name.", default="distne")
    shuffle_partitions: int | None = _help(
        "spark.sql.shuffle.partitions; unset keeps the cluster's value.", default=None
    )
    edges_per_partition: int = _help(
        "Edges per shuffle partition a run aims at: once the input's size is known, "
        "spark.sql.shuffle.partitions is raised to edges / this where it is lower (never "
        "lowered), so a big graph's joins and sorts do not spill; 0 leaves it as set.",
        default=1_000_000,
    )
    delta_jars: bool = _help(
        "Add the Delta connector to spark.jars.packages (off on Databricks, where it is built in).",
        default=True,
    )
    class_archive: bool = _help(
        "Local sessions start their JVM from the class-data archive setup.sh builds "
        "(python -m distne.classarchive), where one exists for this Java and these jars: "
        "~2.5 s less per run. Never on a cluster's driver.",
        default=True,
    )
    graphframes: bool = _help(
        "Add GraphFrames' JVM package (io.graphframes:graphframes-spark4_2.13:0.11.0, the "
        "version graphframes-py is pinned to) to spark.jars.packages, for GraphFrames in the "
        "same session (distne.embed_graph takes a GraphFrame). On Databricks install it as a "
        "cluster library instead.",
        default=False,
    )
    conf: dict[str, str] = _help("Extra Spark settings.", default_factory=dict)


@dataclass(frozen=True)
class RuntimeConfig:
    lineage: LineageCut = _help(
        "How the plan is cut between iterations and levels: local_checkpoint (executor "
        "storage, fast) or checkpoint (reliable, needs checkpoint_dir).",
        default=LineageCut.LOCAL_CHECKPOINT,
    )
    checkpoint_dir: str | None = _help(
        "Checkpoint folder for lineage=checkpoint; a run's own folder under it is removed once "
        "its table is written.",
        default=None,
    )
    progress: bool = _help("Print stage progress lines to stderr.", default=True)
    resume: bool = _help(
        "Keep finished stages (the ingested graph, the partition, the exchange's state every "
        "runtime.snapshot_every products) in a run folder next to the output, "
        "<output>.distne-stages (under runtime.checkpoint_dir if set), so the same command "
        "rerun after a crash resumes where it stopped. Removed once the table is written.",
        default=True,
    )
    keep_stages: bool = _help(
        "Keep the run folder after the table is written (for debugging; CLI --keep-stages).",
        default=False,
    )
    components: bool = _help(
        "Count the graph's connected components with GraphFrames and put them in the run's "
        "summary; needs GraphFrames' jar on the session (spark.graphframes=true, or a cluster "
        "library) and graphframes-py.",
        default=False,
    )
    snapshot_every: int = _help(
        "Products of the exchange between snapshots of its state (0: none). Snapshots need a "
        "run folder the barrier tasks can write with plain file calls: a local path, or one "
        "mounted on every worker.",
        default=8,
    )


@dataclass(frozen=True)
class Config:
    seed: int = _help("The one seed every random choice derives from.", default=42)
    input: InputConfig = field(default_factory=InputConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    run: RunModeConfig = field(default_factory=RunModeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        if self.partition.max_edges is not None:
            _check(
                self.partition.max_edges >= 1,
                "partition.max_edges",
                ">= 1",
                self.partition.max_edges,
            )
        if self.partition.max_nodes is not None:
            _check(
                self.partition.max_nodes >= 2,
                "partition.max_nodes",
                ">= 2",
                self.partition.max_nodes,
            )
        _check(
            0.1 <= self.partition.fill <= 1.0, "partition.fill", "in [0.1, 1]", self.partition.fill
        )
        _check(
            self.partition.iterations >= 0,
            "partition.iterations",
            ">= 0",
            self.partition.iterations,
        )
        _check(
            self.spark.edges_per_partition >= 0,
            "spark.edges_per_partition",
            ">= 0",
            self.spark.edges_per_partition,
        )
        _check(
            self.runtime.snapshot_every >= 0,
            "runtime.snapshot_every",
            ">= 0",
            self.runtime.snapshot_every,
        )
        _check(
            self.partition.coarse_nodes >= 2,
            "partition.coarse_nodes",
            ">= 2",
            self.partition.coarse_nodes,
        )
        _check(
            self.partition.coarse_edges >= 1,
            "partition.coarse_edges",
            ">= 1",
            self.partition.coarse_edges,
        )
        _check(
            self.partition.cluster_rounds >= 1,
            "partition.cluster_rounds",
            ">= 1",
            self.partition.cluster_rounds,
        )
        if self.partition.max_levels is not None:
            _check(
                self.partition.max_levels >= 0,
                "partition.max_levels",
                ">= 0",
                self.partition.max_levels,
            )
            if not self.run.mode.is_baseline:
                raise ConfigError(
                    f"partition.max_levels applies to the border levels of run.mode=procrustes "
                    f"or leaf_only; run.mode={self.run.mode.value} embeds across leaves and has "
                    f"no border levels. Found partition.max_levels="
                    f"{self.partition.max_levels}: unset it or choose a baseline mode."
                )
        for key in ("max_nodes", "max_edges"):
            value = getattr(self.partition, key)
            if self.run.mode is RunMode.LOCAL and value is not None:
                raise ConfigError(
                    f"run.mode=local embeds the whole graph in one worker and does not "
                    f"partition; found partition.{key}={value}. Unset it, or use "
                    f"run.mode=exchange (or auto) to partition."
                )
        if self.run.transport is not Transport.AUTO and self.run.mode not in (
            RunMode.AUTO,
            RunMode.EXCHANGE,
        ):
            raise ConfigError(
                f"run.transport chooses how the exchange moves border rows; "
                f"run.mode={self.run.mode.value} does not run the exchange. Found "
                f"run.transport={self.run.transport.value}: unset it or use run.mode=exchange."
            )
        _check(
            self.run.worker_memory_gb > 0,
            "run.worker_memory_gb",
            "> 0",
            self.run.worker_memory_gb,
        )
        _check(1 <= self.embedding.dim <= 4096, "embedding.dim", "in [1, 4096]", self.embedding.dim)
        _check(self.embedding.order >= 1, "embedding.order", ">= 1", self.embedding.order)
        _check(
            self.embedding.svd_iterations >= 0,
            "embedding.svd_iterations",
            ">= 0",
            self.embedding.svd_iterations,
        )
        _check(
            all(math.isfinite(w) for w in self.embedding.iteration_weights)
            and len(self.embedding.iteration_weights) <= 16
            and any(self.embedding.iteration_weights),
            "embedding.iteration_weights",
            "1 to 16 finite numbers, not all zero",
            list(self.embedding.iteration_weights),
        )
        _check(
            math.isfinite(self.embedding.degree_power),
            "embedding.degree_power",
            "a finite number",
            self.embedding.degree_power,
        )
        _reject_other_methods(self.embedding)
        _check(0 <= self.seed < 2**31, "seed", "in [0, 2^31)", self.seed)
        if self.output.path and self.output.table:
            raise ConfigError(
                f"output: expected one of output.path and output.table; found both "
                f"({self.output.path!r} and {self.output.table!r})."
            )
        if self.output.table and not TABLE_NAME.match(self.output.table):
            raise ConfigError(
                f"output.table must be a table name (name, schema.name or catalog.schema.name; "
                f"letters, digits and _, or `quoted` parts); found {self.output.table!r}"
            )
        if self.runtime.lineage is LineageCut.CHECKPOINT and not self.runtime.checkpoint_dir:
            raise ConfigError(
                "runtime.lineage=checkpoint needs runtime.checkpoint_dir; found none. "
                "Set runtime.checkpoint_dir or use runtime.lineage=local_checkpoint."
            )

    def with_overrides(self, overrides: Sequence[str]) -> Config:
        """A copy with dotted ``key=value`` overrides applied (values parsed as YAML)."""
        values: dict[str, Any] = {}
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {item!r} is not key=value (e.g. embedding.dim=64)")
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        return self.with_settings(values)

    def with_settings(self, values: Mapping[str, Any]) -> Config:
        """A copy with ``{dotted key: value}`` applied (values as Python objects)."""
        data = to_dict(self)
        for key, value in values.items():
            _set_dotted(data, key, value)
        return from_dict(data)

    def to_json(self) -> str:
        return json.dumps(to_dict(self), sort_keys=True)


# The embedding.* settings only one method reads; set with another method they are refused.
METHOD_SETTINGS = {
    EmbedderKind.PRONE: ("order", "mu", "theta", "svd_iterations"),
    EmbedderKind.FASTRP: ("iteration_weights", "degree_power", "normalize_iterates"),
}


def _reject_other_methods(cfg: EmbeddingConfig) -> None:
    default = EmbeddingConfig()
    for method, keys in METHOD_SETTINGS.items():
        if method is cfg.method:
            continue
        for key in keys:
            value = getattr(cfg, key)
            if value != getattr(default, key):
                raise ConfigError(
                    f"embedding.{key} is a setting of embedding.method={method.value}; "
                    f"embedding.method={cfg.method.value} does not read it. Found "
                    f"embedding.{key}={to_dict(value)!r}: unset it or choose "
                    f"embedding.method={method.value}."
                )


def _check(ok: bool, key: str, expected: str, found: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {expected}; found {found!r}")


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    if key.startswith("spark.conf."):  # Spark keys contain dots themselves
        data["spark"]["conf"][key.removeprefix("spark.conf.")] = value
        return
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if part not in node or not isinstance(node[part], dict):
            raise ConfigError(
                f"unknown config key {key!r}: no section {'.'.join(parts[: i + 1])!r}"
            )
        node = node[part]
    last = parts[-1]
    if last not in node:
        known = ", ".join(sorted(node))
        raise ConfigError(f"unknown config key {key!r}; known keys here: {known}")
    node[last] = value


def to_dict(obj: Any) -> Any:
    """Plain-data (JSON/YAML-able) form of a config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping; found {value!r}")
        return _build(tp, value, key + ".")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(m.value for m in tp)
            raise ConfigError(f"{key} must be one of {choices}; found {value!r}") from None
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{key} must be a non-empty list; found {value!r}")
        item = typing.get_args(tp)[0]
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping; found {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false; found {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer; found {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number; found {value!r}")
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string; found {value!r}")
        return str(value)
    return value


def _build(cls: Any, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"known: {', '.join(sorted(prefix + n for n in names))}"
        )
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from plain data."""
    return typing.cast(Config, _build(Config, data or {}, ""))


# The configs of conf/ ship inside the package (distne/conf links to it), so a job finds them
# whatever its working directory: a Databricks task runs in the script's folder, a wheel
# task anywhere.
SHIPPED = Path(__file__).parent / "conf"


def find_config(path: str | Path) -> Path:
    """``path`` if it is a file, else the shipped config of that name (``databricks``,
    ``databricks.yaml`` and ``conf/databricks.yaml`` all name ``conf/databricks.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    name = p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml"
    if (SHIPPED / name).is_file():
        return SHIPPED / name
    shipped = ", ".join(sorted(c.stem for c in SHIPPED.glob("*.yaml")))
    raise ConfigError(
        f"config file {str(p)!r} not found (relative paths are read from {Path.cwd()}); "
        f"the configs shipped with distne are: {shipped}"
    )


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config (or the embedded defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = find_config(path)
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {str(p)!r} must hold a mapping; found {type(loaded).__name__}"
            )
        data = loaded or {}
    return from_dict(data).with_overrides(overrides)


def describe() -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every config field, for ``distne config --show``."""
    rows: list[tuple[str, Any, str]] = []

    def walk(cls: Any, prefix: str) -> None:
        default = cls()
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                walk(type(value), prefix + f.name + ".")
            else:
                rows.append((prefix + f.name, to_dict(value), f.metadata.get("help", "")))

    walk(Config, "")
    return rows
