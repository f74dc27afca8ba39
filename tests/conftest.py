"""Shared fixtures: one local Spark session (with the real Delta connector) for the whole run."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from distne.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PPI = ROOT / "data" / "sample" / "ppi"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def spark_tmp() -> Path:
    d = Path(tempfile.mkdtemp(prefix="distne-tests-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def graphframes_jar() -> Path | None:
    """GraphFrames' jar where Ivy finds it offline (setup.sh puts it in the local Maven
    repository), or None: then the suite's session goes without it and the tests that pass a
    GraphFrame are skipped, saying why."""
    jar = (
        Path.home()
        / ".m2"
        / "repository"
        / "io"
        / "graphframes"
        / "graphframes-spark4_2.13"
        / "0.11.0"
        / "graphframes-spark4_2.13-0.11.0.jar"
    )
    try:
        import graphframes  # noqa: F401
    except ImportError:
        return None
    return jar if jar.is_file() else None


def suite_config(spark_tmp: Path) -> Config:
    """local[2], 4 shuffle partitions, UI off, temporary warehouse and checkpoint folder;
    GraphFrames' package where it resolves."""
    return load_config(
        None,
        [
            "spark.app_name=distne-tests",
            "spark.shuffle_partitions=4",
            f"spark.graphframes={'true' if graphframes_jar() else 'false'}",
            f"spark.conf.spark.sql.warehouse.dir={spark_tmp / 'warehouse'}",
            "spark.conf.spark.ui.enabled=false",
            "spark.conf.spark.ui.showConsoleProgress=false",
            "spark.conf.spark.databricks.delta.snapshotPartitions=2",
            "spark.conf.spark.driver.memory=4g",
            "spark.conf.spark.driver.extraJavaOptions=-XX:+UseParallelGC",
            f"runtime.checkpoint_dir={spark_tmp / 'checkpoints'}",
        ],
    )


@pytest.fixture(scope="session")
def spark(spark_tmp: Path):
    from distne.session import build_session

    cfg = suite_config(spark_tmp)
    session = build_session(cfg, default_master="local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _clear_spark_state(request):
    yield
    if "spark" in request.fixturenames:
        request.getfixturevalue("spark").catalog.clearCache()


def graph_edges(spark, g):
    """A networkx graph's edges as distne's ``src, dst, weight`` frame (each edge once)."""
    return spark.createDataFrame(
        [
            (int(min(u, v)), int(max(u, v)), float(d.get("weight", 1.0)))
            for u, v, d in g.edges(data=True)
        ],
        "src long, dst long, weight double",
    )


def sorted_vectors(df):
    """``id`` and ``vec`` of an ``id, ..., vec`` frame as arrays, in id order."""
    import numpy as np

    rows = sorted(df.collect(), key=lambda r: r["id"])
    return np.array([r["id"] for r in rows]), np.array([r["vec"] for r in rows])


def hashed_leaves(spark, g, leaves: int):
    """``id, part``: node ``n`` of ``g`` in leaf ``n * 7919 % leaves`` (scattered leaves that cut
    most edges, the exchange's hardest case)."""
    return spark.createDataFrame(
        [(int(n), int((n * 7919) % leaves)) for n in g.nodes], "id long, part long"
    )


def embed_over_leaves(spark, g, cfg, leaves: int, **options):
    """``cfg``'s program on ``g`` by the exchange over :func:`hashed_leaves`; ``options`` go to
    ``embed_exchange``. Ids and vectors in id order."""
    from distne.embedders import make_program
    from distne.engine.exchange import embed_exchange

    program = make_program(cfg.embedding, cfg.seed)
    edges, leaf = graph_edges(spark, g), hashed_leaves(spark, g, leaves)
    return sorted_vectors(embed_exchange(spark, edges, leaf, program, cfg, **options))


def embed_whole(spark, g, program):
    """``program`` on the whole graph ``g`` by the local backend, as one group: ids, vectors."""
    from distne.engine.local import embed_groups
    from pyspark.sql import functions as F

    zero = F.lit(0).cast("long").alias("part")
    nodes = spark.createDataFrame([(int(n),) for n in g.nodes], "id long").select(zero, "id")
    edges = graph_edges(spark, g).select(zero, "src", "dst", "weight")
    return sorted_vectors(embed_groups(nodes, edges, ["part"], lambda _k: program))


def make_config(*overrides: str) -> Config:
    """The test config: small iteration counts so the suite stays fast on 2 cores (ProNE's
    only with ProNE: another method refuses them)."""
    prone = not any(
        o.startswith("embedding.method=") and o != "embedding.method=prone" for o in overrides
    )
    faster = ["embedding.svd_iterations=2", "embedding.order=5"] if prone else []
    return load_config(
        None,
        [
            "partition.iterations=4",
            "partition.cluster_rounds=2",
            *faster,
            "runtime.progress=false",
            *overrides,
        ],
    )
