"""Export an embeddings table for tools outside Spark: Parquet, or word2vec's text format.

``word2vec`` is the format gensim's ``KeyedVectors.load_word2vec_format`` and most vector
tools read: a header ``<rows> <dim>``, then one line per node, its id and its numbers
separated by spaces. It is one file, so one task writes it (rows streamed, memory bounded);
the floats are written as Java prints them, which reads back to the same float32.
"""

from __future__ import annotations

import enum

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from distne.errors import InputError, OutputError
from distne.sparkutil import hadoop_path
from distne.write import open_embeddings


class ExportFormat(enum.Enum):
    PARQUET = "parquet"
    WORD2VEC = "word2vec"


def export(spark: SparkSession, embeddings: str, fmt: ExportFormat, output: str) -> dict:
    """Write the table at ``embeddings`` to ``output`` (a folder for Parquet, a file for
    word2vec); return what was written. Refuses an ``output`` that exists."""
    fs, out = hadoop_path(spark, output)
    if fs.exists(out):
        raise OutputError(
            f"export --output {output!r}: expected a path that does not exist yet; found "
            f"something there (distne does not overwrite exports)."
        )
    table = open_embeddings(spark, embeddings)
    if fmt is ExportFormat.PARQUET:
        table.select("node_id", "subgraph_id", "embedding").write.parquet(output)
        return {"format": fmt.value, "output": output}
    row = table.agg(
        F.count("*").alias("rows"),
        F.max(F.size("embedding")).alias("dim"),
        F.first(
            F.when(F.col("node_id").cast("string").rlike(r"\s|^$"), F.col("node_id")),
            ignorenulls=True,
        ).alias("spaced"),
    ).first()
    assert row is not None
    if row["spaced"] is not None:
        raise InputError(
            f"embeddings {embeddings!r}: word2vec's format separates ids from numbers by "
            f"spaces; found an id that is empty or holds whitespace: {row['spaced']!r}. "
            f"Export as parquet instead."
        )
    lines = table.select(
        F.concat_ws(
            " ",
            F.col("node_id").cast("string"),
            F.array_join(F.col("embedding").cast("array<string>"), " "),
        ).alias("value")
    )
    header = spark.createDataFrame([(f"{row['rows']} {row['dim'] or 0}",)], "value string")
    # coalesce(1) keeps the union's order: the header's partition first, then the rows.
    staging = output + ".distne-export"
    header.union(lines).coalesce(1).write.mode("overwrite").text(staging)
    _, staged = hadoop_path(spark, staging)
    (part,) = [
        s.getPath() for s in fs.listStatus(staged) if s.getPath().getName().startswith("part-")
    ]
    if not fs.rename(part, out):
        raise OutputError(f"export: could not move {part} to {output!r}")
    # A local file system renames the part's checksum file along (".name.crc"): not wanted
    # beside a file for other tools.
    checksum = out.getParent().suffix(f"/.{out.getName()}.crc")
    if fs.exists(checksum):
        fs.delete(checksum, False)
    fs.delete(staged, True)
    return {"format": fmt.value, "output": output, "rows": row["rows"], "dim": row["dim"]}
