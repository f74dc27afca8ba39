# Databricks notebook source
# MAGIC %md
# MAGIC # distne: embed a graph, look at the result
# MAGIC
# MAGIC Embeds the edges in **edges** (a catalog table such as `main.graphs.follows`, or a path
# MAGIC of text, CSV, Parquet or Delta) and writes one vector per node to **output** (a
# MAGIC catalog table such as `main.graphs.follows_emb`, or a Delta path): the pipeline
# MAGIC `distne run` and the bundle's job run, in this notebook's session. Then it shows the
# MAGIC run's summary, the leaf subgraphs' sizes, and the nearest neighbours of a node.
# MAGIC
# MAGIC Needs the distne wheel on the cluster (`databricks bundle deploy` builds it into
# MAGIC `dist/`; attach it as a cluster library, or `%pip install` it). Delta is built in.
# MAGIC On serverless or shared-access compute (Spark Connect), use a single-user cluster:
# MAGIC distne runs Python on the executors through the classic API.

# COMMAND ----------

dbutils.widgets.text("edges", "main.graphs.follows", "Edges: a table name or a path")
dbutils.widgets.text("output", "main.graphs.follows_emb", "Output: a table name or a path")
dbutils.widgets.text("config", "databricks", "Config shipped with distne, or a file path")
dbutils.widgets.text("settings", "", "Settings, key=value separated by spaces")
dbutils.widgets.text("node", "", "A node to show the neighbours of (empty: the first)")

# COMMAND ----------

from distne.config import load_config
from distne.pipeline import run

edges = dbutils.widgets.get("edges").strip()
output = dbutils.widgets.get("output").strip()
source = "input.path" if "/" in edges else "input.table"
target = "output.path" if "/" in output else "output.table"
settings = dbutils.widgets.get("settings").split()
config = load_config(dbutils.widgets.get("config"), settings).with_settings(
    {source: edges, target: output}
)
summary = run(spark, config)
print(summary.render())

# COMMAND ----------

# MAGIC %md
# MAGIC ## The vectors, and how the graph was cut into leaf subgraphs

# COMMAND ----------

from distne.write import open_embeddings
from pyspark.sql import functions as F

vectors = open_embeddings(spark, output)
display(vectors.limit(10))
leaves = vectors.groupBy("subgraph_id").agg(F.count("*").alias("nodes")).orderBy("subgraph_id")
display(leaves)

# COMMAND ----------

# MAGIC %md
# MAGIC ## Nearest neighbours by cosine

# COMMAND ----------

from distne.neighbors import nearest

node = dbutils.widgets.get("node").strip()
if not node:
    node = str(vectors.select(F.min("node_id")).first()[0])
found = nearest(spark, output, [node], k=10)
rows = [(str(n["node_id"]), n["score"]) for n in found[node]]
display(spark.createDataFrame(rows, "node_id string, score double"))
