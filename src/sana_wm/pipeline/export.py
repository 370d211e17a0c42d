"""Write a trained transformer and a VAE as a model folder that :class:`SanaWMPipeline` loads.

The folder follows the released layout of the chosen variant (module doc of :mod:`sana_wm.pipeline.pipeline`):
streaming ``sana_dit/model.pt`` (a ``{"generator": state_dict}`` file read with ``weights_only=True``) and
``ltx2_causal_vae/``; bidirectional / chunk-causal ``dit/*.safetensors`` and ``vae/``. Since the model is not
the official 2.6B one, ``config.yaml`` carries a ``sana_wm`` section naming its transformer config, frame
size, fps, text mode and sampling defaults, and the model wrapper the transformer was trained in (the
checkpoint's ``wrapper.json``, e.g. the bundled model's parameterisation). A patch codec (the bundled model's
autoencoder) goes to ``patch_codec/`` instead of the variant's VAE folder. Everything is written under a
temporary name and renamed, so an interrupted export leaves no half-written folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from sana_wm.io import replace_folder
from sana_wm.model.loading import CheckpointError
from sana_wm.pipeline.pipeline import CONFIG_FILE, DIT_FILES, VAE_DIRS, _check_variant

__all__ = ["export_model_folder"]


def export_model_folder(checkpoint: str | Path, vae: str | Path, out: str | Path, *, variant: str = "streaming",
                        image_size: tuple[int, int] = (128, 128), fps: float = 16.0, text_free: bool = True,
                        sampler: dict | None = None, use_ema: bool = True, dtype: torch.dtype = torch.float16,
                        overwrite: bool = False, extra_settings: dict | None = None) -> Path:
    """Export training checkpoint folder ``checkpoint`` (``config.json`` + ``model.safetensors`` [+
    ``ema.safetensors``, used when ``use_ema``]) with the diffusers VAE folder ``vae`` to ``out``.
    Weights are stored in ``dtype`` (half precision halves the size; the pipeline computes in its own
    dtype). Returns ``out``."""
    import yaml
    from safetensors.torch import load_file, save_file

    from sana_wm.model.loading import from_pretrained

    variant = _check_variant(variant)
    checkpoint, vae, out = Path(checkpoint), Path(vae), Path(out)
    from sana_wm.io import paths_overlap

    for source, flag in ((checkpoint, "checkpoint"), (vae, "--vae")):
        if paths_overlap(out, source):
            raise FileExistsError(f"--out {out} overlaps the {flag} folder {source}; replacing it would delete what "
                                  "is being exported. Choose an output folder outside the inputs")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    if not (vae / "config.json").is_file():
        raise FileNotFoundError(f"{vae}: not a VAE folder (no config.json)")
    model = from_pretrained(checkpoint, dtype=torch.float32)
    state = model.state_dict()
    ema_file = checkpoint / "ema.safetensors"
    used_ema = False
    if use_ema and ema_file.is_file():
        ema = load_file(str(ema_file))
        unknown = sorted(set(ema) - set(state))
        if unknown:
            raise CheckpointError(f"{ema_file}: names not in the model: {unknown[:5]}")
        state.update(ema)
        used_ema = True
    state = {k: v.to(dtype).contiguous() for k, v in state.items()}

    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    dit = tmp / DIT_FILES[variant]
    dit.parent.mkdir(parents=True)
    if dit.suffix == ".pt":
        torch.save({"generator": state}, dit)
    else:
        save_file(state, str(dit), metadata={"format": "pt"})
    from sana_wm.bundled import CODEC_DIR, is_codec_dir

    vae_dir = CODEC_DIR if is_codec_dir(vae) else VAE_DIRS[variant]
    shutil.copytree(vae, tmp / vae_dir)
    vae_config = tmp / vae_dir / "config.json"
    fields = json.loads(vae_config.read_text())
    if fields.pop("_name_or_path", None) is not None:  # a path on the machine that trained it: not portable
        vae_config.write_text(json.dumps(fields, indent=2) + "\n")
    settings = {"transformer": model.config.to_dict(), "image_size": [int(image_size[0]), int(image_size[1])],
                "fps": float(fps)}
    wrapper_file = checkpoint / "wrapper.json"
    if wrapper_file.is_file():
        settings["wrapper"] = json.loads(wrapper_file.read_text())
    if vae_dir != VAE_DIRS[variant]:
        settings["vae"] = vae_dir
    if text_free:
        settings["text_encoder"] = "none"
    if sampler:
        settings["sampler"] = dict(sampler)
    doc = {"sana_wm": settings, "exported_from": {"checkpoint": str(checkpoint), "ema": used_ema},
           **(extra_settings or {})}
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))
    replace_folder(tmp, out)
    return out
