"""The scorer's camera numbers against a float64 reimplementation of the released definitions (reference
evaluation.md §1.3), written here from the definition with plain loops, independently of pose_metrics.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.bench.score import camera_accuracy, remap_frame, sample_frames


def _inv(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def released_metric(G: list[np.ndarray], E: list[np.ndarray], drop_first: bool) -> tuple[float, float, float, float]:
    """(RotErr deg, TransErr, CamMC, s) by the released steps 1-5, one frame at a time."""
    if drop_first:
        G, E = G[1:], E[1:]
    n = min(len(G), len(E))
    G = [_inv(G[0]) @ g for g in G[:n]]
    E = [_inv(E[0]) @ e for e in E[:n]]
    wg, we = [_inv(g) for g in G], [_inv(e) for e in E]
    M = sum(w_g[:3, :3].T @ w_e[:3, :3] for w_g, w_e in zip(wg, we, strict=True)) / n
    U, _, Vt = np.linalg.svd(M)
    Q = Vt.T @ U.T
    a = np.array([w[:3, :3].T @ w[:3, 3] for w in we])
    b = np.array([w_e[:3, :3].T @ w_g[:3, 3] for w_g, w_e in zip(wg, we, strict=True)])
    da, db = a - a.mean(0), b - b.mean(0)
    s = float((da * db).mean() / (da * da).mean())
    u = b.mean(0) - s * a.mean(0)
    rot, trans, mc = [], [], []
    for g, w in zip(G, we, strict=True):
        aligned = np.eye(4)
        aligned[:3, :3] = w[:3, :3] @ Q
        aligned[:3, 3] = w[:3, :3] @ u + s * w[:3, 3]
        e2 = _inv(aligned)
        cos = (np.trace(g[:3, :3].T @ e2[:3, :3]) - 1) / 2
        rot.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
        trans.append(float(np.linalg.norm(g[:3, 3] - e2[:3, 3])))
        mc.append(float(np.linalg.norm((g[:3, :4] - e2[:3, :4]).ravel())))
    return float(np.mean(rot)), float(np.mean(trans)), float(np.mean(mc)), s


def _path(n: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth walk with turns: (n, 4, 4) c2w."""
    yaw = np.cumsum(rng.normal(0, 4, n))
    pitch = 5 * np.sin(np.linspace(0, 3, n))
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("yx", np.stack([yaw, pitch], 1), degrees=True).as_matrix()
    c2w[:, :3, 3] = np.cumsum(c2w[:, :3, 2] * 0.1, axis=0)
    return c2w


