import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.camera.presets import make_preset
from sana_wm.camera.trajectory import relative_poses
from sana_wm.eval.pose_metrics import camera_errors, umeyama_sim3


def _random_path(n=20, seed=0):
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0)).as_matrix()
    c2w[:, :3, 3] = np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0)
    return c2w


def _similarity(c2w, s, R, t):
    """The same cameras seen in another world frame: X' = s R X + t."""
    out = c2w.copy()
    out[:, :3, :3] = R @ c2w[:, :3, :3]
    out[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    return out


def test_identical_and_similar_paths_have_zero_error():
    gt = _random_path()
    R = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    est = _similarity(gt, 2.5, R, np.array([1.0, 2.0, 3.0]))
    for e in (camera_errors(gt, gt), camera_errors(gt, est)):
        assert e.RotErr < 1e-4 and e.TransErr_rel < 1e-9 and e.CamMC_rel < 1e-9 and e.ATE < 1e-9
    e = camera_errors(gt, est)
    assert e.scale == pytest.approx(1 / 2.5) and e.ScaleErr == pytest.approx(np.log(2.5))
    # the scale-only alignment also recovers a pure scale (it has no rotation fit, relativisation removes R)
    e = camera_errors(gt, est, alignment="scale")
    assert e.RotErr < 1e-4 and e.TransErr_rel < 1e-9 and e.scale == pytest.approx(1 / 2.5)


def test_errors_grow_with_perturbation_and_drop_first():
    gt = _random_path(seed=1)
    est = gt.copy()
    est[5:, :3, :3] = Rotation.from_rotvec([0, 0.1, 0]).as_matrix() @ est[5:, :3, :3]
    e = camera_errors(gt, est, alignment="scale")
    assert e.rot_err_per_frame[:5].max() < 1e-4  # arccos near 1 resolves ~1e-6 deg
    np.testing.assert_allclose(e.rot_err_per_frame[5:], np.degrees(0.1), rtol=1e-6)
    assert camera_errors(gt, est, drop_first=True).num_frames == len(gt) - 1


def test_static_reference_makes_translation_undefined():
    pan = make_preset("pan", num_frames=17, fps=16, degrees=30)
    moving = make_preset("dolly", num_frames=17, fps=16, distance=1.0)
    e = camera_errors(pan, moving)
    assert not e.translation_defined
    assert e.TransErr_rel is None and e.CamMC_rel is None and e.ATE is None and e.trans_err_per_frame is None
    assert e.RotErr > 1.0
    # a static estimate against a moving reference: scale collapses to 0, errors are the reference's motion
    static = np.tile(np.eye(4), (17, 1, 1))
    e = camera_errors(moving, static)
    assert e.scale == 0.0 and np.isinf(e.ScaleErr)
    assert e.TransErr_rel == pytest.approx(np.mean(np.linalg.norm(
        relative_poses(moving.c2w)[:, :3, 3] - relative_poses(moving.c2w)[:, :3, 3].mean(0), axis=1)),
        rel=0.2)


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 3))
    R = Rotation.from_rotvec([0.1, 0.7, -0.3]).as_matrix()
    s, Rf, t = umeyama_sim3(x, 1.7 * x @ R.T + [1, 2, 3])
    assert s == pytest.approx(1.7) and np.allclose(Rf, R) and np.allclose(t, [1, 2, 3])


def test_bad_alignment_name():
    with pytest.raises(ValueError, match="alignment"):
        camera_errors(_random_path(), _random_path(), alignment="nope")
