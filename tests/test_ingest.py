"""Ingest on a real local Spark session, checked against networkx as the oracle."""

import networkx as nx
import pytest
from conftest import SAMPLE_PPI, make_config
from distne.config import IdType
from distne.errors import InputError
from distne.ingest import ingest

pytestmark = pytest.mark.spark


def _input(path, *overrides):
    return make_config(f"input.path={path}", *overrides).input


def _edge_set(graph):
    names = {r["id"]: r["node_id"] for r in graph.nodes.collect()}
    return {frozenset((names[r["src"]], names[r["dst"]])) for r in graph.edges.collect()}


def test_text_edges_match_networkx(spark):
    g = ingest(spark, _input(SAMPLE_PPI / "edges.tsv"))
    oracle = nx.read_edgelist(SAMPLE_PPI / "edges.tsv", nodetype=int)
    oracle.remove_edges_from(nx.selfloop_edges(oracle))
    loop_only = list(nx.isolates(oracle))  # ids whose only edges were self-loops
    oracle.remove_nodes_from(loop_only)
    assert g.id_type is IdType.LONG
    assert g.nodes.count() == oracle.number_of_nodes()
    assert g.loop_only == len(loop_only) == 30
    assert g.edges.count() == oracle.number_of_edges()
    assert _edge_set(g) == {frozenset(e) for e in oracle.edges}
    ids = sorted(r["id"] for r in g.nodes.collect())
    assert ids == list(range(len(ids)))  # dense


def test_comments_duplicates_self_loops_and_string_ids(spark, tmp_path):
    f = tmp_path / "e.txt"
    f.write_text("# a comment\nalice bob\nbob alice\nbob\tcarol\ncarol carol\n\n  dave   alice  \n")
    g = ingest(spark, _input(f))
    assert g.id_type is IdType.STRING
    assert _edge_set(g) == {
        frozenset(p) for p in [("alice", "bob"), ("bob", "carol"), ("dave", "alice")]
    }
    weights = sorted(r["weight"] for r in g.edges.collect())
    assert weights == [1.0, 1.0, 2.0]  # the parallel alice-bob pair sums


def test_ids_with_only_self_loops_are_dropped_and_counted(spark, tmp_path):
    f = tmp_path / "loops.txt"
    f.write_text("1 2\n2 3\n7 7\n7 7\n8 8\n3 3\n")
    g = ingest(spark, _input(f))
    # 3 has an edge besides its loop: it stays; 7 and 8 have nothing but loops.
    assert sorted(r["node_id"] for r in g.nodes.collect()) == [1, 2, 3]
    assert sorted(r["id"] for r in g.nodes.collect()) == [0, 1, 2]  # still dense
    assert g.loop_only == 2
    assert _edge_set(g) == {frozenset((1, 2)), frozenset((2, 3))}
    f.write_text("1 2\n2 3\n")
    assert ingest(spark, _input(f)).loop_only == 0


def test_csv_parquet_and_folder_inputs_agree(spark, tmp_path):
    rows = [(1, 2, 0.5), (2, 3, 1.5), (3, 1, 2.0), (4, 5, 1.0)]
    df = spark.createDataFrame(rows, "a long, b long, w double")
    df.write.parquet(str(tmp_path / "pq"))
    df.write.option("header", True).csv(str(tmp_path / "csv"))
    cols = ["input.src_col=a", "input.dst_col=b", "input.weight_col=w"]
    g1 = ingest(spark, _input(tmp_path / "pq", *cols))
    g2 = ingest(spark, _input(tmp_path / "csv", *cols))
    assert (
        _edge_set(g1) == _edge_set(g2) == {frozenset(p) for p in [(1, 2), (2, 3), (3, 1), (4, 5)]}
    )
    assert sorted(r["weight"] for r in g1.edges.collect()) == [0.5, 1.0, 1.5, 2.0]


