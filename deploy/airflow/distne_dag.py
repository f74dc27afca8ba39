"""Airflow DAG: each day's graph split -> embedded -> evaluated, with spark-submit.

Needs Airflow 3 with ``apache-airflow-providers-apache-spark`` and a Spark connection
(``spark_default``: master, deploy mode, queue). The paths of a run follow its logical date
(``{{ ds }}``), so reruns and backfills of a day write that day's folders again: the split
overwrites, the table gets a new Delta version, the evaluation reads what the run wrote.

Where distne runs: each task submits one of distne's spark-submit entry points
(``jobs/*.py`` under ``params.distne_home``, a checkout on the Airflow workers). The driver and
executors need distne and its dependencies in their Python: ship a packed virtualenv
(``params.python_env``, made with venv-pack, see docs/deploy.md) or, with distne installed on
every node's image, set ``python_env`` to "" and ``python`` to that interpreter. Every task gets
``--config params.config``: a config shipped in the wheel (``cluster``, ``databricks``) is
found whatever the working directory, so it needs no ``--files``; for other settings, point
``config`` at a YAML file of your own that every node can read.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Param

DELTA = "io.delta:delta-spark_4.1_2.13:4.4.0"  # the Delta connector for the cluster's Spark 4.1

PARAMS = {
    "distne_home": Param("/opt/distne", type="string", description="distne on the workers"),
    "edges_root": Param(
        "hdfs:///graphs/follows", type="string", description="a folder of edges per day (ds)"
    ),
    "work_root": Param(
        "hdfs:///distne/follows", type="string", description="split, table and report per day"
    ),
    "config": Param("cluster", type="string", description="a shipped config or a file path"),
    "test_fraction": Param(0.1, type="number", minimum=0.01, maximum=0.5),
    "python_env": Param(
        "hdfs:///distne/envs/distne-env.tar.gz",
        type="string",
        description="packed virtualenv with distne ('' when the nodes have it installed)",
    ),
    "python": Param("./distne-env/bin/python", type="string", description="the executors' Python"),
    "driver_python": Param(
        "./distne-env/bin/python",
        type="string",
        description="the driver's Python: the packed one in cluster mode; in client mode, one "
        "on the Airflow worker that imports distne",
    ),
}

DAY = "{{ params.work_root }}/{{ ds }}"
ENV_ARCHIVE = "{{ params.python_env ~ '#distne-env' if params.python_env else '' }}"
CONFIG = ["--config", "{{ params.config }}"]


def submit(task_id: str, job: str, args: list[str]) -> SparkSubmitOperator:
    """One distne entry point through spark-submit, with its config and Python."""
    return SparkSubmitOperator(
        task_id=task_id,
        application=f"{{{{ params.distne_home }}}}/jobs/{job}.py",
        name=f"distne-{task_id}-{{{{ ds }}}}",
        packages=DELTA,
        # Settings, not operator arguments, where a value is templated: the operator renders
        # conf but not archives.
        conf={
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            "spark.archives": ENV_ARCHIVE,
            "spark.pyspark.python": "{{ params.python }}",
            "spark.pyspark.driver.python": "{{ params.driver_python }}",
        },
        application_args=[*CONFIG, *args],
    )


with DAG(
    "distne_embed",
    description="split, embed and evaluate each day's graph with distne",
    start_date=datetime(2026, 1, 1),
    schedule="@daily",
    catchup=False,
    max_active_runs=1,  # one run at a time writes a day's folders
    params=PARAMS,
    tags=["distne", "embeddings"],
) as dag:
    split = submit(
        "split",
        "split",
        [
            "--input", "{{ params.edges_root }}/{{ ds }}",
            "--train", f"{DAY}/train",
            "--test", f"{DAY}/test",
            "--fraction", "{{ params.test_fraction }}",
        ],
    )  # fmt: skip
    embed = submit(
        "embed",
        "run",
        ["--input", f"{DAY}/train", "--output", f"{DAY}/embeddings"],
    )
    evaluate = submit(
        "evaluate",
        "evaluate",
        ["--embeddings", f"{DAY}/embeddings", "--test-edges", f"{DAY}/test"],
    )
    split >> embed >> evaluate
