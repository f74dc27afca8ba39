"""Small per-part tables: one row per part, bounded by the part count."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T


def small_table(spark: SparkSession, rows: list[tuple[int, float]], name: str) -> DataFrame:
    schema = T.StructType(
        [T.StructField("part", T.LongType(), False), T.StructField(name, T.DoubleType(), False)]
    )
    return F.broadcast(spark.createDataFrame(rows, schema))


def part_sizes(labels: DataFrame) -> dict[int, int]:
    # One row per part: a per-subgraph summary, bounded by nodes / max_nodes.
    return {
        int(r["part"]): int(r["n"])
        for r in labels.groupBy("part").agg(F.count("*").alias("n")).collect()
    }
