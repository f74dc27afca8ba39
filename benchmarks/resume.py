"""A run killed mid-embed and rerun, against a clean run: time, and whether the vectors agree.

    .venv/bin/python benchmarks/resume.py [--input ../shared/data/ca-astroph/edges.tsv]
        [--kill-after 20] [--set KEY=VALUE ...]

Runs, as separate processes with the same settings: a clean ``distne run``; then one killed
(SIGKILL of its whole process tree: driver, JVM, Python workers) ``--kill-after`` seconds
after it prints ``embed: started``; then the same command again, which resumes. Prints the
clean and the rerun's wall times, the rerun's ``resuming from`` line and the largest
difference between the two tables' vectors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parents[1]


def _vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = DeltaTable(str(path)).to_pyarrow_table().to_pandas().sort_values("node_id")
    return t["node_id"].to_numpy(), np.stack(t["embedding"].to_numpy())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--input", default=str(ROOT.parent / "shared/data/ca-astroph/edges.tsv"))
    p.add_argument("--kill-after", type=float, default=20.0, help="seconds into embed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="distne-resume-"))
    sets = [x for s in args.set for x in ("--set", s)]

    def cmd(out: Path) -> list[str]:
        base = [sys.executable, "-m", "distne.cli", "run", "--input", args.input]
        return base + ["--output", str(out), *sets]

    def timed(out: Path, log: Path) -> float:
        t = time.perf_counter()
        with log.open("w") as err:
            subprocess.run(cmd(out), stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, check=True)
        return time.perf_counter() - t

    try:
        clean = timed(work / "clean", work / "clean.log")
        print(f"clean run: {clean:.1f} s")
        log = work / "killed.log"
        t = time.perf_counter()
        with log.open("w") as err:
            child = subprocess.Popen(
                cmd(work / "emb"),
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
                start_new_session=True,
            )
        while "embed: started" not in log.read_text():
            if child.poll() is not None:
                raise SystemExit(f"the run ended before its embed stage:\n{log.read_text()}")
            time.sleep(0.05)
        started = time.perf_counter() - t
        time.sleep(args.kill_after)
        if child.poll() is not None:
            raise SystemExit(f"the run finished within {args.kill_after} s of its embed stage")
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        print(f"killed at {time.perf_counter() - t:.1f} s ({started:.1f} s + {args.kill_after} s)")
        rerun = timed(work / "emb", work / "rerun.log")
        said = [x for x in (work / "rerun.log").read_text().splitlines() if "resuming" in x]
        print(f"rerun: {rerun:.1f} s ({rerun / clean:.2f}x the clean run)")
        print("\n".join(said) or "(the rerun did not say it resumed)")
        ids_a, a = _vectors(work / "clean")
        ids_b, b = _vectors(work / "emb")
        same = len(ids_a) == len(ids_b) and bool((ids_a == ids_b).all())
        diff = float(np.abs(a - b).max()) if same else float("nan")
        print(f"nodes {len(ids_a):,}, same ids: {same}, largest vector difference: {diff:.3g}")
        return 0 if same and diff <= 1e-4 and said else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
