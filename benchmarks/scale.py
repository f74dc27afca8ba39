"""Scale benchmark: distne end to end beside single-machine ProNE, on generated power-law graphs.

    .venv/bin/python benchmarks/scale.py [--edges 1e6 1e7] [--set partition.max_nodes=20000 ...]
                                         [--work /tmp/distne-scale] [--no-peer]
                                         [--no-graphframes] [--include OLD/scale.json ...]

For each target edge count (``edges/10`` nodes, ``distne.generate.power_law_edges``, written by
Spark as one TSV; generation is not timed) it runs, one after the other on the same file:

1. ``distne run`` as a user runs it (the CLI's embedded default plus the ``--set`` overrides),
   with Spark's event log on;
2. single-machine ProNE from ``nodevectors`` (dim 128, ProNE's defaults), its own TSV load
   included, in a virtualenv of its own (``<work>/peer-venv``, created on first use: it is
   not a dependency of distne). ``--no-peer`` skips it.
3. up to ``--graphframes-max-edges`` (1.5M: the 1M graph), GraphFrames'
   ``RandomWalkEmbeddings``, the Spark-native embedding a Spark user would try first: random
   walks with restart (its defaults: 5 walks per node), Hash2Vec at dim 128 with neighbour
   aggregation (its defaults), the vectors written as Parquet. It runs in the project's Python
   with ``graphframes-py`` put on ``PYTHONPATH`` from ``<work>/graphframes-py`` (installed on
   first use, not a dependency of distne) and the JVM package by its Maven coordinates; where
   Maven Central does not serve them, the jar of ``../shared/jars`` is installed into
   ``~/.m2`` first (``../shared/STACK.md``). ``--no-graphframes`` skips it.

Both run under a sampler of the whole process tree (JVM and Python workers included: summed
RSS from /proc every 0.2 s). distne's stages are cut at its progress lines, so each stage gets
its seconds and its peak memory; shuffle bytes per stage come from the event log's task
metrics. Output: ``<work>/scale.json`` (one record per graph) and ``<work>/scale.png``
(time and peak memory against edges, log-log, with the fitted exponents), and a table on
stdout.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# 0.1.23: the newest release for Python 3.11 (0.2.0 requires 3.12).
PEER_PACKAGES = ["nodevectors==0.1.23"]
PEER_SCRIPT = """
import json, sys, time
t0 = time.time()
import csrgraph, nodevectors
g = csrgraph.read_edgelist(sys.argv[1], directed=False, sep="\\t")
t1 = time.time()
x = nodevectors.ProNE(n_components=128).fit_transform(g)
t2 = time.time()
print(json.dumps({"load": t1 - t0, "embed": t2 - t1, "nodes": int(x.shape[0])}))
"""
GRAPHFRAMES_PY = "graphframes-py==0.11.0"
GRAPHFRAMES_JAR = "io.graphframes:graphframes-spark4_2.13:0.11.0"
SHARED_JARS = ROOT.parent / "shared" / "jars"
GRAPHFRAMES_SCRIPT = """
import json, sys, time
t0 = time.time()
from pyspark.sql import SparkSession
from graphframes import GraphFrame
from graphframes.graphframe import RandomWalkEmbeddings
tsv, out, package = sys.argv[1:4]
spark = (SparkSession.builder.master("local[*]").appName("graphframes-peer")
         .config("spark.jars.packages", package).config("spark.driver.memory", "4g")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.sparkContext.setCheckpointDir(out + "/checkpoints")
edges = (spark.read.option("sep", "\\t").schema("src long, dst long").csv(tsv)
         .filter("src != dst").cache())
nodes = edges.selectExpr("src as id").union(edges.selectExpr("dst as id")).distinct().cache()
n = nodes.count()
t1 = time.time()
rwe = RandomWalkEmbeddings(GraphFrame(nodes, edges))
rwe.set_rw_model(temporary_prefix=out + "/walks", seed=42)
rwe.set_hash2vec(embeddings_dim=128)
rwe.set_neighbors_aggregation()
rwe.run().write.mode("overwrite").parquet(out + "/vectors")
t2 = time.time()
print(json.dumps({"load": t1 - t0, "embed": t2 - t1, "nodes": n}))
"""


def _tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo += kids.get(q, [])
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its wall time, exit code, memory samples and timed stderr lines."""
    samples: list[tuple[float, int]] = []
    lines: list[tuple[float, str]] = []
    t0 = time.time()
    with open(log, "w", buffering=1) as out:  # line-buffered: the log can be followed
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

        def read_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.time() - t0, line.rstrip()))
                out.write(line)

        reader = threading.Thread(target=read_err, daemon=True)
        reader.start()
        while proc.poll() is None:
            samples.append((time.time() - t0, sum(_rss(q) for q in _tree(proc.pid))))
            time.sleep(0.2)
        stdout = proc.stdout.read() if proc.stdout else ""
        reader.join(timeout=5)
        out.write(stdout)
    return {
        "seconds": time.time() - t0,
        "rc": proc.returncode,
        "samples": samples,
        "lines": lines,
        "stdout": stdout,
    }


