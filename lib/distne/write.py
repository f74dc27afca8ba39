"""Write: the embeddings as a Delta table, atomically, with the run recorded in the same commit.

The table is a Delta path (``output.path``) or a catalog table (``output.table``: a managed
Delta table, created or replaced); later commands find either by :func:`open_embeddings`.

Table columns: ``node_id`` (the user's id), ``subgraph_id`` (the node's leaf subgraph),
``embedding`` (``array<float>``, last: Delta keeps no statistics on arrays). The run's config,
seed, counts and stage timings go into the commit's ``userMetadata`` (JSON), so
``DESCRIBE HISTORY delta.`<path>``` shows which run wrote each version.
"""

from __future__ import annotations

import enum
import json
import os
import re
import socket
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from distne.config import TABLE_NAME, OutputConfig, WriteMode
from distne.errors import InputError, OutputError
from distne.sparkutil import hadoop_path, read_bytes

TABLE_COLUMNS = ("node_id", "subgraph_id", "embedding")


class OutputState(enum.Enum):
    ABSENT = "absent"  # nothing at the path (or an empty folder)
    DISTNE_TABLE = "distne_table"  # a Delta table this project wrote
    INTERRUPTED = "interrupted"  # the leftovers of distne's own first write, killed mid-way


# Written into a new output folder before its first write and removed once the first version
# is committed: a folder holding it and no Delta version is distne's own interrupted write (a
# killed driver runs no cleanup), which a rerun replaces. Spark and Delta skip names starting
# with '_'.
FIRST_WRITE_MARKER = "_distne_first_write"


def output_state(spark: SparkSession, path: str) -> OutputState:
    """What the output path holds now; raise :class:`OutputError` if it is not ours to write."""
    from delta.tables import DeltaTable

    fs, jpath = hadoop_path(spark, path)
    if not fs.exists(jpath):
        return OutputState.ABSENT
    if not fs.getFileStatus(jpath).isDirectory():
        raise OutputError(
            f"output {path!r} is a file; expected a Delta table folder (new or written by "
            f"distne). Choose another --output."
        )
    entries = [s.getPath().getName() for s in fs.listStatus(jpath)]
    if not entries:
        return OutputState.ABSENT
    is_delta = DeltaTable.isDeltaTable(spark, path)
    if FIRST_WRITE_MARKER in entries and not is_delta:
        _refuse_live_writer(spark, path)
        return OutputState.INTERRUPTED
    if is_delta:
        columns = spark.read.format("delta").load(path).columns
        if all(c in columns for c in TABLE_COLUMNS):
            return OutputState.DISTNE_TABLE
        raise OutputError(
            f"output {path!r} holds a Delta table with columns {columns}, not a distne "
            f"embeddings table (expected columns {list(TABLE_COLUMNS)}); distne will not "
            f"overwrite it. Choose another --output."
        )
    shown = ", ".join(sorted(entries)[:5])
    raise OutputError(
        f"output {path!r} is a folder holding files that are not a Delta table ({shown}"
        f"{', ...' if len(entries) > 5 else ''}); expected a new path or a distne table. "
        f"Choose another --output."
    )


def _marker(spark: SparkSession, jpath: Any) -> Any:
    """The marker's Hadoop path inside the output folder ``jpath`` (a Hadoop path)."""
    return spark.sparkContext._jvm.org.apache.hadoop.fs.Path(jpath, FIRST_WRITE_MARKER)


def _refuse_live_writer(spark: SparkSession, path: str) -> None:
    """Refuse a folder whose first write is still running in a live process on this host."""
    _, jpath = hadoop_path(spark, path)
    try:
        writer = json.loads(read_bytes(spark, _marker(spark, jpath).toString()))
    except Exception:  # unreadable marker: nothing says a writer is alive
        return
    pid = writer.get("pid")
    if writer.get("host") != socket.gethostname() or not isinstance(pid, int):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass  # alive, another user's
    if pid == os.getpid():
        return  # this process's own earlier attempt (a notebook rerunning a failed cell)
    raise OutputError(
        f"output {path!r} is being written for the first time by process {pid} on this host "
        f"(since {writer.get('started')}); wait for it to finish or choose another --output."
    )


