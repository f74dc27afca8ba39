"""The corpus of hostile inputs: each goes through the CLI as a user would give it, and gets
one paragraph (``distne: error: ...``) naming the input, what was expected and what was
found, exit code 2, and nothing created or destroyed.

The CLI runs in this process (``cli.main``) on the suite's Spark session, so a case costs a
validation pass, not a JVM start. Cases that must fail before Spark starts are also checked
to do so (``before_spark``: no session is asked for).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import distne.cli as cli
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.spark


def _text(content: str | bytes) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (d / "in").write_bytes(data)

    return make


def _parquet(table: dict) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / "in").mkdir()
        pq.write_table(pa.table(table), d / "in" / "part-0.parquet")

    return make


def _mixed(d: Path) -> None:
    (d / "in").mkdir()
    (d / "in" / "a.tsv").write_text("1 2\n")
    (d / "in" / "README.md").write_text("these are my edges\n")
    pq.write_table(pa.table({"src": [1], "dst": [2]}), d / "in" / "b.parquet")


def _empty_dir(d: Path) -> None:
    (d / "in").mkdir()


def _busy_output(d: Path) -> None:
    _text("1 2\n2 3\n")(d)
    (d / "out").mkdir()
    (d / "out" / "report.csv").write_text("keep me\n")


def _output_is_a_file(d: Path) -> None:
    _text("1 2\n2 3\n")(d)
    (d / "out").write_text("a file\n")


def _busy_train(d: Path) -> None:
    _text("1 2\n2 3\n3 4\n")(d)
    (d / "train").mkdir()
    (d / "train" / "notes.txt").write_text("mine\n")


def _foreign_delta(spark) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        _text("1 2\n2 3\n")(d)
        spark.range(2).write.format("delta").save(str(d / "out"))

    return make


def _distne_table(spark) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        _text("1 2\n2 3\n")(d)
        rows = [(1, 0, [1.0]), (2, 0, [0.5])]
        schema = "node_id long, subgraph_id long, embedding array<float>"
        spark.createDataFrame(rows, schema).write.format("delta").save(str(d / "out"))

    return make


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], None] | str  # a str names a maker needing the session
    argv: tuple[str, ...]
    expected: str  # a fragment of the message
    before_spark: bool = False


RUN = ("run", "--input", "{d}/in", "--output", "{d}/out")
SPLIT = ("split", "--input", "{d}/in", "--train", "{d}/train", "--test", "{d}/test")
WEIGHTED = ("--set", "input.weight_col=weight")

CASES = [
    # Refused before Spark starts.
    Case("missing file", lambda d: None, RUN, "no such file", True),
    Case("binary file", _text(b"PAR1\x00\x15\x04\xff" * 40), RUN, "binary data", True),
    Case("folder mixing kinds", _mixed, RUN, "README.md", True),
    Case("empty folder", _empty_dir, RUN, "found a folder with none", True),
    Case(
        "unknown setting",
        _text("1 2\n"),
        (*RUN, "--set", "partition.nodes=5"),
        "partition.nodes",
        True,
    ),
    Case(
        "setting of the wrong type",
        _text("1 2\n"),
        (*RUN, "--set", "partition.max_nodes=many"),
        "partition.max_nodes",
        True,
    ),
    Case(
        "setting out of range",
        _text("1 2\n"),
        (*RUN, "--set", "partition.max_nodes=1"),
        ">= 2",
        True,
    ),
    Case("no output", _text("1 2\n"), ("run", "--input", "{d}/in"), "no output given"),
    Case(
        "split fraction above 1",
        _text("1 2\n"),
        (*SPLIT, "--fraction", "1.5"),
        "between 0 and 1",
        True,
    ),
    Case("split fraction 0", _text("1 2\n"), (*SPLIT, "--fraction", "0"), "between 0 and 1", True),
    Case(
        "split train is the input",
        _text("1 2\n"),
        ("split", "--input", "{d}/in", "--train", "{d}/in", "--test", "{d}/test"),
        "the same path",
        True,
    ),
    Case(
        "evaluate without its test edges",
        _text("1 2\n"),
        ("evaluate", "--embeddings", "{d}/in", "--test-edges", "{d}/nope"),
        "test edges",
        True,
    ),
    Case(
        "evaluate with binary labels",
        _text(b"\x00\x01\x02" * 30),
        ("evaluate", "--embeddings", "{d}/e", "--labels", "{d}/in"),
        "labels",
        True,
    ),
    Case(
        "neighbors without a node",
        _text("1\n"),
        ("neighbors", "--embeddings", "{d}/in"),
        "found neither",
        True,
    ),
    Case(
        "neighbors with k 0",
        _text("1\n"),
        ("neighbors", "--embeddings", "{d}/in", "--node", "1", "-k", "0"),
        "positive",
        True,
    ),
    Case(
        "neighbors of a binary id file",
        _text(b"\x00\x01" * 40),
        ("neighbors", "--embeddings", "{d}/e", "--nodes", "{d}/in"),
        "binary",
        True,
    ),
    # Refused by the one validation pass (or the output check) in Spark.
    Case("empty file", _text(""), RUN, "at least one edge between two different nodes"),
    Case("only comments", _text("# nothing\n# here\n"), RUN, "at least one edge"),
    Case("only self-loops", _text("1 1\n2 2\n"), RUN, "found none"),
    Case("one field on a line", _text("1 2\n3\n"), RUN, "too few fields"),
    Case("a third field nobody named", _text("1 2 0.5\n2 3 0.7\n"), RUN, "input.weight_col"),
    Case("NaN weight", _text("1 2 0.5\n2 3 nan\n"), (*RUN, *WEIGHTED), "positive finite"),
    Case("infinite weight", _text("1 2 inf\n2 3 1\n"), (*RUN, *WEIGHTED), "positive finite"),
    Case("negative weight", _text("1 2 -1\n2 3 1\n"), (*RUN, *WEIGHTED), "positive finite"),
    Case("zero weight", _text("1 2 0\n2 3 1\n"), (*RUN, *WEIGHTED), "positive finite"),
    Case(
        "weight that is not a number",
        _text("1 2 heavy\n2 3 1\n"),
        (*RUN, *WEIGHTED),
        "numeric weight",
    ),
    Case(
        "fractional ids in Parquet",
        _parquet({"src": [1.5, 2.0], "dst": [2.0, 3.0]}),
        RUN,
        "fraction",
    ),
    Case("nested ids in Parquet", _parquet({"src": [[1], [2]], "dst": [[2], [3]]}), RUN, "array"),
    Case(
        "an extra Parquet column",
        _parquet({"src": [1, 2], "dst": [2, 3], "note": ["a", "b"]}),
        RUN,
        "'note'",
    ),
    Case(
        "weight column missing",
        _parquet({"src": [1, 2], "dst": [2, 3]}),
        (*RUN, *WEIGHTED),
        "missing",
    ),
    Case(
        "string ids under id_type=long",
        _text("a b\nb c\n"),
        (*RUN, "--set", "input.id_type=long"),
        "id_type=long",
    ),
    Case("output is a file", _output_is_a_file, RUN, "is a file"),
    Case("output holds other files", _busy_output, RUN, "not a Delta table"),
    Case("output is another Delta table", "foreign_delta", RUN, "not a distne"),
    Case(
        "output.mode=error over a table",
        "distne_table",
        (*RUN, "--set", "output.mode=error"),
        "output.mode=error",
    ),
    Case("split into a folder of other files", _busy_train, SPLIT, "not CSV parts"),
    Case(
        "a catalog table that does not exist",
        lambda d: None,
        ("run", "--set", "input.table=no_such_edges", "--output", "{d}/out"),
        "input.table 'no_such_edges': expected a table of edges; found none",
    ),
    Case(
        "both a path and a catalog table",
        _text("1 2\n"),
        (*RUN, "--set", "input.table=edges"),
        "expected one of input.path and input.table; found both",
        True,
    ),
    Case(
        "export over an existing path",
        "distne_table",
        ("export", "--embeddings", "{d}/out", "--format", "parquet", "--output", "{d}/out"),
        "expected a path that does not exist yet",
    ),
    Case(
        "neighbors in a table that does not exist",
        _text("1\n"),
        ("neighbors", "--embeddings", "no_such_embeddings", "--node", "1"),
        "embeddings 'no_such_embeddings': expected a Delta table written by distne",
    ),
    Case(
        "run to a bad table name",
        _text("1 2\n"),
        ("run", "--input", "{d}/in", "--output-table", "a.b.c.d"),
        "output.table must be a table name",
        True,
    ),
    Case(
        "neighbors of an unknown node",
        "distne_table",
        ("neighbors", "--embeddings", "{d}/out", "--node", "77"),
        "found no row for '77'",
    ),
]


def _tree(d: Path) -> dict[str, str]:
    """Every file and folder under ``d`` with a hash of its bytes: what a case must not change."""
    out = {}
    for p in sorted(d.rglob("*")):
        key = str(p.relative_to(d))
        out[key] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_one_paragraph_exit_2_and_changes_nothing(
    case, spark, tmp_path, capsys, monkeypatch
):
    makers = {"foreign_delta": _foreign_delta(spark), "distne_table": _distne_table(spark)}
    make = makers[case.make] if isinstance(case.make, str) else case.make
    make(tmp_path)
    before = _tree(tmp_path)
    if case.before_spark:

        def no_spark(*args, **kwargs):
            raise AssertionError("a Spark session was asked for")

        monkeypatch.setattr(cli, "_session", no_spark)
    capsys.readouterr()
    argv = [a.replace("{d}", str(tmp_path)) for a in case.argv]
    code = cli.main(argv, default_master="local[2]")
    # Progress lines ("[distne] ingest: started ...") may come first; then one paragraph.
    err = capsys.readouterr().err.strip()
    said = [line for line in err.splitlines() if not line.startswith("[distne] ")]
    assert code == 2, err
    assert len(said) == 1 and said[0].startswith("distne: error: "), err
    assert "Traceback" not in err and case.expected in err, err
    assert _tree(tmp_path) == before
