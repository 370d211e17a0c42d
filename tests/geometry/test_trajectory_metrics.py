"""Trajectory metrics and the similarity fit against float64 references and against evo."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.geometry.metrics import path_length, rpe, trajectory_errors
from sana_wm.geometry.similarity import Sim3, fit_sim3, fit_sim3_poses, umeyama_sim3


def _path(n=40, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0)).as_matrix()
    c2w[:, :3, 3] = np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0)
    return c2w


def _noisy(c2w, seed, rot=0.01, trans=0.02):
    rng = np.random.default_rng(seed)
    out = c2w.copy()
    out[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, rot, (len(c2w), 3))).as_matrix() @ out[:, :3, :3]
    out[:, :3, 3] += rng.normal(0, trans, (len(c2w), 3))
    return out


def test_umeyama_recovers_a_similarity_exactly():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    R = Rotation.from_rotvec([0.1, 0.7, -0.3]).as_matrix()
    s, Rf, t = umeyama_sim3(x, 1.7 * x @ R.T + [1, 2, 3])
    assert s == pytest.approx(1.7) and np.allclose(Rf, R) and np.allclose(t, [1, 2, 3])


def test_umeyama_is_the_least_squares_optimum():
    # a float64 brute-force check: no small perturbation of the fit lowers the residual
    rng = np.random.default_rng(4)
    x = rng.normal(size=(25, 3))
    y = 0.6 * x @ Rotation.from_rotvec([0.3, -0.2, 0.4]).as_matrix().T + 2 + rng.normal(0, 0.05, (25, 3))
    sim = fit_sim3(x, y)

    def cost(s, R, t):
        return np.sum((y - (s * x @ R.T + t)) ** 2)

    best = cost(sim.s, sim.R, sim.t)
    for _ in range(200):
        d = rng.normal(0, 1e-3, 7)
        R = Rotation.from_rotvec(d[:3]).as_matrix() @ sim.R
        assert cost(sim.s * (1 + d[3]), R, sim.t + d[4:]) >= best - 1e-12


def test_fit_sim3_poses_fixes_the_roll_about_a_straight_walk():
    c2w = np.tile(np.eye(4), (10, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 3, 10)  # collinear centres: centres alone leave the roll about z free
    c2w[:, :3, :3] = Rotation.from_rotvec(np.outer(np.linspace(0, 0.3, 10), [0, 1, 0])).as_matrix()
    truth = Sim3(2.0, Rotation.from_rotvec([0.0, 0.0, 0.8]).as_matrix(), np.array([1.0, -1.0, 0.5]))
    moved = truth.apply_c2w(c2w)
    fit = fit_sim3_poses(c2w, moved)
    assert fit.s == pytest.approx(2.0) and np.allclose(fit.R, truth.R) and np.allclose(fit.t, truth.t)
    np.testing.assert_allclose(fit.apply_c2w(c2w), moved, atol=1e-12)


def test_sim3_compose_matches_applying_twice():
    a = Sim3(2.0, Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix(), np.array([1.0, 0, 0]))
    b = Sim3(0.5, Rotation.from_rotvec([-0.3, 0.1, 0.0]).as_matrix(), np.array([0, 2.0, 1]))
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(a.compose(b).apply_points(x), a.apply_points(b.apply_points(x)), atol=1e-12)


def test_errors_are_zero_for_a_similar_path_and_scale_is_recovered():
    ref = _path()
    sim = Sim3(0.25, Rotation.from_rotvec([0.5, -0.1, 0.2]).as_matrix(), np.array([3.0, 1.0, -2.0]))
    e = trajectory_errors(ref, sim.apply_c2w(ref), fps=10)
    assert e.ate < 1e-9 and e.rpe_trans < 1e-9 and e.rpe_rot_deg < 1e-5
    assert e.scale == pytest.approx(4.0) and e.path_length == pytest.approx(path_length(ref))


def test_rpe_by_hand():
    # two frames, the estimate's step is 0.1 m too long and turned 2 degrees more
    ref = np.tile(np.eye(4), (2, 1, 1))
    ref[1, 0, 3] = 1.0
    est = ref.copy()
    est[1, 0, 3] = 1.1
    est[1, :3, :3] = Rotation.from_euler("y", 2, degrees=True).as_matrix()
    t, r = rpe(ref, est, 1)
    assert t == pytest.approx(0.1) and r == pytest.approx(2.0)


def test_ate_and_rpe_equal_evo():
    from evo.core import metrics, sync  # noqa: F401  (evo is a test dependency; missing it fails the run)
    from evo.core.trajectory import PosePath3D

    ref = _path(60, seed=1)
    est = Sim3(0.3, Rotation.from_rotvec([0.2, 0.1, -0.4]).as_matrix(), np.array([1, 2, 3.0])).apply_c2w(
        _noisy(ref, seed=2))
    fps = 10.0
    ours = trajectory_errors(ref, est, fps=fps, delta_s=1.0)

    traj_ref, traj_est = PosePath3D(poses_se3=list(ref)), PosePath3D(poses_se3=list(est))
    traj_est.align(traj_ref, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((traj_ref, traj_est))
    assert ours.ate == pytest.approx(ape.get_statistic(metrics.StatisticsType.rmse), rel=1e-9)
    for relation, value in ((metrics.PoseRelation.translation_part, ours.rpe_trans),
                            (metrics.PoseRelation.rotation_angle_deg, ours.rpe_rot_deg)):
        r = metrics.RPE(relation, delta=10, delta_unit=metrics.Unit.frames, all_pairs=True)
        r.process_data((traj_ref, traj_est))
        assert value == pytest.approx(r.get_statistic(metrics.StatisticsType.rmse), rel=1e-6)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same length"):
        trajectory_errors(_path(5), _path(6), fps=10)
    with pytest.raises(ValueError, match="umeyama"):
        umeyama_sim3(np.zeros((3, 2)), np.zeros((3, 2)))