def test_float_and_nested_ids_in_columnar_input(spark, tmp_path):
    # Whole numbers stored as doubles are integer ids (pandas upcasts int columns with nulls).
    whole = spark.createDataFrame([(1.0, 2.0), (2.0, 7.0)], "src double, dst double")
    whole.write.parquet(str(tmp_path / "whole"))
    g = ingest(spark, _input(tmp_path / "whole"))
    assert g.id_type is IdType.LONG
    assert _edge_set(g) == {frozenset((1, 2)), frozenset((2, 7))}
    frac = spark.createDataFrame([(1.0, 2.0), (1.5, 3.0)], "src double, dst double")
    frac.write.parquet(str(tmp_path / "frac"))
    with pytest.raises(InputError, match=r"in rows like \('1.5', '3', 1.0\)"):
        ingest(spark, _input(tmp_path / "frac"))
    nested = spark.createDataFrame([([1], 2)], "src array<long>, dst long")
    nested.write.parquet(str(tmp_path / "nested"))
    with pytest.raises(InputError, match=r"column 'src' holds array<bigint> values; expected"):
        ingest(spark, _input(tmp_path / "nested"))


def test_extra_text_fields_are_refused_unless_named_or_ignored(spark, tmp_path):
    # A third field may be a weight the user expects: refused until a setting says what it is.
    f = tmp_path / "three.txt"
    f.write_text("1 2 5\n2 3 1\n3 1 1\n")
    with pytest.raises(InputError) as err:
        ingest(spark, _input(f))
    msg = str(err.value)
    assert str(f) in msg and "found lines with more" in msg and "'1 2 5'" in msg
    assert "input.weight_col=weight" in msg and "input.extra_columns=ignore" in msg
    two = tmp_path / "two.txt"
    two.write_text("1 2\n2 3\n3 1\n")
    ignored = ingest(spark, _input(f, "input.extra_columns=ignore"))
    assert _edge_set(ignored) == _edge_set(ingest(spark, _input(two)))
    assert {r["weight"] for r in ignored.edges.collect()} == {1.0}
    weighted = ingest(spark, _input(f, "input.weight_col=w"))
    assert sorted(r["weight"] for r in weighted.edges.collect()) == [1.0, 1.0, 5.0]
    f.write_text("1 2 5 x\n")  # with a weight column, a fourth field is still extra
    with pytest.raises(InputError, match="To read only src, dst and the weight"):
        ingest(spark, _input(f, "input.weight_col=w"))


def test_extra_columns_in_columnar_input_are_named(spark, tmp_path):
    rows = [(1, 2, 3.0, "a"), (2, 3, 1.0, "b")]
    spark.createDataFrame(rows, "src long, dst long, amount double, note string").write.parquet(
        str(tmp_path / "p")
    )
    with pytest.raises(InputError) as err:
        ingest(spark, _input(tmp_path / "p"))
    msg = str(err.value)
    assert "found also ['amount', 'note']" in msg and "If 'amount' is an edge weight" in msg
    assert "input.extra_columns=ignore" in msg
    g = ingest(spark, _input(tmp_path / "p", "input.extra_columns=ignore"))
    assert _edge_set(g) == {frozenset((1, 2)), frozenset((2, 3))}
    with pytest.raises(InputError, match=r"found also \['note'\]"):
        ingest(spark, _input(tmp_path / "p", "input.weight_col=amount"))
    g = ingest(
        spark, _input(tmp_path / "p", "input.weight_col=amount", "input.extra_columns=ignore")
    )
    assert sorted(r["weight"] for r in g.edges.collect()) == [1.0, 3.0]


def test_directed_keeps_both_orientations(spark, tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("1 2\n2 1\n2 3\n")
    g = ingest(spark, _input(f, "input.directed=true"))
    assert g.edges.count() == 3
    assert ingest(spark, _input(f)).edges.count() == 2


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "found none"),
        ("# only a comment\n", "found none"),
        ("7 7\n8 8\n", "found none"),
        ("1 2\n3\n", "too few fields"),
    ],
)
def test_bad_text_input_is_named(spark, tmp_path, content, expected):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    with pytest.raises(InputError) as err:
        ingest(spark, _input(f))
    assert str(f) in str(err.value) and expected in str(err.value)


