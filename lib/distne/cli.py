"""The ``distne`` command line: it parses arguments, builds a session and calls the library.

    distne run --input PATH --output PATH [--config FILE] [--set key=value ...]
    distne evaluate --embeddings PATH (--test-edges PATH | --labels PATH)
    distne split --input PATH --train PATH --test PATH [--fraction 0.1]
    distne config [--config FILE] [--set key=value ...]

``jobs/*.py`` give ``spark-submit`` the same arguments (without the sub-command).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence

from distne import __version__
from distne.config import SHIPPED, Config, ConfigError, describe, load_config, to_dict
from distne.errors import DistneError, InputError

# The embedded default of the CLI (no --config): local Spark on all cores, small shuffles.
LOCAL_DEFAULTS = (
    "spark.master=local[*]",
    "spark.shuffle_partitions=8",
    "spark.conf.spark.driver.memory=4g",
    # One JVM on a few cores: the throughput collector, not G1, which runs concurrent threads
    # beside the tasks and keeps remembered sets (1M edges: about 10% faster, 0.2 GB less).
    # Spark's own log: warnings and errors only, without the default profile's banner lines
    # (conf/log4j2.properties, shipped in the package).
    "spark.conf.spark.driver.extraJavaOptions=-XX:+UseParallelGC "
    f"-Dlog4j2.configurationFile=file:{SHIPPED / 'log4j2.properties'}",
    "spark.conf.spark.ui.showConsoleProgress=false",
    "spark.conf.spark.databricks.delta.snapshotPartitions=2",
    "spark.conf.spark.sql.adaptive.enabled=true",
)

# The embedded default's JVM heap by input size (text bytes; columnar files count three
# times): the JVM keeps most of a heap it was given, and below ~1.5M edges it needs little of
# 4 GB (1M edges with a 1 GB heap: the whole run's peak 3.3 GB instead of 5.0 GB). 4 GB
# above, and whenever the input is not local files.
HEAP_BY_INPUT = ((16 * 2**20, "1g"), (48 * 2**20, "2g"))
COLUMNAR = (".parquet", ".orc")


def input_bytes(path: str) -> int | None:
    """The size of the local files ``path`` names (a file, folder or glob), columnar x3.

    None when the path is not on the local file system or names nothing.
    """
    if "://" in path and not path.startswith("file:"):
        return None
    path = path.removeprefix("file://").removeprefix("file:")
    files = []
    for hit in glob.glob(path):
        if os.path.isdir(hit):
            files += [os.path.join(d, f) for d, _, names in os.walk(hit) for f in names]
        else:
            files.append(hit)
    if not files:
        return None
    return sum(os.path.getsize(f) * (3 if f.endswith(COLUMNAR) else 1) for f in files)


def local_heap(path: str | None) -> str:
    """The embedded default's ``spark.driver.memory`` for an input (see HEAP_BY_INPUT)."""
    size = input_bytes(path) if path else None
    if size is not None:
        for limit, heap in HEAP_BY_INPUT:
            if size <= limit:
                return heap
    return "4g"


def _config(args: argparse.Namespace, embedded_default: bool) -> Config:
    base = [] if args.config or not embedded_default else list(LOCAL_DEFAULTS)
    if base and getattr(args, "input", None):
        base.append(f"spark.conf.spark.driver.memory={local_heap(args.input)}")
    return load_config(args.config, base + list(args.set or []))


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (conf/local.yaml, conf/cluster.yaml, ...)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set partition.max_nodes=50000 (repeatable)",
    )


