"""The distillation loop: ODE regression, then Self-Forcing + DMD (reference §9.1).

``run_distill(config, resume)`` runs the stage the config names, for ``steps`` optimizer steps, and writes the
student (:mod:`~sana_wm.distill.student`) at the end. Three models at most, each wrapped in FSDP2 when
several ranks run (every block, then the root; the generator's ``forward_chunk`` is registered as an FSDP
forward method, so the streaming rollout gathers its weights like a forward does):

* ``generator``: the student, trained (both stages);
* ``critic``: the "fake score", trained by flow matching on the generator's samples (Self-Forcing);
* ``real_score``: the frozen bidirectional teacher (Self-Forcing), run without gradient, optionally in bf16.

Randomness that decides the numbers is drawn from generators seeded by the run seed, the stage, the step and
the clip key (noise, snapshot choice, score timesteps), so it does not depend on rank or batch position, and 2
ranks with batch 2 train on the same global batch as 1 rank with batch 4. The exit steps of the rollout come
from one generator that every rank advances identically; rank 0's draw is broadcast anyway, and its state is
saved with each checkpoint, so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from sana_wm.distill.config import DistillConfig, OptimConfig, load_distill_config, transformer_config
from sana_wm.distill.data import DistillData, batch_conditioning
from sana_wm.distill.objective import (
    critic_loss,
    dmd_gradient,
    frame_sigmas,
    generator_loss,
    guided_x0,
    noisy_frames,
    ode_regression_inputs,
    score_timesteps,
    x0_from_velocity,
    x0_loss,
)
from sana_wm.distill.ode_data import OdeTrajectories
from sana_wm.distill.rollout import draw_exit_steps, rollout_noise, self_forcing_rollout
from sana_wm.io import write_json_atomic
from sana_wm.model import SanaWMTransformer, chunk_schedule, from_pretrained
from sana_wm.model.cache import KVWindow
from sana_wm.train.checkpoint import seed_everything
from sana_wm.train.data import SampleStream
from sana_wm.train.distributed import DistEnv, all_gather_objects, all_reduce_mean, init_distributed, shutdown
from sana_wm.train.loop import trim_metrics
from sana_wm.train.objective import make_noisy, sample_seed

__all__ = ["DistillResult", "DistillTrainer", "run_distill"]

log = logging.getLogger(__name__)


@dataclass
class DistillResult:
    step: int
    losses: dict[int, dict] = field(default_factory=dict)  # step -> {"generator_loss", "critic_loss", ...}
    exit_steps: dict[int, list[int]] = field(default_factory=dict)  # step -> the rollout's exit steps
    checkpoint: Path | None = None
    student: Path | None = None


def run_distill(config: str | Path | DistillConfig, resume: bool = False, *, stop_after: int | None = None
                ) -> DistillResult:
    """Run the stage ``config`` names; ``resume`` continues from the newest checkpoint. ``stop_after`` ends the
    run after that many total steps without a final checkpoint or student (as if killed; for tests)."""
    cfg = config if isinstance(config, DistillConfig) else load_distill_config(config)
    env = init_distributed(cfg.distributed.backend, cfg.distributed.device)
    try:
        return DistillTrainer(cfg, env).run(resume=resume, stop_after=stop_after)
    finally:
        shutdown(env)


def _wrap(model: SanaWMTransformer, env: DistEnv, strategy: str, *, streaming: bool = False) -> SanaWMTransformer:
    if not env.distributed or strategy == "none":
        return model
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    if streaming:
        register_fsdp_forward_method(model, "forward_chunk")
    return model


def _adamw(model, o: OptimConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)


def _clip_and_step(model, optimizer, clip: float | None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


class DistillTrainer:
    def __init__(self, cfg: DistillConfig, env: DistEnv) -> None:
        self.cfg, self.env, self.device = cfg, env, env.device
        seed_everything(cfg.seed)
        self.model_config = transformer_config(cfg)
        m, strategy = cfg.model, cfg.distributed.strategy
        self.generator = self._load(m.generator_init or m.teacher)
        self.generator.train()
        self.generator.gradient_checkpointing = m.gradient_checkpointing
        _wrap(self.generator, env, strategy, streaming=True)
        self.gen_optimizer = _adamw(self.generator, cfg.optimizer)
        self.critic = self.real_score = self.critic_optimizer = None
        if cfg.stage == "self_forcing":
            self.critic = self._load(m.critic_init or m.score_init)
            self.critic.train()
            self.critic.gradient_checkpointing = m.gradient_checkpointing
            _wrap(self.critic, env, strategy)
            self.critic_optimizer = _adamw(self.critic, cfg.self_forcing.critic_optimizer)
            dtype = torch.bfloat16 if m.real_score_dtype == "bf16" else torch.float32
            self.real_score = self._load(m.score_init, dtype).eval().requires_grad_(False)
            _wrap(self.real_score, env, strategy)
        self.trajectories = None
        if cfg.stage == "ode":
            self.trajectories = OdeTrajectories(cfg.ode_data.dir, cfg.denoising_steps, window=cfg.data.window,
                                                size=list(cfg.data.size))
        # The ODE stage's clips must start where the trajectories' did: at each clip's first frame.
        self.data = DistillData(cfg, env, self.generator.y_embedder.y_embedding,
                                window_mode="start" if cfg.stage == "ode" else None)
        if cfg.stage == "self_forcing" and cfg.data.text != "none":  # the real score's unconditional branch
            self.data.check_negative(cfg.self_forcing.negative_prompt, "self_forcing.negative_prompt")
        self.stream = SampleStream(self.data.dataset, cfg.data, env.rank)
        self.schedule = cfg.schedule
        self.exit_rng = torch.Generator().manual_seed(sample_seed(cfg.seed, "exit-steps"))
        s = cfg.self_forcing
        self.kv_window = KVWindow() if s.kv_window_chunks is None else KVWindow(max_chunks=s.kv_window_chunks,
                                                                                 sink=s.sink)
        self._metrics_file = None

    def _load(self, path: str, dtype: torch.dtype = torch.float32) -> SanaWMTransformer:
        # Every rank loads the full weights on the CPU and FSDP2 shards them afterwards.
        return from_pretrained(path, self.model_config, dtype=dtype, device=self.device)

    # -- randomness --------------------------------------------------------------------------------
    def _sample_generators(self, step: int, keys: list[str]) -> list[torch.Generator]:
        seen: dict[str, int] = {}
        out = []
        for key in keys:
            seen[key] = seen.get(key, -1) + 1
            out.append(torch.Generator().manual_seed(sample_seed(self.cfg.seed, self.cfg.stage, step, key, seen[key])))
        return out

    def _exit_steps(self, num_chunks: int) -> list[int]:
        steps = draw_exit_steps(self.exit_rng, num_chunks, self.schedule.num_steps,
                                same_for_all_chunks=self.cfg.self_forcing.same_exit_for_all_chunks)
        if self.env.distributed:  # rank 0 decides; every rank runs the same number of forwards
            shared = torch.tensor(steps, dtype=torch.int64)
            dist.broadcast(shared, src=0)
            steps = shared.tolist()
        return steps

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # -- the steps ---------------------------------------------------------------------------------
    def ode_step(self, step: int) -> dict:
        """One ODE-regression step: each chunk from a random snapshot, x0 MSE over the noisy frames."""
        batch = self.data.batch(self.stream.take(self.cfg.data.batch_size)).to(self.device)
        snapshots = torch.stack([self.trajectories[key] for key in batch.keys]).to(self.device)  # (B, S, C, T, H, W)
        B, _, _, T, _, _ = snapshots.shape
        lengths = chunk_schedule(T, self.model_config.chunk_frames)
        generators = self._sample_generators(step, batch.keys)
        x, timestep = ode_regression_inputs(snapshots, self.schedule.timesteps, lengths, generators)
        with self._autocast():
            velocity = self.generator(x, timestep[:, None], batch.text, batch.text_mask, batch.camera_vector,
                                      batch.plucker, mode="chunk_causal", chunk_lengths=lengths)
        x0 = x0_from_velocity(x, timestep / 1000, velocity)
        loss = x0_loss(x0, snapshots[:, -1], noisy_frames(B, T, self.device))
        loss.backward()
        norm = _clip_and_step(self.generator, self.gen_optimizer, self.cfg.optimizer.grad_clip)
        return {"generator_loss": float(all_reduce_mean(loss.detach(), self.env)), "generator_grad_norm": norm}

    def _score_x0(self, model, x_t: Tensor, sigma: Tensor, batch, text=None, text_mask=None) -> Tensor:
        text = batch.text if text is None else text
        text_mask = batch.text_mask if text_mask is None else text_mask
        with self._autocast():
            velocity = model(x_t, (1000 * sigma)[:, None], text, text_mask, batch.camera_vector, batch.plucker)
        return x0_from_velocity(x_t, sigma, velocity)

    def self_forcing_step(self, step: int) -> tuple[dict, list[int]]:
        """One Self-Forcing step: a rollout; on every ``generator_every``-th step a DMD update of the generator;
        then one flow-matching update of the critic on the rollout."""
        s = self.cfg.self_forcing
        batch = self.data.batch(self.stream.take(self.cfg.data.batch_size)).to(self.device)
        latents = batch.latents
        B, C, T, H, W = latents.shape
        generators = self._sample_generators(step, batch.keys)
        noise = rollout_noise(generators, self.schedule.num_steps, (C, T, H, W)).to(self.device)
        exit_steps = self._exit_steps(len(chunk_schedule(T, self.model_config.chunk_frames)))
        train_generator = step % s.generator_every == 0
        noisy = noisy_frames(B, T, self.device)
        metrics = {}

        def renoised(x_gen: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            t = torch.stack([score_timesteps(g, shift=s.score_shift, min_timestep=s.min_timestep,
                                             max_timestep=s.max_timestep) for g in generators]).to(self.device)
            sigma = frame_sigmas(t, T)
            eps = torch.stack([torch.randn((C, T, H, W), generator=g) for g in generators]).to(self.device)
            return make_noisy(x_gen.detach(), sigma, eps)[0], sigma, eps

        with torch.set_grad_enabled(train_generator), self._autocast():
            x_gen = self_forcing_rollout(self.generator, batch_conditioning(batch), latents[:, :, :1], T,
                                         self.schedule, exit_steps, noise, kv_window=self.kv_window)
        if train_generator:
            x_t, sigma, _ = renoised(x_gen)
            with torch.no_grad():
                x0_fake = self._score_x0(self.critic, x_t, sigma, batch)
                x0_cond = self._score_x0(self.real_score, x_t, sigma, batch)
                if self.cfg.data.text == "none":  # a text-free model: the unconditional branch is the same
                    x0_real = x0_cond
                else:
                    neg, neg_mask = self.data.negative_text(s.negative_prompt, B)
                    x0_uncond = self._score_x0(self.real_score, x_t, sigma, batch, neg.to(self.device),
                                               neg_mask.to(self.device))
                    x0_real = guided_x0(x0_cond, x0_uncond, s.guidance_scale)
            grad = dmd_gradient(x_gen.detach(), x0_fake, x0_real)
            loss = generator_loss(x_gen, grad, noisy)
            loss.backward()
            metrics["generator_grad_norm"] = _clip_and_step(self.generator, self.gen_optimizer,
                                                            self.cfg.optimizer.grad_clip)
            metrics["generator_loss"] = float(all_reduce_mean(loss.detach(), self.env))
        x_t, sigma, eps = renoised(x_gen)
        with self._autocast():
            velocity = self.critic(x_t, (1000 * sigma)[:, None], batch.text, batch.text_mask, batch.camera_vector,
                                   batch.plucker)
        loss = critic_loss(velocity, eps, x_gen, noisy)
        loss.backward()
        metrics["critic_grad_norm"] = _clip_and_step(self.critic, self.critic_optimizer,
                                                     s.critic_optimizer.grad_clip)
        metrics["critic_loss"] = float(all_reduce_mean(loss.detach(), self.env))
        return metrics, exit_steps

    # -- checkpoints and the student -----------------------------------------------------------------
    def save(self, step: int) -> Path:
        from sana_wm.distill.checkpoint import save_distill_checkpoint

        data_states = all_gather_objects(self.data.dataset.state_dict(), self.env)
        return save_distill_checkpoint(self, step, data_states)

    def _log(self, record: dict) -> None:
        if not self.env.is_main:
            return
        if self._metrics_file is None:
            self.cfg.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics_file = self.cfg.metrics_path.open("a")
        self._metrics_file.write(json.dumps(record) + "\n")
        self._metrics_file.flush()

    def run(self, *, resume: bool = False, stop_after: int | None = None) -> DistillResult:
        from sana_wm.distill.checkpoint import resume_point
        from sana_wm.distill.student import write_student

        cfg, env = self.cfg, self.env
        step = resume_point(self, resume)
        if env.is_main:
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            from dataclasses import asdict

            write_json_atomic(Path(cfg.output_dir) / "config.json", asdict(cfg), indent=2)
            trim_metrics(cfg.metrics_path, step)
        result = DistillResult(step=step)
        end = cfg.steps if stop_after is None else min(stop_after, cfg.steps)
        bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.logging.progress_bar and env.is_main),
                   desc=f"distill ({cfg.stage})")
        try:
            while step < end:
                t0 = time.perf_counter()
                if cfg.stage == "ode":
                    metrics, exits = self.ode_step(step), None
                else:
                    metrics, exits = self.self_forcing_step(step)
                    result.exit_steps[step + 1] = exits
                step += 1
                result.step = step
                result.losses[step] = metrics
                if step % cfg.logging.every == 0:
                    self._log({"step": step, "stage": cfg.stage, **metrics, "exit_steps": exits,
                               "seconds": time.perf_counter() - t0})
                bar.update(1)
                final = step == cfg.steps
                if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or (final and cfg.checkpoint.save_final):
                    result.checkpoint = self.save(step)
                if final:
                    result.student = write_student(self, step)
        finally:
            bar.close()
            if self._metrics_file is not None:
                self._metrics_file.close()
        return result
