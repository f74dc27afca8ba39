"""Airflow DAG: embed a graph nightly with spark-submit, then evaluate the new table.

Needs apache-airflow-providers-apache-spark and a ``spark_default`` connection to the cluster.
Reruns are safe: each run overwrites the table atomically (a new Delta version).
"""

from datetime import datetime

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

DELTA = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

with DAG("distne_embed", start_date=datetime(2026, 1, 1), schedule="@daily", catchup=False) as dag:
    embed = SparkSubmitOperator(
        task_id="embed",
        application="/opt/distne/jobs/run.py",
        packages="io.delta:delta-spark_4.1_2.13:4.4.0",
        conf=DELTA,
        files="/opt/distne/conf/cluster.yaml",
        application_args=[
            "--config", "cluster.yaml",
            "--input", "hdfs:///graphs/follows/{{ ds }}",
            "--output", "hdfs:///embeddings/follows",
            "--set", "seed=42",
        ],
    )
    evaluate = SparkSubmitOperator(
        task_id="evaluate",
        application="/opt/distne/jobs/evaluate.py",
        packages="io.delta:delta-spark_4.1_2.13:4.4.0",
        conf=DELTA,
        application_args=["--embeddings", "hdfs:///embeddings/follows",
                          "--test-edges", "hdfs:///graphs/follows_test/{{ ds }}"],
    )
    embed >> evaluate
