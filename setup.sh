#!/usr/bin/env bash
# Set up distne on a fresh machine (Python 3.10+, Java 17) and run the main job on the sample
# graph shipped in the repo: local Spark, a local Delta table, then a quality figure.
#
#   bash setup.sh            # install into .venv, fetch the Spark jars, run the demo
#   bash setup.sh --no-demo  # install and fetch jars only (what CI does before the tests)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

# Resolve the Delta connector's jars (Maven Central -> the local Ivy cache) once, so that
# later sessions, tests included, start without the network.
.venv/bin/python - <<'PY'
from distne.config import load_config
from distne.session import build_session
spark = build_session(load_config(None, ["spark.conf.spark.ui.enabled=false"]), "local[1]")
spark.range(1).collect()
print("setup: Spark", spark.version, "with the Delta connector is ready")
spark.stop()
PY

if [ "${1:-}" = "--no-demo" ]; then
  exit 0
fi

OUT=out/ppi-embeddings
echo "== distne run on the sample graph (PPI, 3,860 nodes with edges), default settings"
.venv/bin/distne run --input data/sample/ppi/edges.tsv --output "$OUT"
echo "== quality: node classification on the PPI labels (Micro/Macro-F1, 50% train)"
.venv/bin/distne evaluate --embeddings "$OUT" --labels data/sample/ppi/communities.tsv
