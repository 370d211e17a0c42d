"""The linear patch codec (sana_wm.bundled.codec): layout and projection against a plain float64 reference,
exact reconstruction inside the fitted subspace, streaming == one-shot decoding, files and errors."""

import json

import numpy as np
import pytest
import torch

from sana_wm.bundled.codec import PatchPCACodec, PatchPCAConfig, fit_patch_pca, reconstruction_psnr
from sana_wm.vae import VideoVAE


def _video(seed: int, frames: int = 17, size=(32, 48)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content plus noise, in [-1, 1]
    base = torch.rand(1, 3, frames, size[0] // 4, size[1] // 4, generator=g)
    x = torch.nn.functional.interpolate(base, size=(frames, *size), mode="trilinear", align_corners=False)
    return (x * 2 - 1 + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def _reference_vectors(video: np.ndarray, p: int, t: int) -> np.ndarray:
    """Patch vectors by explicit loops: (n, h, w, D), D ordered (frame, row, column, colour)."""
    _, c, F, H, W = video.shape
    frames = [video[0, :, 0]] * t + [video[0, :, f] for f in range(1, F)]
    n = len(frames) // t
    out = np.zeros((n, H // p, W // p, t * p * p * c))
    for g in range(n):
        for i in range(H // p):
            for j in range(W // p):
                vec = []
                for k in range(t):
                    for y in range(p):
                        for x in range(p):
                            vec.extend(frames[g * t + k][:, i * p + y, j * p + x])
                out[g, i, j] = vec
    return out


@pytest.fixture(scope="module")
def codec():
    return fit_patch_pca([_video(s) for s in range(6)], patch_size=8, latent_channels=24)


def test_encode_matches_a_float64_reference(codec):
    video = _video(10)
    ref_v = _reference_vectors(video.double().numpy(), 8, 8)
    mean, basis = codec.vae.mean.double().numpy(), codec.vae.basis.double().numpy()
    std = codec.vae.latents_std.double().numpy()
    ref = ((ref_v - mean) @ basis) / std  # (n, h, w, C); latents_mean is zero for a fitted codec
    z = codec.encode(video)
    assert z.shape == (1, 24, 3, 4, 6)
    np.testing.assert_allclose(z[0].permute(1, 2, 3, 0).double().numpy(), ref, atol=2e-4, rtol=1e-4)
    # decode: the projection back, frame 0 the mean of its repeated copies
    rec_v = (ref * std) @ basis.T + mean  # (n, h, w, D)
    rec = codec.decode(z)[0].double().numpy()
    grid = rec_v.reshape(3, 4, 6, 8, 8, 8, 3)  # (n, h, w, t, y, x, c)
    frame5 = grid[1, :, :, 4].transpose(4, 0, 2, 1, 3).reshape(3, 32, 48)  # frame 5 = group 1, slot 4
    np.testing.assert_allclose(rec[:, 5], np.clip(frame5, -1, 1), atol=2e-4)
    frame0 = grid[0].mean(axis=2).transpose(4, 0, 2, 1, 3).reshape(3, 32, 48)
    np.testing.assert_allclose(rec[:, 0], np.clip(frame0, -1, 1), atol=2e-4)


def test_basis_orthonormal_and_latents_unit_scale(codec):
    b = codec.vae.basis.double()
    torch.testing.assert_close(b.T @ b, torch.eye(24, dtype=torch.float64), atol=1e-5, rtol=0)
    z = torch.cat([codec.encode(_video(s)) for s in range(6)], dim=2)  # the fitting videos
    per_channel = z.permute(1, 0, 2, 3, 4).reshape(24, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(24), atol=1e-3, rtol=0)
    torch.testing.assert_close(per_channel.std(1, correction=0), torch.ones(24), atol=1e-3, rtol=0)
    ev = codec.config.explained_variance
    assert 0 < ev < 1


def test_exact_inside_the_fitted_subspace():
    """Videos whose patch vectors lie in a 5-dimensional affine subspace are reproduced exactly with 5
    channels, and not with 4. Three of the directions (and the mean) are static over a group's 8 frames, so
    the first group, frame 0 repeated, lies in the subspace too."""
    from sana_wm.bundled.codec import _vectors_to_frames

    g = torch.Generator().manual_seed(3)
    p, t, d = 4, 8, 4 * 4 * 3

    def static(u):  # one frame's patch repeated over the 8 slots
        return u.repeat(t)

    dirs = torch.stack([static(torch.randn(d, generator=g, dtype=torch.float64)) for _ in range(3)]
                       + [torch.randn(t * d, generator=g, dtype=torch.float64) for _ in range(2)], dim=1)
    mean = static(0.1 * torch.randn(d, generator=g, dtype=torch.float64))
    videos = []
    for _ in range(4):
        codes = 0.05 * torch.randn(3, 2, 3, 5, generator=g, dtype=torch.float64)
        codes[0, ..., 3:] = 0  # the first group uses the static directions only
        v = (codes @ dirs.T + mean).unsqueeze(0).float()
        videos.append(_vectors_to_frames(v, p, t, 3, first=True))
    exact = fit_patch_pca(videos, patch_size=p, latent_channels=5)
    less = fit_patch_pca(videos, patch_size=p, latent_channels=4)
    assert exact.config.explained_variance == pytest.approx(1.0, abs=1e-6)
    for v in videos:
        torch.testing.assert_close(exact.decode(exact.encode(v)), v, atol=2e-5, rtol=0)
        assert (less.decode(less.encode(v)) - v).abs().max() > 1e-3


def test_full_rank_codec_is_lossless():
    videos = [_video(s, frames=9, size=(8, 8)) for s in range(6)]
    codec = fit_patch_pca(videos, patch_size=2, latent_channels=8 * 2 * 2 * 3)
    for v in videos:
        torch.testing.assert_close(codec.decode(codec.encode(v)), v, atol=1e-5, rtol=0)
    assert reconstruction_psnr(codec, videos) > 80
    assert codec.config.explained_variance == pytest.approx(1.0)


def test_streaming_decode_equals_one_shot(codec):
    z = codec.encode(_video(11, frames=41))  # 6 latent frames
    whole = codec.decode(z)
    dec = codec.stream_decoder()
    parts = [dec.decode_chunk(z[:, :, :2]), dec.decode_chunk(z[:, :, 2:5]), dec.decode_chunk(z[:, :, 5:])]
    assert [p.shape[2] for p in parts] == [9, 24, 8]
    assert torch.equal(torch.cat(parts, dim=2), whole)


def test_save_load_through_video_vae(codec, tmp_path):
    codec.save_pretrained(tmp_path / "codec")
    loaded = VideoVAE.from_pretrained(tmp_path / "codec")
    assert isinstance(loaded, PatchPCACodec)
    assert (loaded.temporal_stride, loaded.spatial_stride, loaded.latent_channels) == (8, 8, 24)
    assert loaded.config == codec.config
    v = _video(12)
    assert torch.equal(loaded.encode(v), codec.encode(v))
    assert loaded.num_latent_frames(17) == 3 and loaded.num_video_frames(3) == 17


def test_file_errors_name_the_problem(codec, tmp_path):
    folder = tmp_path / "c"
    codec.save_pretrained(folder)
    (folder / "codec.safetensors").rename(tmp_path / "moved.safetensors")
    with pytest.raises(FileNotFoundError, match="codec.safetensors"):
        PatchPCACodec.from_pretrained(folder)
    (tmp_path / "moved.safetensors").rename(folder / "codec.safetensors")
    fields = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**fields, "patch": 3}))
    with pytest.raises(ValueError, match="unknown patch codec field.*patch"):
        PatchPCACodec.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**fields, "latent_channels": 25}))
    with pytest.raises(ValueError, match="'basis': expected shape"):
        PatchPCACodec.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**fields, "_class_name": "Other"}))
    with pytest.raises(ValueError, match="_class_name is 'Other'"):
        PatchPCACodec.from_pretrained(folder)


