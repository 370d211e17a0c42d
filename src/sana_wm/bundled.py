"""The model and examples shipped inside the package (``sana_wm/assets``).

``sana-wm-synth`` is a small SANA-WM (the ``synth-small`` config) trained by us on our synthetic world, in
the streaming release's folder layout (``sana_dit/model.pt``, ``ltx2_causal_vae/``, ``config.yaml``), so
``sana-wm generate`` works offline on a laptop CPU. Its model card is docs/models/sana-wm-synth.md.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS_DIR", "BUNDLED_MODEL", "EXAMPLES_DIR", "bundled_model_dir", "example_files"]

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
BUNDLED_MODEL = "sana-wm-synth"
EXAMPLES_DIR = ASSETS_DIR / "examples"


def bundled_model_dir() -> Path:
    """The bundled model's folder; raises ``FileNotFoundError`` naming what is missing."""
    root = ASSETS_DIR / BUNDLED_MODEL
    needed = [root / "config.yaml", root / "sana_dit" / "model.pt", root / "ltx2_causal_vae" / "config.json"]
    missing = [str(p) for p in needed if not p.is_file()]
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
