"""Window planning and joining, and the scale solvers, on exact references."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.geometry.scale import scale_from_camera_height, scale_from_depth_ratios, user_scale
from sana_wm.geometry.similarity import Sim3, fit_sim3_poses
from sana_wm.geometry.windows import join_windows, plan_windows


def test_plan_windows_cover_every_frame_with_overlap():
    assert plan_windows(10, 20, 5) == [range(10)]
    wins = plan_windows(100, 40, 10)
    assert wins[0] == range(0, 40) and wins[-1].stop == 100
    covered = np.zeros(100, bool)
    for a, b in zip(wins, wins[1:], strict=False):
        assert len(set(a) & set(b)) >= 10
    for w in wins:
        covered[list(w)] = True
    assert covered.all()
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(100, 10, 10)


def _walk(n, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.03, (n, 3)), axis=0)).as_matrix()
    c2w[:, :3, 3] = np.cumsum(rng.normal(0, 0.05, (n, 3)) + [0, 0, 0.1], axis=0)
    return c2w


def test_join_windows_undoes_per_window_similarities():
    truth = _walk(100)
    wins = plan_windows(100, 40, 10)
    rng = np.random.default_rng(5)
    per_window, oks = [], []
    for i, w in enumerate(wins):
        sim = Sim3(float(rng.uniform(0.2, 5)), Rotation.random(random_state=i).as_matrix(), rng.normal(size=3))
        per_window.append(sim.apply_c2w(truth[list(w)]))
        oks.append(np.ones(len(w), bool))
    oks[1][:3] = False  # a few frames a window could not place are taken from its neighbour
    joined = join_windows(100, wins, per_window, oks)
    assert joined.registered.all()
    # the joined path is the truth seen in the first window's world
    np.testing.assert_allclose(joined.c2w[:40], per_window[0], atol=1e-12)
    to_truth = fit_sim3_poses(per_window[0], truth[:40])
    np.testing.assert_allclose(to_truth.apply_c2w(joined.c2w), truth, atol=1e-8)
    assert max(joined.overlap_rmse) < 1e-8


def test_join_windows_leaves_an_unconnected_window_unregistered():
    truth = _walk(60)
    wins = plan_windows(60, 35, 10)
    oks = [np.ones(35, bool), np.ones(35, bool)]
    oks[1][:12] = False  # shares nothing registered with the first window
    joined = join_windows(60, wins, [truth[list(w)] for w in wins], oks)
    assert joined.registered[:35].all() and not joined.registered[35:].any()


def test_scale_from_depth_ratios_on_known_depth():
    rng = np.random.default_rng(0)
    rec = rng.uniform(1, 5, 400)
    metric = 2.5 * rec * np.exp(rng.normal(0, 0.05, 400))
    metric[:40] = rng.uniform(0.1, 50, 40)  # 10 % gross outliers (a depth model's bad pixels)
    metric[40:50] = 0.0  # invalid (sky)
    est = scale_from_depth_ratios(metric, rec, source="depth:test")
    assert est.observable and est.scale == pytest.approx(2.5, rel=0.01)
    assert est.spread == pytest.approx(np.expm1(0.05), rel=0.2)  # the per-point dispersion is recovered
    assert est.uncertainty == pytest.approx(est.spread / np.sqrt(est.num_samples))
    assert est.details["points"] == 390
    exact = scale_from_depth_ratios(3.0 * rec, rec, source="depth:ground-truth")
    assert exact.scale == pytest.approx(3.0, rel=1e-12) and exact.spread == pytest.approx(0.0, abs=1e-12)


def test_too_few_points_make_scale_unobservable():
    est = scale_from_depth_ratios(np.ones(5), np.ones(5), source="depth:x")
    assert not est.observable and "rotate" in est.reason and est.scale == 1.0


def test_scale_from_camera_height_on_a_known_floor():
    rng = np.random.default_rng(1)
    # cameras 1.5 units above a floor at y = +1.5 (OpenCV: +y is down), looking along +z; true height 1.2 m
    c2w = np.tile(np.eye(4), (20, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 4, 20)
    floor = np.stack([rng.uniform(-3, 3, 300), np.full(300, 1.5) + rng.normal(0, 0.002, 300),
                      rng.uniform(0, 8, 300)], axis=1)
    clutter = rng.uniform([-3, -2, 0], [3, 1.0, 8], (100, 3))
    est = scale_from_camera_height(np.concatenate([floor, clutter]), c2w, 1.2)
    assert est.observable and est.scale == pytest.approx(1.2 / 1.5, rel=0.01)


def test_user_scale_checks_its_value():
    assert user_scale(2.0).scale == 2.0
    with pytest.raises(ValueError, match="positive"):
        user_scale(-1.0)
