"""The command line as users call it: exit codes and one-paragraph errors."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTNE = [sys.executable, "-m", "distne.cli"]


def _run(*args, timeout=300):
    return subprocess.run(
        [*DISTNE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


# Spark's first line on the JVM's start: its absence shows a check ran before the JVM.
SPARK_STARTED = "log4j profile"


def _one_error(r) -> str:
    assert r.returncode == 2, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("distne: error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    return err[0]


def test_missing_input_exits_nonzero_naming_the_file_before_spark_starts(tmp_path):
    r = _run("run", "--input", str(tmp_path / "missing.tsv"), "--output", str(tmp_path / "o"))
    err = _one_error(r)
    assert "missing.tsv" in err and "no such file" in err
    assert SPARK_STARTED not in r.stderr
    assert not (tmp_path / "o").exists()
    r = _run("evaluate", "--embeddings", str(tmp_path / "o"), "--labels", str(tmp_path / "l.tsv"))
    assert "labels" in _one_error(r) and SPARK_STARTED not in r.stderr
    (tmp_path / "bin.tsv").write_bytes(b"\x00\x01\x02" * 100)
    r = _run("run", "--input", str(tmp_path / "bin.tsv"), "--output", str(tmp_path / "o"))
    assert "binary data in 'bin.tsv'" in _one_error(r) and SPARK_STARTED not in r.stderr


@pytest.mark.parametrize(
    ("fraction", "train", "test", "expected"),
    [
        ("1.5", "train", "test", "--fraction: expected the share of edges"),
        ("0", "train", "test", "found 0.0"),
        ("0.1", "same", "same/", "--test"),
    ],
)
def test_split_arguments_are_checked_before_spark_starts(tmp_path, fraction, train, test, expected):
    edges = ROOT / "data" / "sample" / "ppi" / "edges.tsv"
    r = _run(
        "split", "--input", str(edges), "--train", str(tmp_path / train),
        "--test", str(tmp_path / test), "--fraction", fraction,
    )  # fmt: skip
    assert expected in _one_error(r)
    assert SPARK_STARTED not in r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.spark
def test_split_never_deletes_a_folder_of_other_files(tmp_path):
    edges = ROOT / "data" / "sample" / "ppi" / "edges.tsv"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")

    def split(train, test):
        args = ["--input", str(edges), "--train", str(train), "--test", str(test)]
        return _run("split", *args, "--set", "spark.master=local[1]")

    err = _one_error(split(tmp_path / "train", mine))
    assert str(mine) in err and "notes.txt" in err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "train").exists()  # refused before anything was written
    for _ in range(2):  # a rerun over its own output replaces it
        r = split(tmp_path / "train", tmp_path / "test")
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in (tmp_path / "test").glob("part-*.csv"))


def test_bad_override_exits_nonzero_before_spark_starts():
    r = _run("config", "--set", "embedding.dim=zero")
    assert r.returncode == 2
    assert "embedding.dim must be an integer; found 'zero'" in r.stderr


def test_config_keys_lists_help():
    r = _run("config", "--keys")
    assert r.returncode == 0
    assert "partition.max_nodes = null" in r.stdout
    assert 'run.mode = "auto"' in r.stdout


def test_ruff_is_clean():
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "lib", "jobs", "tests", "benchmarks", "deploy"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_local_heap_follows_the_input_size(tmp_path):
    from distne.cli import _config, build_parser, input_bytes, local_heap

    def sized(name, size):
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "wb") as out:
            out.truncate(size)  # sparse: the size without the bytes
        return f

    small = sized("small.tsv", 9 * 2**20)
    assert input_bytes(str(small)) == 9 * 2**20 and local_heap(str(small)) == "1g"
    # A folder of text and Parquet parts (Parquet counts three times: it is compressed).
    sized("mid/a.tsv", 10 * 2**20)
    sized("mid/b.parquet", 8 * 2**20)
    assert input_bytes(str(tmp_path / "mid")) == 34 * 2**20
    assert local_heap(str(tmp_path / "mid")) == "2g"
    assert local_heap(f"file://{tmp_path}/mid/*.tsv") == "1g"  # a glob, as a file URI
    sized("big.tsv", 200 * 2**20)
    assert local_heap(str(tmp_path / "big.tsv")) == "4g"
    # Not local files (or nothing there): the 4 GB default.
    assert local_heap("s3a://bucket/edges") == "4g"
    assert local_heap(str(tmp_path / "missing.tsv")) == "4g"
    assert local_heap(None) == "4g"

    def heap(*argv, embedded=True):
        args = build_parser().parse_args(["run", *argv])
        return _config(args, embedded).spark.conf.get("spark.driver.memory")

    assert heap("--input", str(small)) == "1g"
    # The user's own setting wins; a config file or spark-submit (no embedded default) decide
    # for themselves.
    assert heap("--input", str(small), "--set", "spark.conf.spark.driver.memory=3g") == "3g"
    assert heap("--input", str(small), "--config", str(ROOT / "conf/local.yaml")) == "4g"
    assert heap("--input", str(small), embedded=False) is None
