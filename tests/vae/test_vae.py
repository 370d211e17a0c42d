import pytest
import torch

from sana_wm.vae import VideoVAE, num_latent_frames, num_video_frames
from tiny_models import tiny_vae


@pytest.fixture(scope="module")
def vae() -> VideoVAE:
    return tiny_vae(causal_decoder=True)


def test_frame_count_rules():
    assert num_latent_frames(961) == 121 and num_latent_frames(1) == 1
    assert num_video_frames(21) == 161
    with pytest.raises(ValueError, match="8k\\+1"):
        num_latent_frames(160)


def test_strides_come_from_the_vae_config(vae):
    assert (vae.temporal_stride, vae.spatial_stride, vae.latent_channels) == (8, 32, 16)


def test_normalisation_is_the_released_per_channel_one_and_inverts_exactly(vae):
    torch.manual_seed(0)
    z = torch.randn(1, 16, 3, 2, 3)
    mean = vae.vae.latents_mean.view(1, -1, 1, 1, 1)
    std = vae.vae.latents_std.view(1, -1, 1, 1, 1)
    scale = vae.vae.config.scaling_factor
    assert torch.allclose(vae.normalize(z), (z - mean) * scale / std)
    assert torch.allclose(vae.denormalize(vae.normalize(z)), z, atol=1e-6)
    assert torch.allclose(vae.normalize(vae.denormalize(z)), z, atol=1e-6)


def test_encode_decode_shapes(vae):
    video = torch.rand(1, 3, 17, 64, 96) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (1, 16, 3, 2, 3)
    # decode(encode) = decoder(denormalize(normalize(raw))): the normalisation round trip is exact
    raw = vae.vae.encode(video).latent_dist.mode()
    assert torch.allclose(vae.denormalize(latents), raw, atol=1e-5)
    assert vae.decode(latents).shape == (1, 3, 17, 64, 96)


def test_chunked_streaming_decode_equals_one_shot(vae):
    torch.manual_seed(1)
    latents = torch.randn(1, 16, 7, 2, 3)
    full = vae.decode(latents)
    decoder = vae.stream_decoder()
    parts = [decoder.decode_chunk(latents[:, :, a:b]) for a, b in ((0, 4), (4, 6), (6, 7))]
    assert [p.shape[2] for p in parts] == [25, 16, 8]
    torch.testing.assert_close(torch.cat(parts, dim=2), full, atol=2e-5, rtol=0)
    # the VAE itself is left untouched: a plain decode afterwards is unchanged
    torch.testing.assert_close(vae.decode(latents), full, atol=0, rtol=0)


def test_streaming_with_a_non_causal_decoder_warns():
    with pytest.warns(UserWarning, match="non-causal"):
        tiny_vae(causal_decoder=False).stream_decoder()


def test_the_codec_package_is_a_leaf():
    """Importing the codec package (as the trainer, evaluation and the bundled codec do) in a fresh interpreter
    loads nothing above it: no pipeline, samplers, model, trainer or evaluation module."""
    import json
    import subprocess
    import sys

    code = "import json, sys, sana_wm.vae; print(json.dumps(sorted(m for m in sys.modules if m.startswith('sana_wm'))))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    assert "sana_wm.vae.video_vae" in loaded  # the import did happen in that interpreter
    assert "sana_wm.pipeline" not in loaded
    leaves = ("sana_wm.vae", "sana_wm.camera", "sana_wm.errors", "sana_wm.limits", "sana_wm.library_logs")
    assert [m for m in loaded if not m.startswith(leaves) and m != "sana_wm"] == []
