"""The small model shipped inside the package, ``sana-wm-synth``, and everything only it needs.

``sana-wm-synth`` is a small SANA-WM trained by us on our synthetic world (model card:
docs/models/sana-wm-synth.md), in the streaming release's folder layout (``sana_dit/model.pt``, ``config.yaml``)
with its own autoencoder in ``patch_codec/``, so ``sana-wm generate`` works offline on a laptop CPU. It plugs
into the core through two generic hooks: a model wrapper that still takes and returns what the samplers and
the trainer expect (latents, timesteps, text, camera -> velocity), and an extra-conditioning object the
samplers pass through untouched.

* :mod:`~sana_wm.bundled.model`: the parameterisation (x0 = warp prior + network output, returned as a
  velocity), its transformer config and the prior as extra conditioning;
* :mod:`~sana_wm.bundled.warp`: the warp prior itself;
* :mod:`~sana_wm.bundled.codec`: the linear patch codec (PCA) standing in for the video VAE;
* :mod:`~sana_wm.bundled.training`: the trainer's hook (the prior of each training batch);
* this module: where the shipped model and the examples are (without loading PyTorch, so that listing the
  examples stays instant; the model's names load on first use).
"""

from __future__ import annotations

import json
from pathlib import Path

_LAZY = ("SYNTH_CONFIG", "WRAPPER_KIND", "WarpPrior", "WarpPriorModel", "WarpPriorSettings", "wrap_transformer")

__all__ = [
    "ASSETS_DIR",
    "BUNDLED_MODEL",
    "CODEC_CLASS_NAME",
    "CODEC_DIR",
    "EXAMPLES_DIR",
    "LEGACY_CODEC_DIR",
    "SYNTH_CONFIG",
    "WRAPPER_KIND",
    "WarpPrior",
    "WarpPriorModel",
    "WarpPriorSettings",
    "bundled_model_dir",
    "example_files",
    "find_codec_dir",
    "is_codec_dir",
    "wrap_transformer",
]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
BUNDLED_MODEL = "sana-wm-synth"
EXAMPLES_DIR = ASSETS_DIR / "examples"
CODEC_DIR = "patch_codec"  # the codec's folder inside a model folder
# The codec's other accepted folder: the streaming release's VAE folder name, which a model folder in that
# release's layout may use for its codec instead; the loader reads either.
LEGACY_CODEC_DIR = "ltx2_causal_vae"
CODEC_CLASS_NAME = "PatchPCACodec"  # the codec's config.json "_class_name"


def __getattr__(name: str):
    if name in _LAZY:
        from sana_wm.bundled import model

        return getattr(model, name)
    raise AttributeError(f"module 'sana_wm.bundled' has no attribute {name!r}")


def is_codec_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder written by :meth:`~sana_wm.bundled.codec.PatchPCACodec.save_pretrained`
    (judged by its config)."""
    config = Path(path) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("_class_name") == CODEC_CLASS_NAME
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def find_codec_dir(model_dir: str | Path) -> Path | None:
    """The codec folder of model folder ``model_dir``: ``patch_codec/``, else the legacy ``ltx2_causal_vae/``
    when it holds a codec; None if neither does."""
    root = Path(model_dir)
    for name in (CODEC_DIR, LEGACY_CODEC_DIR):
        if is_codec_dir(root / name):
            return root / name
    return None


def bundled_model_dir() -> Path:
    """The bundled model's folder; raises ``FileNotFoundError`` naming what is missing."""
    root = ASSETS_DIR / BUNDLED_MODEL
    needed = [root / "config.yaml", root / "sana_dit" / "model.pt"]
    missing = [str(p) for p in needed if not p.is_file()]
    if find_codec_dir(root) is None:
        missing.append(str(root / CODEC_DIR / "config.json"))
    if missing:
        raise FileNotFoundError(f"the bundled model is incomplete (missing {', '.join(missing)}); reinstall "
                                "sana-wm, or pass --model")
    return root


def example_files() -> dict[str, tuple[Path, Path]]:
    """Bundled examples: ``name -> (first frame PNG, camera path .npz)``."""
    out = {}
    for image in sorted(EXAMPLES_DIR.glob("*.png")):
        camera = image.with_suffix(".npz")
        if camera.is_file():
            out[image.stem] = (image, camera)
    return out
