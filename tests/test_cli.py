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


@pytest.mark.spark
def test_missing_input_exits_nonzero_naming_the_file(tmp_path):
    r = _run("run", "--input", str(tmp_path / "missing.tsv"), "--output", str(tmp_path / "o"))
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.startswith("distne: error:")]
    assert len(err) == 1 and "missing.tsv" in err[0] and "no such file" in err[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


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
