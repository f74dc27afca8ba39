#!/usr/bin/env bash
# Whole-graph (run.mode=local) vs partitioned runs (exchange, and the procrustes and leaf_only
# baselines) of the same embedder on the real graphs in ../shared/data,
# following the quality protocol of shared/DESIGN.md. Prints each run's summary and evaluate's
# JSON; the figures in issue notes come from this script.
#
#   bash benchmarks/real_graphs.sh [OUT_DIR] [GRAPH ...]     # default: all four graphs
#   MODES="exchange whole" bash benchmarks/real_graphs.sh ...  # a subset of the runs
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/distne-bench}; shift || true
DATA=../shared/data
GRAPHS=("$@"); [ ${#GRAPHS[@]} -gt 0 ] || GRAPHS=(ppi wikipedia-pos ca-astroph github-musae)
declare -A EDGES=([ppi]=ppi/edges.tsv [wikipedia-pos]=wikipedia-pos/edges.tsv
                  [ca-astroph]=ca-astroph/edges.tsv [github-musae]=github-musae/edges.csv)
declare -A LABELS=([ppi]=ppi/communities.tsv [wikipedia-pos]=wikipedia-pos/communities.tsv
                   [ca-astroph]= [github-musae]=github-musae/labels.csv)
# Leaves of at most this many nodes: 16 or more leaf subgraphs on each graph.
declare -A MAXN=([ppi]=200 [wikipedia-pos]=250 [ca-astroph]=1000 [github-musae]=2000)
D=.venv/bin/distne
for g in "${GRAPHS[@]}"; do
  w="$OUT/$g"; rm -rf "$w"; mkdir -p "$w"
  echo "=== $g: split (10% held out)"
  $D split --input "$DATA/${EDGES[$g]}" --train "$w/train" --test "$w/test" 2>/dev/null
  # whole: the local backend on the graph as one piece, with its own random draws (another
  # seed); then the exchange and the two baselines over the same leaves (the level-0 partition
  # does not depend on the mode). Every run is scored on the cross pairs of the exchange run.
  for mode in ${MODES:-exchange whole procrustes leaf_only}; do
    case $mode in
      whole) sets=(--set run.mode=local --set seed=7) ;;
      *) sets=(--set "partition.max_nodes=${MAXN[$g]}" --set "run.mode=$mode") ;;
    esac
    echo "=== $g: run $mode"
    $D run --input "$w/train" --output "$w/$mode" "${sets[@]}" --set runtime.progress=false 2>/dev/null
    echo "=== $g: evaluate $mode"
    args=(--embeddings "$w/$mode" --test-edges "$w/test" --subgraphs "$w/exchange")
    [ -n "${LABELS[$g]}" ] && args+=(--labels "$DATA/${LABELS[$g]}")
    $D evaluate "${args[@]}" 2>/dev/null
  done
done
