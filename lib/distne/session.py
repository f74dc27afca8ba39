"""Spark sessions for entry points only. Library functions take ``spark`` as an argument."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from distne.classarchive import cache_dir, java_options
from distne.config import Config, SparkConfig

# The Delta connector's JVM artifact for the installed pyspark's line: Delta 4.4.0 is built
# for Spark 4.0, 4.1 and 4.2 (io.delta:delta-spark_4.1_2.13:4.4.0 for 4.1, the tested line;
# 4.4.1's artifacts are not served by Maven Central here).
DELTA_VERSION = "4.4.0"
DELTA_PACKAGE = "io.delta:delta-spark_{}_2.13:{}".format(
    ".".join(pyspark.__version__.split(".")[:2]), DELTA_VERSION
)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# GraphFrames' JVM package, the version graphframes-py is pinned to (spark.graphframes).
GRAPHFRAMES_PACKAGE = "io.graphframes:graphframes-spark4_2.13:0.11.0"

SIMPLIFIED_TRACEBACK = "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled"
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
DRIVER_OPTIONS = "spark.driver.extraJavaOptions"


def _classpath_file(packages: str = DELTA_PACKAGE) -> Path:
    """Where a local session remembers the jars Ivy resolved for ``packages``."""
    key = hashlib.sha256(f"{packages} {pyspark.__version__}".encode()).hexdigest()[:16]
    return cache_dir() / f"delta-classpath-{key}.txt"


def _cached_classpath(packages: str = DELTA_PACKAGE) -> str | None:
    """The jars of ``packages`` as resolved by an earlier local session, if all still exist."""
    try:
        jars = _classpath_file(packages).read_text().split()
    except OSError:
        return None
    if not jars or not all(Path(j.removeprefix("file://")).is_file() for j in jars):
        return None
    return ",".join(jars)


def _remember_classpath(spark: SparkSession, packages: str) -> None:
    """Keep the jars Ivy just resolved, so the next local session starts without resolving."""
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    if not jars:
        return
    path = _classpath_file(packages)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(jars.split(",")) + "\n")
        tmp.replace(path)
    except OSError:
        pass  # a cache only: the next session resolves again


def _local(master: str | None) -> bool:
    return bool(master and master.startswith("local"))


def jvm_packages(sc: SparkConfig) -> str:
    """The Maven coordinates a session asks for (comma-separated; "" for none)."""
    wanted = [DELTA_PACKAGE] if sc.delta_jars else []
    return ",".join(wanted + ([GRAPHFRAMES_PACKAGE] if sc.graphframes else []))


def session_settings(config: Config, master: str | None) -> tuple[dict[str, str], bool]:
    """The settings a session is built with, and whether to remember the jars Ivy resolves."""
    sc = config.spark
    local = _local(master)
    settings: dict[str, str] = {}
    # A local session started before resolved the Delta package with Ivy, which takes ~2 s
    # and prints ~90 lines on every start; its jars are reused from the cache it left, and
    # its JVM starts from the class archive built for them (distne.classarchive). Not on
    # clusters (the files are the driver's) nor when the settings name jars themselves.
    remember = False
    archive = ""
    packages = jvm_packages(sc)
    if sc.delta_jars:
        settings.update(DELTA_CONF)
    if packages:
        own_jars = {"spark.jars", "spark.jars.packages"} & set(sc.conf)
        cached = _cached_classpath(packages) if local and not own_jars else None
        if cached:
            settings["spark.jars"] = cached
            archive = java_options(cached) if sc.class_archive else ""
        else:
            settings["spark.jars.packages"] = packages
            remember = local and not own_jars
    if sc.shuffle_partitions:
        settings[SHUFFLE_PARTITIONS] = str(sc.shuffle_partitions)
    settings.update(sc.conf)
    if archive:
        settings[DRIVER_OPTIONS] = f"{settings.get(DRIVER_OPTIONS, '')} {archive}".strip()
    if settings.get(SIMPLIFIED_TRACEBACK, "true").lower() != "false":
        # SQL's Python functions run with this variable, RDD functions (the exchange) without
        # it, and Spark keeps one pool of Python workers per environment: two pools of idle
        # workers per executor. Giving RDD functions the same variable makes it one pool.
        settings.setdefault("spark.executorEnv.SPARK_SIMPLIFIED_TRACEBACK", "1")
    return settings, remember


def shuffle_partitions(spark: SparkSession) -> int:
    """The session's ``spark.sql.shuffle.partitions``: how many partitions a shuffle makes,
    and so how many a table kept by a column (:func:`distne.sparkutil.cut_lineage` with
    ``by``) needs to meet the other side of a join without a shuffle of its own."""
    return int(spark.conf.get(SHUFFLE_PARTITIONS) or 200)


def fit_shuffle_partitions(spark: SparkSession, edges: int, config: SparkConfig) -> str | None:
    """Raise ``spark.sql.shuffle.partitions`` to ``edges / spark.edges_per_partition`` where
    it is lower, and say so (None when it stays).

    Every join and aggregate of the ingest and the partition stage shuffles the edges into
    that many partitions, so it sets the rows each task sorts: eight partitions (the local
    default) hold ~11M edges each at 100M edges, and label propagation then spilled ~19 GB per
    round. Never lowered: a cluster's larger value is kept, and AQE coalesces small partitions.
    """
    if not config.edges_per_partition:
        return None
    want = math.ceil(edges / config.edges_per_partition)
    have = shuffle_partitions(spark)
    if want <= have:
        return None
    spark.conf.set(SHUFFLE_PARTITIONS, str(want))
    return (
        f"{SHUFFLE_PARTITIONS} raised from {have} to {want} for {edges:,} edges "
        f"(spark.edges_per_partition={config.edges_per_partition:,})"
    )


def build_session(config: Config, default_master: str | None) -> SparkSession:
    """Get or create the session an entry point runs in.

    Args:
        config: ``spark.*`` settings are applied (master, app name, shuffle partitions, conf).
        default_master: the master to use when ``spark.master`` is not configured: the
            ``distne`` CLI passes ``local[*]`` (its embedded default); ``spark-submit`` jobs pass
            None so the cluster's master applies.
    """
    builder = SparkSession.builder.appName(config.spark.app_name)
    master = config.spark.master or default_master
    if master:
        builder = builder.master(master)
    if _local(master):
        # Local Python workers run the interpreter the CLI runs in (the project's .venv),
        # not whatever python3 is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings, remember = session_settings(config, master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if remember:
        _remember_classpath(spark, settings["spark.jars.packages"])
    if config.runtime.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(config.runtime.checkpoint_dir)
    return spark