def test_missing_columns_list_what_was_found(spark, tmp_path):
    spark.createDataFrame([(1, 2)], "x long, y long").write.parquet(str(tmp_path / "p"))
    with pytest.raises(InputError, match=r"missing; found columns \['x', 'y'\]"):
        ingest(spark, _input(tmp_path / "p"))


def test_missing_file(spark, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ingest(spark, _input(tmp_path / "nope.tsv"))


def test_non_numeric_weight(spark, tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("1 2 0.5\n2 3 heavy\n")
    with pytest.raises(InputError, match="numeric weight"):
        ingest(spark, _input(f, "input.weight_col=w"))


def test_non_positive_weights_and_empty_endpoints_are_named(spark, tmp_path):
    spark.createDataFrame(
        [(1, 2, 1.0), (2, 3, -1.0)], "src long, dst long, w double"
    ).write.parquet(str(tmp_path / "neg"))
    with pytest.raises(
        InputError, match=r"weights must be positive finite numbers; found \('2', '3', -1.0\)"
    ):
        ingest(spark, _input(tmp_path / "neg", "input.weight_col=w"))
    f = tmp_path / "holes.csv"
    f.write_text("src,dst\n1,2\n,3\n")
    with pytest.raises(InputError, match="found empty endpoints"):
        ingest(spark, _input(f))


@pytest.mark.parametrize("bad", ["nan", "inf", "-2"])
def test_weights_that_are_not_positive_finite_numbers_are_named(spark, tmp_path, bad):
    f = tmp_path / "w.txt"
    f.write_text(f"1 2 0.5\n2 3 {bad}\n")
    with pytest.raises(InputError, match=f"positive finite numbers; found '2 3 {bad}'"):
        ingest(spark, _input(f, "input.weight_col=w"))


def test_dense_ids_follow_the_sort_order_across_partitions(spark, tmp_path):
    # Many input files, shuffled rows: ids must still be 0..n-1 in the order of the user's ids.
    names = [f"n{i:04d}" for i in range(500)]
    rows = [(names[i], names[(i * 37 + 11) % 500]) for i in range(500)]
    spark.createDataFrame(rows, "src string, dst string").repartition(7).write.parquet(
        str(tmp_path / "p")
    )
    g = ingest(spark, _input(tmp_path / "p"))
    got = sorted((r["id"], r["node_id"]) for r in g.nodes.collect())
    used = sorted({a for a, b in rows if a != b} | {b for a, b in rows if a != b})
    assert got == list(enumerate(used))


def test_with_a_runtime_the_input_is_read_once_and_checked_in_that_pass(spark, tmp_path):
    """The pipeline's read (with a runtime) validates the rows while it materialises them:
    the same checks and counts as a validation pass of its own, and nothing reads the input
    again afterwards (the file can go)."""
    from distne.ingest import build_graph, read_edges

    f = tmp_path / "e.txt"
    f.write_text("a b\nb c\nc c\nc a\nd d\n")
    cfg = make_config(f"input.path={f}")
    plain = read_edges(spark, cfg.input)
    once = read_edges(spark, cfg.input, cfg.runtime)
    assert (once.id_type, once.loops, once.pairs) == (plain.id_type, plain.loops, plain.pairs)
    assert (once.id_type, once.loops, once.pairs) == (IdType.STRING, 2, 3)
    f.unlink()
    g = build_graph(once.frame, cfg.input, once.id_type, once.loops)
    assert _edge_set(g) == {frozenset(p) for p in [("a", "b"), ("b", "c"), ("a", "c")]}
    assert g.loop_only == 1  # d
    with pytest.raises(Exception, match="(?i)not exist|FileNotFound"):
        plain.frame.count()  # a plan still reads the file
    f.write_text("a b\nc\n")
    with pytest.raises(InputError, match="too few fields, e.g. 'c'"):
        read_edges(spark, cfg.input, cfg.runtime)
