"""distne beside GraphFrames' RandomWalkEmbeddings on a real graph: time, peak memory of the
whole process tree, link-prediction AUC and node-classification F1, on the same split.

    .venv/bin/python benchmarks/graphframes_peer.py --graph ppi [--work /tmp/distne-gf]

Steps, each a process of its own: ``distne split`` (10% of edges held out, plus as many
non-edges), ``distne run`` on the training edges (default settings), RandomWalkEmbeddings on
the same training edges (hash2vec, dim 128, neighbour aggregation: what a Spark user would
run first; GraphFrames on the session by ``spark.graphframes=true``) written as a table of
distne's schema, then ``distne evaluate`` of both tables against the same held-out pairs and
labels. Prints a Markdown table and writes ``<work>/graphframes_peer.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, _peak, measure  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GRAPHS = {
    "ppi": ("ppi/edges.tsv", "ppi/communities.tsv"),
    "wikipedia-pos": ("wikipedia-pos/edges.tsv", "wikipedia-pos/communities.tsv"),
    "github-musae": ("github-musae/edges.csv", "github-musae/labels.csv"),
    "ca-astroph": ("ca-astroph/edges.tsv", None),
}
PEER = """
import sys, time
from pyspark.sql import functions as F
from pyspark.ml.functions import vector_to_array
from distne.config import load_config
from distne.session import build_session
from graphframes import GraphFrame
from graphframes.graphframe import RandomWalkEmbeddings
train, out, work = sys.argv[1:4]
spark = build_session(load_config(None, [
    "spark.graphframes=true", "spark.conf.spark.driver.memory=4g",
    "spark.conf.spark.ui.showConsoleProgress=false"]), "local[*]")
spark.sparkContext.setLogLevel("ERROR")
spark.sparkContext.setCheckpointDir(work + "/checkpoints")
raw = spark.read.option("header", True).csv(train)
edges = raw.select(F.col(raw.columns[0]).cast("long").alias("src"),
                   F.col(raw.columns[1]).cast("long").alias("dst")).where("src != dst").cache()
nodes = edges.selectExpr("src as id").union(edges.selectExpr("dst as id")).distinct().cache()
nodes.count()
rwe = RandomWalkEmbeddings(GraphFrame(nodes, edges))
rwe.set_rw_model(temporary_prefix=work + "/walks", seed=42)
rwe.set_hash2vec(embeddings_dim=128)
rwe.set_neighbors_aggregation()
vectors = rwe.run()
col = vectors.schema["embedding"].dataType.simpleString()
emb = F.col("embedding") if col.startswith("array") else vector_to_array("embedding")
(vectors.select(F.col("id").alias("node_id"), F.lit(0).cast("long").alias("subgraph_id"),
                emb.cast("array<float>").alias("embedding"))
 .write.format("delta").save(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", choices=sorted(GRAPHS), default="ppi")
    ap.add_argument("--work", default="/tmp/distne-gf")
    ap.add_argument("--fraction", type=float, default=0.1)
    args = ap.parse_args()
    edges_rel, labels_rel = GRAPHS[args.graph]
    work = Path(args.work) / args.graph
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    distne = str(ROOT / ".venv" / "bin" / "distne")
    python = str(ROOT / ".venv" / "bin" / "python")
    train, test = work / "train", work / "test"
    split = measure(
        [distne, "split", "--input", str(DATA / edges_rel), "--train", str(train)]
        + ["--test", str(test), "--fraction", str(args.fraction)],
        work / "split.log",
    )
    assert split["rc"] == 0, (work / "split.log").read_text()[-2000:]
    runs = {
        "distne (default settings)": [distne, "run", "--input", str(train), "--output"]
        + [str(work / "distne"), "--json"],
        "GraphFrames RandomWalkEmbeddings (hash2vec, dim 128)": [python, "-c", PEER]
        + [str(train), str(work / "graphframes"), str(work / "gf-work")],
    }
    tables = {"distne (default settings)": "distne"}
    tables["GraphFrames RandomWalkEmbeddings (hash2vec, dim 128)"] = "graphframes"
    results = {}
    for name, cmd in runs.items():
        r = measure(cmd, work / f"{tables[name]}.log")
        assert r["rc"] == 0, (work / f"{tables[name]}.log").read_text()[-3000:]
        ev_cmd = [distne, "evaluate", "--embeddings", str(work / tables[name])]
        ev_cmd += ["--test-edges", str(test)]
        if labels_rel:
            ev_cmd += ["--labels", str(DATA / labels_rel)]
        ev = measure(ev_cmd, work / f"{tables[name]}-evaluate.log")
        assert ev["rc"] == 0, (work / f"{tables[name]}-evaluate.log").read_text()[-3000:]
        report = json.loads(ev["stdout"])
        results[name] = {
            "seconds": round(r["seconds"], 1),
            "peak_gb": _peak(r["samples"]),
            "link_prediction": report.get("link_prediction", {}),
            "node_classification": report.get("node_classification", {}),
        }
        print(json.dumps({name: results[name]}), flush=True)
    (work / "graphframes_peer.json").write_text(json.dumps(results, indent=2))
    print(f"\n{args.graph}: {args.fraction:.0%} of edges held out, same split for both")
    print("| method | seconds | peak GB | AUC | Micro-F1 | Macro-F1 |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        lp, nc = r["link_prediction"], r["node_classification"]
        cells = [lp.get("auc"), nc.get("micro_f1"), nc.get("macro_f1")]
        shown = [f"{c:.4f}" if isinstance(c, float) else "—" for c in cells]
        print(f"| {name} | {r['seconds']} | {r['peak_gb']} | " + " | ".join(shown) + " |")


if __name__ == "__main__":
    main()
