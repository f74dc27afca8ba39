"""A class-data archive for the JVM of local sessions: ~2.5 s less per run.

A local session launches its own driver JVM, which loads and links ~20,000 classes (Spark,
Delta, Parquet, Arrow) before and during its first jobs: ~3.5 s to a ready session and ~1.4 s
more for the first job on this project's 2-core machine. The JVM can map them instead from
an archive of the classes an earlier run loaded (application class-data sharing, JEP 350):
the session was ready in 2.3 s and its first job took 0.9 s, and a 1M-edge run took 25.6 s
instead of 28.2 s (docs/scaling.md). Nothing else changes: the same classes, the same code.

``python -m distne.classarchive`` (``setup.sh`` runs it) builds the archive: a small run of
the pipeline (exchange and Delta write included) in a child process whose JVM writes the
classes it loaded when it exits, a second child that starts from the archive to check it,
then the file moved into the cache under a name that says which Java, which pyspark
installation (the JVM's classpath starts in it: each .venv has its own archive) and which
jars it was built with; archives of installations that are gone are removed then.
:func:`java_options` gives a local session the options that use it, when it exists for the
session's Java and jars and has the size it was built with: the JVM maps the file without
reading it through, and a truncated archive crashes it (SIGBUS), so a file of another size
is never used. A missing or mismatched archive costs nothing but the time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyspark

# Quiet: the JVM's notes on classes it cannot archive (signed jars, generated classes) and on
# an archive it cannot use are not the user's business; the run goes on either way.
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def _java() -> Path | None:
    """The java executable a local session launches (as pyspark finds it), resolved."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found or not os.path.isfile(found):
        return None
    return Path(os.path.realpath(found))


# The pyspark installation a session's JVM takes its classpath from (its jars, its conf):
# the archive holds that classpath, so each environment (each .venv) has its own.
PYSPARK_HOME = str(Path(pyspark.__file__).resolve().parent)


def archive_stem(jars: str) -> str | None:
    """The archive's name without its size: one per Java build, pyspark installation and jar
    list (None: no java found)."""
    java = _java()
    if java is None:
        return None
    st = java.stat()
    key = f"{java} {st.st_size} {st.st_mtime_ns} {PYSPARK_HOME} {pyspark.__version__} {jars}"
    return "classes-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Where distne keeps what local sessions reuse (the remembered jars, the archive):
    ``$XDG_CACHE_HOME/distne``, else ``~/.cache/distne``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distne"


def find_archive(jars: str) -> Path | None:
    """The archive built for ``jars`` (a session's ``spark.jars``), if it is whole."""
    stem = archive_stem(jars)
    if stem is None:
        return None
    for path in cache_dir().glob(f"{stem}-*.jsa"):
        size = path.stem.rsplit("-", 1)[1]
        if size.isdigit() and path.stat().st_size == int(size):
            return path
    return None


def java_options(jars: str) -> str:
    """Driver JVM options that start from the archive for ``jars`` ("" without one)."""
    path = find_archive(jars)
    return f"-XX:SharedArchiveFile={path} {QUIET}" if path else ""


def _workload(options: str) -> int:
    """What the archiving child runs, its driver JVM started with ``options``: the pipeline on
    a small graph, over leaves (the exchange) and into a Delta table, so that the JVM loads
    what a run loads. Prints the session's jars; returns the JVM's exit code, once it has
    exited (it writes an archive as it exits)."""
    from pyspark import SparkContext

    from distne.config import load_config
    from distne.pipeline import run
    from distne.session import build_session

    work = Path(tempfile.mkdtemp(prefix="distne-archive-"))
    try:
        edges = work / "edges.tsv"
        ring = (f"{i}\t{(i + 1) % 400}\n{i}\t{(i * 7 + 1) % 400}\n" for i in range(400))
        edges.write_text("".join(ring))
        settings = [
            f"input.path={edges}",
            f"output.path={work / 'out'}",
            "partition.max_nodes=100",
            "embedding.dim=16",
            "spark.class_archive=false",
            "spark.conf.spark.ui.enabled=false",
            f"spark.conf.spark.driver.extraJavaOptions={options}",
        ]
        cfg = load_config(None, settings)
        spark = build_session(cfg, "local[2]")
        run(spark, cfg)
        print("jars=" + spark.sparkContext.getConf().get("spark.jars", ""))
        jvm = SparkContext._gateway.proc  # type: ignore[union-attr]
        spark.stop()
        jvm.stdin.close()  # the JVM exits when its stdin closes
        return jvm.wait(timeout=300)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _child(options: str) -> tuple[int, str]:
    """The workload in a child process whose driver JVM runs with ``options``: its exit code
    (the JVM's, once it has exited) and the jars its session used."""
    done = subprocess.run(
        [sys.executable, "-m", "distne.classarchive", "--workload", options],
        capture_output=True,
        text=True,
        check=False,
    )
    jars = next((ln[5:] for ln in done.stdout.splitlines() if ln.startswith("jars=")), "")
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
    return done.returncode, jars


def _prune(cache: Path, stem: str) -> None:
    """Remove the archive of ``stem`` and those of pyspark installations that are gone (a
    deleted .venv's archive would otherwise stay, ~190 MB, for ever)."""
    for home in cache.glob("classes-*.home"):
        if home.stem == stem or not Path(home.read_text().strip()).is_dir():
            for old in cache.glob(f"{home.stem}-*.jsa"):
                old.unlink()
            home.unlink()
    for old in cache.glob(f"{stem}-*.jsa"):
        old.unlink()


def build(base_options: str = "-XX:+UseParallelGC") -> Path | None:
    """Build, check and install the archive; its path (None: not built, and why on stderr)."""
    if _java() is None:
        print("classarchive: no java found; nothing built", file=sys.stderr)
        return None
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkstemp(prefix="classes-", suffix=".jsa.tmp", dir=cache)[1])
    tmp.unlink()  # the JVM creates it
    try:
        code, jars = _child(f"{base_options} -XX:ArchiveClassesAtExit={tmp} {QUIET}")
        if code or not tmp.is_file() or not tmp.stat().st_size:
            print(
                f"classarchive: the archiving run failed (exit {code}); nothing built",
                file=sys.stderr,
            )
            return None
        # -Xshare:on: a JVM that cannot use the archive (another classpath) fails the check.
        check, _ = _child(f"{base_options} -XX:SharedArchiveFile={tmp} -Xshare:on {QUIET}")
        if check:
            print(
                f"classarchive: a run from the archive failed (exit {check}); not kept",
                file=sys.stderr,
            )
            return None
        stem = archive_stem(jars)
        assert stem is not None
        _prune(cache, stem)
        path = cache / f"{stem}-{tmp.stat().st_size}.jsa"
        (cache / f"{stem}.home").write_text(PYSPARK_HOME + "\n")
        tmp.replace(path)
        return path
    finally:
        tmp.unlink(missing_ok=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--workload"]:
        sys.exit(_workload(sys.argv[2]))
    built = build()
    print(f"setup: JVM class archive {built}" if built else "setup: no JVM class archive")
