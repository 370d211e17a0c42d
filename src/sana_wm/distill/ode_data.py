"""Teacher ODE trajectories for the ODE-regression stage (`sana-wm distill ode-data`; reference §9.1).

For each training clip the chunk-causal teacher samples a video from noise, conditioned on the clip's first
latent frame, prompt and camera, with its many-step Euler schedule (``ode_data.teacher_steps`` shifted sigmas,
text guidance as configured) in lockstep (every chunk at the same sigma, the chunk-causal mask), and the
state is kept at each of the student's timesteps (released ``[1000, 967, 908, 764, 0]``). Those sigmas are
inserted into the teacher's schedule, so the snapshots are states of the ODE exactly at the student's noise
levels, not the nearest teacher step. Snapshot 0 is the starting noise, the last one the teacher's clean
sample; frame 0 is the conditioning latent in every snapshot.

On disk (``ode_data.dir``)::

    rank00000-00000.safetensors   one tensor per clip key: (S, C, T, H, W) snapshots
    index-rank00000.json          the shards a rank has finished and their keys (written after each shard)
    index.json                    every clip's shard, the timesteps and the teacher's settings (after all ranks)

Each rank samples its share of the clips (the dataset's split) in inference mode and writes its own shards
atomically; a rerun skips the clips already in any index, so a killed run resumes where it stopped, and one
with other settings is refused instead of mixing two teachers' trajectories.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from sana_wm.errors import UserError
from sana_wm.io import atomic_write, write_json_atomic
from sana_wm.model.loading import from_pretrained, resolve_dtype
from sana_wm.samplers import Guidance, SigmaSchedule, chunk_causal_sample
from sana_wm.train.distributed import DistEnv, barrier, init_distributed, shutdown
from sana_wm.train.objective import sample_seed

__all__ = ["FORMAT", "OdeDataError", "OdeTrajectories", "teacher_schedule", "write_ode_data"]

log = logging.getLogger(__name__)

FORMAT = "sana-wm-ode-trajectories"
INDEX = "index.json"


class OdeDataError(UserError):
    """The trajectory folder does not fit the config (other settings, missing clips, no index)."""


def teacher_schedule(teacher_steps: int, shift: float, student: SigmaSchedule) -> tuple[SigmaSchedule, list[int]]:
    """The teacher's shifted schedule with the student's sigmas inserted, and the index of each student sigma in
    it (the state after ``index`` steps is the snapshot)."""
    merged = torch.cat([SigmaSchedule.shifted(teacher_steps, shift).sigmas, student.sigmas])
    merged = torch.unique(merged).flip(0)  # decreasing, duplicates merged
    indices = [int((merged == s).nonzero()[0]) for s in student.sigmas]
    return SigmaSchedule(merged), indices


def _settings(cfg) -> dict:
    o = cfg.ode_data
    return {"timesteps": [float(t) for t in cfg.denoising_steps], "teacher": str(cfg.model.teacher),
            "teacher_steps": o.teacher_steps, "teacher_shift": o.teacher_shift, "cfg": o.cfg,
            "negative_prompt": o.negative_prompt, "seed": cfg.seed, "window": cfg.data.window,
            "size": list(cfg.data.size)}


def _rank_indices(folder: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(folder.glob("index-rank*.json")):
        out[path.name] = json.loads(path.read_text())
    return out


def _check_settings(folder: Path, settings: dict, found: dict) -> None:
    if found.get("format") != FORMAT:
        raise OdeDataError(f"{folder}: not a trajectory folder of sana-wm distill ode-data; choose another "
                           "ode_data.dir")
    if found.get("settings") != settings:
        raise OdeDataError(f"{folder} holds trajectories made with other settings ({found.get('settings')}); "
                           "delete it or choose another ode_data.dir to make new ones")


def write_ode_data(cfg, *, progress: bool = True) -> Path:
    """Sample and store the teacher's trajectories for ``cfg`` (a :class:`~sana_wm.distill.config.DistillConfig`)
    on every rank of the process group the environment describes; returns the folder."""
    env = init_distributed(cfg.distributed.backend, cfg.distributed.device)
    try:
        return _write(cfg, env, progress=progress)
    finally:
        shutdown(env)


@torch.inference_mode()
def _write(cfg, env: DistEnv, *, progress: bool) -> Path:
    from safetensors.torch import save_file

    from sana_wm.distill.config import transformer_config
    from sana_wm.distill.data import DistillData

    if not cfg.model.teacher:
        raise OdeDataError("model.teacher: required for ode-data (the chunk-causal teacher that samples the "
                           "trajectories)")
    o = cfg.ode_data
    folder = Path(o.dir)
    settings = _settings(cfg)
    if env.is_main:
        folder.mkdir(parents=True, exist_ok=True)
    barrier(env)
    indices = _rank_indices(folder)
    for name, found in indices.items():
        _check_settings(folder / name, settings, found)
    done = {key for found in indices.values() for keys in found["shards"].values() for key in keys}
    own_name = f"index-rank{env.rank:05d}.json"
    own = indices.get(own_name, {"format": FORMAT, "settings": settings, "shards": {}})

    teacher = from_pretrained(cfg.model.teacher, transformer_config(cfg), dtype=torch.float32, device=env.device)
    data = DistillData(cfg, env, teacher.y_embedder.y_embedding, shuffle=False, window_mode="start")
    if o.cfg != 1.0:
        data.check_negative(o.negative_prompt, "ode_data.negative_prompt")
    schedule, snapshot_at = teacher_schedule(o.teacher_steps, o.teacher_shift, cfg.schedule)
    dtype = resolve_dtype(o.dtype)
    limit = o.max_clips if o.max_clips is None else -(-o.max_clips // env.world_size)  # per rank
    buffer: dict[str, Tensor] = {}

    def flush() -> None:
        if not buffer:
            return
        name = f"rank{env.rank:05d}-{len(own['shards']):05d}.safetensors"
        with atomic_write(folder / name) as tmp:
            save_file({k: v.contiguous() for k, v in buffer.items()}, str(tmp), metadata={"format": "pt"})
        own["shards"][name] = sorted(buffer)
        write_json_atomic(folder / own_name, own, indent=1)
        buffer.clear()

    samples, made = [], 0
    bar = tqdm(desc="teacher trajectories", unit="clip", disable=not (progress and env.is_main))
    for sample in data.dataset:
        if limit is not None and made >= limit:
            break
        if sample["key"] in done or sample["key"] in buffer:
            continue
        samples.append(sample)
        if len(samples) == cfg.data.batch_size:
            buffer.update(_trajectories(teacher, data, samples, cfg, schedule, snapshot_at, dtype, env))
            made += len(samples)
            bar.update(len(samples))
            samples = []
            if len(buffer) >= o.clips_per_shard:
                flush()
    if samples and (limit is None or made < limit):
        buffer.update(_trajectories(teacher, data, samples, cfg, schedule, snapshot_at, dtype, env))
    flush()
    bar.close()
    barrier(env)
    if env.is_main:
        clips = {}
        for found in _rank_indices(folder).values():
            for shard, keys in found["shards"].items():
                clips.update(dict.fromkeys(keys, shard))
        write_json_atomic(folder / INDEX, {"format": FORMAT, "settings": settings, "clips": clips}, indent=1)
    barrier(env)
    return folder


def _trajectories(teacher, data, samples: list[dict], cfg, schedule: SigmaSchedule, snapshot_at: list[int],
                  dtype: torch.dtype, env: DistEnv) -> dict[str, Tensor]:
    """``{key: (S, C, T, H, W)}`` snapshots of the teacher's ODE for one batch of clips."""
    from sana_wm.distill.data import batch_conditioning

    batch = data.batch(samples).to(env.device)
    latents = batch.latents
    B, C, T, H, W = latents.shape
    noise = torch.stack([torch.randn((C, T, H, W), generator=torch.Generator().manual_seed(
        sample_seed(cfg.seed, "ode-data", key))) for key in batch.keys]).to(env.device)
    guidance = None
    if cfg.ode_data.cfg != 1.0:
        text, mask = data.negative_text(cfg.ode_data.negative_prompt, B)
        guidance = Guidance(cfg.ode_data.cfg, text.to(env.device), mask.to(env.device))
    states = {}

    def keep(step) -> None:
        states[step.step + 1] = step.latents.detach().clone()

    out = chunk_causal_sample(teacher, batch_conditioning(batch), latents[:, :, :1], T, schedule, interval_k=0.0,
                              guidance=guidance, noise=noise, callback=keep)
    first = noise.clone()
    first[:, :, :1] = latents[:, :, :1]
    states[0] = first
    states[schedule.num_steps] = out.latents
    snapshots = torch.stack([states[i] for i in snapshot_at], dim=1).to("cpu", dtype)  # (B, S, C, T, H, W)
    return {key: snapshots[b] for b, key in enumerate(batch.keys)}


