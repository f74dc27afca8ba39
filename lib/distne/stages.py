"""Resume: a run keeps what its finished stages made, so that the same command rerun after a
crash starts where the crash stopped it.

A run keeps, in its *run folder*:

- ``graph/`` (the ingested graph's ``nodes`` and ``edges`` as Parquet) and ``graph.json``;
- ``partition/`` (the leaves: ``id, part``) and ``partition.json`` (the levels' statistics),
  when it embeds by exchange;
- ``exchange/``: the exchange's state every ``runtime.snapshot_every`` products
  (:mod:`distne.engine.snapshots`), written by the barrier tasks themselves, so it needs a
  folder they can write with plain file calls (a local path, or one mounted on every worker).

A stage's ``.json`` is written after its data, so a stage with a ``.json`` is whole. The run
folder is ``<output>.distne-stages/<fingerprint>`` (or, with ``runtime.checkpoint_dir``,
``<checkpoint_dir>/distne-stages/<hash of the output path>/<fingerprint>``): the
fingerprint hashes the input files (names, sizes, modification times; a catalog table's
file names), the config (but for
settings that change no result: Spark's settings and memory budgets, progress, output mode,
the transport, the stage settings themselves) and the distne version. A rerun with another
input or config has another fingerprint: it starts afresh and removes the stages of the
earlier one. Spark's parallelism and the worker budget are left out although they can change
the plan (an autoscaled cluster between attempts; more memory after a run ran out): the kept
partition is used only if it has the leaf bounds the rerun's plan chose, else it and the
exchange state are dropped and the rerun partitions again. The exchange's snapshots are per
leaf: the shuffle transport resumes from them with any number of Spark partitions, barrier
tasks with as many or fewer tasks than wrote them (more start the exchange over). The run
folder is removed once the table is committed, unless ``runtime.keep_stages``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from distne import __version__
from distne.config import Config, IdType, to_dict
from distne.engine.snapshots import newest_complete, newest_shuffle_snapshot
from distne.graph import Graph
from distne.ingest import read_table
from distne.partition import LevelMethod, LevelStats, Partitioning
from distne.sparkutil import hadoop_path, posix_path, read_bytes, write_bytes

STAGES_SUFFIX = ".distne-stages"

# Settings that change where, how visibly or with how much memory a run works, not what it
# computes: a run killed for want of memory can be rerun with more and still resume. (The
# worker budget can change the plan's leaf bounds: the kept partition is checked against
# them, see RunFolder.partition_fits.)
_NEUTRAL = {
    "runtime": (
        "progress",
        "resume",
        "keep_stages",
        "components",
        "snapshot_every",
        "checkpoint_dir",
        "lineage",
    ),
    "output": ("mode",),
    "run": ("worker_memory_gb", "transport"),
    "spark": None,  # the whole section: master, memory, Spark settings
}


def _read_text(spark: SparkSession, path: str) -> str | None:
    fs, jpath = hadoop_path(spark, path)
    return read_bytes(spark, path).decode() if fs.exists(jpath) else None


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    write_bytes(spark, path, text.encode())


def _input_files(spark: SparkSession, path: str) -> list[tuple[str, int, int]]:
    """``(name, bytes, modified ms)`` of every file under ``path`` (a file, folder or glob)."""
    fs, jpath = hadoop_path(spark, path)
    statuses = fs.globStatus(jpath) or []
    files: list[tuple[str, int, int]] = []
    for status in statuses:
        if status.isDirectory():
            it = fs.listFiles(status.getPath(), True)
            while it.hasNext():
                f = it.next()
                files.append((f.getPath().toString(), f.getLen(), f.getModificationTime()))
        else:
            files.append(
                (status.getPath().toString(), status.getLen(), status.getModificationTime())
            )
    return sorted(files)


def fingerprint(spark: SparkSession, config: Config) -> str:
    """What a run's results depend on, hashed: see the module docstring."""
    settings = to_dict(config)
    for section, keys in _NEUTRAL.items():
        if keys is None:
            settings.pop(section, None)
        for key in keys or ():
            settings[section].pop(key, None)
    record = {
        "version": __version__,
        "config": settings,
        # A catalog table by its files' names: Spark and Delta name every file a write makes
        # anew, so the names change with the data.
        "input": (
            sorted(read_table(spark, config.input.table).inputFiles())
            if config.input.table
            else _input_files(spark, config.input.path or "")
        ),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stages_root(config: Config, warehouse: str | None = None) -> str:
    """The folder holding the run folders of one output (path or table).

    Beside the output path, or under ``runtime.checkpoint_dir``; for an ``output.table``
    without a checkpoint folder, under ``warehouse`` (the session's warehouse folder).
    """
    table = config.output.table
    out = f"table:{table}" if table else (config.output.path or "").rstrip("/")
    base = config.runtime.checkpoint_dir or (warehouse if table else None)
    if base:
        key = hashlib.sha256(out.encode()).hexdigest()[:12]
        return f"{base.rstrip('/')}/distne-stages/{key}"
    return out + STAGES_SUFFIX


@dataclass
class RunFolder:
    """One run's kept stages (see the module docstring)."""

    spark: SparkSession
    path: str  # a Hadoop path: root/fingerprint
    root: str

    def _json(self, stage: str) -> dict[str, Any] | None:
        """A stage's record; None if missing or unreadable (then the stage runs again and
        writes it anew)."""
        try:
            text = _read_text(self.spark, f"{self.path}/{stage}.json")
            return None if text is None else json.loads(text)
        except Exception:  # a damaged record (checksum, truncation) is no finished stage
            return None

    def finished(self) -> list[str]:
        """The stages kept whole, in run order."""
        return [s for s in ("graph", "partition") if self._json(s) is not None]

    @property
    def snapshots(self) -> str:
        """Where the exchange keeps its state (a Hadoop path; see :attr:`local_snapshots`)."""
        return f"{self.path}/exchange"

    @property
    def exchange_blocks(self) -> str:
        """Where the exchange's setup writes the leaf blocks its barrier stage reads."""
        return f"{self.path}/exchange-blocks"

    @property
    def local_snapshots(self) -> str | None:
        """:attr:`snapshots` as a local path, which barrier tasks need, or None."""
        return posix_path(self.spark, self.snapshots)

    def exchange_kept(self) -> int:
        """The products done in the newest whole snapshot of the exchange (0: none)."""
        local = self.local_snapshots
        barrier = newest_complete(local) if local else 0
        return max(barrier, newest_shuffle_snapshot(self.spark, self.snapshots))

    # -- the graph -----------------------------------------------------------------------
    def claim(self) -> list[str]:
        """Remove the root's other run folders (another input or config for the same output:
        nothing in them can be used); return their names. Called before the first save, so a
        rerun that fails at once (a typo in a setting) leaves a crashed run's stages alone."""
        fs, jroot = hadoop_path(self.spark, self.root)
        removed = []
        if fs.exists(jroot):
            mine = self.path.rsplit("/", 1)[1]
            for status in fs.listStatus(jroot):
                if status.getPath().getName() != mine:
                    removed.append(status.getPath().getName())
                    fs.delete(status.getPath(), True)
        return removed

    def save_graph(self, graph: Graph) -> tuple[Graph, int, int]:
        """Write the graph, read it back (its plan cut there); return it and its counts."""
        for name in ("nodes", "edges"):
            getattr(graph, name).write.mode("overwrite").parquet(f"{self.path}/graph/{name}")
        kept = self._graph(graph.id_type, graph.loop_only)
        n, m = kept.nodes.count(), kept.edges.count()
        record = {
            "nodes": n,
            "edges": m,
            "id_type": graph.id_type.value,
            "loop_only": graph.loop_only,
        }
        _write_text(self.spark, f"{self.path}/graph.json", json.dumps(record))
        return kept, n, m

    def _graph(self, id_type: IdType, loop_only: int) -> Graph:
        read = self.spark.read.parquet
        return Graph(
            nodes=read(f"{self.path}/graph/nodes"),
            edges=read(f"{self.path}/graph/edges"),
            id_type=id_type,
            loop_only=loop_only,
        )

    def load_graph(self) -> tuple[Graph, int, int]:
        record = self._json("graph")
        assert record is not None
        graph = self._graph(IdType(record["id_type"]), int(record["loop_only"]))
        return graph, int(record["nodes"]), int(record["edges"])

    # -- the partition -------------------------------------------------------------------
    def save_partition(self, parts: Partitioning) -> Partitioning:
        """Write the leaves and the levels' statistics; return the partition read back."""
        leaves = parts.membership.where("level = 0").select("id", "part")
        leaves.write.mode("overwrite").parquet(f"{self.path}/partition/leaves")
        record = {
            "levels": [asdict(s) for s in parts.levels],
            "stop_reason": parts.stop_reason,
            "max_nodes": parts.max_nodes,
            "max_edges": parts.max_edges,
        }
        _write_text(self.spark, f"{self.path}/partition.json", json.dumps(record))
        return self.load_partition()

    def load_partition(self) -> Partitioning:
        """The kept partition: its leaves (level 0 of ``membership``) and statistics; no
        level edges (the exchange reads the graph's edges)."""
        record = self._json("partition")
        assert record is not None
        leaves = self.spark.read.parquet(f"{self.path}/partition/leaves")
        levels = []
        for s in record["levels"]:
            method = s.pop("method", None)
            s["size_histogram"] = tuple(s.get("size_histogram", ()))
            levels.append(LevelStats(**s, method=LevelMethod(**method) if method else None))
        return Partitioning(
            membership=leaves.select("id", F.lit(0).alias("level"), "part"),
            level_edges=[],
            levels=levels,
            stop_reason=record["stop_reason"],
            max_nodes=record["max_nodes"],
            max_edges=record["max_edges"],
        )

    def partition_fits(self, max_nodes: int | None, max_edges: int | None) -> bool:
        """Whether the kept partition was made with the leaf bounds this run's plan chose
        (unset bounds follow the cluster's parallelism, which may differ on a rerun)."""
        record = self._json("partition")
        return record is not None and (record["max_nodes"], record["max_edges"]) == (
            max_nodes,
            max_edges,
        )

    def drop_partition(self) -> None:
        """Remove the kept partition and the exchange state computed on it."""
        for name in ("partition.json", "partition", "exchange", "exchange-blocks"):
            fs, jpath = hadoop_path(self.spark, f"{self.path}/{name}")
            fs.delete(jpath, True)

    def remove(self) -> None:
        """Delete this run's stages, and the root if nothing else is in it."""
        fs, jpath = hadoop_path(self.spark, self.path)
        fs.delete(jpath, True)
        rfs, root = hadoop_path(self.spark, self.root)
        if rfs.exists(root) and not rfs.listStatus(root):
            rfs.delete(root, False)


def open_run_folder(spark: SparkSession, config: Config) -> RunFolder:
    """This run's folder (nothing is created until a stage is saved)."""
    root = stages_root(config, spark.conf.get("spark.sql.warehouse.dir"))
    return RunFolder(spark, f"{root}/{fingerprint(spark, config)}", root)
