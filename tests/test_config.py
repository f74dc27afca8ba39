import math
from pathlib import Path

import pytest
from distne.config import ConfigError, RunMode, Transport, describe, load_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_overrides_are_typed():
    cfg = load_config(None, ["embedding.dim=64", "partition.max_nodes=500", "run.mode=leaf_only"])
    assert cfg.embedding.dim == 64
    assert cfg.partition.max_nodes == 500
    assert cfg.run.mode is RunMode.LEAF_ONLY


def test_spark_conf_keys_keep_their_dots():
    cfg = load_config(None, ["spark.conf.spark.sql.shuffle.partitions=7"])
    assert cfg.spark.conf == {"spark.sql.shuffle.partitions": "7"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("embedding.dimm=3", "unknown config key 'embedding.dimm'"),
        ("nosuch.key=1", "no section 'nosuch'"),
        ("embedding.dim=abc", "embedding.dim must be an integer; found 'abc'"),
        ("embedding.dim=0", "embedding.dim must be in [1, 4096]; found 0"),
        ("partition.max_nodes=1", "partition.max_nodes must be >= 2"),
        (
            "run.mode=magic",
            "run.mode must be one of auto, local, exchange, procrustes, leaf_only",
        ),
        ("run.worker_memory_gb=0", "run.worker_memory_gb must be > 0"),
        # Settings a mode ignores are refused, not ignored.
        ("partition.max_levels=2", "run.mode=auto embeds across leaves"),
        ("runtime.lineage=checkpoint", "needs runtime.checkpoint_dir"),
        ("seed", "is not key=value"),
    ],
)
def test_bad_values_name_key_expectation_and_finding(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "databricks.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONF / name)
    assert cfg.embedding.dim == 128


def test_every_key_has_help():
    rows = describe()
    assert len(rows) > 20
    assert all(text for _, _, text in rows), [k for k, _, t in rows if not t]


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_local_mode_refuses_a_leaf_bound():
    with pytest.raises(ConfigError, match="run.mode=local .* does not partition"):
        load_config(None, ["run.mode=local", "partition.max_nodes=500"])
    with pytest.raises(ConfigError, match="found partition.max_edges=9"):
        load_config(None, ["run.mode=local", "partition.max_edges=9"])
    with pytest.raises(ConfigError, match="partition.max_edges.*>= 1.*0"):
        load_config(None, ["partition.max_edges=0"])
    cfg = load_config(None, ["run.mode=procrustes", "partition.max_levels=2"])
    assert cfg.partition.max_levels == 2


def test_plan_picks_local_when_the_graph_fits_and_sizes_leaves_otherwise():
    from distne.embedders import make_program
    from distne.engine.local import local_bytes
    from distne.pipeline import plan_run

    cfg = load_config(None, ["run.worker_memory_gb=1"])
    program = make_program(cfg.embedding, cfg.seed)
    small = plan_run(cfg, 4_000, 40_000, 2, program)
    assert small.mode is RunMode.LOCAL and small.max_nodes is None
    # 10M nodes, 100M edges: far over 1 GB, so exchange with enough leaves to fit it.
    big = plan_run(cfg, 10_000_000, 100_000_000, 2, program)
    leaves = math.ceil(local_bytes(10_000_000, 100_000_000, program) / 2**30)
    assert big.mode is RunMode.EXCHANGE and leaves > 2
    assert big.max_nodes == math.ceil(10_000_000 / (cfg.partition.fill * leaves))
    # A leaf bound below the graph's size partitions even a small graph; at least one leaf
    # per core when the bound is unset.
    bound = load_config(None, ["partition.max_nodes=1000"])
    assert plan_run(bound, 4_000, 40_000, 2, program).mode is RunMode.EXCHANGE
    forced = load_config(None, ["run.mode=exchange"])
    plan = plan_run(forced, 4_000, 40_000, 8, program)
    assert plan.max_nodes == 625  # 4,000 nodes / (0.8 fill * 8 cores)
    # The edge bound, unset: 4x the edge rows of 625 nodes of average degree (20).
    assert plan.max_edges == 4 * 625 * 20
    # Set below the graph's edge rows, it partitions even a graph that fits one worker.
    rows = load_config(None, ["partition.max_edges=50000"])
    plan = plan_run(rows, 4_000, 40_000, 2, program)
    assert plan.mode is RunMode.EXCHANGE and plan.max_edges == 50_000
    assert "80,000 edge rows > partition.max_edges=50,000" in plan.reason


def test_transport_takes_barrier_where_it_fits_and_says_why_otherwise():
    from distne.embedders import make_program
    from distne.engine.exchange import barrier_bytes, pick_transport

    cfg = load_config(None, ["run.worker_memory_gb=1"])
    program = make_program(cfg.embedding, cfg.seed)
    # 100k nodes, 1M edges in 7 leaves on 2 slots: well under 2 x 1 GB, leaves in memory.
    assert barrier_bytes(100_000, 1_000_000, program, 7, 2) < 2**30
    t, spill, why = pick_transport(cfg, 100_000, 1_000_000, program, 7, 2, False)
    assert t is Transport.BARRIER and not spill and "barrier" in why
    # Spark refuses barrier stages under dynamic allocation: auto falls back, forced refuses.
    t, spill, why = pick_transport(cfg, 100_000, 1_000_000, program, 7, 2, True)
    assert t is Transport.SHUFFLE and not spill and "dynamic allocation" in why
    forced = load_config(None, ["run.transport=barrier", "run.worker_memory_gb=1"])
    with pytest.raises(ConfigError, match="spark.dynamicAllocation.enabled=true"):
        pick_transport(forced, 100_000, 1_000_000, program, 7, 2, True)
    # More than the slots' budgets hold: still barrier, with the leaves on local disk.
    need = barrier_bytes(10_000_000, 100_000_000, program, 40, 2)
    assert need > 2 * 2**30
    for c in (cfg, forced):
        t, spill, why = pick_transport(c, 10_000_000, 100_000_000, program, 40, 2, False)
        assert t is Transport.BARRIER and spill
        assert f"{need / 2**30:.1f} GB" in why and "leaves on local disk" in why
    # The shuffle transport only when asked for.
    shuffle = load_config(None, ["run.transport=shuffle"])
    t, spill, why = pick_transport(shuffle, 10_000_000, 100_000_000, program, 40, 2, False)
    assert t is Transport.SHUFFLE and not spill and why == "run.transport=shuffle"


def test_transport_is_refused_where_no_exchange_runs():
    for mode in ("local", "procrustes", "leaf_only"):
        with pytest.raises(ConfigError, match=f"run.mode={mode} does not run the exchange"):
            load_config(None, [f"run.mode={mode}", "run.transport=shuffle"])
    assert load_config(None, ["run.transport=shuffle"]).run.transport is Transport.SHUFFLE