def _mark_first_write(spark: SparkSession, fs: Any, jpath: Any) -> None:
    fs.mkdirs(jpath)
    stream = fs.create(_marker(spark, jpath), True)
    try:
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        stream.write(bytearray(json.dumps(record).encode()))
    finally:
        stream.close()


# What Spark's CSV writer leaves in a folder: the parts, the success marker, their checksums.
CSV_OUTPUT_FILES = re.compile(r"^\.?(part-.*|_SUCCESS)(\.crc)?$")


def check_csv_output(spark: SparkSession, what: str, path: str) -> None:
    """Refuse a CSV output folder that holds anything but an earlier CSV output of Spark's.

    Spark's ``mode("overwrite")`` deletes the whole folder first, so a folder of the user's
    own files would be lost; a file at the path is refused too.
    """
    fs, jpath = hadoop_path(spark, path)
    if not fs.exists(jpath):
        return
    if not fs.getFileStatus(jpath).isDirectory():
        raise OutputError(
            f"{what} {path!r} is a file; expected a new folder (or one this command wrote "
            f"before). Choose another path; distne will not delete it."
        )
    foreign = sorted(
        name
        for name in (s.getPath().getName() for s in fs.listStatus(jpath))
        if not CSV_OUTPUT_FILES.match(name)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"{what} {path!r} holds files that are not CSV parts written by Spark ({shown}); "
            f"writing would delete them. Expected a new folder or one this command wrote "
            f"before. Choose another path, or empty it yourself."
        )


def check_output(spark: SparkSession, path: str | None, mode: WriteMode) -> OutputState:
    """Validate the output before any work starts, so a bad path fails in seconds."""
    if not path:
        raise OutputError(
            "no output given: set --output PATH (or output.path, or output.table, in the config)."
        )
    state = output_state(spark, path)
    if state is OutputState.DISTNE_TABLE and mode is WriteMode.ERROR:
        raise OutputError(
            f"output {path!r} already holds a distne table and output.mode=error; "
            f"set output.mode=overwrite to replace it (the old version stays in Delta history)."
        )
    return state


def _delta_writer(table: DataFrame, metadata: dict[str, Any]) -> Any:
    """The writer of every distne table: the table's columns, replacing what is there (schema
    too) in one Delta commit that records the run in its ``userMetadata``."""
    return (
        table.select(*TABLE_COLUMNS)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", json.dumps({"distne": metadata}, sort_keys=True, default=str))
    )


def _delta_table(spark: SparkSession, ref: str) -> Any:
    """The ``DeltaTable`` at ``ref``: a catalog table name or a path (:func:`is_table_name`)."""
    from delta.tables import DeltaTable

    return (DeltaTable.forName if is_table_name(ref) else DeltaTable.forPath)(spark, ref)


def _latest_version(spark: SparkSession, ref: str) -> int:
    row = _delta_table(spark, ref).history(1).select("version").first()
    assert row is not None
    return int(row["version"])


def write_embeddings(
    spark: SparkSession,
    table: DataFrame,
    path: str,
    mode: WriteMode,
    metadata: dict[str, Any],
) -> int:
    """Write ``table`` (``node_id, subgraph_id, embedding``) to Delta; return the new version.

    The write is one Delta commit: readers see the old version or the new one, never a mix. If
    the path was empty and the write fails, the folder is removed so nothing half-written stays;
    if the process is killed instead, :data:`FIRST_WRITE_MARKER` tells the rerun that the
    leftovers are its own to replace.
    """
    # Checked again (the run checked before starting): something may have appeared at the path
    # during a long run, and the state decides whether a failed write removes the folder.
    state = check_output(spark, path, mode)
    fs, jpath = hadoop_path(spark, path)
    if state is OutputState.INTERRUPTED:
        fs.delete(jpath, True)  # distne's own leftovers (see FIRST_WRITE_MARKER)
        state = OutputState.ABSENT
    if state is OutputState.ABSENT:
        _mark_first_write(spark, fs, jpath)
    try:
        _delta_writer(table, metadata).save(path)
    except BaseException:
        if state is OutputState.ABSENT and fs.exists(jpath):
            fs.delete(jpath, True)
        raise
    fs.delete(_marker(spark, jpath), False)  # committed: from now on a distne table
    return _latest_version(spark, path)