def _peak(samples: list[tuple[float, int]], start: float = 0.0, end: float = math.inf) -> float:
    inside = [m for t, m in samples if start <= t <= end]
    return round(max(inside, default=0) / 2**30, 3)


def _shuffle_by_time(event_dir: Path) -> list[tuple[float, int]]:
    """(task finish time in epoch seconds, shuffle bytes written) from Spark's event log."""
    out = []
    for path in glob.glob(str(event_dir / "**" / "events_*"), recursive=True):
        with open(path) as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                ev = json.loads(line)
                m = (ev.get("Task Metrics") or {}).get("Shuffle Write Metrics") or {}
                written = m.get("Shuffle Bytes Written", 0)
                if written:
                    out.append((ev["Task Info"]["Finish Time"] / 1000.0, written))
    return out


def _stages(lines: list[tuple[float, str]]) -> dict[str, tuple[float, float]]:
    """Stage name -> (start, end) seconds, from distne's ``[distne] X: started/done`` lines."""
    spans: dict[str, list[float]] = {}
    for t, line in lines:
        if not line.startswith("[distne] "):
            continue
        name, _, rest = line[len("[distne] ") :].partition(": ")
        if rest.startswith("started"):
            spans[name] = [t, math.inf]
        elif rest.startswith("done in") and name in spans:
            spans[name][1] = t
    return {k: (v[0], v[1]) for k, v in spans.items()}