def build_parser(prog: str = "distne") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Distributed network embedding on Spark."
    )
    parser.add_argument("--version", action="version", version=f"distne {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="embed a graph and write a Delta table")
    run.add_argument("--input", help="edge list: file, folder, glob or Delta table")
    run.add_argument("--output", help="Delta table path for the embeddings")
    run.add_argument(
        "--output-table",
        help="a catalog table for the embeddings instead (catalog.schema.name; output.table)",
    )
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument(
        "--keep-stages",
        action="store_true",
        help="keep the run folder of finished stages after the write (runtime.keep_stages)",
    )
    _add_config_args(run)

    ev = sub.add_parser("evaluate", help="link prediction and/or node classification, as JSON")
    ev.add_argument("--embeddings", required=True, help="Delta table written by distne run")
    ev.add_argument("--test-edges", help="held-out pairs (src,dst[,label]) for link prediction")
    ev.add_argument("--labels", help="communities.tsv or id,label CSV for node classification")
    ev.add_argument(
        "--subgraphs",
        help="another distne table whose subgraph_id defines the cross pairs (e.g. to score a "
        "whole-graph run on the pairs a partitioned run splits)",
    )
    ev.add_argument("--seed", type=int, default=42)
    _add_config_args(ev)

    nb = sub.add_parser("neighbors", help="the nodes most like a node, by cosine, as JSON")
    nb.add_argument("--embeddings", required=True, help="Delta table written by distne run")
    nb.add_argument("--node", action="append", default=[], help="a node id (repeatable)")
    nb.add_argument("--nodes", help="a text file of node ids, one per line")
    nb.add_argument("-k", type=int, default=10, help="neighbours per node (default 10)")
    nb.add_argument(
        "--method",
        choices=["auto", "exact", "approximate"],
        default="auto",
        help="exact (one pass over the table for all asked nodes), approximate (a k-means "
        "index: only the rows of each node's --probes nearest cells), or auto: exact while "
        "rows x asked nodes is at most 1e10 (default)",
    )
    nb.add_argument(
        "--probes",
        type=int,
        default=8,
        help="approximate: cells searched per node (more: better recall, slower; default 8)",
    )
    _add_config_args(nb)

    rp = sub.add_parser("report", help="one self-contained HTML page about a run's table")
    rp.add_argument("--embeddings", required=True, help="Delta table written by distne run")
    rp.add_argument("--output", required=True, help="the HTML file to write (local)")
    rp.add_argument("--labels", help="node labels (as for evaluate) to colour the map by")
    rp.add_argument("--evaluation", help="the JSON distne evaluate printed, for quality figures")
    rp.add_argument("--sample", type=int, default=2000, help="vectors on the map (default 2000)")
    _add_config_args(rp)

    ex = sub.add_parser("export", help="the embeddings as Parquet or word2vec text")
    ex.add_argument("--embeddings", required=True, help="Delta table written by distne run")
    ex.add_argument("--format", required=True, choices=["parquet", "word2vec"])
    ex.add_argument(
        "--output", required=True, help="a new path: a folder (parquet) or a file (word2vec)"
    )
    _add_config_args(ex)

    sp = sub.add_parser("split", help="hold out edges (never a node's last) plus non-edges")
    sp.add_argument("--input", required=True)
    sp.add_argument(
        "--train",
        required=True,
        help="output folder: training edges (CSV: src,dst; and weight if input.weight_col is set)",
    )
    sp.add_argument("--test", required=True, help="output folder: test pairs src,dst,label (CSV)")
    sp.add_argument("--fraction", type=float, default=0.1)
    _add_config_args(sp)

    cf = sub.add_parser("config", help="print the resolved config, or every key with --keys")
    cf.add_argument("--keys", action="store_true", help="list every key, its default and help")
    _add_config_args(cf)
    return parser


def _check_local(what: str, path: str | None) -> None:
    """Fail before the JVM starts when a local path names nothing (remote paths wait for Spark)."""
    from distne.ingest import local_paths

    if path and local_paths(path) == []:
        raise InputError(f"{what} {path!r}: no such file, folder or glob match.")


def precheck(args: argparse.Namespace) -> None:
    """What can be checked without Spark, checked before the JVM starts (seconds, not ~10 s)."""
    # run and split check their input (binary, mixed folders too) with the config loaded.
    if args.command == "evaluate":
        _check_local("test edges", args.test_edges)
        if args.labels:
            from distne.evaluation.metrics import read_labels

            read_labels(args.labels)  # a local file, read on the driver: checked whole here
    if args.command == "report":
        if args.sample < 2:
            raise ConfigError(f"report --sample: expected at least 2 vectors; found {args.sample}.")
        if args.labels:
            from distne.evaluation.metrics import read_labels

            read_labels(args.labels)
        _check_local("evaluation", args.evaluation)
    if args.command == "neighbors":
        _query_ids(args)
        if args.k < 1:
            raise ConfigError(f"neighbors -k: expected a positive number; found {args.k}.")
        if args.probes < 1:
            raise ConfigError(
                f"neighbors --probes: expected a positive number; found {args.probes}."
            )
    if args.command == "split":
        if not 0 < args.fraction < 1:
            raise ConfigError(
                f"split --fraction: expected the share of edges to hold out, a number between "
                f"0 and 1 (exclusive); found {args.fraction}."
            )
        paths = {"--input": args.input, "--train": args.train, "--test": args.test}
        seen: dict[str, str] = {}
        for flag, path in paths.items():
            key = os.path.abspath(path.removeprefix("file://").removeprefix("file:"))
            if "://" not in path and key in seen:
                raise ConfigError(
                    f"split {flag} {path!r}: the same path as {seen[key]}; expected "
                    f"--input, --train and --test to be three different paths."
                )
            seen[key] = flag


def _session(config: Config, default_master: str | None):  # noqa: ANN202 - pyspark type
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise DistneError(
            "distne needs pyspark: found none in this Python. Install distne[local] for local "
            "runs, or run where a cluster provides Spark (spark-submit, Databricks)."
        ) from None
    from distne.session import build_session

    return build_session(config, default_master)


def _cmd_run(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.ingest import check_local_input
    from distne.pipeline import run

    overrides = []
    if args.input:
        overrides.append(f"input.path={json.dumps(args.input)}")
    if args.output:
        overrides.append(f"output.path={json.dumps(args.output)}")
    if args.output_table:
        overrides.append(f"output.table={json.dumps(args.output_table)}")
    if args.keep_stages:
        overrides.append("runtime.keep_stages=true")
    config = _config(args, default_master is not None).with_overrides(overrides)
    check_local_input(config.input)
    spark = _session(config, default_master)
    summary = run(spark, config)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.render())
    return 0


def _cmd_evaluate(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.evaluation import link_prediction, node_classification

    if not args.test_edges and not args.labels:
        raise DistneError("evaluate needs --test-edges PATH and/or --labels PATH")
    config = _config(args, default_master is not None)
    spark = _session(config, default_master)
    report: dict[str, object] = {"embeddings": args.embeddings}
    if args.test_edges:
        report["link_prediction"] = link_prediction(
            spark, args.embeddings, args.test_edges, args.seed, subgraphs_path=args.subgraphs
        )
    if args.labels:
        report["node_classification"] = node_classification(
            spark, args.embeddings, args.labels, args.seed
        )
    print(json.dumps(report, indent=2))
    return 0


def _cmd_split(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.evaluation import split_edges
    from distne.ingest import check_local_input, ingest
    from distne.write import check_csv_output

    config = _config(args, default_master is not None).with_overrides(
        [f"input.path={json.dumps(args.input)}"]
    )
    check_local_input(config.input)
    spark = _session(config, default_master)
    for what, path in (("train", args.train), ("test", args.test)):
        check_csv_output(spark, f"split --{what}", path)
    graph = ingest(spark, config.input, config.runtime)
    # The training edges are what the input was: weighted only if it was read with weights.
    weighted = config.input.weight_col is not None
    result = split_edges(spark, graph, args.fraction, config.seed, weighted)
    result.train.write.mode("overwrite").option("header", True).csv(args.train)
    result.test.write.mode("overwrite").option("header", True).csv(args.test)
    print(json.dumps({"train": args.train, "test": args.test, "fraction": args.fraction}))
    return 0


def _cmd_config(args: argparse.Namespace, default_master: str | None) -> int:
    if args.keys:
        for key, default, text in describe():
            print(f"{key} = {json.dumps(default)}\n    {text}")
        return 0
    print(json.dumps(to_dict(_config(args, default_master is not None)), indent=2))
    return 0


def _query_ids(args: argparse.Namespace) -> list[str]:
    """The ids ``neighbors`` looks up: ``--node`` values, then the lines of ``--nodes``."""
    ids = list(args.node)
    if args.nodes:
        from distne.ingest import looks_binary

        try:
            if looks_binary(args.nodes):
                raise InputError(
                    f"nodes {args.nodes!r}: expected a text file of node ids, one per line; "
                    f"found binary data."
                )
            with open(args.nodes) as f:
                ids += [line.strip() for line in f if line.strip()]
        except (FileNotFoundError, IsADirectoryError):
            raise InputError(
                f"nodes {args.nodes!r}: expected a text file of node ids, one per line; "
                f"found no such file."
            ) from None
    if not ids:
        raise InputError("neighbors: expected --node ID or --nodes FILE; found neither.")
    return ids


def _cmd_neighbors(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.neighbors import nearest

    ids = _query_ids(args)
    config = _config(args, default_master is not None)
    spark = _session(config, default_master)
    found = nearest(
        spark,
        args.embeddings,
        ids,
        args.k,
        method=args.method,
        seed=config.seed,
        probes=args.probes,
    )
    print(json.dumps([{"node_id": key, "neighbors": found[key]} for key in found], indent=2))
    return 0


def _cmd_report(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.report import write_report

    config = _config(args, default_master is not None)
    spark = _session(config, default_master)
    done = write_report(
        spark, args.embeddings, args.output, args.labels, args.evaluation, args.sample, config.seed
    )
    print(json.dumps(done))
    return 0


def _cmd_export(args: argparse.Namespace, default_master: str | None) -> int:
    from distne.export import ExportFormat, export

    spark = _session(_config(args, default_master is not None), default_master)
    print(json.dumps(export(spark, args.embeddings, ExportFormat(args.format), args.output)))
    return 0


COMMANDS = {
    "run": _cmd_run,
    "evaluate": _cmd_evaluate,
    "neighbors": _cmd_neighbors,
    "export": _cmd_export,
    "report": _cmd_report,
    "split": _cmd_split,
    "config": _cmd_config,
}


def main(argv: Sequence[str] | None = None, default_master: str | None = "local[*]") -> int:
    """Entry point of the ``distne`` console script; returns the exit code.

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        default_master: ``local[*]`` for the CLI's embedded default; ``jobs/*.py`` pass None so
            that ``spark-submit`` decides the master.
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        precheck(args)
        return COMMANDS[args.command](args, default_master)
    except DistneError as e:
        print(f"distne: error: {e}", file=_stderr(), flush=True)
        return 2


def _stderr():  # noqa: ANN202 - a text stream
    try:
        from distne.sparkutil import driver_stderr
    except ImportError:  # no pyspark: nothing but this process's own stderr
        return sys.stderr
    return driver_stderr()


def job() -> int:
    """Entry point ``distne-job``: :func:`main` for launchers whose cluster decides the master
    (Databricks wheel tasks, spark-submit): no embedded local defaults."""
    return main(default_master=None)


if __name__ == "__main__":
    sys.exit(main())
