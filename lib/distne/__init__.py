"""distne: distributed network embedding on Apache Spark.

Stages (each a function taking the Spark session and a :class:`distne.config.Config`):
``ingest.ingest`` -> ``partition.partition`` (when the graph does not fit one worker) ->
the embedder program on ``engine.local`` or ``engine.exchange`` -> ``write.write_embeddings``;
``pipeline.run`` wires them, ``evaluate`` measures the result. ``distne.embed_graph(spark,
graph)`` embeds a GraphFrame or an edges DataFrame and returns the vectors; ``distne.run``
is ``pipeline.run``.
"""

__version__ = "0.1.0"

__all__ = ["embed_graph", "run"]


def __getattr__(name: str):  # noqa: ANN202
    """``distne.embed_graph`` and ``distne.run`` without importing Spark for ``--version``."""
    if name in __all__:
        from distne import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'distne' has no attribute {name!r}")
