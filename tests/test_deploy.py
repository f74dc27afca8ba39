"""The launch files users deploy: the Databricks bundle, its wheel and the notebook.

The bundle's jobs are checked against the Databricks bundle models (``databricks-bundles``
rejects unknown or misplaced keys), its task's arguments against distne's own parser, and its
build command is run: the wheel it makes must carry the entry point and the configs the task
names. The notebook runs here as on a cluster, against the suite's Spark session, with
``dbutils`` widgets answered and ``display`` recorded.
"""

import glob
import io
import json
import re
import subprocess
import sys
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import tomllib
import yaml
from conftest import SAMPLE_PPI
from databricks.bundles.jobs import Job
from deltalake import DeltaTable
from distne.cli import build_parser
from distne.config import find_config

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOTEBOOK = ROOT / "deploy" / "databricks" / "notebooks" / "distne.py"

# Top-level keys of a bundle's databricks.yml (the bundle schema's own names).
BUNDLE_KEYS = {
    "bundle", "include", "artifacts", "variables", "targets", "resources", "sync",
    "workspace", "permissions", "run_as", "presets", "experimental", "scripts", "python",
}  # fmt: skip


def _resource_files() -> list[Path]:
    files = [Path(f) for pattern in BUNDLE["include"] for f in glob.glob(str(ROOT / pattern))]
    assert files, BUNDLE["include"]
    return files


def _jobs() -> list[tuple[Path, str, dict]]:
    return [
        (f, name, job)
        for f in _resource_files()
        for name, job in yaml.safe_load(f.read_text())["resources"]["jobs"].items()
    ]


def _resolve(value: str, job: dict) -> str:
    """A task argument with job parameters and bundle variables replaced by their defaults."""
    params = {p["name"]: p["default"] for p in job.get("parameters", [])}
    value = re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: str(params[m.group(1)]), value)
    variables = BUNDLE["variables"]
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]["default"]), value)


def test_the_bundle_uses_known_keys_and_its_jobs_validate():
    assert set(BUNDLE) <= BUNDLE_KEYS, set(BUNDLE) - BUNDLE_KEYS
    assert BUNDLE["bundle"]["name"] == "distne"
    for target in BUNDLE["targets"].values():
        assert set(target) <= {"mode", "default", "workspace", "variables", "resources"}
    jobs = _jobs()
    assert jobs
    for _, _, job in jobs:
        Job.from_dict(job)  # raises on a key the Jobs API does not have


def test_the_wheel_task_calls_an_entry_point_the_wheel_has_with_arguments_distne_parses():
    scripts = PYPROJECT["project"]["scripts"]
    for path, _, job in _jobs():
        for task in job["tasks"]:
            wheel = task["python_wheel_task"]
            assert wheel["package_name"] == PYPROJECT["project"]["name"]
            assert scripts[wheel["entry_point"]] == "distne.cli:job"  # no local defaults
            args = build_parser().parse_args([_resolve(a, job) for a in wheel["parameters"]])
            assert args.command == "run" and args.input and args.output
            find_config(args.config)  # shipped in the wheel: found whatever the working dir
            # The library is the artifact's output: the bundle builds wheels into dist/.
            (whl,) = (lib["whl"] for lib in task["libraries"])
            assert (path.parent / whl).resolve().parent == ROOT / "dist"
    (artifact,) = BUNDLE["artifacts"].values()
    assert artifact["type"] == "whl" and "--wheel-dir dist" in artifact["build"]


