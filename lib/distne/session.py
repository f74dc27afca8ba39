"""Spark sessions for entry points only. Library functions take ``spark`` as an argument."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from distne.config import Config

# The Delta connector's JVM artifact, matching pyspark 4.1 and the pinned delta-spark.
DELTA_PACKAGE = "io.delta:delta-spark_4.1_2.13:4.4.0"

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

SIMPLIFIED_TRACEBACK = "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled"


def build_session(config: Config, default_master: str | None) -> SparkSession:
    """Get or create the session an entry point runs in.

    Args:
        config: ``spark.*`` settings are applied (master, app name, shuffle partitions, conf).
        default_master: the master to use when ``spark.master`` is not configured: the
            ``distne`` CLI passes ``local[*]`` (its embedded default); ``spark-submit`` jobs pass
            None so the cluster's master applies.
    """
    sc = config.spark
    builder = SparkSession.builder.appName(sc.app_name)
    master = sc.master or default_master
    settings: dict[str, str] = {}
    if master:
        builder = builder.master(master)
    if master and master.startswith("local"):
        # Local Python workers run the interpreter the CLI runs in (the project's .venv),
        # not whatever python3 is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if sc.delta_jars:
        settings.update(DELTA_CONF)
        settings["spark.jars.packages"] = DELTA_PACKAGE
    if sc.shuffle_partitions:
        settings["spark.sql.shuffle.partitions"] = str(sc.shuffle_partitions)
    settings.update(sc.conf)
    if settings.get(SIMPLIFIED_TRACEBACK, "true").lower() != "false":
        # SQL's Python functions run with this variable, RDD functions (the exchange) without
        # it, and Spark keeps one pool of Python workers per environment: two pools of idle
        # workers per executor. Giving RDD functions the same variable makes it one pool.
        settings.setdefault("spark.executorEnv.SPARK_SIMPLIFIED_TRACEBACK", "1")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if config.runtime.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(config.runtime.checkpoint_dir)
    return spark
