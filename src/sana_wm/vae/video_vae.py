"""The LTX-2 video VAE (diffusers ``AutoencoderKLLTX2Video``) with SANA-WM's latent normalisation.

SANA-WM was trained on per-channel normalised latents (reference §4)::

    encode:  z_model = (z_vae - latents_mean) * scaling_factor / latents_std
    decode:  z_vae   = z_model * latents_std / scaling_factor + latents_mean

with the VAE's own 128-channel ``latents_mean`` / ``latents_std`` buffers; plain ``z * scaling_factor``
gives a strong colour cast. The decoder is called without timestep conditioning (``temb=None``).

Frame counts: the VAE is causal in time with a first frame of its own, so ``F = 8k + 1`` raw frames give
``T_lat = (F - 1) / 8 + 1`` latent frames and back. Strides are read from the VAE config
(``temporal_compression_ratio``, ``spatial_compression_ratio``); the released VAE has 8 and 32.

Streaming decode (:class:`StreamingDecoder`): the released streaming VAE is a causal variant decoded chunk
by chunk with a cross-chunk cache. We get the same result from a diffusers causal decoder by keeping, for
every causal temporal convolution, the last ``k_t - 1`` input frames of the previous chunk and feeding them
in place of the replicated first frame, and by letting each temporal upsampler drop its leading sub-frame
only on the first chunk (the drop is what makes ``8k + 1`` frames). Every other decoder operation acts on
one frame at a time, so chunked decoding equals one-shot causal decoding up to float round-off.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sana_wm.errors import InputError

__all__ = ["CODEC_CLASSES", "StreamingDecoder", "VideoVAE", "num_latent_frames", "num_video_frames"]

RELEASED_TEMPORAL_TILING = (96, 64)  # (tile_sample_min_num_frames, tile_sample_stride_num_frames), reference §4

# Codecs with this interface that are not diffusers VAEs, by the ``_class_name`` of their config.json:
# "module:Class", imported only when such a folder is loaded (this package imports none of them).
CODEC_CLASSES = {"PatchPCACodec": "sana_wm.bundled.codec:PatchPCACodec"}


def num_latent_frames(num_frames: int, temporal_stride: int = 8) -> int:
    """``(F - 1) / 8 + 1`` for an ``8k + 1``-frame video; raises for other counts."""
    if num_frames < 1 or (num_frames - 1) % temporal_stride:
        raise ValueError(f"the video VAE needs {temporal_stride}k+1 frames, got {num_frames}")
    return (num_frames - 1) // temporal_stride + 1


def num_video_frames(latent_frames: int, temporal_stride: int = 8) -> int:
    """Raw frames decoded from ``latent_frames`` latent frames: ``(T_lat - 1) * 8 + 1``."""
    if latent_frames < 1:
        raise ValueError(f"latent_frames must be >= 1, got {latent_frames}")
    return (latent_frames - 1) * temporal_stride + 1


class VideoVAE:
    """A diffusers ``AutoencoderKLLTX2Video`` seen through SANA-WM's conventions.

    Videos are ``(B, 3, F, H, W)`` in ``[-1, 1]``; latents ``(B, C, T_lat, H / 32, W / 32)`` normalised as in
    the module docstring. ``temporal_tiling = (min_frames, stride)`` decodes/encodes long videos in
    overlapping temporal tiles (released: 96 / 64 raw frames); ``None`` works in one piece.
    """

    def __init__(self, vae, *, temporal_tiling: tuple[int, int] | None = None) -> None:
        self.vae = vae.eval()
        self.set_temporal_tiling(temporal_tiling)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu", temporal_tiling=None) -> VideoVAE:
        """Load a diffusers-format VAE folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), or
        a folder of another codec with this interface (``config.json`` whose ``"_class_name"`` is a key of
        :data:`CODEC_CLASSES`, e.g. the bundled model's linear patch codec), which comes back as that class."""
        import importlib
        import json

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a VAE folder (no config.json); expected a diffusers "
                                    "AutoencoderKLLTX2Video folder such as the released vae/")
        try:
            class_name = json.loads((path / "config.json").read_text()).get("_class_name")
        except (OSError, json.JSONDecodeError, AttributeError) as err:
            raise InputError(f"{path / 'config.json'}: not a readable VAE config: {err}") from None
        if cls is VideoVAE and class_name in CODEC_CLASSES:
            module, name = CODEC_CLASSES[class_name].split(":")
            codec = getattr(importlib.import_module(module), name)
            return codec.from_pretrained(path, dtype=dtype, device=device, temporal_tiling=temporal_tiling)
        from diffusers import AutoencoderKLLTX2Video

        vae = AutoencoderKLLTX2Video.from_pretrained(str(path), torch_dtype=dtype, low_cpu_mem_usage=False)
        return cls(vae.to(device), temporal_tiling=temporal_tiling)

    def save_pretrained(self, path: str | Path) -> None:
        self.vae.save_pretrained(str(path))

    def set_temporal_tiling(self, tiling: tuple[int, int] | None) -> None:
        if tiling is None:
            self.vae.use_framewise_encoding = self.vae.use_framewise_decoding = False
            return
        min_frames, stride = (int(v) for v in tiling)
        if not 0 < stride <= min_frames or min_frames % self.temporal_stride or stride % self.temporal_stride:
            raise ValueError(f"temporal tiling (min_frames, stride) must be multiples of {self.temporal_stride} "
                             f"with 0 < stride <= min_frames, got {tiling}")
        self.vae.use_framewise_encoding = self.vae.use_framewise_decoding = True
        self.vae.tile_sample_min_num_frames = min_frames
        self.vae.tile_sample_stride_num_frames = stride

    # -- facts --------------------------------------------------------------------------------------
    @property
    def temporal_stride(self) -> int:
        return int(self.vae.temporal_compression_ratio)

    @property
    def spatial_stride(self) -> int:
        return int(self.vae.spatial_compression_ratio)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def is_causal_decoder(self) -> bool:
        return bool(self.vae.config.decoder_causal)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> VideoVAE:
        self.vae.to(device=device, dtype=dtype)
        return self

    def num_latent_frames(self, num_frames: int) -> int:
        return num_latent_frames(num_frames, self.temporal_stride)

    def num_video_frames(self, latent_frames: int) -> int:
        return num_video_frames(latent_frames, self.temporal_stride)

    # -- normalisation ------------------------------------------------------------------------------
    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor, float]:
        shape = (1, -1, 1, 1, 1)
        mean = self.vae.latents_mean.view(shape).to(like.device, torch.float32)
        std = self.vae.latents_std.view(shape).to(like.device, torch.float32)
        return mean, std, float(self.vae.config.scaling_factor)

    def normalize(self, z: Tensor) -> Tensor:
        """Raw VAE latents -> the model's latents (float32)."""
        mean, std, scale = self._stats(z)
        return (z.float() - mean) * scale / std

    def denormalize(self, latents: Tensor) -> Tensor:
        """The model's latents -> raw VAE latents (float32); the exact inverse of :meth:`normalize`."""
        mean, std, scale = self._stats(latents)
        return latents.float() * std / scale + mean

    # -- encode / decode ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, video: Tensor) -> Tensor:
        """``(B, 3, F, H, W)`` in [-1, 1] (``F = 8k + 1``; a single image is ``F = 1``) -> normalised latents
        ``(B, C, T_lat, H / s, W / s)`` float32, the posterior mode (deterministic)."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video: expected (B, 3, F, H, W), got {tuple(video.shape)}")
        self.num_latent_frames(video.shape[2])
        H, W = video.shape[-2:]
        if H % self.spatial_stride or W % self.spatial_stride:
            raise ValueError(f"video size {W}x{H} must be a multiple of the VAE's spatial stride {self.spatial_stride}")
        z = self.vae.encode(video.to(self.device, self.dtype)).latent_dist.mode()
        return self.normalize(z)

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents ``(B, C, T_lat, h, w)`` -> video ``(B, 3, (T_lat - 1) * 8 + 1, h * s, w * s)``
        float32 in [-1, 1] (clamped)."""
        z = self.denormalize(latents).to(self.device, self.dtype)
        video = self.vae.decode(z, temb=None, return_dict=False)[0]
        return video.float().clamp(-1, 1)

    def stream_decoder(self) -> StreamingDecoder:
        """A decoder for consecutive latent chunks (see :class:`StreamingDecoder`)."""
        return StreamingDecoder(self)


