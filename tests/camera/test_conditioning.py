"""Camera conditioning tensors: checked against the diffusers SANA-WM port (numerical oracle) and
against geometric facts that hold independently of any implementation.

Tolerance: we compute relative poses and rays in float64 and cast, while the oracle works in float32.
The difference is float32 rounding of products of unit rotations and translations of at most a few
metres, i.e. about |t| * 1e-7 <= 1e-6, so 1e-5 absolute leaves a 10x margin.
"""

from __future__ import annotations

import diffusers.models.transformers.transformer_sana_wm as transformer_sana_wm
import diffusers.pipelines.sana_wm.cam_utils as cam_utils
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from sana_wm.camera.conditioning import (
    CameraConditioning,
    CropGeometry,
    center_crop_geometry,
    conditioning_from_trajectory,
    identity_conditioning,
    latent_intrinsics,
    num_latent_frames,
    plucker_rays,
    prepare_camera,
    relative_poses,
    ucpe_ray_transforms,
)
from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError

ATOL = 1e-5


def random_path(rng: np.random.Generator, num_frames: int, image_wh: tuple[int, int]):
    """Smooth random rotations and metric translations, plus per-frame intrinsics of 40-100 deg FOV
    (non-square pixels, principal point jittered) in pixels of an ``image_wh`` image."""
    t = np.linspace(0.0, 1.0, num_frames)[:, None]
    amp = rng.uniform([0.3, 0.1, 0.05], [1.5, 0.5, 0.2])  # yaw, pitch, roll amplitudes (rad)
    freq = rng.uniform(0.3, 1.2, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    angles = amp * np.sin(2 * np.pi * freq * t + phase)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, :3, :3] = Rotation.from_euler("YXZ", angles).as_matrix()
    velocity = rng.normal(0.0, 1.0, 3) + 0.3 * np.sin(2 * np.pi * t * rng.uniform(0.5, 1.5, 3))
    c2w[:, :3, 3] = rng.normal(0.0, 1.0, 3) + np.cumsum(velocity, axis=0) * (2.0 / num_frames)

    W, H = image_wh
    fov_x = np.radians(rng.uniform(40.0, 100.0) + 5.0 * np.sin(2 * np.pi * t[:, 0]))
    fx = 0.5 * W / np.tan(fov_x / 2)
    fy = fx * rng.uniform(0.97, 1.03)
    cx = W / 2 + rng.normal(0.0, 0.02 * W, num_frames)
    cy = H / 2 + rng.normal(0.0, 0.02 * H, num_frames)
    return c2w, np.stack([fx, fy, cx, cy], axis=-1)


def oracle_prepare(c2w, intr, target_hw):
    out = cam_utils.prepare_camera(c2w.astype(np.float32), intr.astype(np.float32), target_size=target_hw,
                                   vae_stride=(8, 32, 32))
    return out["raymap"], out["chunk_plucker"]


