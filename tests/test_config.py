from pathlib import Path

import pytest
from distne.config import ConfigError, FusionMethod, describe, load_config

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_overrides_are_typed():
    cfg = load_config(
        None, ["embedding.dim=64", "partition.max_nodes=500", "fusion.method=leaf_only"]
    )
    assert cfg.embedding.dim == 64
    assert cfg.partition.max_nodes == 500
    assert cfg.fusion.method is FusionMethod.LEAF_ONLY


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
        ("fusion.method=magic", "fusion.method must be one of exchange, procrustes, leaf_only"),
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