# ------------------------------------------------------------------------------------------------
# Streaming decode with a cross-chunk cache
# ------------------------------------------------------------------------------------------------
@dataclass
class _DecoderCache:
    tails: dict  # causal conv module -> (B, C, k_t - 1, h, w) last inputs of the previous chunk
    started: bool = False  # a chunk has been decoded (upsamplers stop dropping their first sub-frame)


class StreamingDecoder:
    """Decode consecutive latent chunks of one video so that the concatenated frames equal the one-shot
    causal decode (module docstring). The first chunk (it starts with latent frame 0) gives
    ``8 n - 7`` frames, every later chunk ``8 n``.

    With a non-causal decoder (e.g. the bidirectional release's VAE) the decoder is run causally here, which
    is not what its one-shot decode does; a warning says so.
    """

    def __init__(self, vae: VideoVAE) -> None:
        self.vae = vae
        self.cache = _DecoderCache({})
        if not vae.is_causal_decoder:
            warnings.warn("streaming decode with a non-causal VAE decoder: chunks are decoded causally, which "
                          "differs from this VAE's one-shot decode; use the causal streaming VAE "
                          "(ltx2_causal_vae/) for exact chunked decoding", stacklevel=2)

    @torch.no_grad()
    def decode_chunk(self, latents: Tensor) -> Tensor:
        """Normalised latents ``(B, C, n, h, w)`` of the next ``n`` latent frames -> their video frames
        ``(B, 3, F_n, H, W)`` float32 in [-1, 1]."""
        vae = self.vae
        z = vae.denormalize(latents).to(vae.device, vae.dtype)
        with _streaming_forwards(vae.vae.decoder, self.cache):
            video = vae.vae.decoder(z, None, causal=True)
        self.cache.started = True
        return video.float().clamp(-1, 1)