def read_run_metadata(spark: SparkSession, path: str) -> dict[str, Any]:
    """The ``distne`` run record of the table's latest version (``path``: a Delta path or a
    catalog table name, as for :func:`open_embeddings`)."""
    row = _delta_table(spark, path).history(1).select("userMetadata").first()
    if row is None or not row["userMetadata"]:
        return {}
    return dict(json.loads(row["userMetadata"]).get("distne", {}))


def is_table_name(ref: str) -> bool:
    """Whether ``ref`` (an ``--embeddings`` argument) names a catalog table rather than a path:
    a valid table name with no ``/`` or scheme, and no local file or folder of that name."""
    return bool(TABLE_NAME.match(ref)) and not os.path.exists(ref)


def open_embeddings(spark: SparkSession, ref: str) -> DataFrame:
    """The embeddings table ``ref``: a Delta path, or a catalog table name (:func:`is_table_name`).

    Raises :class:`InputError` naming ``ref`` if there is no table there.
    """
    try:
        if is_table_name(ref):
            return spark.read.table(ref)
        return spark.read.format("delta").load(ref)
    except Exception as e:  # AnalysisException: not a Delta table, no such path or table
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"embeddings {ref!r}: expected a Delta table written by distne (a path or a "
            f"catalog table name); found none ({first})."
        ) from None


def check_table_output(spark: SparkSession, name: str, mode: WriteMode) -> OutputState:
    """What the catalog table ``name`` holds (``output.table``); refuse a table that is not
    ours, and one of ours under ``output.mode=error``."""
    if not spark.catalog.tableExists(name):
        return OutputState.ABSENT
    columns = spark.read.table(name).columns
    provider = _provider(spark, name)
    if provider != "delta" or not all(c in columns for c in TABLE_COLUMNS):
        raise OutputError(
            f"output.table {name!r} holds a {provider or 'non-Delta'} table with columns "
            f"{columns}, not a distne embeddings table (expected a Delta table with columns "
            f"{list(TABLE_COLUMNS)}); distne will not replace it. Choose another output.table."
        )
    if mode is WriteMode.ERROR:
        raise OutputError(
            f"output.table {name!r} already holds a distne table and output.mode=error; "
            f"set output.mode=overwrite to replace it (the old version stays in Delta history)."
        )
    return OutputState.DISTNE_TABLE


def _provider(spark: SparkSession, name: str) -> str:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()  # a few dozen rows
    found = [r["data_type"] for r in rows if (r["col_name"] or "").strip() == "Provider"]
    return (found[0] or "").lower() if found else ""


def write_table(
    spark: SparkSession,
    table: DataFrame,
    name: str,
    mode: WriteMode,
    metadata: dict[str, Any],
) -> int:
    """Write ``table`` to the catalog table ``name`` in one Delta commit (created, or replaced
    as a new version); return the version. A failed first write leaves no table."""
    state = check_table_output(spark, name, mode)
    try:
        _delta_writer(table, metadata).saveAsTable(name)
    except BaseException:
        if state is OutputState.ABSENT and spark.catalog.tableExists(name):
            spark.sql(f"DROP TABLE IF EXISTS {name}")
        raise
    return _latest_version(spark, name)


def check_target(spark: SparkSession, output: OutputConfig) -> OutputState:
    """:func:`check_output` or :func:`check_table_output`, as ``output`` says."""
    if output.table:
        return check_table_output(spark, output.table, output.mode)
    return check_output(spark, output.path, output.mode)


def write_target(
    spark: SparkSession, table: DataFrame, output: OutputConfig, metadata: dict[str, Any]
) -> int:
    """:func:`write_embeddings` or :func:`write_table`, as ``output`` says."""
    if output.table:
        return write_table(spark, table, output.table, output.mode, metadata)
    assert output.path is not None
    return write_embeddings(spark, table, output.path, output.mode, metadata)
