"""Lineage cuts: what they keep, and that they compute their plan once."""

from dataclasses import replace

import pytest
from conftest import make_config
from distne.config import LineageCut
from distne.sparkutil import cut_lineage


@pytest.mark.parametrize("lineage", [LineageCut.LOCAL_CHECKPOINT, LineageCut.CHECKPOINT])
def test_a_cut_computes_its_plan_once_and_keeps_every_row(spark, lineage):
    # The exchange's barrier stage is cut this way: a cut that computed its plan twice would
    # run the whole program twice.
    folder = spark.sparkContext.getCheckpointDir()
    runtime = replace(make_config().runtime, lineage=lineage, checkpoint_dir=folder)
    seen = spark.sparkContext.accumulator(0)

    def counted(batches):
        for batch in batches:
            seen.add(batch.num_rows)
            yield batch

    df = spark.range(100, numPartitions=2).mapInArrow(counted, "id long")
    cut = cut_lineage(df, runtime)
    assert sorted(r["id"] for r in cut.collect()) == list(range(100))
    assert seen.value == 100


@pytest.mark.parametrize("lineage", [LineageCut.LOCAL_CHECKPOINT, LineageCut.CHECKPOINT])
def test_a_cut_by_a_column_meets_its_join_and_aggregate_without_a_shuffle(spark, lineage):
    # Refinement keeps the edges grouped by their source this way and reads them every round:
    # the partitioning it declares must be the one the rows have, or joins would miss rows.
    from distne.session import shuffle_partitions
    from pyspark.sql import functions as F

    folder = spark.sparkContext.getCheckpointDir()
    runtime = replace(make_config().runtime, lineage=lineage, checkpoint_dir=folder)
    parts = shuffle_partitions(spark)
    pairs = [(i % 97, (i * 7) % 89, float(i % 5)) for i in range(3000)]
    edges = cut_lineage(
        spark.createDataFrame(pairs, "src long, dst long, weight double"), runtime, "src", parts
    )
    labels = cut_lineage(
        spark.range(97).select("id", (F.col("id") % 4).alias("part")), runtime, "id", parts
    )
    joined = (
        edges.groupBy("src")
        .agg(F.sum("weight").alias("s"))
        .join(labels.withColumnRenamed("id", "src"), "src")
        .groupBy("part")
        .agg(F.sum("s").alias("s"))
    )
    plan = joined._jdf.queryExecution().executedPlan().toString()
    # One exchange: the last aggregate's, by part. The edges and labels are read in place.
    assert plan.count("Exchange hashpartitioning") == 1, plan
    want: dict[int, float] = {}
    for src, _, w in pairs:
        want[src % 4] = want.get(src % 4, 0.0) + w
    assert {r["part"]: r["s"] for r in joined.collect()} == want
    # Read again, unchanged: the cut's rows do not depend on the plan built on them.
    assert sorted(tuple(r) for r in edges.collect()) == sorted(pairs)


def test_releasing_unpersists_what_its_block_persisted_and_nothing_else(spark):
    from distne.sparkutil import releasing

    runtime = make_config().runtime
    jsc = spark.sparkContext._jsc

    def stored() -> set[int]:
        """Ids of the RDDs with blocks in the executors' storage."""
        return {int(i.id()) for i in jsc.sc().getRDDStorageInfo() if i.numCachedPartitions()}

    outside = cut_lineage(spark.range(1000, numPartitions=2), runtime)
    kept = set(jsc.getPersistentRDDs().keys())
    with releasing(spark):
        inside = cut_lineage(spark.range(2000, numPartitions=2), runtime)
        made = set(jsc.getPersistentRDDs().keys()) - kept
        assert made and made <= stored()
    assert not made & set(jsc.getPersistentRDDs().keys())
    assert not made & stored()  # the blocks are gone from the executors' disks
    assert kept <= set(jsc.getPersistentRDDs().keys()) and outside.count() == 1000
    del inside

    with releasing(spark, release=False):
        off = cut_lineage(spark.range(10, numPartitions=2), runtime)
    with pytest.raises(ValueError), releasing(spark):
        failed = cut_lineage(spark.range(20, numPartitions=2), runtime)
        raise ValueError("a stage that fails keeps what it made")
    assert off.count() == 10 and failed.count() == 20


def _shuffle_ids(spark) -> set[int]:
    """Ids of the shuffles with files in this session's block manager folders."""
    import pathlib

    env = spark.sparkContext._jvm.org.apache.spark.SparkEnv.get()
    folders = [d.getPath() for d in env.blockManager().diskBlockManager().localDirs()]
    return {
        int(f.name.split("_")[1])
        for folder in folders
        for f in pathlib.Path(folder).rglob("shuffle_*")
    }


def test_shuffle_files_behind_a_cut_are_let_go_and_those_still_read_are_kept(spark):
    # The exchange's setup shuffles every directed edge three times (~52 bytes an edge); its
    # result is cut and the shuffle files behind it must not stay on disk through the run.
    import time

    from distne.sparkutil import shuffles_let_go
    from pyspark.sql import functions as F

    runtime = make_config().runtime
    before = _shuffle_ids(spark)

    def build():
        a = spark.range(20000, numPartitions=2).withColumn("k", F.col("id") % 101)
        b = spark.range(101, numPartitions=2).withColumnRenamed("id", "k")
        joined = a.join(b.hint("shuffle_hash"), "k").groupBy("k").count()
        return cut_lineage(joined.repartition(3, "k"), runtime)

    with shuffles_let_go(spark, wait=5):
        cut = build()
        behind = _shuffle_ids(spark) - before
        # An RDD keeps its shuffle dependency: this one is still referenced after the block.
        live = spark.sparkContext.parallelize(range(1000), 2).map(lambda i: (i, i)).partitionBy(3)
        assert live.count() == 1000
        read = _shuffle_ids(spark) - before - behind
    assert len(behind) >= 2 and read  # the join's and the repartition's at least
    deadline = time.monotonic() + 10  # unregistered now; files deleted asynchronously
    while behind & _shuffle_ids(spark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not behind & _shuffle_ids(spark)
    assert read <= _shuffle_ids(spark)
    assert cut.count() == 101 and sorted(r["k"] for r in cut.collect()) == list(range(101))
    assert live.count() == 1000


def test_time_left_is_measured_from_the_count_moving_not_from_the_stage_start():
    from distne.sparkutil import Remaining, say_duration

    left = Remaining()
    # 850 s of setup before the first product, then one product every 80 s (a resumed run
    # starts at product 8): the setup must not count as product time.
    assert left.update(10.0, 8, 31) is None
    assert left.update(850.0, 8, 31) is None
    assert left.update(860.0, 9, 31) is None  # moved once: no rate yet
    assert left.update(940.0, 10, 31) == pytest.approx(21 * 80)
    assert left.update(1100.0, 12, 31) == pytest.approx(19 * 80)
    assert left.update(2620.0, 31, 31) is None  # done
    assert [say_duration(s) for s in (40, 21 * 80, 6 * 3600)] == ["40 s", "28 min", "6.0 h"]
