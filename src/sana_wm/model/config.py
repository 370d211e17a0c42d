"""The transformer's hyper-parameters: one dataclass, a few named sizes, JSON on disk.

``official-2.6b`` is the released SANA-WM stage-1 model (reference §1.1): 20 blocks of width 2240,
20 heads of 112 channels, softmax attention in blocks 3, 7, 11, 15, 19 and frame-wise Gated DeltaNet in
the others. It has exactly 2,661,800,448 parameters.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from sana_wm.errors import ConfigError

# Where the camera branch renormalises UCPE-transformed q/k/v (SanaWMConfig.ucpe_rms_renorm).
BLOCK_KINDS = ("gdn", "softmax")
UCPE_RENORM_RELEASE = ("softmax",)
UCPE_RENORM_DIFFUSERS = ("gdn", "softmax")

__all__ = ["BLOCK_KINDS", "CONFIGS", "UCPE_RENORM_DIFFUSERS", "UCPE_RENORM_RELEASE", "SanaWMConfig", "get_config"]


@dataclass(frozen=True)
class SanaWMConfig:
    """Shapes and numerical constants of a SANA-WM transformer.

    Self-attention and cross-attention both use ``num_heads`` heads of ``head_dim`` channels, so
    ``hidden_size == num_heads * head_dim``.
    """

    depth: int = 20
    hidden_size: int = 2240
    num_heads: int = 20
    head_dim: int = 112
    in_channels: int = 128  # latent channels of the LTX-2 VAE; the model predicts as many
    caption_channels: int = 2304  # Gemma-2-2B hidden size
    caption_length: int = 300  # rows of the (training-only) null-caption buffer y_embedder.y_embedding
    mlp_ratio: float = 3.0  # FFN width = hidden_size * mlp_ratio
    # Softmax blocks: ``softmax_blocks`` if given, else every block i with (i + 1) % softmax_every_n == 0.
    softmax_every_n: int = 4
    softmax_blocks: tuple[int, ...] | None = None
    conv_kernel_size: int = 4  # causal taps of the K short conv in GDN blocks (symmetric 2k-1 taps)
    spatial_kernel_size: int = 3  # depthwise conv of the FFN over each frame's grid
    t_kernel_size: int = 3  # temporal conv of the FFN
    plucker_channels: int = 48  # 6 Pluecker numbers x 8 raw frames per latent frame; 0 disables
    rope_theta: float = 10000.0
    rope_max_positions: int = 1024  # positions per axis of the RoPE table
    timestep_channels: int = 256  # sinusoidal timestep embedding width
    norm_eps: float = 1e-5  # q/k RMSNorm of self-attention and the caption RMSNorm
    gdn_eps: float = 1e-8  # denominator epsilon of the GDN main branch
    chunk_frames: int = 3  # latent frames per chunk in chunk-causal mode (the first chunk has one more)
    # The block kinds whose camera branch scales UCPE-transformed q/k/v back down to their pre-transform RMS
    # ("PostUCPERenorm", reference §5.3). The release does it in softmax blocks only: its fused GDN camera path
    # feeds the raw transformed tensors to the scan and discounts beta by the raw key inflation instead. The
    # diffusers port does it in every block (UCPE_RENORM_DIFFUSERS): select that for parity with it and for
    # checkpoints trained through it. JSON: a list of kinds; the legacy booleans true/false mean every
    # kind / none.
    ucpe_rms_renorm: tuple[str, ...] = ("softmax",)
    # The reference's streaming (KV-cached) softmax pads heads to a FlashAttention size, so its main
    # branch scales logits by 1/sqrt(128) instead of 1/sqrt(112) (reference §2.3); the streaming
    # student was distilled with it. Off makes streaming equal the chunk-causal forward exactly.
    padded_softmax_in_streaming: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.hidden_size != self.num_heads * self.head_dim:
            problems.append(f"hidden_size {self.hidden_size} != num_heads {self.num_heads} x head_dim {self.head_dim}")
        renorm = _renorm_kinds(self.ucpe_rms_renorm)
        if renorm is None:
            problems.append(f"ucpe_rms_renorm must be a list of block kinds from {list(BLOCK_KINDS)} (or true / "
                            f"false for all / none), got {self.ucpe_rms_renorm!r}")
        else:
            object.__setattr__(self, "ucpe_rms_renorm", renorm)
        if self.head_dim % 8:
            problems.append(
                f"head_dim {self.head_dim} must be a multiple of 8: the camera branch splits it in two halves, "
                "the first in groups of 4 for the ray transform, the second in RoPE pairs"
            )
        if self.depth < 1:
            problems.append(f"depth must be >= 1, got {self.depth}")
        if self.softmax_blocks is not None:
            object.__setattr__(self, "softmax_blocks", tuple(int(i) for i in self.softmax_blocks))
            bad = [i for i in self.softmax_blocks if not 0 <= i < self.depth]
            if bad:
                problems.append(f"softmax_blocks {bad} are outside 0..{self.depth - 1}")
        if self.conv_kernel_size < 1 or self.t_kernel_size % 2 == 0 or self.spatial_kernel_size % 2 == 0:
            problems.append("conv_kernel_size must be >= 1 and t_kernel_size, spatial_kernel_size odd")
        if problems:
            raise ConfigError("invalid SanaWMConfig: " + "; ".join(problems))

    # -------------------------------------------------------------------------------------------
    @property
    def out_channels(self) -> int:
        return self.in_channels

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)

    @property
    def softmax_block_indices(self) -> tuple[int, ...]:
        if self.softmax_blocks is not None:
            return tuple(sorted(set(self.softmax_blocks)))
        if self.softmax_every_n <= 0:
            return ()
        return tuple(i for i in range(self.depth) if (i + 1) % self.softmax_every_n == 0)

    def block_kind(self, index: int) -> str:
        """``"softmax"`` or ``"gdn"`` for block ``index``."""
        return "softmax" if index in self.softmax_block_indices else "gdn"

    def renorms_ucpe(self, kind: str) -> bool:
        """Whether blocks of ``kind`` renormalise their UCPE-transformed camera q/k/v (``ucpe_rms_renorm``)."""
        return kind in self.ucpe_rms_renorm

    def replace(self, **changes) -> SanaWMConfig:
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["softmax_blocks"] is not None:
            d["softmax_blocks"] = list(d["softmax_blocks"])
        d["ucpe_rms_renorm"] = list(d["ucpe_rms_renorm"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SanaWMConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown SanaWMConfig fields {unknown}; known fields are {sorted(known)}")
        for f in dataclasses.fields(cls):  # a config file is data: check each number's type before using it
            value = d.get(f.name)
            wrong = (f.type == "int" and (isinstance(value, bool) or not isinstance(value, int))) or \
                (f.type == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)))) or \
                (f.type == "bool" and not isinstance(value, bool))
            if f.name in d and wrong:
                raise ConfigError(f"{f.name}: expected {'a whole number' if f.type == 'int' else f'a {f.type}'}, "
                                  f"got {value!r}")
        return cls(**d)

    def save_json(self, path: str | Path) -> None:
        from sana_wm.io import write_json_atomic

        write_json_atomic(path, self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load_json(cls, path: str | Path) -> SanaWMConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # -------------------------------------------------------------------------------------------
    def to_diffusers(self) -> dict:
        """The ``config.json`` of diffusers' ``SanaWMTransformer3DModel`` with the same weights.

        diffusers applies the UCPE RMS renorm in every block whatever ``ucpe_rms_renorm`` says here: a model
        with another setting (the release's default among them) computes differently once loaded there.
        """
        every_n = self.softmax_every_n
        if self.softmax_blocks is not None:
            every_n = next((n for n in range(1, self.depth + 1)
                            if tuple(i for i in range(self.depth) if (i + 1) % n == 0)
                            == self.softmax_block_indices), None)
            if every_n is None and not self.softmax_block_indices:
                every_n = 0
            if every_n is None:
                raise ConfigError(
                    f"softmax blocks {self.softmax_block_indices} are not every n-th block, which is the only "
                    "pattern the diffusers format can express"
                )
        if (self.spatial_kernel_size, self.rope_theta, self.rope_max_positions, self.timestep_channels,
                self.gdn_eps, self.norm_eps) != (3, 10000.0, 1024, 256, 1e-8, 1e-5):
            raise ConfigError("the diffusers format fixes spatial_kernel_size 3, rope_theta 10000, "
                             "rope_max_positions 1024, timestep_channels 256, gdn_eps 1e-8 and norm_eps 1e-5")
        return {
            "_class_name": "SanaWMTransformer3DModel",
            "in_channels": self.in_channels,
            "num_layers": self.depth,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_heads,
            "linear_head_dim": self.head_dim,
            "patch_size": [1, 1, 1],
            "softmax_every_n": every_n,
            "caption_channels": self.caption_channels,
            "mlp_ratio": self.mlp_ratio,
            "t_kernel_size": self.t_kernel_size,
            "conv_kernel_size": self.conv_kernel_size,
            "use_chunk_plucker_post_attn": self.plucker_channels > 0,
            "chunk_plucker_channels": self.plucker_channels or 48,
            "chunk_plucker_post_attn_blocks": self.depth,
        }

    @classmethod
    def from_diffusers(cls, d: dict) -> SanaWMConfig:
        """Our config for a diffusers ``SanaWMTransformer3DModel`` ``config.json``. ``ucpe_rms_renorm`` keeps the
        release's setting: the format holds the released weights, and the renorm is a choice of forward (pass
        ``ucpe_rms_renorm=UCPE_RENORM_DIFFUSERS`` for diffusers' own behaviour)."""
        expected = {"patch_size": [1, 1, 1], "ffn_type": "GLUMBConvTemp", "k_conv_only": True,
                    "pos_embed_type": "wan_rope", "qk_norm": True, "cross_norm": True, "y_norm": True,
                    "cam_attn_compress": 1, "use_pe": True, "pred_sigma": False, "use_chunk_plucker_post_attn": True}
        unsupported = [f"{k}={d[k]!r}" for k, v in expected.items() if k in d and _as_list(d[k]) != _as_list(v)]
        depth = d.get("num_layers", 20)
        if d.get("chunk_plucker_post_attn_blocks", depth) not in (depth, -1):
            unsupported.append(f"chunk_plucker_post_attn_blocks={d['chunk_plucker_post_attn_blocks']}")
        if unsupported:
            raise ConfigError(f"diffusers config options not supported by sana-wm: {', '.join(unsupported)}")
        hidden = d.get("hidden_size", 2240)
        head_dim = d.get("linear_head_dim", 112)
        heads = d.get("num_attention_heads", 20)
        if hidden // head_dim != heads:
            raise ConfigError(f"diffusers config has {heads} cross-attention heads but {hidden // head_dim} "
                             "self-attention heads; sana-wm needs them equal")
        return cls(depth=depth, hidden_size=hidden, num_heads=heads, head_dim=head_dim,
                   in_channels=d.get("in_channels", 128), caption_channels=d.get("caption_channels", 2304),
                   mlp_ratio=float(d.get("mlp_ratio", 3.0)), softmax_every_n=d.get("softmax_every_n", 4),
                   conv_kernel_size=d.get("conv_kernel_size", 4), t_kernel_size=d.get("t_kernel_size", 3),
                   plucker_channels=d.get("chunk_plucker_channels", 48))


def _renorm_kinds(value) -> tuple[str, ...] | None:
    """``ucpe_rms_renorm`` as a sorted tuple of block kinds, or None if it is not a valid setting."""
    if isinstance(value, bool):
        return BLOCK_KINDS if value else ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return None
    if not all(isinstance(kind, str) and kind in BLOCK_KINDS for kind in value):
        return None
    return tuple(kind for kind in BLOCK_KINDS if kind in value)


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else v


CONFIGS: dict[str, SanaWMConfig] = {
    # The released bidirectional / chunk-causal stage-1 model (2,661,800,448 parameters).
    "official-2.6b": SanaWMConfig(),
    # For tests: head_dim 48 is not a FlashAttention size, so the camera branch's padded-head softmax
    # scale (1/sqrt(128) instead of 1/sqrt(48)) is exercised.
    "tiny": SanaWMConfig(depth=4, hidden_size=96, num_heads=2, head_dim=48, in_channels=16,
                         caption_channels=64, caption_length=16, mlp_ratio=2.0),
    # head_dim 32: a FlashAttention size, no padding anywhere.
    "tiny-32": SanaWMConfig(depth=4, hidden_size=64, num_heads=2, head_dim=32, in_channels=16,
                            caption_channels=64, caption_length=16, mlp_ratio=2.0),
    # A model small enough to train on one GPU, with the released input/caption/camera interfaces.
    "small": SanaWMConfig(depth=12, hidden_size=768, num_heads=6, head_dim=128),
}


def get_config(name: str) -> SanaWMConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise UnknownConfigError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}") from None


class UnknownConfigError(ConfigError, KeyError):
    """A named config that does not exist (a KeyError too, as a lookup by name always was)."""

    def __str__(self) -> str:  # KeyError's own would quote the message
        return str(self.args[0])
