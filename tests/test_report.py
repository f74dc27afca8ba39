"""``distne report``: one self-contained HTML page, checked as text and as headless Chromium
draws it (the screenshot is kept in out/test-artifacts/report.png)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import ROOT, SAMPLE_PPI, make_config
from distne.pipeline import run
from distne.report import PALETTE, pca2, write_report

pytestmark = pytest.mark.spark

ARTIFACTS = ROOT / "out" / "test-artifacts"


@pytest.fixture(scope="module")
def page(spark, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    out = d / "emb"
    cfg = make_config(
        f"input.path={SAMPLE_PPI / 'edges.tsv'}",
        f"output.path={out}",
        "run.mode=exchange",
        "partition.max_nodes=1000",
        "embedding.dim=16",
    )
    summary = run(spark, cfg)
    evaluation = d / "eval.json"
    evaluation.write_text(json.dumps({"node_classification": {"micro_f1": 0.25, "nodes": 3860}}))
    html = d / "report.html"
    done = write_report(
        spark,
        str(out),
        str(html),
        labels_path=str(SAMPLE_PPI / "communities.tsv"),
        evaluation_path=str(evaluation),
        sample=500,
    )
    assert done["report"] == str(html)
    return html, summary


def test_the_page_is_self_contained_and_says_what_the_run_did(page):
    html, summary = page
    text = html.read_text()
    # Nothing fetched from anywhere: no URLs, no external scripts, styles or images.
    assert not re.search(r"https?://|<script|<link|<img|@import|url\(", text)
    assert f"{summary.nodes:,} / {summary.edges:,}" in text
    assert f"{summary.leaf_subgraphs:,}" in text and "exchange" in text
    # The run record is committed with the table, so it times every stage before the write.
    for stage in ("ingest", "partition", "embed"):
        assert f">{stage}</text>" in text
    assert "micro_f1" in text and "0.2500" in text
    # The map: one dot per sampled vector, coloured by label (a key of at most ten).
    assert text.count('r="2.2"') == 500
    assert "coloured by label" in text


def test_pca_axes_are_the_leading_principal_components():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 2)) * [10.0, 3.0]
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    data = np.hstack([base, 0.01 * rng.normal(size=(400, 4))]) @ rotation
    out = pca2(data)
    # The projection keeps (almost) all the variance and the axes' variances in order.
    assert np.var(out[:, 0]) > np.var(out[:, 1])
    np.testing.assert_allclose(np.var(out, axis=0).sum(), np.var(data, axis=0).sum(), rtol=1e-3)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (setup.sh installs it as root)")
def test_chromium_draws_the_charts_and_the_map(page, tmp_path):
    from PIL import Image

    html, _ = page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,2000", f"--screenshot={shot}",
    ]  # fmt: skip
    done = subprocess.run(
        [CHROMIUM, *flags, html.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert shot.is_file(), done.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    # Drawn, not blank: a good share of non-white pixels, and the chart colours present.
    assert (img.sum(axis=1) < 740).mean() > 0.02
    # The bars (first colour) and the map's key (one dot per colour) are drawn opaque.
    for colour, least in zip(PALETTE[:3], (500, 20, 20), strict=True):
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        near = (np.abs(img - rgb).sum(axis=1) < 40).sum()
        assert near > least, f"{colour}: {near} pixels"
