#!/usr/bin/env bash
# Launch distne with spark-submit on YARN, Kubernetes or a standalone cluster.
#
#   MASTER=yarn deploy/spark-submit.sh --input hdfs:///graphs/edges --output hdfs:///emb/v1
#   MASTER=spark://host:7077 deploy/spark-submit.sh --input /shared/edges --output /shared/emb
#   MASTER=k8s://https://api:6443 DEPLOY_MODE=cluster PYSPARK_ENV=s3a://b/distne-env.tar.gz \
#     deploy/spark-submit.sh --input s3a://b/edges --output s3a://b/emb --set ...
#
# Arguments are those of `distne run`. Settings (environment):
#   MASTER       spark-submit --master (default yarn)
#   DEPLOY_MODE  client or cluster; default cluster on YARN and Kubernetes, client elsewhere
#                (standalone masters refuse cluster mode for Python applications)
#   CONFIG       the distne config file (default conf/cluster.yaml of this checkout); in
#                cluster mode it travels with --files, in client mode the driver reads it here
#   PYSPARK_ENV  a packed virtualenv holding distne and its dependencies (venv-pack or
#                conda-pack; see docs/deploy.md), shipped with --archives and used by the
#                executors (and, in cluster mode, by the driver). Unset: the Python that
#                PYSPARK_PYTHON names on every node must import distne already
#   LOG_CONFIG   Spark's log4j2 settings for the driver (default conf/log4j2.properties:
#                warnings only, on stderr; stdout carries the run's summary alone)
#   SPARK_SUBMIT the spark-submit to run (default: the one on PATH)
#   DELTA_PACKAGE the Delta connector for the cluster's Spark line (default
#                io.delta:delta-spark_4.1_2.13:4.4.0, for Spark 4.1)
# Extra spark-submit options go in SPARK_SUBMIT_OPTS_EXTRA (word-split), e.g. "--num-executors 8".
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
MASTER=${MASTER:-yarn}
case "$MASTER" in
  yarn | k8s://*) default_mode=cluster ;;
  *) default_mode=client ;;
esac
DEPLOY_MODE=${DEPLOY_MODE:-$default_mode}
CONFIG=${CONFIG:-$here/conf/cluster.yaml}
SPARK_SUBMIT=${SPARK_SUBMIT:-spark-submit}

if [[ ! -f "$CONFIG" ]]; then
  echo "deploy/spark-submit.sh: CONFIG=$CONFIG: expected a distne config file; found none" >&2
  exit 2
fi
LOG_CONFIG=${LOG_CONFIG:-$here/conf/log4j2.properties}
case "$DEPLOY_MODE" in
  cluster)
    # The driver runs on a cluster node: the files go with the job, named by their base names.
    conf_args=(--files "$CONFIG,$LOG_CONFIG"
      --driver-java-options "-Dlog4j2.configurationFile=$(basename "$LOG_CONFIG")")
    config_arg="$(basename "$CONFIG")"
    ;;
  client)
    conf_args=(--driver-java-options "-Dlog4j2.configurationFile=file:$LOG_CONFIG")
    config_arg="$CONFIG"
    ;;
  *)
    echo "deploy/spark-submit.sh: DEPLOY_MODE=$DEPLOY_MODE: expected client or cluster" >&2
    exit 2
    ;;
esac

env_args=()
if [[ -n "${PYSPARK_ENV:-}" ]]; then
  env_args=(--archives "$PYSPARK_ENV#distne-env" --conf spark.pyspark.python=./distne-env/bin/python)
  if [[ "$DEPLOY_MODE" == client ]]; then
    # The driver runs here, with the Python that runs this script's spark-submit.
    env_args+=(--conf "spark.pyspark.driver.python=${PYSPARK_DRIVER_PYTHON:-python3}")
  fi
fi

# shellcheck disable=SC2086
exec "$SPARK_SUBMIT" \
  --master "$MASTER" --deploy-mode "$DEPLOY_MODE" \
  --packages "${DELTA_PACKAGE:-io.delta:delta-spark_4.1_2.13:4.4.0}" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  "${conf_args[@]}" "${env_args[@]}" ${SPARK_SUBMIT_OPTS_EXTRA:-} \
  "$here/jobs/run.py" --config "$config_arg" "$@"
