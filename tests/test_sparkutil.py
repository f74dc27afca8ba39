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
