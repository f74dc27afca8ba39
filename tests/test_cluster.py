"""The barrier exchange across executors of a real cluster, not only the Python workers of one.

A loopback standalone cluster (a master and two one-core workers, started from the pyspark
distribution) runs the CLI with the exchange over 5+ leaves: the barrier stage's two tasks
land in two executor JVMs and talk over TCP. The table must equal local mode's, bit for bit.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyspark
import pytest
from deltalake import DeltaTable

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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("standalone")
    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    spark_class = str(home / "bin" / "spark-class")
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log = tmp / "master.log"
    procs = [
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
            + ["--port", str(port), "--webui-port", str(_free_port())],
            env=env,
            stdout=master_log.open("w"),
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        _wait(lambda: "Starting Spark master" in master_log.read_text(), "master start")
        for i in (1, 2):
            procs.append(
                subprocess.Popen(
                    [spark_class, "org.apache.spark.deploy.worker.Worker", url]
                    + ["--host", "127.0.0.1", "--cores", "1", "--memory", "2g"]
                    + ["--webui-port", str(_free_port()), "--work-dir", str(tmp / f"w{i}")],
                    env=env,
                    stdout=(tmp / f"worker{i}.log").open("w"),
                    stderr=subprocess.STDOUT,
                )
            )
        _wait(lambda: master_log.read_text().count("Registering worker") >= 2, "two workers")
        yield url
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


def _embed(out: Path, master: str) -> subprocess.CompletedProcess:
    args = ["run", "--input", str(PPI), "--output", str(out), "--json"]
    sets = [
        f"spark.master={master}",
        "run.mode=exchange",
        "partition.max_nodes=1000",
        "runtime.progress=false",
    ]
    for s in sets:
        args += ["--set", s]
    # The executors run the driver's PYSPARK_PYTHON: this virtualenv's, on the same machine.
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run(
        [sys.executable, "-m", "distne.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


def _vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = DeltaTable(str(path)).to_pyarrow_table().to_pandas().sort_values("node_id")
    return t["node_id"].to_numpy(), np.stack(t["embedding"].to_numpy())


def test_barrier_exchange_on_two_executors_equals_local_mode(cluster, tmp_path):
    remote = _embed(tmp_path / "cluster", cluster)
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = _embed(tmp_path / "local", "local[2]")
    assert local.returncode == 0, local.stderr[-3000:]
    summary = json.loads(remote.stdout)
    assert summary["leaf_subgraphs"] >= 4 and "barrier transport" in summary["plan"]
    ids_r, vec_r = _vectors(tmp_path / "cluster")
    ids_l, vec_l = _vectors(tmp_path / "local")
    # PPI names 3,890 ids; 30 of them appear only in self-loops and get no row.
    assert len(ids_r) == 3860 and (ids_r == ids_l).all()
    assert np.isfinite(vec_r).all()
    assert np.array_equal(vec_r, vec_l)