def test_input_errors(codec):
    with pytest.raises(ValueError, match="8k\\+1 frames, got 16"):
        codec.encode(torch.zeros(1, 3, 16, 32, 48))
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        codec.encode(torch.zeros(1, 3, 9, 30, 48))
    with pytest.raises(ValueError, match="latents: expected"):
        codec.decode(torch.zeros(1, 23, 2, 4, 6))
    with pytest.raises(ValueError, match="video 1: expected"):
        fit_patch_pca([_video(0), torch.zeros(3, 9, 8)], patch_size=8, latent_channels=4)
    with pytest.raises(ValueError, match="72 patch vectors cannot give 100 components"):
        fit_patch_pca([_video(0)], patch_size=8, latent_channels=100)
    with pytest.raises(ValueError, match="latent_channels must be in"):
        PatchPCAConfig(patch_size=2, latent_channels=1000)


def test_a_save_that_fails_midway_keeps_the_earlier_codec(codec, tmp_path, monkeypatch):
    import os

    folder = tmp_path / "codec"
    codec.save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real = os.replace

    def fail_moving_the_new_folder(src, dst):
        if str(src).endswith(".partial"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", fail_moving_the_new_folder)
    with pytest.raises(OSError, match="No space left"):
        codec.save_pretrained(folder)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert VideoVAE.from_pretrained(folder).latent_channels == codec.latent_channels
