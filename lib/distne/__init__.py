"""distne: distributed network embedding on Apache Spark.

Stages (each a function taking the Spark session and a :class:`distne.config.Config`):
``ingest.ingest`` -> ``partition.partition`` (when the graph does not fit one worker) ->
the embedder program on ``engine.local`` or ``engine.exchange`` -> ``write.write_embeddings``;
``pipeline.run`` wires them, ``evaluate`` measures the result.
"""

__version__ = "0.1.0"
