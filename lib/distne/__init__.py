"""distne: distributed network embedding on Apache Spark.

Stages (each a function taking the Spark session and a :class:`distne.config.Config`):
``ingest.ingest`` -> ``partition.partition`` -> ``embed.embed`` -> ``fuse.fuse`` ->
``write.write_embeddings``; ``pipeline.run`` wires them, ``evaluate`` measures the result.
"""

__version__ = "0.1.0"