# -------------------------------------------------------------------------------------------------
# Agreement with the oracle
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_frames", [1, 17, 25])
@pytest.mark.parametrize("target_hw", [(704, 1280), (128, 192), (200, 300)])
def test_prepare_camera_matches_oracle(num_frames, target_hw):
    rng = np.random.default_rng(1000 * num_frames + target_hw[0])
    c2w, intr = random_path(rng, num_frames, (target_hw[1], target_hw[0]))
    ref_vector, ref_plucker = oracle_prepare(c2w, intr, target_hw)

    cond = prepare_camera(c2w, intr, target_size=target_hw)
    T_lat = (num_frames - 1) // 8 + 1
    H_lat, W_lat = target_hw[0] // 32, target_hw[1] // 32
    assert cond.camera_vector.dtype == torch.float32 and cond.plucker.dtype == torch.float32
    assert cond.camera_vector.shape == (T_lat, 20)
    assert cond.plucker.shape == (48, T_lat, H_lat, W_lat)
    torch.testing.assert_close(cond.camera_vector, ref_vector, atol=ATOL, rtol=0)
    torch.testing.assert_close(cond.plucker, ref_plucker, atol=ATOL, rtol=0)

    cond64 = prepare_camera(c2w, intr, target_size=target_hw, dtype=torch.float64)
    assert cond64.plucker.dtype == torch.float64
    torch.testing.assert_close(cond64.camera_vector, ref_vector.double(), atol=ATOL, rtol=0)
    torch.testing.assert_close(cond64.plucker, ref_plucker.double(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("num_frames", [17, 25])
@pytest.mark.parametrize("latent_hw", [(22, 40), (4, 6), (3, 5)])
def test_ucpe_ray_transforms_match_oracle(num_frames, latent_hw):
    rng = np.random.default_rng(num_frames * 31 + latent_hw[1])
    H, W = latent_hw
    vectors = []
    for _ in range(2):  # a batch of two different paths
        c2w, intr = random_path(rng, num_frames, (32 * W, 32 * H))
        vectors.append(prepare_camera(c2w, intr, target_size=(32 * H, 32 * W)).camera_vector)
    camera_vector = torch.stack(vectors)
    T = camera_vector.shape[1]

    P, P_inv = ucpe_ray_transforms(camera_vector, latent_hw)
    ref_P, _, ref_P_inv, _ = transformer_sana_wm._prepare_ucpe_ray_transforms(
        head_dim=112, camera_conditions=camera_vector, HW=(T, H, W), patch_size=(1, 1, 1))
    assert P.shape == P_inv.shape == (2, T * H * W, 4, 4)
    torch.testing.assert_close(P, ref_P, atol=ATOL, rtol=0)
    torch.testing.assert_close(P_inv, ref_P_inv, atol=ATOL, rtol=0)

    P64, P_inv64 = ucpe_ray_transforms(camera_vector.double(), latent_hw)
    assert P64.dtype == torch.float64
    torch.testing.assert_close(P64, ref_P.double(), atol=ATOL, rtol=0)
    torch.testing.assert_close(P_inv64, ref_P_inv.double(), atol=ATOL, rtol=0)


SOURCE_SIZES = [(1920, 1080), (640, 480), (1000, 1000), (333, 777), (1280, 704), (1281, 705), (4000, 1000)]


@pytest.mark.parametrize("src_wh", SOURCE_SIZES)
def test_center_crop_matches_oracle(src_wh):
    image = Image.fromarray(np.random.default_rng(sum(src_wh)).integers(0, 255, (src_wh[1], src_wh[0], 3),
                                                                         dtype=np.uint8))
    ref_image, ref_src, ref_resized, ref_offset = cam_utils.resize_and_center_crop(image)

    geometry = center_crop_geometry(*src_wh)
    assert geometry == CropGeometry(source=ref_src, resized=ref_resized, offset=ref_offset, size=(1280, 704))
    cropped = geometry.apply_to_image(image)
    assert cropped.size == ref_image.size == (1280, 704)
    np.testing.assert_array_equal(np.asarray(cropped), np.asarray(ref_image))

    _, intr = random_path(np.random.default_rng(3), 5, src_wh)
    ref_intr = cam_utils.transform_intrinsics_for_crop(intr, ref_src, ref_resized, ref_offset)
    moved = geometry.apply_to(Intrinsics(intr, *src_wh))
    assert (moved.width, moved.height) == (1280, 704)
    np.testing.assert_allclose(moved.values, ref_intr, rtol=1e-12, atol=1e-9)


def test_crop_geometry_other_target():
    g = center_crop_geometry(1920, 1080, target_w=192, target_h=128)
    assert g.resized == (228, 128) and g.offset == (18, 0) and g.size == (192, 128)


def test_conditioning_from_trajectory_matches_oracle_chain():
    rng = np.random.default_rng(7)
    src_wh = (1920, 1080)
    c2w, intr = random_path(rng, 25, src_wh)
    traj = Trajectory(c2w, Intrinsics(intr, *src_wh), fps=16)

    _, src, resized, offset = cam_utils.resize_and_center_crop(Image.new("RGB", src_wh))
    ref_vector, ref_plucker = oracle_prepare(
        c2w, cam_utils.transform_intrinsics_for_crop(intr, src, resized, offset), (704, 1280))

    cond = conditioning_from_trajectory(traj)
    torch.testing.assert_close(cond.camera_vector, ref_vector, atol=ATOL, rtol=0)
    torch.testing.assert_close(cond.plucker, ref_plucker, atol=ATOL, rtol=0)

    # Intrinsics given for a half-resolution copy of the same image describe the same camera.
    half = Trajectory(c2w, Intrinsics(intr / 2, 960, 540), fps=16)
    cond_half = conditioning_from_trajectory(half, src_image_size=src_wh)
    torch.testing.assert_close(cond_half.plucker, cond.plucker, atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------------------------
# Facts that do not need the oracle
# -------------------------------------------------------------------------------------------------
def test_relative_poses_start_at_identity():
    c2w, _ = random_path(np.random.default_rng(0), 9, (64, 64))
    rel = relative_poses(c2w)
    assert np.array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(rel, Trajectory(c2w).relative_to_first().c2w, atol=1e-12)
    np.testing.assert_allclose(c2w[0] @ rel, c2w, atol=1e-12)


def test_latent_intrinsics_numpy_and_torch():
    intr = np.array([[640.0, 700.0, 640.0, 352.0]])
    expected = [[20.0, 700 * 22 / 704, 20.0, 11.0]]
    np.testing.assert_allclose(latent_intrinsics(intr, (1280, 704), (40, 22)), expected)
    out = latent_intrinsics(torch.tensor(intr, dtype=torch.float32), (1280, 704), (40, 22))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_plucker_rays_are_unit_and_orthogonal_to_moment():
    c2w, intr = random_path(np.random.default_rng(2), 6, (40, 22))
    rays = plucker_rays(c2w, intr, (22, 40))
    d, m = rays[..., :3], rays[..., 3:]
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose((d * m).sum(-1), 0.0, atol=1e-12)
    # the moment is o x d for the camera centre o; any point o + s d on the ray gives the same moment
    o = c2w[:, None, None, :3, 3]
    np.testing.assert_allclose(np.cross(o + 2.5 * d, d), m, atol=1e-12)
    # the ray through the principal point is the camera's optical axis
    f = 3
    K = np.array([[intr[f, 0], 0, intr[f, 2]], [0, intr[f, 1], intr[f, 3]], [0, 0, 1]])
    pix = K @ (c2w[f, :3, :3].T @ d[f, 7, 11])
    np.testing.assert_allclose(pix[:2] / pix[2], [11, 7], atol=1e-9)


def test_plucker_chunks_follow_raw_frames():
    """Latent frame i holds raw frames max(0, 8i-7) .. +7, frame-major, 6 channels each."""
    c2w, intr = random_path(np.random.default_rng(5), 17, (192, 128))
    cond = prepare_camera(c2w, intr, target_size=(128, 192), dtype=torch.float64)
    rays = plucker_rays(relative_poses(c2w), latent_intrinsics(intr, (192, 128), (6, 4)), (4, 6))
    for i, start in enumerate([0, 1, 9]):
        for k in range(8):
            expected = np.moveaxis(rays[start + k], -1, 0)  # (6, H, W)
            np.testing.assert_allclose(cond.plucker[6 * k:6 * k + 6, i].numpy(), expected, atol=1e-12)
        vec = cond.camera_vector[i].numpy()
        np.testing.assert_allclose(vec[:16].reshape(4, 4), relative_poses(c2w)[8 * i], atol=1e-12)
    assert torch.equal(cond.camera_vector[0, :16], torch.eye(4, dtype=torch.float64).flatten())


def test_single_frame_pads_with_the_only_pose():
    c2w, intr = random_path(np.random.default_rng(9), 1, (1280, 704))
    cond = prepare_camera(c2w, intr)
    assert cond.plucker.shape == (48, 1, 22, 40)
    chunks = cond.plucker.reshape(8, 6, 1, 22, 40)
    assert torch.equal(chunks, chunks[:1].expand_as(chunks))


def test_ucpe_ray_frame_geometry():
    c2w, intr = random_path(np.random.default_rng(11), 9, (192, 128))
    camera_vector = prepare_camera(c2w, intr, target_size=(128, 192), dtype=torch.float64).camera_vector[None]
    H, W = 4, 6
    P, P_inv = ucpe_ray_transforms(camera_vector, (H, W))

    def close(actual, expected):
        torch.testing.assert_close(actual, expected.to(actual).expand_as(actual), atol=1e-12, rtol=0)

    close(P @ P_inv, torch.eye(4))
    rel = torch.from_numpy(relative_poses(c2w)[[0, 8]])  # poses of the two latent frames
    rays = torch.from_numpy(plucker_rays(rel.numpy(), camera_vector[0, :, 16:].numpy(), (H, W)))  # (T,H,W,6)
    P = P.reshape(2, H, W, 4, 4)
    zero = torch.zeros(2, 1, dtype=torch.float64)
    # the camera centre (a point, w = 1) maps to the origin
    centre = torch.cat([rel[:, :3, 3], zero + 1], dim=-1)[:, None, None, :, None]
    close((P @ centre)[..., 0], torch.tensor([0.0, 0, 0, 1]))
    # the ray direction (a vector, w = 0) maps to +z
    direction = torch.cat([rays[..., :3], torch.zeros(2, H, W, 1, dtype=torch.float64)], dim=-1)[..., None]
    close((P @ direction)[..., 0], torch.tensor([0.0, 0, 1, 0]))
    # the ray-local x axis is orthogonal to the camera's y axis, and the rotations are proper
    close((P[..., 0, :3] * rel[:, None, None, :3, 1]).sum(-1), torch.tensor(0.0))
    close(torch.linalg.det(P[..., :3, :3]), torch.tensor(1.0))


def test_ucpe_degenerate_ray_is_identity():
    camera_vector = identity_conditioning(9, (2, 3), dtype=torch.float64).camera_vector[None].clone()
    camera_vector[0, 1, 16] = float("nan")  # broken focal length in latent frame 1
    P, P_inv = ucpe_ray_transforms(camera_vector, (2, 3))
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.equal(P[0, 6:], eye.expand(6, 4, 4)) and torch.equal(P_inv[0, 6:], eye.expand(6, 4, 4))
    assert torch.isfinite(P[0, :6]).all()


def test_ucpe_low_precision_input_is_promoted():
    camera_vector = identity_conditioning(9, (2, 3)).camera_vector[None].to(torch.bfloat16)
    P, _ = ucpe_ray_transforms(camera_vector, (2, 3))
    assert P.dtype == torch.float32


def test_identity_conditioning_values():
    cond = identity_conditioning(17, (22, 40))
    assert cond.camera_vector.shape == (3, 20) and cond.plucker.shape == (48, 3, 22, 40)
    expected = torch.cat([torch.eye(4).flatten(), torch.tensor([40.0, 22.0, 20.0, 11.0])])
    assert torch.equal(cond.camera_vector, expected.expand(3, 20))
    plucker = cond.plucker.reshape(8, 6, 3, 22, 40)
    assert torch.equal(plucker, plucker[:1, :, :1].expand_as(plucker))  # every raw frame has the same rays
    assert torch.all(plucker[:, 3:] == 0)  # camera at the origin: zero moments
    # the cell at the principal point (u, v) = (20, 11) looks straight ahead
    torch.testing.assert_close(plucker[0, :3, 0, 11, 20], torch.tensor([0.0, 0.0, 1.0]))
    u, v = 3, 5
    d = torch.tensor([(u - 20) / 40, (v - 11) / 22, 1.0])
    torch.testing.assert_close(plucker[0, :3, 0, v, u], d / d.norm())


def test_batched_and_to():
    cond = identity_conditioning(9, (4, 6))
    assert not cond.is_batched and cond.num_latent_frames == 2 and cond.latent_hw == (4, 6)
    pair = cond.batched(2)
    assert isinstance(pair, CameraConditioning) and pair.is_batched
    assert pair.camera_vector.shape == (2, 2, 20) and pair.plucker.shape == (2, 48, 2, 4, 6)
    assert torch.equal(pair.plucker[1], cond.plucker)
    assert pair.to(dtype=torch.float64).plucker.dtype == torch.float64
    with pytest.raises(ValueError, match="already batched"):
        pair.batched()


# -------------------------------------------------------------------------------------------------
# Errors
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_frames", [2, 16, 18, 24])
def test_wrong_frame_count(num_frames):
    c2w, intr = random_path(np.random.default_rng(0), num_frames, (1280, 704))
    with pytest.raises(TrajectoryError, match=r"8k\+1.*snap_frame_count / fit_to_frames"):
        prepare_camera(c2w, intr)
    with pytest.raises(TrajectoryError, match=r"8k\+1"):
        identity_conditioning(num_frames, (22, 40))
    with pytest.raises(TrajectoryError, match=r"8k\+1"):
        num_latent_frames(num_frames)


def test_frame_count_message_suggests_neighbours():
    with pytest.raises(TrajectoryError, match=r"e\.g\. 17 or 25"):
        num_latent_frames(20)
    assert num_latent_frames(961) == 121


def test_missing_intrinsics():
    with pytest.raises(TrajectoryError, match="no intrinsics"):
        conditioning_from_trajectory(Trajectory(np.tile(np.eye(4), (9, 1, 1))))


def test_bad_intrinsics_inputs():
    c2w = np.tile(np.eye(4), (9, 1, 1))
    with pytest.raises(TrajectoryError, match="model input is 1280x704"):
        prepare_camera(c2w, Intrinsics.from_fov(60, 1920, 1080))
    with pytest.raises(TrajectoryError, match=r"expected shape \(9, 4\)"):
        prepare_camera(c2w, np.ones((5, 4)))
    with pytest.raises(TrajectoryError, match="frame 0: intrinsics"):
        prepare_camera(c2w, [0.0, 600.0, 640.0, 352.0])
    bad = c2w.copy()
    bad[4, 0, 3] = np.nan
    with pytest.raises(TrajectoryError, match="frame 4: pose contains non-finite"):
        prepare_camera(bad, [600.0, 600.0, 640.0, 352.0])
    with pytest.raises(TrajectoryError, match="different aspect ratio"):
        center_crop_geometry(1920, 1080).apply_to(Intrinsics.from_fov(60, 1000, 1000))
    with pytest.raises(ValueError, match=r"\(B, T, 20\)"):
        ucpe_ray_transforms(torch.zeros(3, 20), (2, 3))


def test_single_intrinsics_row_broadcasts():
    c2w, intr = random_path(np.random.default_rng(4), 9, (1280, 704))
    a = prepare_camera(c2w, intr[0])
    b = prepare_camera(c2w, np.repeat(intr[:1], 9, axis=0))
    assert torch.equal(a.plucker, b.plucker)


def test_ucpe_ray_transforms_under_bf16_autocast():
    """Mixed-precision training wraps the model in autocast; the ray geometry must stay float32."""
    from sana_wm.camera.conditioning import identity_conditioning, ucpe_ray_transforms

    cam = identity_conditioning(17, (3, 5)).batched().camera_vector
    cam = cam.clone()
    cam[..., 3] = 0.5  # a translated camera, so the transforms are not the identity
    ref = ucpe_ray_transforms(cam, (3, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ucpe_ray_transforms(cam, (3, 5))
    for a, b in zip(ref, got, strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
