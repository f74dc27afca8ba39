"""Crash-safe output: a first write killed mid-way is replaced by the rerun; nothing else is."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT
from distne.config import WriteMode
from distne.errors import OutputError
from distne.write import FIRST_WRITE_MARKER, OutputState, output_state, write_embeddings

pytestmark = pytest.mark.spark

# A first write to a new path whose tasks block (after saying so) until the process is killed.
BLOCKED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pyspark.sql import functions as F
    from distne.config import WriteMode, load_config
    from distne.session import build_session
    from distne.write import write_embeddings

    out, flag = sys.argv[1], Path(sys.argv[2])
    cfg = load_config(None, ["spark.shuffle_partitions=1", "spark.conf.spark.ui.enabled=false"])
    spark = build_session(cfg, "local[1]")

    @F.udf("long")
    def block(x):
        flag.write_text("writing")
        time.sleep(3600)
        return x

    table = spark.range(10).select(
        block("id").alias("node_id"),
        F.lit(0).cast("long").alias("subgraph_id"),
        F.array(F.lit(1.0).cast("float")).alias("embedding"),
    )
    write_embeddings(spark, table, out, WriteMode.OVERWRITE, {})
    """
)


def _table(spark, n):
    return spark.createDataFrame(
        [(i, 0, [float(i), 1.0]) for i in range(n)],
        "node_id long, subgraph_id long, embedding array<float>",
    )


def test_killed_first_write_is_replaced_on_rerun_and_nothing_else_is(spark, tmp_path):
    out, flag = tmp_path / "emb", tmp_path / "writing"
    script = tmp_path / "writer.py"
    script.write_text(BLOCKED_WRITER)
    child = subprocess.Popen(
        [sys.executable, str(script), str(out), str(flag)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert child.poll() is None, "the writer exited before its tasks ran"
            assert time.monotonic() < deadline, "the writer's tasks never started"
            time.sleep(0.5)
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # driver, JVM and Python workers: no cleanup runs
        child.wait()
    assert (out / FIRST_WRITE_MARKER).exists()
    assert output_state(spark, str(out)) is OutputState.INTERRUPTED

    # The same leftovers without distne's marker are somebody else's: still refused, untouched.
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    (foreign / FIRST_WRITE_MARKER).unlink()
    (foreign / "notes.txt").write_text("keep me\n")
    with pytest.raises(OutputError, match="not a Delta table"):
        write_embeddings(spark, _table(spark, 3), str(foreign), WriteMode.OVERWRITE, {})
    assert (foreign / "notes.txt").read_text() == "keep me\n"

    version = write_embeddings(spark, _table(spark, 5), str(out), WriteMode.OVERWRITE, {"r": 1})
    assert version == 0
    assert not (out / FIRST_WRITE_MARKER).exists()
    rows = spark.read.format("delta").load(str(out)).collect()
    assert sorted(r["node_id"] for r in rows) == list(range(5))
    assert output_state(spark, str(out)) is OutputState.DISTNE_TABLE


def test_a_first_write_still_running_on_this_host_is_not_replaced(spark, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    (out / "part-00000.parquet").write_text("half written\n")
    writer = subprocess.Popen(["sleep", "120"])
    try:
        record = {"host": socket.gethostname(), "pid": writer.pid, "started": "now"}
        (out / FIRST_WRITE_MARKER).write_text(json.dumps(record))
        with pytest.raises(OutputError, match=f"by process {writer.pid} on this host"):
            write_embeddings(spark, _table(spark, 3), str(out), WriteMode.OVERWRITE, {})
        assert (out / "part-00000.parquet").read_text() == "half written\n"
    finally:
        writer.kill()
        writer.wait()
    # Once that process is gone, the folder is leftovers and the rerun replaces them.
    assert write_embeddings(spark, _table(spark, 3), str(out), WriteMode.OVERWRITE, {}) == 0
    assert not (out / "part-00000.parquet").exists()


def test_a_catalog_table_is_created_replaced_as_a_new_version_and_found_by_name(spark, tmp_path):
    """output.table: a run writes a managed Delta table by name (its run folder under the
    warehouse), the rerun replaces it as version 1 and the later commands find it by name;
    a table that is not distne's is refused and left as it was."""
    import numpy as np
    from conftest import make_config
    from distne.config import ConfigError
    from distne.neighbors import nearest
    from distne.pipeline import run
    from distne.write import open_embeddings, read_run_metadata

    f = tmp_path / "ring.tsv"
    f.write_text("".join(f"{i}\t{(i + 1) % 40}\n{i}\t{(i + 7) % 40}\n" for i in range(40)))
    name = "default.distne_emb_test"
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    try:
        common = (f"input.path={f}", f"output.table={name}", "embedding.dim=8")
        first = run(spark, make_config(*common))
        assert first.table_path == name and first.delta_version == 0
        again = run(spark, make_config(*common))
        assert again.delta_version == 1
        table = open_embeddings(spark, name)
        assert table.count() == 40 and set(table.columns) >= {"node_id", "embedding"}
        assert read_run_metadata(spark, name)["nodes"] == 40
        versions = [spark.read.option("versionAsOf", v).table(name) for v in (0, 1)]
        a, b = (np.array(sorted((r[0], *r[2]) for r in v.collect())) for v in versions)
        np.testing.assert_array_equal(a, b)  # same input and seed: the same vectors
        found = nearest(spark, name, ["3"], k=2)
        assert [h["node_id"] for h in found["3"]] and found["3"][0]["node_id"] != 3
        warehouse = spark.conf.get("spark.sql.warehouse.dir").removeprefix("file:")
        assert not list(Path(warehouse, "distne-stages").glob("*/*"))  # removed once written
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {name}")

    other = "default.distne_not_ours"
    spark.sql(f"DROP TABLE IF EXISTS {other}")
    spark.range(3).write.format("parquet").saveAsTable(other)
    try:
        with pytest.raises(OutputError, match="not a distne embeddings table"):
            run(spark, make_config(f"input.path={f}", f"output.table={other}"))
        assert spark.read.table(other).count() == 3
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {other}")
    with pytest.raises(ConfigError, match="one of output.path and output.table"):
        make_config(f"output.path={tmp_path}/x", f"output.table={name}")
    with pytest.raises(ConfigError, match="must be a table name"):
        make_config("output.table=a.b.c.d")
