"""What distne costs over a bare Spark job on a small graph, measured side by side.

    .venv/bin/python benchmarks/overhead.py [--input ../shared/data/ppi/edges.tsv] [--repeat 2]

Runs, alternately and ``--repeat`` times each, as separate processes:

- ``distne run --input FILE --output TMP`` with the default settings (what the README's first
  command runs on the sample graph);
- a bare Spark job with the same session settings (local Spark, Delta connector) that reads
  the same edge file, takes the distinct node ids and writes one Delta row per node (id and a
  constant vector): the floor any Spark pipeline pays for JVM start, reading and a Delta commit.

Prints each run's wall time and whole-process-tree peak memory, then the median ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, _peak, measure  # noqa: E402

BARE = """
import sys
from pyspark.sql import functions as F
from distne.cli import LOCAL_DEFAULTS
from distne.config import load_config
from distne.session import build_session
spark = build_session(load_config(None, list(LOCAL_DEFAULTS)), None)
lines = spark.read.text(sys.argv[1]).where(~F.col("value").startswith("#"))
tok = F.split(F.trim("value"), r"[\\s,]+")
ids = lines.select(tok[0].alias("v")).union(lines.select(tok[1].alias("v"))).distinct()
vec = F.array_repeat(F.lit(0.0).cast("float"), 128)
ids.select(F.col("v").alias("node_id"), vec.alias("embedding")).write.format("delta").save(
    sys.argv[2]
)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "ppi" / "edges.tsv"))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="distne-overhead-"))
    distne = [str(ROOT / ".venv" / "bin" / "distne"), "run", "--input", args.input, "--output"]
    bare = [sys.executable, "-c", BARE, args.input]
    times: dict[str, list[float]] = {"distne": [], "bare": []}
    for i in range(args.repeat):
        for name, cmd in (("distne", distne), ("bare", bare)):
            out = work / f"{name}-{i}"
            r = measure([*cmd, str(out)], work / f"{name}-{i}.log")
            if r["rc"] != 0:
                raise SystemExit(f"{name} failed (rc {r['rc']}); see {work / f'{name}-{i}.log'}")
            times[name].append(r["seconds"])
            row = {"run": name, "seconds": round(r["seconds"], 1), "peak_gb": _peak(r["samples"])}
            print(json.dumps(row), flush=True)
    ratio = statistics.median(times["distne"]) / statistics.median(times["bare"])
    print(json.dumps({"median_ratio_distne_over_bare": round(ratio, 2)}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
