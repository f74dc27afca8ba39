"""Small Spark helpers shared by the stages: lineage cuts, deterministic hashing, progress."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyspark import RDD, StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from distne.config import LineageCut, RuntimeConfig
from distne.session import shuffle_partitions

_UNIT = float(2**31)


def _columns(cols: tuple[Column | str | int, ...]) -> list[Column]:
    """Ints become literals, strings column names; columns stay as they are."""
    return [
        F.lit(c) if isinstance(c, int) else (F.col(c) if isinstance(c, str) else c) for c in cols
    ]


def uniform(seed: int, *cols: Column | str | int) -> Column:
    """A deterministic pseudo-random double in [0, 1) from the seed and the given columns.

    Unlike ``F.rand(seed)`` it does not depend on how rows are partitioned, so reruns with the
    same input and seed make the same choices.
    """
    h = F.xxhash64(F.lit(seed), *_columns(cols)).bitwiseAND(F.lit(0x7FFFFFFF).cast("long"))
    return h.cast("double") / F.lit(_UNIT)


def hash_bucket(seed: int, k: int, *cols: Column | str | int) -> Column:
    """A deterministic bucket in [0, k) from the seed and the given columns."""
    return F.pmod(F.xxhash64(F.lit(seed), *_columns(cols)), F.lit(k))


def node_side(df: DataFrame, broadcast: bool) -> DataFrame:
    """A per-node table about to be joined to the edges, hinted to be broadcast if asked.

    Joined by a shuffle, every edge row crosses the network to meet its node's row, and then
    again to be grouped by its other end; broadcast, the node table goes to every executor
    once and the edges are read where they lie. A broadcast is collected by the driver first:
    callers ask for it only for tables the driver may hold (the partitioner:
    :func:`distne.partition.parts.broadcastable`).
    """
    return F.broadcast(df) if broadcast else df


def label_ends(
    edges: DataFrame, labels: DataFrame, ends: tuple[str, str], broadcast: bool
) -> DataFrame:
    """``edges`` (``src, dst, ...``) with the label of both ends from ``labels`` (``id`` and
    one label column), named ``ends``; edges whose ends have no label are dropped."""
    value = next(c for c in labels.columns if c != "id")
    at_src = node_side(labels.withColumnsRenamed({"id": "src", value: ends[0]}), broadcast)
    at_dst = node_side(labels.withColumnsRenamed({"id": "dst", value: ends[1]}), broadcast)
    return edges.join(at_src, "src").join(at_dst, "dst")


def cut_lineage(
    df: DataFrame, runtime: RuntimeConfig, by: str | None = None, partitions: int | None = None
) -> DataFrame:
    """Materialise ``df`` and cut its plan, as ``runtime.lineage`` says.

    Iterative and recursive plans grow with every round; this (and :func:`cut_rdd_lineage`
    for the exchange's RDDs) is where the pipeline cuts them. ``local_checkpoint`` keeps the
    data in executor storage (fast, lost with an executor); ``checkpoint`` writes it to
    ``runtime.checkpoint_dir`` (reliable).

    ``by``: hash-partition the rows by this column into ``partitions`` parts (default: the
    session's shuffle partitions, what the other side of a join is shuffled into) before they are
    kept, and say so to the planner, so that later joins and aggregates keyed by that column
    (with the other side in as many parts) read the rows where they lie instead of shuffling
    them again: for a table read once per round, such as the edges of label propagation.

    A checkpointed plan keeps the *size estimate* of the plan it replaced, and Spark estimates
    an inner join's size as the product of its inputs' sizes: over rounds of join-then-cut the
    estimate squares each round and planning alone takes minutes (seen at the 8th round on a
    4k-node graph). So the checkpointed rows are re-wrapped in a fresh relation whose estimate
    is the default, which keeps planning time flat. The fresh relation reads the kept rows as
    they are (Spark's internal rows): rebuilding it from ``DataFrame.rdd`` would convert every
    row to a Python-facing ``Row`` and back on every read (a scan 1.5x slower).

    Local checkpoints keep their rows on the executors' disks (``DISK_ONLY``). Spark's
    default for a local checkpoint keeps rows as Java objects in the heap first: a block that
    does not fit is built in memory, given up and written to disk, and every later read tries
    to put it back in memory. At 100M edges that was 815 s of GC (469 full collections of a
    4 GB heap) before the partition stage ended; on disk the rows are serialized, the OS page
    cache (not the process) holds them, and a 10M-edge partition stage spent 8 s in GC instead
    of 40 s, giving the same parts.
    """
    if by is not None:
        partitions = partitions or shuffle_partitions(df.sparkSession)
        df = df.repartition(partitions, by)
    if runtime.lineage is LineageCut.CHECKPOINT:
        cut = df.checkpoint(eager=True)
    else:
        cut = df.localCheckpoint(eager=True, storageLevel=StorageLevel.DISK_ONLY)
    jvm = cut.sparkSession._jvm
    assert jvm is not None
    jspark = cut.sparkSession._jsparkSession
    plan = cut._jdf.queryExecution().analyzed()  # a LogicalRDD over the kept rows
    layout = plan.outputPartitioning()
    if by is not None:
        # Spark's own hash partitioning by ``by`` into ``partitions`` parts: what the
        # repartition above did (an adaptive plan reports it as unknown).
        scala = jvm.scala.jdk.javaapi.CollectionConverters
        key = next(a for a in scala.asJava(plan.output()) if a.name() == by)
        layout = jvm.org.apache.spark.sql.catalyst.plans.physical.HashPartitioning(
            scala.asScala(jvm.java.util.List.of(key)).toSeq(), partitions
        )
    none = jvm.scala.Option.empty()
    fresh = plan.copy(
        plan.output(),
        plan.rdd(),
        layout,
        plan.outputOrdering(),
        plan.isStreaming(),
        plan.stream(),
        jspark,
        none,  # no size estimate: the default
        none,
    ).newInstance()
    return DataFrame(
        jvm.org.apache.spark.sql.classic.Dataset.ofRows(jspark, fresh), cut.sparkSession
    )


@contextmanager
def releasing(spark: SparkSession, release: bool = True) -> Iterator[None]:
    """Unpersist, when the block ends, every RDD persisted inside it (with ``release``).

    For a stage whose result is written out and read back (the run folder's graph and
    partition): its local checkpoints then hold executor disk that nothing will read again.
    Spark would drop them only once the JVM garbage-collects their RDDs, and the Python
    handles that PySpark keeps in the JVM's gateway outlive the stage (seen: a persisted
    RDD still held after ``del``, ``gc.collect()`` and a JVM ``System.gc()``). At 100M edges
    the partition stage's checkpoints stayed on disk through the exchange that followed.
    A block that raises keeps them (a retry may still read them).
    """
    jsc = spark.sparkContext._jsc
    before = set(jsc.getPersistentRDDs().keys()) if release else set()
    yield
    if release:
        # Spark warns of each one that its lineage "cannot be recomputed after unpersisting":
        # true, and the reason they are released here.
        with _quiet(spark, "org.apache.spark.rdd.MapPartitionsRDD"):
            for rdd_id, rdd in jsc.getPersistentRDDs().items():
                if rdd_id not in before:
                    rdd.unpersist(False)


@contextmanager
def shuffles_let_go(spark: SparkSession, wait: float = 30.0) -> Iterator[None]:
    """Delete, when the block ends, the shuffle files of the shuffles made inside it that
    nothing references any more (at most ``wait`` seconds spent on it).

    Spark's ``ContextCleaner`` removes a shuffle's files once the driver JVM has
    garbage-collected its dependency, which a JVM with room to spare may not do for the rest
    of the run (Spark's own periodic collection comes every 30 minutes). So the block's
    shuffles are watched in the driver's map-output tracker and the JVM is asked to collect
    until they are unregistered. Seen on Spark 4.1: a plan dropped after a cut outlived the
    first collection and went with one made a second later. A shuffle still referenced (a
    plan the caller keeps) is never removed: the wait then runs out and the block's
    shuffles stay, as they would without this. Best effort where Spark's internals differ.
    """
    sc = spark.sparkContext
    try:
        first = sc._jsc.sc().newShuffleId()  # ids are sequential; one id is spent on it
    except Exception:  # noqa: BLE001 - a Spark without it: nothing is watched
        first = None
    yield
    gc.collect()
    system = sc._jvm.java.lang.System
    if first is None:
        system.gc()
        return
    tracker = sc._jvm.org.apache.spark.SparkEnv.get().mapOutputTracker()
    made = [i for i in range(first + 1, sc._jsc.sc().newShuffleId()) if tracker.containsShuffle(i)]
    deadline = time.monotonic() + wait
    while made and time.monotonic() < deadline:
        system.gc()
        time.sleep(0.25)
        made = [i for i in made if tracker.containsShuffle(i)]


@contextmanager
def _quiet(spark: SparkSession, logger: str) -> Iterator[None]:
    """The JVM logger ``logger`` at ERROR for the block (best effort: log4j 2 only)."""
    try:
        log4j = spark.sparkContext._jvm.org.apache.logging.log4j
        level = log4j.LogManager.getLogger(logger).getLevel()
        log4j.core.config.Configurator.setLevel(logger, log4j.Level.ERROR)
    except Exception:  # noqa: BLE001 - another logging backend: the warnings stay
        yield
        return
    try:
        yield
    finally:
        log4j.core.config.Configurator.setLevel(logger, level)


def remove_checkpoint_dir(spark: SparkSession) -> None:
    """Delete the session's current checkpoint folder (the UUID folder Spark made under the
    folder given to ``setCheckpointDir``) and everything checkpointed into it.

    Spark removes reliable checkpoints only when their RDDs are garbage-collected and
    ``spark.cleaner.referenceTracking.cleanCheckpoints`` is on (it is off by default), so a
    run with ``runtime.lineage=checkpoint`` left every level, round and product of its
    lineage behind. Call it once nothing will read them.
    """
    current = spark.sparkContext._jsc.sc().getCheckpointDir()
    if current.isDefined():
        fs, path = hadoop_path(spark, current.get())
        fs.delete(path, True)


def hadoop_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop file system holding ``path`` (local, HDFS, S3, ABFS...) and its Hadoop path."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, jpath


def read_bytes(spark: SparkSession, path: str) -> bytes:
    """The bytes of a small file on any Hadoop file system."""
    fs, jpath = hadoop_path(spark, path)
    stream = fs.open(jpath)
    try:
        return bytes(spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def write_bytes(spark: SparkSession, path: str, data: bytes) -> None:
    """Write a small file whole or not at all (a temporary name, then a rename): a process
    killed mid-write leaves at most the temporary file."""
    fs, jpath = hadoop_path(spark, path)
    _, tmp = hadoop_path(spark, path + ".tmp")
    stream = fs.create(tmp, True)
    try:
        stream.write(bytearray(data))
    finally:
        stream.close()
    fs.delete(jpath, False)
    if not fs.rename(tmp, jpath):
        raise OSError(f"could not rename {path}.tmp to {path}")


def posix_path(spark: SparkSession, path: str) -> str | None:
    """``path`` as a local file path, if Hadoop resolves it to the local file system (a path
    without a scheme is on ``fs.defaultFS``, which on a cluster is HDFS or an object store)."""
    fs, jpath = hadoop_path(spark, path)
    uri = fs.makeQualified(jpath).toUri()
    return uri.getPath() if uri.getScheme() == "file" else None


def cut_rdd_lineage(rdd: RDD, runtime: RuntimeConfig) -> RDD:
    """Cache ``rdd`` and mark its lineage to be cut, as ``runtime.lineage`` says; the next
    action on it materialises both (the caller picks the action, e.g. one that also reduces)."""
    rdd = rdd.persist(StorageLevel.MEMORY_AND_DISK)
    if runtime.lineage is LineageCut.CHECKPOINT:
        rdd.checkpoint()
    else:
        rdd.localCheckpoint()
    return rdd


LOG = logging.getLogger("distne")


class _JvmStderr:
    """The driver JVM's ``System.err`` as a text stream."""

    def __init__(self, err: Any):
        self._err = err

    def write(self, text: str) -> None:
        self._err.print(text)

    def flush(self) -> None:
        self._err.flush()


def driver_stderr() -> Any:
    """Where the driver's messages for stderr go: ``sys.stderr``, except under spark-submit
    with a session running, where Spark's PythonRunner merges the Python process's stderr
    into its stdout: there, the JVM's own stderr (so stdout carries the summary alone)."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # the JVM started this Python (spark-submit)
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is not None and sc._jvm is not None:
            return _JvmStderr(sc._jvm.System.err)
    return sys.stderr


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever :func:`driver_stderr` is when a line is written (a
    notebook's cell output, a test's capture, the JVM's stderr under spark-submit), not the
    stream of the moment it was made."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return driver_stderr()

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


# What a stage counts, how many are done, of how many: ("product", 12, 31).
StageCounter = Callable[[], tuple[str, int, int]]


def progress_logger() -> logging.Logger:
    """The ``distne`` logger; unless the application configured it (a handler or a level of
    its own), it prints INFO and above to stderr as ``[distne] message``."""
    if not LOG.handlers and LOG.level == logging.NOTSET:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("[distne] %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False
    return LOG


class Remaining:
    """An estimate of the time left from a count that moves (products done, subgraphs done).

    The rate is measured from the first time the count was seen to move, not from the
    stage's start: what comes before the first unit (the exchange's setup) says nothing of
    how long the units take, and a resumed run starts its count part-way.
    """

    def __init__(self) -> None:
        self._seen: int | None = None
        self._since: tuple[float, int] | None = None

    def update(self, now: float, done: int, total: int) -> float | None:
        """Seconds left once the count has moved twice (None before, and when done)."""
        if self._seen is not None and done != self._seen and self._since is None:
            self._since = (now, done)
        self._seen = done
        if self._since is None or done >= total or done <= self._since[1]:
            return None
        rate = (done - self._since[1]) / max(now - self._since[0], 1e-9)
        return (total - done) / rate


def say_duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Logs ``stage: detail (elapsed)`` lines (logger ``distne``, INFO) while a stage runs.

    A background thread polls Spark's status tracker for the running stages' task counts, so a
    long Spark job shows movement without anything being collected.
    """

    def __init__(self, spark: SparkSession, enabled: bool, interval: float = 10.0):
        self._spark = spark
        self.enabled = enabled
        self.interval = interval
        self._log = progress_logger()
        # What the running stage is at (e.g. "level 0: refinement round 2/8"), set by the
        # stage's code and shown in the periodic lines.
        self.note = ""

    def log(self, msg: str) -> None:
        if self.enabled:
            self._log.info(msg)

    @contextmanager
    def stage(
        self, name: str, detail: str = "", counter: StageCounter | None = None
    ) -> Iterator[dict[str, float]]:
        """Time a stage; yields a dict that receives ``seconds`` when the stage ends.

        ``counter``, if given, returns what the stage counts, how many are done and of how
        many (e.g. ``("product", 12, 31)``): the periodic lines show it with an estimate of
        the time left (:class:`Remaining`).
        """
        out: dict[str, float] = {}
        start = time.perf_counter()
        self.log(f"{name}: started {detail}".rstrip())
        stop = threading.Event()
        watcher = None
        if self.enabled:
            watcher = threading.Thread(
                target=self._watch, args=(name, start, stop, counter), daemon=True
            )
            watcher.start()
        self.note = ""
        try:
            yield out
        finally:
            self.note = ""
            stop.set()
            if watcher is not None:
                watcher.join(timeout=1)
            out["seconds"] = time.perf_counter() - start
            self.log(f"{name}: done in {out['seconds']:.1f}s")

    def _watch(
        self, name: str, start: float, stop: threading.Event, counter: StageCounter | None
    ) -> None:
        tracker = self._spark.sparkContext.statusTracker()
        remaining = Remaining()
        while not stop.wait(self.interval):
            done = total = 0
            for sid in tracker.getActiveStageIds():
                info = tracker.getStageInfo(sid)
                if info is not None:
                    done += info.numCompletedTasks
                    total += info.numTasks
            tasks = f", tasks {done}/{total}" if total else ""
            extra = ""
            if counter is not None:
                what, count, of = counter()
                extra = f", {what} {count}/{of}"
                left = remaining.update(time.perf_counter(), count, of)
                if left is not None:
                    extra += f" (~{say_duration(left)} left)"
            extra += f", {self.note}" if self.note else ""
            self.log(f"{name}: running{extra}{tasks}, {time.perf_counter() - start:.0f}s elapsed")