def test_the_bundles_build_makes_a_wheel_with_the_configs_and_no_spark(tmp_path):
    """The artifact's build command, run as the bundle runs it (from the bundle's root)."""
    build = BUNDLE["artifacts"]["distne_wheel"]["build"].replace("dist", str(tmp_path))
    argv = build.split()
    assert argv[:3] == ["python", "-m", "pip"]
    subprocess.run([sys.executable, *argv[1:], "--quiet"], cwd=ROOT, check=True, timeout=300)
    (whl,) = tmp_path.glob("distne-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        meta = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    for shipped in ("databricks.yaml", "cluster.yaml", "local.yaml", "log4j2.properties"):
        assert f"distne/conf/{shipped}" in names
    assert "distne-job = distne.cli:job" in entry
    # A cluster's own Spark stays: pyspark and delta-spark only with the 'local' extra.
    required = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    spark = [line for line in required if "pyspark" in line or "delta-spark" in line]
    assert spark and all('extra == "local"' in line for line in spark), spark


def test_the_spark_operator_manifest_runs_a_job_of_ours_with_arguments_distne_parses():
    app = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "sparkapplication.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["mode"] == "cluster"
    job = Path(spec["mainApplicationFile"].removeprefix("local://"))
    assert job.parent == Path("/opt/distne/jobs") and (ROOT / "jobs" / job.name).is_file()
    args = build_parser().parse_args(["run", *spec["arguments"]])
    find_config(args.config)
    assert args.input and args.output and args.set
    assert (
        spec["sparkVersion"].startswith("4.1") and "delta-spark_4.1" in spec["deps"]["packages"][0]
    )


class _Widgets:
    def __init__(self, values: dict[str, str]):
        self.values, self.defined = values, {}

    def text(self, name: str, default: str, label: str) -> None:
        self.defined[name] = default

    def get(self, name: str) -> str:
        assert name in self.defined, f"widget {name!r} read before it was defined"
        return self.values.get(name, self.defined[name])


class _DBUtils:
    def __init__(self, values: dict[str, str]):
        self.widgets = _Widgets(values)


@pytest.mark.spark
def test_the_notebook_runs_on_a_catalog_table_and_shows_true_neighbours(spark, tmp_path):
    """A table of edges in the catalog, the shipped Databricks config (its checkpoint folder
    pointed here), and the notebook as a cluster runs it: the table is written, and the
    neighbours it displays are the brute-force top 10 by cosine."""
    source = NOTEBOOK.read_text()
    assert source.startswith("# Databricks notebook source\n")
    assert source.count("\n# COMMAND ----------\n") >= 4
    edges = spark.read.option("sep", "\t").schema("src long, dst long")
    edges.csv(str(SAMPLE_PPI / "edges.tsv")).write.saveAsTable("ppi_edges")
    shown = []
    out = tmp_path / "emb"
    dbutils = _DBUtils(
        {
            "edges": "ppi_edges",
            "output": str(out),
            "settings": f"runtime.checkpoint_dir={tmp_path / 'ckpt'} embedding.dim=16",
            "node": "0",
        }
    )
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            exec(
                compile(source, str(NOTEBOOK), "exec"),
                {"spark": spark, "dbutils": dbutils, "display": shown.append},
            )
    finally:
        spark.sql("DROP TABLE IF EXISTS ppi_edges")
    assert "nodes            3,860" in printed.getvalue()
    t = DeltaTable(str(out)).to_pyarrow_table()
    ids = np.array(t.column("node_id").to_pylist())
    vec = np.stack([np.asarray(v) for v in t.column("embedding").to_pylist()])
    assert len(ids) == 3860 and vec.shape[1] == 16
    assert len(shown) == 3
    unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    cos = unit @ unit[ids == 0][0]
    cos[ids == 0] = -np.inf
    expected = [str(i) for i in ids[np.argsort(-cos, kind="stable")[:10]]]
    got = [r["node_id"] for r in shown[2].collect()]
    assert got == expected


# Airflow lives in a virtualenv of its own, made once (by this test, or a CI step running it
# first): it is no dependency of distne's.
AIRFLOW_VENV = ROOT / ".venv-airflow"
AIRFLOW = ["apache-airflow==3.3.2", "apache-airflow-providers-apache-spark==6.3.4"]
DAGBAG = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "tasks": {}}
dag = bag.dags.get("distne_embed")
if dag is not None:
    context = {"ds": "2026-11-30", "params": dag.params.dump()}
    for t in dag.tasks:
        out["tasks"][t.task_id] = {
            "upstream": sorted(t.upstream_task_ids),
            "type": type(t).__name__,
            **{f: t.render_template(getattr(t, f), context) for f in t.template_fields
               if f in ("application", "application_args", "conf", "name")},
        }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    python = AIRFLOW_VENV / "bin" / "python"
    stamp = AIRFLOW_VENV / "installed.txt"
    if not stamp.is_file() or stamp.read_text() != " ".join(AIRFLOW):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(AIRFLOW_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *AIRFLOW], check=True, timeout=1200)
        stamp.write_text(" ".join(AIRFLOW))
    return python


def test_the_airflow_dag_loads_in_a_dagbag_and_chains_distnes_own_arguments(
    airflow_python, tmp_path
):
    """Airflow 3 with the Spark provider loads the DAG without errors; its tasks run split,
    embed and evaluate in that order, each with the config, on one day's folders; and the
    arguments each renders for a run date are ones distne's own parser accepts."""
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [str(airflow_python), "-c", DAGBAG, str(ROOT / "deploy" / "airflow")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    tasks = bag["tasks"]
    assert set(tasks) == {"split", "embed", "evaluate"}
    assert tasks["split"]["upstream"] == [] and tasks["embed"]["upstream"] == ["split"]
    assert tasks["evaluate"]["upstream"] == ["embed"]
    parsed = {}
    for task_id, command in (("split", "split"), ("embed", "run"), ("evaluate", "evaluate")):
        t = tasks[task_id]
        assert t["type"] == "SparkSubmitOperator"
        job = Path(t["application"])
        assert job.parent == Path("/opt/distne/jobs") and (ROOT / "jobs" / job.name).is_file()
        assert f'main(["{command}"' in (ROOT / "jobs" / job.name).read_text()
        assert t["conf"]["spark.archives"].endswith(".tar.gz#distne-env")
        assert t["conf"]["spark.pyspark.python"] == "./distne-env/bin/python"
        parsed[task_id] = build_parser().parse_args([command, *t["application_args"]])
        assert parsed[task_id].config == "cluster"
        find_config(parsed[task_id].config)
    split, embed, evaluate = parsed["split"], parsed["embed"], parsed["evaluate"]
    assert split.input == "hdfs:///graphs/follows/2026-11-30"
    assert embed.input == split.train and evaluate.test_edges == split.test
    assert evaluate.embeddings == embed.output == "hdfs:///distne/follows/2026-11-30/embeddings"
