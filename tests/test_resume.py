"""Resume: a run killed mid-way, rerun with the same command, starts where it stopped and
writes the vectors an undisturbed run writes."""

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLE_PPI, make_config
from deltalake import DeltaTable
from distne.engine.snapshots import newest_complete
from distne.stages import STAGES_SUFFIX, fingerprint, stages_root

PPI = SAMPLE_PPI / "edges.tsv"


def _cli(out: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "distne.cli", "run", "--input", str(PPI), "--output", str(out)]
    for s in ("run.mode=exchange", "partition.max_nodes=1000", "runtime.snapshot_every=4"):
        args += ["--set", s]
    return args + list(extra)


def _run_until(cmd: list[str], log: Path, killed_when) -> None:
    """Start ``cmd``; SIGKILL its whole process tree (driver, JVM, Python workers) as soon as
    ``killed_when()`` holds. Fails if the run ends first."""
    with log.open("w") as err:
        child = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 300
        while not killed_when():
            assert child.poll() is None, f"the run ended before it was killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, "the run never reached the point to kill it"
            time.sleep(0.02)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _tail(stderr: str) -> str:
    """The end of a failed run's stderr without the JVM's stack frames."""
    return "\n".join([x for x in stderr.splitlines() if not x.strip().startswith("at ")][-60:])


def _vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = DeltaTable(str(path)).to_pyarrow_table().to_pandas().sort_values("node_id")
    return t["node_id"].to_numpy(), np.stack(t["embedding"].to_numpy())


@pytest.mark.slow
def test_killed_runs_resume_from_their_last_stage_with_the_same_vectors(tmp_path):
    out = tmp_path / "emb"
    stages = Path(str(out) + STAGES_SUFFIX)

    def kept(name: str) -> bool:
        return any(stages.glob(f"*/{name}"))

    # 1. Killed once the graph is kept: the rerun skips ingest.
    _run_until(_cli(out), tmp_path / "1.log", lambda: kept("graph.json"))
    assert not out.exists()  # killed before the write began

    # 2. The rerun says so, and is killed once the exchange has saved its state twice.
    def snapshot_after_8() -> bool:
        return len(list(stages.glob("*/exchange/products-8/task-*.log"))) == 2

    _run_until(_cli(out), tmp_path / "2.log", snapshot_after_8)
    assert (
        "resuming from partition: the ingested graph is kept in" in (tmp_path / "2.log").read_text()
    )

    # 3. The second rerun resumes inside the exchange and finishes.
    third = subprocess.run(_cli(out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, _tail(third.stderr)
    line = next(x for x in third.stderr.splitlines() if "resuming from" in x)
    product = int(line.split("resuming from embed, product ")[1].split(" ")[0])
    assert product >= 9, line
    assert "resumed from     embed, product" in third.stdout
    assert not stages.exists()  # the table is written: the stages are gone

    clean = subprocess.run(
        _cli(tmp_path / "clean"), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert clean.returncode == 0, _tail(clean.stderr)
    assert "resuming" not in clean.stderr
    ids, got = _vectors(out)
    ids_clean, want = _vectors(tmp_path / "clean")
    assert (ids == ids_clean).all() and len(ids) == 3860
    np.testing.assert_array_equal(got, want)


def test_the_fingerprint_follows_the_input_and_the_settings_that_change_results(spark, tmp_path):
    f = tmp_path / "g.tsv"
    f.write_text("1\t2\n2\t3\n")
    base = (f"input.path={f}", f"output.path={tmp_path / 'out'}")
    first = fingerprint(spark, make_config(*base))
    assert fingerprint(spark, make_config(*base)) == first
    # Where and how visibly a run works changes nothing it computes.
    neutral_settings = (
        "runtime.progress=true",
        "output.mode=error",
        "runtime.keep_stages=true",
        "run.worker_memory_gb=8",  # a run killed for want of memory, rerun with more
        "spark.conf.spark.driver.memory=16g",
    )
    for neutral in neutral_settings:
        assert fingerprint(spark, make_config(*base, neutral)) == first, neutral
    for changed in ("seed=7", "embedding.dim=16", "partition.max_nodes=10"):
        assert fingerprint(spark, make_config(*base, changed)) != first, changed
    f.write_text("1\t2\n2\t3\n3\t4\n")  # the input changed: its size and time differ
    assert fingerprint(spark, make_config(*base)) != first


def test_the_run_folder_is_next_to_the_output_or_under_the_checkpoint_folder(tmp_path):
    out = f"{tmp_path}/emb/"
    assert stages_root(make_config(f"output.path={out}")) == f"{tmp_path}/emb{STAGES_SUFFIX}"
    other = stages_root(make_config(f"output.path={out}", "runtime.checkpoint_dir=s3://b/ck"))
    assert other.startswith("s3://b/ck/distne-stages/")
    assert other != stages_root(make_config("output.path=/x/y", "runtime.checkpoint_dir=s3://b/ck"))


def _snapshot(root: Path, k: int, ranks: list[int], tasks: int) -> None:
    step = root / f"products-{k}"
    step.mkdir(parents=True)
    for r in ranks:
        (step / f"task-{r}.log").write_bytes(pickle.dumps({"log": [], "calls": k, "tasks": tasks}))


def test_a_snapshot_counts_once_every_task_has_written_its_part(tmp_path):
    root = tmp_path / "exchange"
    assert newest_complete(str(root)) == 0
    _snapshot(root, 8, [0, 1, 2], 3)
    _snapshot(root, 16, [0, 2], 3)  # task 1 was killed while writing its part
    assert newest_complete(str(root)) == 8
    (root / "products-16" / "task-1.log").write_bytes(
        (root / "products-8" / "task-1.log").read_bytes()
    )
    assert newest_complete(str(root)) == 16


def test_a_partition_made_for_other_leaf_bounds_is_not_reused(spark, tmp_path):
    """A rerun whose plan chose other leaf bounds (a resized cluster) keeps the graph but
    partitions again, dropping the exchange state made on the old partition."""
    import json

    from distne.pipeline import run

    f = tmp_path / "ring.tsv"
    f.write_text("\n".join(f"{i}\t{(i * 7 + 1) % 60}" for i in range(60)) + "\n")
    common = (
        f"input.path={f}",
        "partition.max_nodes=20",
        "embedding.dim=8",
        "runtime.snapshot_every=2",
    )
    first = run(
        spark, make_config(*common, f"output.path={tmp_path / 'a'}", "runtime.keep_stages=true")
    )
    assert first.resumed == "" and first.leaf_subgraphs >= 3
    folder = next(Path(str(tmp_path / "a") + STAGES_SUFFIX).iterdir())
    assert (folder / "exchange").exists()
    record = json.loads((folder / "partition.json").read_text())
    (folder / "partition.json").write_text(json.dumps({**record, "max_nodes": 30}))
    (folder / ".partition.json.crc").unlink()  # Hadoop's checksum of the old text
    again = run(spark, make_config(*common, f"output.path={tmp_path / 'a'}"))
    assert again.resumed == "partition" and "partition" in again.seconds
    assert not folder.exists()  # written: the stages are gone
    ids, got = _vectors(tmp_path / "a")
    assert DeltaTable(str(tmp_path / "a")).version() == 1
    first_table = DeltaTable(str(tmp_path / "a"), version=0).to_pyarrow_table().to_pandas()
    first_table = first_table.sort_values("node_id")
    assert (ids == first_table["node_id"].to_numpy()).all()
    np.testing.assert_array_equal(got, np.stack(first_table["embedding"].to_numpy()))
