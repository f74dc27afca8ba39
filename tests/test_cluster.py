"""The barrier exchange across executors of a real cluster, not only the Python workers of one.

A loopback standalone cluster (a master and two one-core workers, started from the pyspark
distribution) runs distne, through ``deploy/spark-submit.sh`` or the CLI, with the exchange
over 5+ leaves: the barrier stage's two tasks land in two executor JVMs and talk over TCP.
The table must equal local mode's, bit for bit.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyspark
import pytest
from deltalake import DeltaTable
from distne.stages import STAGES_SUFFIX

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]
PPI = ROOT / "data" / "sample" / "ppi" / "edges.tsv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, seconds: float = 90) -> None:
    end = time.time() + seconds
    while time.time() < end:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"standalone cluster: {what} not within {seconds:.0f} s")


class Standalone:
    """A master and one-core workers on loopback, from the pyspark distribution. Each worker
    leads a process group of its own (its executor and Python workers are in it), so a test
    can kill one as a lost machine dies: all at once, nothing cleaned up."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        home = Path(pyspark.__file__).parent
        self.env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
        self.spark_class = str(home / "bin" / "spark-class")
        port = _free_port()
        self.url = f"spark://127.0.0.1:{port}"
        self.master_log = tmp / "master.log"
        self.master = subprocess.Popen(
            [self.spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
            + ["--port", str(port), "--webui-port", str(_free_port())],
            env=self.env,
            stdout=self.master_log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.workers: list[subprocess.Popen] = []
        _wait(lambda: "Starting Spark master" in self.master_log.read_text(), "master start")

    def add_worker(self) -> None:
        i = len(self.workers) + 1
        self.workers.append(
            subprocess.Popen(
                [self.spark_class, "org.apache.spark.deploy.worker.Worker", self.url]
                + ["--host", "127.0.0.1", "--cores", "1", "--memory", "2g"]
                + ["--webui-port", str(_free_port()), "--work-dir", str(self.tmp / f"w{i}")],
                env=self.env,
                stdout=(self.tmp / f"worker{i}.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        _wait(
            lambda: self.master_log.read_text().count("Registering worker") >= i,
            f"worker {i} registered",
        )

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` (from 1) with its executor and Python workers."""
        os.killpg(self.workers[i - 1].pid, signal.SIGKILL)
        self.workers[i - 1].wait()

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.pid, signal.SIGTERM)
        self.master.terminate()
        for p in [*self.workers, self.master]:
            p.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Standalone(tmp_path_factory.mktemp("standalone"))
    try:
        c.add_worker()
        c.add_worker()
        yield c.url
    finally:
        c.stop()


def _embed_args(out: Path, master: str, *extra: str) -> list[str]:
    args = ["run", "--input", str(PPI), "--output", str(out), "--json"]
    sets = [
        f"spark.master={master}",
        "run.mode=exchange",
        "partition.max_nodes=1000",
        "runtime.progress=false",
        *extra,
    ]
    for s in sets:
        args += ["--set", s]
    return [sys.executable, "-m", "distne.cli", *args]


# The executors run the driver's PYSPARK_PYTHON: this virtualenv's, on the same machine.
ENV = {**os.environ, "PYSPARK_PYTHON": sys.executable}


def _embed(out: Path, master: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _embed_args(out, master, *extra),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=ENV,
    )


def _vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = DeltaTable(str(path)).to_pyarrow_table().to_pandas().sort_values("node_id")
    return t["node_id"].to_numpy(), np.stack(t["embedding"].to_numpy())


def test_spark_submit_client_mode_on_two_executors_equals_local_mode(cluster, tmp_path):
    """``deploy/spark-submit.sh`` as a user runs it against a standalone master (client mode,
    the default there; conf/cluster.yaml, reliable checkpoints): the barrier exchange's two
    tasks land in two executor JVMs and talk over TCP. The table equals a local run's with the
    same config, bit for bit; stdout is the summary alone, Spark's log is warnings only."""
    sets = [
        "run.mode=exchange",
        "partition.max_nodes=1000",
        "spark.shuffle_partitions=4",
        f"runtime.checkpoint_dir={tmp_path / 'checkpoints'}",
        "spark.conf.spark.executor.pyspark.memory=1g",
    ]
    args = ["--input", str(PPI), "--json"]
    for s in sets:
        args += ["--set", s]
    env = {
        **ENV,
        "MASTER": cluster,
        "SPARK_SUBMIT": str(Path(sys.executable).parent / "spark-submit"),
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    script = str(ROOT / "deploy" / "spark-submit.sh")
    remote = subprocess.run(
        ["bash", script, *args, "--output", str(tmp_path / "cluster")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # the script finds its config by its own location, not the caller's
        env=env,
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    summary = json.loads(remote.stdout)
    assert "[distne] ingest: done" in remote.stderr
    assert " INFO " not in remote.stderr, remote.stderr[-3000:]
    local = subprocess.run(
        [sys.executable, "-m", "distne.cli", "run", "--config", str(ROOT / "conf" / "cluster.yaml")]
        + [*args, "--output", str(tmp_path / "local"), "--set", "spark.master=local[2]"]
        + ["--set", "spark.delta_jars=true"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=ENV,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    assert summary["leaf_subgraphs"] >= 4 and "barrier transport" in summary["plan"]
    ids_r, vec_r = _vectors(tmp_path / "cluster")
    ids_l, vec_l = _vectors(tmp_path / "local")
    # PPI names 3,890 ids; 30 of them appear only in self-loops and get no row.
    assert len(ids_r) == 3860 and (ids_r == ids_l).all()
    assert np.isfinite(vec_r).all()
    assert np.array_equal(vec_r, vec_l)


def test_a_worker_lost_mid_exchange_costs_a_retry_not_the_run(tmp_path):
    """A worker (its executor and Python workers) is killed once the exchange has saved its
    state; a replacement worker joins, as a cluster manager replaces a lost machine. Spark
    runs the barrier stage again, its tasks resume from the snapshot, and the table equals an
    undisturbed run's."""
    (tmp_path / "standalone").mkdir()
    c = Standalone(tmp_path / "standalone")
    try:
        c.add_worker()
        c.add_worker()
        out = tmp_path / "cluster"
        stages = Path(str(out) + STAGES_SUFFIX)
        log = tmp_path / "run.log"
        with log.open("w") as err:
            run = subprocess.Popen(
                _embed_args(out, c.url, "runtime.snapshot_every=4"),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=ROOT,
                env=ENV,
            )
        try:
            deadline = time.monotonic() + 300
            while run.poll() is None and time.monotonic() < deadline:
                snaps = stages.glob("*/exchange/products-*")
                if any(len(list(d.glob("task-*.log"))) == 2 for d in snaps):
                    break
                time.sleep(0.02)
            assert run.poll() is None, log.read_text()[-3000:]
            c.kill_worker(2)
            c.add_worker()
            stdout, _ = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                run.kill()
        text = log.read_text()
        assert run.returncode == 0, text[-3000:]
        assert "Lost executor" in text, text[-3000:]
        # The barrier stage ran again, from the snapshot: its tasks said so in their logs.
        said = [
            line
            for f in (tmp_path / "standalone").glob("w*/app-*/*/stderr")
            for line in f.read_text().splitlines()
            if "resuming after product" in line
        ]
        assert len(said) == 2, said
    finally:
        c.stop()
    local = _embed(tmp_path / "local", "local[2]")
    assert local.returncode == 0, local.stderr[-3000:]
    assert json.loads(stdout)["leaf_subgraphs"] >= 4
    ids_r, vec_r = _vectors(out)
    ids_l, vec_l = _vectors(tmp_path / "local")
    assert len(ids_r) == 3860 and (ids_r == ids_l).all()
    assert np.array_equal(vec_r, vec_l)