class OdeTrajectories:
    """Reads a trajectory folder: ``trajectories[key] -> (S, C, T, H, W)`` float32 snapshots."""

    def __init__(self, folder: str | Path, timesteps: list[float], *, window: int | None = None,
                 size: list[int] | None = None) -> None:
        self.folder = Path(folder)
        path = self.folder / INDEX
        if not path.is_file():
            raise OdeDataError(f"{self.folder}: no {INDEX}; write the trajectories first with "
                               "`sana-wm distill ode-data CONFIG.yaml` (a killed run: rerun it to finish)")
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT:
            raise OdeDataError(f"{path}: not a trajectory index of sana-wm distill ode-data")
        stored = [float(t) for t in index["settings"]["timesteps"]]
        if stored != [float(t) for t in timesteps]:
            raise OdeDataError(f"{path}: the trajectories were stored at timesteps {stored}, the config's "
                               f"denoising_steps are {list(timesteps)}; make them again with ode-data")
        settings = index["settings"]
        for name, value in (("window", window), ("size", size)):
            if value is not None and settings.get(name) != value:
                raise OdeDataError(f"{path}: the trajectories were made from clips with data.{name} "
                                   f"{settings.get(name)}, the config has {value}; use the same data settings")
        self.clips: dict[str, str] = index["clips"]
        for shard in set(self.clips.values()):
            if Path(shard).name != shard or not shard.endswith(".safetensors"):
                raise OdeDataError(f"{path}: shard name {shard!r} is not a file name in the folder")

    def __contains__(self, key: str) -> bool:
        return key in self.clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: str) -> Tensor:
        from safetensors import safe_open

        shard = self.clips.get(key)
        if shard is None:
            raise OdeDataError(f"{self.folder}: no trajectory for clip {key!r}; the dataset changed since "
                               "ode-data ran (rerun it: finished clips are kept)")
        with safe_open(str(self.folder / shard), framework="pt") as f:
            return f.get_tensor(key).float()
