"""Connected components of the ingested graph, by GraphFrames, for the run's statistics."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from distne.config import ConfigError, LineageCut, RuntimeConfig
from distne.graph import Graph

NEEDS = (
    "runtime.components needs GraphFrames: graphframes-py (pip install 'distne[graphframes]') "
    "and its jar on the session (spark.graphframes=true, or a cluster library)"
)


def check_available(spark: SparkSession) -> None:
    """Raise :class:`ConfigError` now, before the run's first stage, if GraphFrames is not
    usable in this session."""
    try:
        import graphframes  # noqa: F401
    except ImportError:
        raise ConfigError(f"{NEEDS}; found no graphframes-py.") from None
    from py4j.java_gateway import JavaClass

    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if not isinstance(jvm.org.graphframes.GraphFramePythonAPI, JavaClass):
        raise ConfigError(f"{NEEDS}; found no GraphFrames jar on this session.")


def components(spark: SparkSession, graph: Graph, runtime: RuntimeConfig) -> dict[str, int]:
    """``components`` (how many) and ``largest`` (nodes in the largest; every node has an
    edge, so none is alone).

    GraphFrames' two-phase algorithm with AQE handling skew (``broadcastThreshold=-1``, what
    its documentation recommends); its iterations are cut by local checkpoints unless
    ``runtime.lineage=checkpoint``. Only one aggregate row reaches the driver.
    """
    check_available(spark)
    from graphframes import GraphFrame

    g = GraphFrame(graph.nodes.select("id"), graph.edges.select("src", "dst"))
    cc = g.connectedComponents(
        broadcastThreshold=-1,
        use_local_checkpoints=runtime.lineage is LineageCut.LOCAL_CHECKPOINT,
    )
    sizes = cc.groupBy("component").count()
    row = sizes.agg(
        F.count("*").alias("components"),
        F.max("count").alias("largest"),
    ).first()
    assert row is not None
    return {k: int(row[k] or 0) for k in ("components", "largest")}
