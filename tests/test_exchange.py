"""The two backends on real Spark: the exchange over leaves equals the local backend on the whole
graph, and both equal a plain single-machine ProNE (tests/prone_reference.py)."""

from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    embed_over_leaves,
    embed_whole,
    graph_edges,
    hashed_leaves,
    make_config,
    sorted_vectors,
)
from distne.config import LineageCut, Transport
from distne.embedders import make_program
from distne.embedders.fastrp import FastRP
from distne.embedders.prone import Prone
from distne.engine.exchange import ShuffleExchange, embed_exchange, leaf_blocks
from distne.engine.local import LocalBackend
from distne.engine.program import prepared
from prone_reference import edge_values, local_block, prone
from pyspark.sql import functions as F

pytestmark = pytest.mark.spark


def _graph():
    g = nx.powerlaw_cluster_graph(400, 3, 0.3, seed=3)
    g.add_node(1000)  # an isolated node
    for u, v in g.edges:
        g[u][v]["weight"] = 1.0 + (u * v) % 3
    return g


@pytest.fixture(scope="module")
def case(spark):
    g = _graph()
    cfg = make_config("embedding.dim=12")
    ids = np.array(sorted(g.nodes))
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids.tolist(), format="csr"))
    e = cfg.embedding
    want = prone(adj, e.dim, e.order, e.mu, e.theta, e.svd_iterations, cfg.seed, ids=ids)
    return g, cfg, ids, want


