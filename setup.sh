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
.venv/bin/python -m pip install --quiet -e ".[local,dev,graphframes]" -c constraints.txt

# GraphFrames' JVM package (for sessions with spark.graphframes=true, and the tests that pass
# a GraphFrame) where Ivy finds it offline: the local Maven repository. Maven fetches it from
# Maven Central; where that does not serve it, ../shared/jars holds a build of the same
# version from its public source (see docs/stack.md). Without either, setup goes on: only
# spark.graphframes=true needs it.
GF_JAR=graphframes-spark4_2.13-0.11.0
GF_M2="$HOME/.m2/repository/io/graphframes/graphframes-spark4_2.13/0.11.0/$GF_JAR.jar"
if [ ! -f "$GF_M2" ] && command -v mvn > /dev/null; then
  mvn -q dependency:get -Dartifact=io.graphframes:graphframes-spark4_2.13:0.11.0 \
    -Dtransitive=false > /dev/null 2>&1 ||
    if [ -f "../shared/jars/$GF_JAR.jar" ]; then
      mvn -q install:install-file -Dfile="../shared/jars/$GF_JAR.jar" \
        -DpomFile="../shared/jars/$GF_JAR.pom" > /dev/null
    fi
fi
if [ ! -f "$GF_M2" ]; then
  echo "setup: GraphFrames' jar (io.graphframes:graphframes-spark4_2.13:0.11.0) is not in" \
    "the local Maven repository: spark.graphframes=true will not resolve offline, and the" \
    "tests that pass a GraphFrame are skipped" >&2
fi

# Headless Chromium draws the report in tests/test_report.py (skipped without it). Installed
# from the distribution's packages when this runs as root with apt; otherwise say how.
if ! command -v chromium > /dev/null && ! command -v chromium-browser > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get install -y -q chromium > /dev/null 2>&1 ||
      { apt-get update -q > /dev/null 2>&1 && apt-get install -y -q chromium > /dev/null 2>&1; } ||
      echo "setup: could not install chromium: the report's rendering test will be skipped" >&2
  else
    echo "setup: no chromium (apt-get install chromium as root): the report's rendering" \
      "test will be skipped" >&2
  fi
fi

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

# An archive of the JVM classes a run loads, which local sessions start from (~2.5 s less per
# run; distne/classarchive.py): built by a small run, checked by a second, kept in ~/.cache.
.venv/bin/python -m distne.classarchive

if [ "${1:-}" = "--no-demo" ]; then
  exit 0
fi

OUT=out/ppi-embeddings
echo "== distne run on the sample graph (PPI, 3,860 nodes with edges), default settings"
.venv/bin/distne run --input data/sample/ppi/edges.tsv --output "$OUT"
echo "== quality: node classification on the PPI labels (Micro/Macro-F1, 50% train)"
.venv/bin/distne evaluate --embeddings "$OUT" --labels data/sample/ppi/communities.tsv
