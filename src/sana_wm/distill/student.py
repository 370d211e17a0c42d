"""The distilled student as a model folder `sana-wm generate --variant streaming --model OUT` runs.

``<output_dir>/student/``:

* ``sana_dit/model.pt``: the released streaming layout, ``{"generator": state_dict, "critic": state_dict (empty
  after the ODE stage), "step": int, "denoising_step_list": [1000, ...]}``, loadable with ``weights_only=True``;
* ``transformer/``: the generator in our format (``config.json`` + ``model.safetensors``), and ``critic/`` the
  critic after Self-Forcing (a later Self-Forcing stage continues it through ``model.critic_init``);
* ``config.yaml``: a ``sana_wm`` section naming the transformer config, frame size, fps, text mode and the
  sampler's explicit timestep list (the student's own, which generate uses instead of the released one);
* ``ltx2_causal_vae/``: a copy of ``export.vae``, when the config names one.

Written under a temporary name and swapped in when complete (:func:`sana_wm.io.replace_folder`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from sana_wm.io import replace_folder
from sana_wm.pipeline.pipeline import CONFIG_FILE, DIT_FILES, VAE_DIRS

__all__ = ["write_student"]

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def write_student(trainer, step: int) -> Path | None:
    """Write the student folder from ``trainer``'s models (collective; rank 0 writes). Returns its path."""
    from safetensors.torch import save_file

    cfg, env = trainer.cfg, trainer.env
    generator = get_model_state_dict(trainer.generator, options=_FULL)
    critic = get_model_state_dict(trainer.critic, options=_FULL) if trainer.critic is not None else {}
    out = cfg.student_dir
    if not env.is_main:
        return out
    generator = {k: v.contiguous() for k, v in generator.items()}
    timesteps = [int(t) if float(t).is_integer() else float(t) for t in cfg.denoising_steps]
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    dit = tmp / DIT_FILES["streaming"]
    dit.parent.mkdir(parents=True)
    torch.save({"generator": generator, "critic": critic, "step": step, "denoising_step_list": timesteps}, dit)
    model_config = json.loads(json.dumps(trainer.model_config.to_dict()))  # tuples -> lists, for YAML
    config_json = json.dumps({"_class_name": "SanaWMTransformer", **model_config}, indent=2, sort_keys=True) + "\n"
    for name, state in (("transformer", generator), ("critic", critic)):
        if state:
            (tmp / name).mkdir()
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / name / "model.safetensors"),
                      metadata={"format": "pt"})
            (tmp / name / "config.json").write_text(config_json)
    if cfg.export.vae is not None:
        shutil.copytree(cfg.export.vae, tmp / VAE_DIRS["streaming"])
    settings = {"transformer": model_config, "image_size": list(cfg.export.image_size or cfg.data.size),
                "fps": cfg.export.fps, "sampler": {"timesteps": timesteps}}
    if cfg.data.text == "none":
        settings["text_encoder"] = "none"
    (tmp / CONFIG_FILE).write_text(yaml.safe_dump({"sana_wm": settings}, sort_keys=False))
    return replace_folder(tmp, out)