def _similarity(c2w: np.ndarray, s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = c2w.copy()
    out[:, :3, :3] = R @ c2w[:, :3, :3]
    out[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    return out


@pytest.mark.parametrize("drop_first", [False, True])
def test_matches_the_reimplementation_on_noisy_estimates(drop_first):
    rng = np.random.default_rng(0)
    G = _path(30, rng)
    E = _similarity(G, 0.3, Rotation.random(random_state=1).as_matrix(), np.array([1.0, -2.0, 0.5]))
    E[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.05, (30, 3))).as_matrix() @ E[:, :3, :3]
    E[:, :3, 3] += rng.normal(0, 0.05, (30, 3))
    got = camera_accuracy(G, E, drop_first=drop_first, sample_fps=4.0)
    rot, trans, mc, s = released_metric(list(G), list(E), drop_first)
    assert got["RotErr"] == pytest.approx(rot, rel=1e-9, abs=1e-9)
    assert got["TransErr"] == pytest.approx(trans, rel=1e-9, abs=1e-9)
    assert got["CamMC"] == pytest.approx(mc, rel=1e-9, abs=1e-9)
    assert got["scale"] == pytest.approx(s, rel=1e-9)
    assert got["frames"] == 30 - int(drop_first)
    assert rot > 1.0  # the noise is seen: the comparison is not between two zeros


def test_a_similarity_transformed_path_scores_zero_and_its_scale_error():
    rng = np.random.default_rng(2)
    G = _path(25, rng)
    E = _similarity(G, 2.5, Rotation.random(random_state=3).as_matrix(), np.array([4.0, 1.0, -3.0]))
    got = camera_accuracy(G, E, drop_first=False, sample_fps=4.0)
    assert got["RotErr"] == pytest.approx(0.0, abs=1e-5)  # arccos near 1: ~1e-6 degrees of rounding
    for key in ("TransErr", "CamMC", "ATE"):
        assert got[key] == pytest.approx(0.0, abs=1e-9), key
    assert got["ScaleErr"] == pytest.approx(abs(math.log(1 / 2.5)), abs=1e-9)
    assert got["RPE_rot_deg_per_s"] == pytest.approx(0.0, abs=1e-6)


def test_a_known_rotation_offset_scores_that_angle():
    """GT: pure translation, identity rotations. Estimate: the same centres, frames 1.. turned by +-theta about y
    alternately. The alignment's mean rotation is symmetric positive definite, so Q = I, and each turned frame
    is off by theta: RotErr = theta (N - 1) / N, by hand."""
    n, theta = 21, 7.0
    G = np.tile(np.eye(4), (n, 1, 1))
    G[:, 2, 3] = np.linspace(0, 2, n)
    E = G.copy()
    for i in range(1, n):
        E[i, :3, :3] = Rotation.from_euler("y", theta if i % 2 else -theta, degrees=True).as_matrix()
    got = camera_accuracy(G, E, drop_first=False, sample_fps=4.0)
    assert got["RotErr"] == pytest.approx(theta * (n - 1) / n, abs=1e-9)
    assert got["RotErr"] == pytest.approx(released_metric(list(G), list(E), False)[0], abs=1e-9)


def test_frame_zero_drop_removes_an_error_only_frame_zero_carries():
    """Frame 0 of the estimate is turned by 20 deg against all others (a copied conditioning frame that does
    not fit): relative to it every frame is wrong; with frame 0 dropped the path is exact."""
    rng = np.random.default_rng(4)
    G = _path(17, rng)
    E = G.copy()
    E[0, :3, :3] = Rotation.from_euler("y", 20, degrees=True).as_matrix() @ G[0, :3, :3]
    kept = camera_accuracy(G, E, drop_first=False, sample_fps=4.0)
    dropped = camera_accuracy(G, E, drop_first=True, sample_fps=4.0)
    assert kept["RotErr"] > 1.0
    assert kept["RotErr"] == pytest.approx(released_metric(list(G), list(E), False)[0], abs=1e-9)
    assert dropped["RotErr"] == pytest.approx(0.0, abs=1e-5)  # arccos near 1: ~1e-6 degrees of rounding
    assert dropped["TransErr"] == pytest.approx(0.0, abs=1e-9)
    assert (kept["frames"], dropped["frames"]) == (17, 16)


def test_failed_frames_are_counted_not_dropped():
    rng = np.random.default_rng(5)
    G = _path(9, rng)
    registered = np.array([True, True, False, True, False, True, True, True, True])
    got = camera_accuracy(G, G, drop_first=False, sample_fps=4.0, registered=registered)
    assert (got["frames"], got["frames_failed"]) == (9, 2)


def test_every_fourth_frame_and_time_remapping():
    v, p = sample_frames(49, 16.0, 961, 16.0)
    assert v.tolist() == list(range(0, 49, 4)) and p.tolist() == v.tolist()
    # An 8 fps video: its frame 4 is at 0.5 s, frame 8 of a 16 fps path.
    v, p = sample_frames(25, 8.0, 49, 16.0)
    assert v.tolist()[:3] == [0, 4, 8] and p.tolist()[:3] == [0, 8, 16]
    # A path shorter than the video in time: samples stop where the path ends.
    v, p = sample_frames(49, 16.0, 20, 16.0)
    assert p.max() < 20 and v.tolist() == [0, 4, 8, 12, 16]
    assert remap_frame(480, 16.0, 24.0) == 720