@pytest.mark.parametrize("leaves", [0, 1, 7])
def test_programs_derive_the_matrices_of_their_definition(spark, case, leaves):
    # ProNE's F and F^T and FastRP's W D^beta, derived from the weights where the rows are
    # (border rows travelling between leaves; 0: the local backend on the whole graph), equal
    # the scipy definition entry by entry.
    g, cfg, ids, _ = case
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=ids.tolist(), format="csr"))
    rows, cols, want = edge_values(adj)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    want["w0"] = want["w"] * deg[cols] ** cfg.embedding.degree_power
    at = {(int(ids[r]), int(ids[c])): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    programs = [Prone(cfg.embedding, cfg.seed), FastRP(cfg.embedding, cfg.seed)]
    if leaves == 0:
        backend = LocalBackend(local_block(adj, ids))
        for program in programs:
            prepared(program, backend)
        got = [backend.leaf]
    else:
        edges, leaf = graph_edges(spark, g), hashed_leaves(spark, g, leaves)
        blocks, n_parts = leaf_blocks(spark, edges, leaf)
        state = ShuffleExchange(spark, blocks, n_parts, cfg)
        try:
            for program in programs:
                prepared(program, state)
            assert state.n == len(ids) and state.products_done == 0
            got = [b for _, (_, b) in state.blocks.collect()]
        finally:
            state.close()
            blocks.unpersist()
    seen = 0
    for block in got:
        w = block.matrices["w"].tocoo()
        index = np.array(
            [
                at[(int(block.own[r]), int(block.columns[c]))]
                for r, c in zip(w.row, w.col, strict=True)
            ]
        )
        seen += len(index)
        for name in ("w", "f", "ft", "w0"):
            m = block.matrices[name].tocoo()
            assert (m.row == w.row).all() and (m.col == w.col).all()
            np.testing.assert_allclose(m.data, want[name][index], rtol=1e-5, atol=1e-5)
    assert seen == len(rows)


def test_local_backend_equals_plain_prone(spark, case):
    g, cfg, ids, want = case
    got_ids, got = embed_whole(spark, g, make_program(cfg.embedding, cfg.seed))
    assert (got_ids == ids).all()
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("transport", [Transport.BARRIER, Transport.SHUFFLE])
@pytest.mark.parametrize("leaves", [1, 7])
def test_exchange_equals_plain_prone_whatever_the_leaves(spark, case, leaves, transport):
    g, cfg, ids, want = case
    got_ids, got = embed_over_leaves(spark, g, cfg, leaves, transport=transport)
    assert (got_ids == ids).all()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_barrier_exchange_gives_the_same_bits_on_a_rerun_and_with_leaves_on_disk(
    spark, case, tmp_path
):
    # Shuffle output order varies between runs; partial sums must not follow it. Leaves kept
    # on disk change where arrays wait between steps, not the bits.
    g, cfg, _, _ = case
    runs = [
        embed_over_leaves(spark, g, cfg, 7, partitions=2, spill=spill)[1]
        for spill in (False, False, True)
    ]
    assert np.array_equal(runs[0], runs[1])
    assert np.array_equal(runs[0], runs[2])
    # The blocks written to a folder first (the pipeline's run folder), the setup's shuffles
    # let go: the same bits, and the folder holds every leaf's block.
    kept = tmp_path / "blocks"
    _, got = embed_over_leaves(spark, g, cfg, 7, partitions=2, keep_blocks=str(kept))
    assert np.array_equal(runs[0], got)
    assert {r["part"] for r in spark.read.parquet(str(kept)).select("part").collect()} == set(
        range(7)
    )
    # Reliable checkpoints (the session's checkpoint folder) instead of local ones.
    folder = spark.sparkContext.getCheckpointDir()
    reliable = replace(
        cfg, runtime=replace(cfg.runtime, lineage=LineageCut.CHECKPOINT, checkpoint_dir=folder)
    )
    assert np.array_equal(runs[0], embed_over_leaves(spark, g, reliable, 7, partitions=2)[1])


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_slot_of_routes_leaf_part_to_spark_partition_part_mod_n(spark, n):
    # The barrier tasks' mesh finds leaf p in task p % n; Spark SQL routes the blocks there.
    from distne.engine.exchange import slot_of

    parts = spark.range(40).select(F.col("id").alias("part"))
    routed = parts.repartition(n, slot_of(spark, F.col("part"), n))
    where = routed.select("part", F.spark_partition_id().alias("pid")).collect()
    assert len(where) == 40
    assert all(r["pid"] == r["part"] % n for r in where)


def test_rdd_and_sql_functions_share_one_pool_of_python_workers(spark):
    # Spark keeps a pool of Python workers per environment; the session gives RDD functions
    # the variable SQL functions run with, so the exchange does not start a second pool.
    import os

    def daemon(_):
        yield os.getppid()

    def daemon_arrow(batches):
        import pyarrow as pa

        for _ in batches:
            yield pa.record_batch([pa.array([os.getppid()], pa.int64())], names=["d"])

    rdd = set(spark.sparkContext.parallelize(range(8), 4).mapPartitions(daemon).collect())
    frame = spark.range(8).repartition(4).mapInArrow(daemon_arrow, "d long")
    sql = {r["d"] for r in frame.collect()}
    assert rdd == sql and len(rdd) == 1


@pytest.mark.parametrize(
    "transport, spill",
    [(Transport.BARRIER, False), (Transport.BARRIER, True), (Transport.SHUFFLE, False)],
)
def test_a_rerun_resumes_from_the_newest_snapshot_with_the_same_vectors(
    spark, case, tmp_path, monkeypatch, transport, spill
):
    """The exchange saves its state every 4 products; run again over the same folder, it
    replays the program's calls up to the newest snapshot, loads it and does only the rest.
    With leaves on disk, the snapshot links the store's files instead of copying them."""
    from distne.engine import exchange as exchange_module
    from distne.engine.snapshots import newest_complete, newest_shuffle_snapshot

    g, cfg, _, want = case
    cfg = replace(cfg, runtime=replace(cfg.runtime, snapshot_every=4))
    leaf = hashed_leaves(spark, g, 5)
    program = make_program(cfg.embedding, cfg.seed)
    folder = tmp_path / "exchange"

    def embed():
        out = embed_exchange(
            spark,
            graph_edges(spark, g),
            leaf,
            program,
            cfg,
            partitions=2,
            transport=transport,
            spill=spill,
            snapshots=str(folder),
        )
        return sorted_vectors(out)[1]

    first = embed()
    np.testing.assert_allclose(first, want, atol=1e-4)
    if transport is Transport.BARRIER:
        kept = newest_complete(str(folder))
    else:
        kept = newest_shuffle_snapshot(spark, str(folder))
    total = program.products()
    assert kept == 4 * ((total - 1) // 4) and 0 < kept < total

    done = []
    real = exchange_module.ShuffleExchange.product
    monkeypatch.setattr(
        exchange_module.ShuffleExchange,
        "product",
        lambda self, *a, **k: done.append(1) or real(self, *a, **k),
    )
    second = embed()
    np.testing.assert_array_equal(second, first)
    if transport is Transport.SHUFFLE:
        # ProNE's prepare (one product: its matrices are derived again on every run) and the
        # rest of the program, not the whole of it.
        assert len(done) == 1 + total - kept
    else:
        # The barrier tasks run in Python workers: show that they read the snapshot by
        # spoiling it (each leaf's rows in reverse order), which must spoil the vectors.
        for f in folder.glob(f"products-{kept}/leaf-*.npy"):
            np.save(f, np.load(f)[::-1])
        assert not np.allclose(embed(), first, atol=1e-3)


def test_a_snapshot_of_leaves_on_disk_links_the_state_and_keeps_it_when_the_state_moves_on(
    tmp_path,
):
    from distne.engine.program import LeafBlock
    from distne.engine.store import DiskStore

    (tmp_path / "store").mkdir()
    store = DiskStore(str(tmp_path / "store"))
    empty = np.zeros(0, np.int64)
    own = np.arange(5, dtype=np.int64)
    store.add(3, LeafBlock(own, empty, empty, np.ones(5)))
    before = np.arange(15, dtype=np.float32).reshape(5, 3)
    store.set_state(3, before)
    saved = tmp_path / "leaf-3.npy"
    saved.write_bytes(b"left by an interrupted snapshot")
    store.save_state(3, str(saved))
    assert saved.stat().st_nlink == 2  # a link to the store's file, not a copy
    store.set_state(3, before + 1)
    np.testing.assert_array_equal(np.load(saved), before)
    np.testing.assert_array_equal(store.state(3), before + 1)
    store.close()
    np.testing.assert_array_equal(np.load(saved), before)


def test_leaves_on_disk_write_only_the_columns_a_step_does_not_keep(tmp_path):
    from distne.engine.program import Kept, LeafBlock, stacked
    from distne.engine.store import DiskStore

    (tmp_path / "store").mkdir()
    store = DiskStore(str(tmp_path / "store"))
    empty = np.zeros(0, np.int64)
    store.add(0, LeafBlock(np.arange(6, dtype=np.int64), empty, empty, np.ones(6)))
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((6, k)).astype(np.float32) for k in (2, 3, 1))

    def npy_files():
        return sorted(f.name for f in (tmp_path / "store").glob("*.npy"))

    store.set_state(0, [a, b])
    assert len(npy_files()) == 2
    x = np.hstack([a, b])
    # Keep the last column of a and b's first two, add c: only c is written.
    step = [Kept(1, 3), c, Kept(0, 1)]
    want = stacked(step, x)
    np.testing.assert_array_equal(want, np.hstack([x[:, 1:4], c, x[:, :1]]))  # the oracle
    store.set_state(0, step)
    assert len(npy_files()) == 3
    np.testing.assert_array_equal(store.state(0), want)
    idx = np.array([4, 0, 4])
    np.testing.assert_array_equal(store.rows(0, idx, 2, 3), want[idx, 2:5])
    # a's file is still read (its columns 0 and 1); b's only for its first two columns.
    store.set_state(0, [Kept(3, 1)])  # c alone: a's and b's files are no longer referred to
    assert len(npy_files()) == 1
    np.testing.assert_array_equal(store.state(0), c)

    # A snapshot of a state in several blocks is one file, linked, equal to the state.
    store.set_state(0, [Kept(0, 1), a])
    saved = tmp_path / "leaf-0.npy"
    store.save_state(0, str(saved))
    np.testing.assert_array_equal(np.load(saved), np.hstack([c, a]))
    assert saved.stat().st_nlink == 2
    assert len(npy_files()) == 1
    store.close()
    np.testing.assert_array_equal(np.load(saved), np.hstack([c, a]))
