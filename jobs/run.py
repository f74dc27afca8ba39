"""spark-submit entry point: embed a graph and write a Delta table.

    spark-submit --packages io.delta:delta-spark_4.1_2.13:4.4.0 ... jobs/run.py \
        --input s3://bucket/edges --output s3://bucket/embeddings --config conf/cluster.yaml

Takes the same arguments as ``distne run``; the master comes from spark-submit.
"""

import sys

from distne.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]], default_master=None))