def generate(edges: float, work: Path, seed: int) -> Path:
    """A power-law graph of about ``edges`` edges as ``<work>/g<edges>/edges.tsv``."""
    folder = work / f"g{int(edges)}"
    tsv = folder / "edges.tsv"
    if tsv.exists():
        return tsv
    code = f"""
import sys
from distne.config import load_config
from distne.generate import power_law_edges
from distne.session import build_session
cfg = load_config(None, ["spark.conf.spark.driver.memory=8g", "spark.delta_jars=false",
                         "spark.conf.spark.ui.enabled=false"])
spark = build_session(cfg, "local[*]")
spark.sparkContext.setLogLevel("ERROR")
e = power_law_edges(spark, nodes={int(edges) // 10}, edges={int(edges)}, seed={seed})
e.select("src", "dst").write.mode("overwrite").option("sep", "\\t").csv("{folder}/parts")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    with open(tsv, "wb") as out:
        for part in sorted(glob.glob(str(folder / "parts" / "part-*"))):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    shutil.rmtree(folder / "parts")
    return tsv


def peer_python(work: Path) -> str:
    venv = work / "peer-venv"
    stamp = venv / "installed.txt"
    if not stamp.exists() or stamp.read_text() != " ".join(PEER_PACKAGES):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *PEER_PACKAGES], check=True)
        stamp.write_text(" ".join(PEER_PACKAGES))
    return str(venv / "bin" / "python")


def graphframes_env(work: Path) -> dict[str, str]:
    """The environment that runs :data:`GRAPHFRAMES_SCRIPT` in the project's Python."""
    lib = work / "graphframes-py"
    stamp = lib / "installed.txt"
    if not stamp.exists() or stamp.read_text() != GRAPHFRAMES_PY:
        shutil.rmtree(lib, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
        subprocess.run([*pip, str(lib), GRAPHFRAMES_PY], check=True)
        stamp.write_text(GRAPHFRAMES_PY)
    group, artifact, version = GRAPHFRAMES_JAR.split(":")
    m2 = Path.home() / ".m2" / "repository" / group.replace(".", "/") / artifact / version
    jar = SHARED_JARS / f"{artifact}-{version}.jar"
    if not m2.exists() and jar.exists():
        # Maven Central here serves no io.graphframes artifact: install the shared build under
        # its ordinary coordinates, which Spark's Ivy then finds in ~/.m2.
        pom = jar.with_suffix(".pom")
        cmd = ["mvn", "-q", "install:install-file", f"-Dfile={jar}", f"-DpomFile={pom}"]
        subprocess.run(cmd, check=True)
    return {**os.environ, "PYTHONPATH": str(lib)}


def run_graphframes(tsv: Path, work: Path) -> dict:
    out = tsv.parent / "graphframes"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", GRAPHFRAMES_SCRIPT, str(tsv), str(out), GRAPHFRAMES_JAR]
    try:
        return run_script(cmd, tsv.parent / "graphframes.log", env=graphframes_env(work))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_distne(tsv: Path, work: Path, overrides: list[str]) -> dict:
    out = tsv.parent / "emb"
    events = tsv.parent / "events"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    cmd = [str(ROOT / ".venv" / "bin" / "distne"), "run", "--input", str(tsv), "--output"]
    cmd += [str(out), "--json", "--set", "spark.conf.spark.eventLog.enabled=true"]
    cmd += ["--set", f"spark.conf.spark.eventLog.dir=file://{events}"]
    cmd += ["--set", "spark.conf.spark.eventLog.compress=false"]
    for o in overrides:
        cmd += ["--set", o]
    start = time.time()
    r = measure(cmd, tsv.parent / "distne.log")
    if r["rc"] != 0:
        # A failed run's time and memory until it stopped, and its log.
        stopped = {"seconds": r["seconds"], "peak_gb": _peak(r["samples"])}
        return {"rc": r["rc"], **stopped, "log": str(tsv.parent / "distne.log")}
    summary = json.loads(r["stdout"])
    shuffle = _shuffle_by_time(events)
    stages = {}
    for name, (s, e) in _stages(r["lines"]).items():
        stages[name] = {
            "seconds": round(min(e, r["seconds"]) - s, 2),
            "peak_gb": _peak(r["samples"], s, e),
            "shuffle_mb": round(
                sum(b for t, b in shuffle if start + s <= t <= start + e) / 2**20, 1
            ),
        }
    shutil.rmtree(out, ignore_errors=True)
    return {
        "rc": 0,
        "seconds": round(r["seconds"], 2),
        "peak_gb": _peak(r["samples"]),
        "shuffle_mb": round(sum(b for _, b in shuffle) / 2**20, 1),
        "nodes": summary["nodes"],
        "edges": summary["edges"],
        "mode": summary["mode"],
        "plan": summary["plan"],
        "leaves": summary["leaf_subgraphs"],
        "stages": stages,
    }


def run_script(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """A peer script under :func:`measure`: seconds, peak and the JSON of its last line."""
    r = measure(cmd, log, env)
    out = {"rc": r["rc"], "seconds": round(r["seconds"], 2), "peak_gb": _peak(r["samples"])}
    if r["rc"] != 0:
        return {**out, "log": str(log)}
    return {**out, **json.loads(r["stdout"].strip().splitlines()[-1])}


def run_peer(tsv: Path, python: str) -> dict:
    return run_script([python, "-c", PEER_SCRIPT, str(tsv)], tsv.parent / "peer.log")


def fit_exponent(xs: list[float], ys: list[float]) -> float | None:
    """``b`` of the least-squares fit ``y = a x^b`` in log-log space (None for < 2 points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


PLOTTED = (
    ("distne", "distne"),
    ("peer", "ProNE (nodevectors)"),
    ("graphframes", "GraphFrames RandomWalkEmbeddings"),
)


def plot(records: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # the figures are in the JSON and the table; the plot is extra
        print(f"no plot ({path}): matplotlib is not installed (pip install '.[bench]')")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "seconds", "seconds"), (axes[1], "peak_gb", "peak GB")):
        for who, name in PLOTTED:
            pts = [(r["edges"], r[who][key]) for r in records if r.get(who, {}).get("rc") == 0]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            b = fit_exponent(list(xs), list(ys))
            ax.plot(xs, ys, "o-", label=f"{name}" + (f", exponent {b:.2f}" if b else ""))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("edges")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("distne against single-machine ProNE (2 cores, 24 GB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edges", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--work", default="/tmp/distne-scale")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--set", action="append", default=[], help="distne config overrides")
    ap.add_argument("--no-peer", action="store_true", help="skip single-machine ProNE")
    ap.add_argument("--peer-max-edges", type=float, default=3e7, help="skip the peer above this")
    ap.add_argument(
        "--include", nargs="*", default=[], help="earlier scale.json files to fit and plot with"
    )
    ap.add_argument("--no-graphframes", action="store_true", help="skip RandomWalkEmbeddings")
    ap.add_argument(
        "--graphframes-max-edges", type=float, default=1.5e6, help="skip GraphFrames above this"
    )
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    python = None if args.no_peer else peer_python(work)
    records = []
    for target in args.edges:
        tsv = generate(target, work, args.seed)
        rec: dict = {"target_edges": int(target)}
        rec["distne"] = run_distne(tsv, work, args.set)
        rec["edges"] = rec["distne"].get("edges", int(target))
        if python and target <= args.peer_max_edges:
            rec["peer"] = run_peer(tsv, python)
        if not args.no_graphframes and target <= args.graphframes_max_edges:
            rec["graphframes"] = run_graphframes(tsv, work)
        records.append(rec)
        print(json.dumps(rec), flush=True)
        (work / "scale.json").write_text(json.dumps({"runs": records}, indent=2))
    # Earlier runs (other invocations' scale.json) join the fit, the plot and the table.
    for path in args.include:
        records += json.loads(Path(path).read_text())["runs"]
    records.sort(key=lambda r: r["edges"])
    ok = [r for r in records if r["distne"].get("rc") == 0]
    fits = {
        "time_exponent": fit_exponent(
            [r["edges"] for r in ok], [r["distne"]["seconds"] for r in ok]
        ),
        "memory_exponent": fit_exponent(
            [r["edges"] for r in ok], [r["distne"]["peak_gb"] for r in ok]
        ),
    }
    (work / "scale.json").write_text(json.dumps({"runs": records, "fits": fits}, indent=2))
    plot(records, work / "scale.png")
    print(
        "\n| edges | nodes | mode | leaves | distne s | distne peak GB | ProNE s | ProNE peak GB "
        "| time ratio | memory ratio | GraphFrames s | GraphFrames peak GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ok:
        d, p, g = r["distne"], r.get("peer", {}), r.get("graphframes", {})
        has, gf = p.get("rc") == 0, g.get("rc") == 0
        print(
            f"| {r['edges']:,} | {d['nodes']:,} | {d['mode']} | {d['leaves']} | {d['seconds']:.1f} "
            f"| {d['peak_gb']:.2f} | {p['seconds'] if has else '—'} "
            f"| {p['peak_gb'] if has else '—'} "
            f"| {d['seconds'] / p['seconds'] if has else float('nan'):.2f} "
            f"| {d['peak_gb'] / p['peak_gb'] if has else float('nan'):.2f} "
            f"| {g['seconds'] if gf else '—'} | {g['peak_gb'] if gf else '—'} |"
        )
    print(json.dumps(fits))
    print(f"wrote {work / 'scale.json'}")


if __name__ == "__main__":
    main()