@contextlib.contextmanager
def _streaming_forwards(decoder, cache: _DecoderCache) -> Iterator[None]:
    """Temporarily give the decoder's causal convs and temporal upsamplers their cached forwards."""
    from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d, LTX2VideoUpsampler3d

    patched = []
    for module in decoder.modules():
        if isinstance(module, LTX2VideoCausalConv3d):
            module.forward = _cached_conv_forward(module, cache)
            patched.append(module)
        elif isinstance(module, LTX2VideoUpsampler3d) and cache.started:
            module.forward = _no_drop_upsampler_forward(module)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward


def _cached_conv_forward(module, cache: _DecoderCache):
    k_t = module.kernel_size[0]
    if module.conv.stride[0] != 1 or module.conv.dilation[0] != 1:
        raise NotImplementedError("streaming decode supports temporal stride and dilation 1 only")

    def forward(hidden_states: Tensor, causal: bool = True) -> Tensor:
        if k_t > 1:
            tail = cache.tails.get(module)
            if tail is None:  # the video's first frames: replicate frame 0, as the causal conv does
                tail = hidden_states[:, :, :1].expand(-1, -1, k_t - 1, -1, -1)
            hidden_states = torch.cat([tail, hidden_states], dim=2)
            cache.tails[module] = hidden_states[:, :, -(k_t - 1):].detach()
        return module.conv(hidden_states)

    return forward


def _depth_to_time_space(x: Tensor, stride: tuple[int, int, int]) -> Tensor:
    """``(B, C * st * sh * sw, T, H, W)`` -> ``(B, C, T * st, H * sh, W * sw)``: each input frame becomes
    ``st`` output frames (frame-local, so it commutes with chunking)."""
    st, sh, sw = stride
    B, _, T, H, W = x.shape
    x = x.reshape(B, -1, st, sh, sw, T, H, W)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # (B, C, T, st, H, sh, W, sw)
    return x.reshape(B, x.shape[1], T * st, H * sh, W * sw)


def _no_drop_upsampler_forward(module):
    """The temporal upsampler of a later chunk: as the original, but all ``st`` sub-frames of every input
    frame are kept (the original drops the first ``st - 1`` output frames, which belong to frame 0)."""
    stride = tuple(module.stride)

    def forward(hidden_states: Tensor, causal: bool = True) -> Tensor:
        out = _depth_to_time_space(module.conv(hidden_states, causal=causal), stride)
        if module.residual:
            residual = _depth_to_time_space(hidden_states, stride)
            repeats = stride[0] * stride[1] * stride[2] // module.upscale_factor
            out = out + residual.repeat(1, repeats, 1, 1, 1)
        return out

    return forward

