#!/usr/bin/env bash
# Launch distne on a YARN, Kubernetes or standalone cluster.
#
#   MASTER=yarn deploy/spark-submit.sh --input hdfs:///graphs/edges --output hdfs:///emb/v1
#
# The Python package must be importable on the executors: build a wheel (pip wheel . -w dist)
# and ship it with a packed environment (--archives env.tar.gz#env, see Spark's "Python
# Package Management"), or install it on the cluster's image.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MASTER=${MASTER:-yarn}
DEPLOY_MODE=${DEPLOY_MODE:-cluster}
exec spark-submit \
  --master "$MASTER" --deploy-mode "$DEPLOY_MODE" \
  --packages io.delta:delta-spark_4.1_2.13:4.4.0 \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  --conf spark.executor.pyspark.memory=4g \
  --files "$here/conf/cluster.yaml" \
  "$here/jobs/run.py" --config cluster.yaml "$@"
