"""Fusion math without Spark: Procrustes against a known rotation, anchor alignment."""

import numpy as np
from distne.baselines.procrustes import align_subgraph, procrustes
from distne.embedders.prone import row_normalize_l2
from scipy.stats import ortho_group


def test_procrustes_recovers_a_known_rotation():
    rng = np.random.default_rng(0)
    q = ortho_group.rvs(8, random_state=1)
    x = rng.standard_normal((50, 8))
    np.testing.assert_allclose(procrustes(x, x @ q), q, atol=1e-10)


def test_procrustes_is_the_best_orthogonal_map():
    # Brute-force oracle: no random orthogonal matrix does better than the closed form.
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    best = np.linalg.norm(x @ procrustes(x, y) - y)
    for seed in range(300):
        r = ortho_group.rvs(4, random_state=seed)
        assert np.linalg.norm(x @ r - y) >= best - 1e-9


def test_alignment_puts_a_rotated_subgraph_back_into_the_upper_frame():
    rng = np.random.default_rng(3)
    truth = row_normalize_l2(rng.standard_normal((40, 6)))
    q = ortho_group.rvs(6, random_state=4)
    own = truth @ q.T  # the subgraph's own frame: the truth rotated
    anchors = np.zeros(40, dtype=bool)
    anchors[:10] = True  # 10 shared border nodes >= dim
    fused = align_subgraph(own, truth, anchors)
    np.testing.assert_allclose(fused, truth, atol=1e-5)


def test_alignment_without_anchors_keeps_the_own_frame_normalised():
    own = np.array([[3.0, 4.0], [0.0, 0.0]])
    fused = align_subgraph(own, np.zeros_like(own), np.zeros(2, dtype=bool))
    np.testing.assert_allclose(fused, [[0.6, 0.8], [0.0, 0.0]])
