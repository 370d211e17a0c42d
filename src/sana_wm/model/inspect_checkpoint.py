"""What `sana-wm model info` reports: parameter counts and the block pattern of a config or a checkpoint,
read from tensor shapes only (a 10 GB checkpoint is never loaded into memory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from sana_wm.model.config import CONFIGS, SanaWMConfig, get_config
from sana_wm.model.loading import CheckpointError, build_model, load_pt, normalize_state_dict

__all__ = ["checkpoint_shapes", "describe_checkpoint", "describe_config", "format_report"]

_BUFFERS = ("y_embedder.y_embedding", "recall_gate")  # buffers in the released files, not parameters


def _group(key: str) -> str:
    if "_cam" in key:
        return "camera branch (UCPE)"
    if key.startswith(("plucker_embedder", "plucker_proj")) or ".plucker_proj." in key:
        return "camera branch (Plücker)"
    if key.startswith("raymap_embedder"):
        return "unused (raymap embedder)"
    if not key.startswith("blocks."):
        return "embedders and final layer"
    part = key.split(".")[2]
    return {"attn": "self-attention", "cross_attn": "cross-attention", "mlp": "feed-forward"}.get(
        part, "block modulation")


def _pattern_from_keys(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """'gdn' for blocks with a K short conv, 'softmax' for the others (they share every other name)."""
    depth = 1 + max((int(k.split(".")[1]) for k in shapes if k.startswith("blocks.")), default=-1)
    return ["gdn" if f"blocks.{i}.attn.conv_k.weight" in shapes else "softmax" for i in range(depth)]


def _summarise(shapes: Mapping[str, tuple[int, ...]]) -> dict:
    params = {k: s for k, s in shapes.items() if not k.endswith(_BUFFERS)}
    groups: dict[str, int] = {}
    for k, s in params.items():
        groups[_group(k)] = groups.get(_group(k), 0) + int(torch.Size(s).numel())
    pattern = _pattern_from_keys(shapes)
    return {
        "parameters": sum(groups.values()),
        "parameters_by_part": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "depth": len(pattern),
        "block_pattern": "".join("S" if p == "softmax" else "G" for p in pattern),
        "softmax_blocks": [i for i, p in enumerate(pattern) if p == "softmax"],
    }


def _model_shapes(config: SanaWMConfig) -> dict[str, tuple[int, ...]]:
    model = build_model(config, device="meta")
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe_config(config: SanaWMConfig | str) -> dict:
    name = config if isinstance(config, str) else None
    cfg = get_config(config) if isinstance(config, str) else config
    info = {"config": name, **_summarise(_model_shapes(cfg)),
            "hidden_size": cfg.hidden_size, "num_heads": cfg.num_heads, "head_dim": cfg.head_dim,
            "in_channels": cfg.in_channels, "caption_channels": cfg.caption_channels}
    return info


def checkpoint_shapes(path: str | Path) -> tuple[dict[str, tuple[int, ...]], SanaWMConfig | None]:
    """Tensor shapes of a checkpoint file or model directory, in our key layout, and the directory's
    config if it has one. safetensors headers are read without loading tensors; ``.pt`` files are
    memory-mapped (``weights_only=True``)."""
    path = Path(path)
    config = None
    files = [path]
    if path.is_dir():
        from sana_wm.model.loading import _read_directory_config

        config, files = _read_directory_config(path)
    raw: dict = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(f), framework="pt") as handle:
                    for key in handle.keys():
                        raw[key] = torch.empty(handle.get_slice(key).get_shape(), device="meta")
            except SafetensorError as exc:
                raise CheckpointError(f"{f}: damaged or not a safetensors file ({exc}); replace it") from None
        else:
            raw.update(load_pt(f, mmap=True))
    shapes = {k: tuple(v.shape) for k, v in normalize_state_dict(raw).items()}
    return shapes, config


def describe_checkpoint(path: str | Path) -> dict:
    shapes, config = checkpoint_shapes(path)
    info = {"path": str(path), **_summarise(shapes)}
    matches = []
    candidates = [config] if config is not None else list(CONFIGS.values())
    for cfg in candidates:
        expected = _model_shapes(cfg)
        if all(shapes.get(k) == s for k, s in expected.items() if not k.endswith(_BUFFERS)) and all(
                k in expected for k in shapes):
            matches.append(next((n for n, c in CONFIGS.items() if c == cfg), "the directory's config.json"))
    info["matches_config"] = matches[0] if matches else None
    return info


def format_report(info: dict) -> str:
    head = f"checkpoint {info['path']}" if "path" in info else f"config {info['config'] or '(custom)'}"
    lines = [head, f"parameters        {info['parameters']:,}"]
    for part, n in info["parameters_by_part"].items():
        lines.append(f"  {part:<24}{n:>16,}")
    lines.append(f"blocks            {info['depth']}: {info['block_pattern']} (G = Gated DeltaNet, S = softmax)")
    lines.append(f"softmax blocks    {', '.join(map(str, info['softmax_blocks'])) or 'none'}")
    if "hidden_size" in info:
        lines.append(f"width             {info['hidden_size']} = {info['num_heads']} heads x {info['head_dim']}")
        lines.append(f"channels          latent {info['in_channels']}, caption {info['caption_channels']}")
    if "matches_config" in info:
        lines.append(f"matches config    {info['matches_config'] or 'none of the named configs'}")
    return "\n".join(lines)


def as_json(info: dict) -> str:
    return json.dumps(info, indent=2)
