"""The checks of a local input that run before Spark starts (no Spark session here)."""

import gzip

import pytest
from conftest import make_config
from distne.errors import InputError
from distne.ingest import check_local_input


def _check(path, *overrides):
    check_local_input(make_config(f"input.path={path}", *overrides).input)


def test_a_binary_file_is_named_without_its_bytes(tmp_path):
    f = tmp_path / "edges.tsv"
    f.write_bytes(b"PAR1\x00\x15\x04\xff\xfe" * 50)
    with pytest.raises(InputError) as err:
        _check(f)
    msg = str(err.value)
    assert "'edges.tsv'" in msg and "binary data" in msg and "input.format=parquet" in msg
    assert "PAR1" not in msg and "\x00" not in msg


def test_compressed_text_is_not_binary(tmp_path):
    with gzip.open(tmp_path / "edges.tsv.gz", "wt") as out:
        out.write("1\t2\n2\t3\n")
    _check(tmp_path / "edges.tsv.gz")
    _check(tmp_path)  # a folder of it too


def test_a_folder_mixing_kinds_of_files_is_refused_naming_each_kind(tmp_path):
    (tmp_path / "a.tsv").write_text("1 2\n")
    (tmp_path / "b.tsv").write_text("2 3\n")
    (tmp_path / "README.md").write_text("these are my edges\n")
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError) as err:
        _check(tmp_path)
    msg = str(err.value)
    assert ".tsv: a.tsv, b.tsv" in msg and ".md: README.md" in msg and ".parquet: p.parquet" in msg
    assert f"'{tmp_path}/*.tsv'" in msg
    _check(f"{tmp_path}/*.tsv")  # the way out the message gives


def test_spark_output_folders_pass_with_their_hidden_files(tmp_path):
    for name in ["part-00000-x.snappy.parquet", "part-00001-x.snappy.parquet"]:
        (tmp_path / name).write_bytes(b"PAR1\x00")
        (tmp_path / f".{name}.crc").write_bytes(b"\x00")
    (tmp_path / "_SUCCESS").write_text("")
    _check(tmp_path)
    with pytest.raises(InputError, match="binary data"):
        _check(tmp_path, "input.format=text")  # read as text, the same folder is binary


def test_an_empty_folder_and_a_missing_path_are_named(tmp_path):
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(InputError, match="found a folder with none"):
        _check(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        _check(tmp_path / "nope.tsv")


def test_remote_paths_are_left_to_spark():
    _check("s3a://bucket/edges/")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02binary", "found binary data (NUL byte)"),
        (b"\xff\xfe\xfa not utf-8", "found binary data (invalid start byte)"),
        (None, "found a folder"),
    ],
)
def test_labels_that_are_not_text_are_named(tmp_path, content, expected):
    from distne.evaluation.metrics import read_labels

    f = tmp_path / "labels.tsv"
    if content is None:
        f.mkdir()
    else:
        f.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_labels(str(f))
    assert str(f) in str(err.value) and expected in str(err.value)
    assert "\x00" not in str(err.value)


def test_the_summary_names_dropped_ids_only_when_there_are_some():
    from distne.pipeline import RunSummary

    shown = RunSummary(nodes=3, edges=2, dropped_loop_only=2).render().splitlines()
    assert shown[2].startswith("dropped          2 ids (only self-loops")
    assert "dropped" not in RunSummary(nodes=3, edges=2).render()
