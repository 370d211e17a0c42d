"""The training loop: data -> latents -> noise -> forward -> flow-matching loss -> AdamW step.

``run_training(config, resume)`` is the whole public surface (the ``sana-wm train`` command calls it).
One optimizer step per iteration; each rank runs ``accumulation`` micro-batches of ``batch_size`` samples
and sums their gradients, so the global batch is ``batch_size x accumulation x world size``. Progressive
``stages`` switch clip length, resolution, batch size, accumulation, learning rate and trainable
parameters at their boundaries. With a ``lora`` section the base model is
frozen and peft adapters train instead (:mod:`~sana_wm.train.lora`); stage ``trainable`` patterns then
choose among the adapter's parameters. Metrics go to a JSONL file (one object per
line: ``{"step", "stage", "loss", "grad_norm", "lr", "global_batch", "samples_per_s", ...}`` and
``{"step", "val_loss"}``).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from sana_wm.data import CachedLatentDataset, ClipDataset, LatentCache
from sana_wm.errors import ConfigError
from sana_wm.io import write_json_atomic, write_text_atomic
from sana_wm.model import SanaWMConfig, SanaWMTransformer, chunk_schedule, from_pretrained
from sana_wm.train.checkpoint import load_checkpoint, resume_checkpoint, save_checkpoint, seed_everything
from sana_wm.train.config import TrainConfig, config_from_dict, config_to_dict, load_config, named_config
from sana_wm.train.data import HashTextEncoder, ModelBatch, SampleStream, SyntheticEncoder, build_batch
from sana_wm.train.distributed import (
    DistEnv,
    all_gather_objects,
    all_reduce_mean,
    init_distributed,
    shutdown,
    wrap_model,
)
from sana_wm.train.lora import LoraAdapter, apply_lora, base_fingerprint
from sana_wm.train.objective import (
    NoisePlan,
    channel_loss_weights,
    flow_loss,
    make_noisy,
    sample_noise_plan,
    sample_seed,
)
from sana_wm.train.text_states import CaptionStates

__all__ = ["TrainResult", "Trainer", "run_training"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    step: int  # optimizer steps completed in total (including those before a resume)
    losses: dict[int, float] = field(default_factory=dict)  # step -> global-batch training loss (this run)
    val_losses: dict[int, float] = field(default_factory=dict)  # step -> validation loss (this run)
    checkpoint: Path | None = None  # the newest checkpoint written by this run
    world_size: int = 1


def run_training(config: str | Path | TrainConfig, resume: bool = False, *, stop_after: int | None = None
                 ) -> TrainResult:
    """Train as ``config`` (a YAML path or a :class:`TrainConfig`) says; ``resume`` continues from the
    newest checkpoint in the checkpoint directory. ``stop_after`` ends the run after that many total
    steps without a final checkpoint (as if it had been killed; for tests)."""
    cfg = config if isinstance(config, TrainConfig) else load_config(config)
    env = init_distributed(cfg.distributed.backend, cfg.distributed.device)
    try:
        return Trainer(cfg, env).run(resume=resume, stop_after=stop_after)
    finally:
        shutdown(env)


class Trainer:
    @classmethod
    def for_weights(cls, config: dict, weights: str | Path, output_dir: str | Path,
                    env: DistEnv | None = None) -> Trainer:
        """A trainer of ``config`` (a config mapping as read from YAML, not modified) holding ``weights``
        in place of ``model.init_from``, writing only under ``output_dir``, with its first stage's dataset
        built so that :meth:`validate` and the validation set work: what scripts that score checkpoints
        on a config's clips need."""
        raw = copy.deepcopy(config)
        raw.setdefault("model", {})["init_from"] = str(weights)
        raw["output_dir"] = str(output_dir)
        trainer = cls(config_from_dict(raw), env or init_distributed())
        trainer._enter_stage(0)
        return trainer

    def __init__(self, cfg: TrainConfig, env: DistEnv):
        self.cfg, self.env, self.device = cfg, env, env.device
        seed_everything(cfg.seed)

        self.model_config = self._model_config()
        lora = cfg.lora
        base_dtype = torch.bfloat16 if lora is not None and lora.base_dtype == "bf16" else torch.float32
        if cfg.model.init_from:
            model = from_pretrained(cfg.model.init_from, self.model_config, dtype=base_dtype, device=self.device)
        else:
            model = SanaWMTransformer(self.model_config).to(self.device)  # initialised on the CPU: seed-exact
        model.train()
        model.gradient_checkpointing = cfg.model.gradient_checkpointing
        self.lora: LoraAdapter | None = None
        self.lora_base: dict | None = None
        if lora is not None:
            # What the adapter is trained on, so a resume or a merge can check it gets the same weights.
            init_from = str(Path(cfg.model.init_from).resolve())
            self.lora_base = {"init_from": init_from, "model_config": self.model_config.to_dict(),
                              "dtype": lora.base_dtype, "fingerprint": base_fingerprint(model)}
            self.lora = apply_lora(model, lora, base=init_from)
            if env.is_main:
                total = sum(p.numel() for p in model.parameters())
                log.info("LoRA rank %d on %d layers: %d trainable parameters (%.2f%% of %d)", lora.rank,
                         len(self.lora.modules.targets), self.lora.num_trainable(),
                         100 * self.lora.num_trainable() / total, total)
        self.raw_model = model
        self.model = wrap_model(model, env, cfg.distributed.strategy)
        # A model wrapper (model.wrapper: the bundled model's parameterisation) is called around the transformer,
        # with extra conditioning built per batch; checkpoints still hold the transformer alone.
        self.wrapper = None
        if cfg.model.wrapper is not None:
            from sana_wm.bundled.training import WarpPriorTraining

            self.wrapper = WarpPriorTraining.from_spec(cfg.model.wrapper)
        self.denoiser = self.wrapper.wrap(self.model) if self.wrapper is not None else self.model
        # LoRA: only the adapter is handed to AdamW (frozen weights would get no state anyway, but this
        # keeps the FSDP optimizer state dict small); likewise the EMA shadows only what can change.
        tunable = set(self.lora.param_names) if self.lora is not None else None
        named = [(n, p) for n, p in self.raw_model.named_parameters() if tunable is None or n in tunable]
        o = cfg.optimizer
        self.optimizer = torch.optim.AdamW([p for _, p in named], lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                           weight_decay=o.weight_decay)
        self.ema = {n: p.detach().clone() for n, p in named} if cfg.ema.decay > 0 else None
        obj = cfg.objective
        self.channel_weight = None if obj.channel_weights is None else channel_loss_weights(
            obj.channel_weights, obj.channel_weight_power, self.model_config.in_channels).to(self.device)

        self.encoder = SyntheticEncoder(self.model_config.in_channels, cfg.data.spatial_stride)
        if cfg.data.text == "none":  # a text-free model: every caption is the null caption
            self.text_encoder = self._null_states
        elif cfg.data.text == "text_cache":  # Gemma-2 states written once by sana-wm data encode-text
            roots = [cfg.data.root] + ([cfg.validation.root] if cfg.validation.root else [])
            self.text_encoder = CaptionStates(roots, channels=self.model_config.caption_channels)
        else:
            self.text_encoder = HashTextEncoder(self.model_config.caption_channels, self.model_config.caption_length)
        self.latent_cache = LatentCache(cfg.data.root) if cfg.data.latents == "latent_cache" else None
        self.stage_index: int | None = None
        self._metrics_file = None
        self._tensorboard = None

    def _model_config(self) -> SanaWMConfig:
        m = self.cfg.model
        return named_config(m.name) if m.name is not None else SanaWMConfig.load_json(m.config_path)

    # -- data --------------------------------------------------------------------------------------
    def _dataset(self, data, *, root: str, shuffle: bool, window_mode: str, crop: str) -> ClipDataset:
        kind = CachedLatentDataset if data.latents == "latent_cache_only" else ClipDataset
        return kind(root, window=data.window, fps=data.fps, size=tuple(data.size), crop=crop,
                           seed=self.cfg.seed, shuffle=shuffle, window_mode=window_mode,
                           quality_ranges={k: tuple(v) for k, v in data.quality_ranges.items()}, load_depth=False,
                           rank=self.env.rank, world_size=self.env.world_size)

    def _enter_stage(self, index: int, data_state: dict | None = None) -> None:
        cfg = self.cfg
        self.stage_index = index
        stage = cfg.stages[index]
        self.data = cfg.stage_data(index)
        tunable = set(self.lora.param_names) if self.lora is not None else None
        for name, p in self.raw_model.named_parameters():
            p.requires_grad_((tunable is None or name in tunable)
                             and any(fnmatch.fnmatchcase(name, pat) for pat in stage.trainable))
        if not any(p.requires_grad for p in self.raw_model.parameters()):
            among = (" of the LoRA adapter (names like blocks.0.attn.qkv.lora_A.default.weight)"
                     if self.lora is not None else "")
            raise ConfigError(f"stages[{index}].trainable: the patterns {stage.trainable} match no parameter{among}")
        self.dataset = self._dataset(self.data, root=self.data.root, shuffle=self.data.shuffle,
                                     window_mode=self.data.window_mode, crop=self.data.crop)
        if data_state is not None:
            self.dataset.load_state_dict(data_state)
        self._stream = SampleStream(self.dataset, self.data, self.env.rank)
        self._val_set = None  # rebuilt at this stage's clip length and resolution

    def _next_samples(self, n: int) -> list[dict]:
        return self._stream.take(n)

    def _batch(self, samples: list[dict]) -> ModelBatch:
        return build_batch(samples, encoder=self.encoder, text_encoder=self.text_encoder,
                           spatial_stride=self.data.spatial_stride, camera=self.data.camera,
                           latent_cache=self.latent_cache)

    def _conditioned(self, batch: ModelBatch, plans: list[NoisePlan]) -> ModelBatch:
        """``batch`` with the model wrapper's extra conditioning (if any), built once per clip: along the clip's
        camera, or a standing camera's where its plan drops the camera (a model that drops its camera stands
        still in its prior too)."""
        if self.wrapper is None:
            return batch
        cameras = [None if p.drop_camera else c for p, c in zip(plans, batch.cameras, strict=True)]
        return replace(batch, extra=self.wrapper.extra(batch.latents, cameras))

    def _plans(self, batch: ModelBatch, *parts, train: bool, seen: dict | None = None
               ) -> tuple[list[NoisePlan], Tensor]:
        """Per-sample noise plans and noise, each from a generator seeded by the run seed, ``parts``
        (e.g. the step) and the clip key, so a sample's noise does not depend on rank, batch position or
        micro-batch. ``seen`` counts each key's earlier occurrences in the step (shared by its micro-batches)."""
        plans, noises = [], []
        seen = {} if seen is None else seen
        T = batch.latents.shape[2]
        for key in batch.keys:
            seen[key] = seen.get(key, -1) + 1
            g = torch.Generator().manual_seed(sample_seed(self.cfg.seed, *parts, key, seen[key]))
            plans.append(sample_noise_plan(self.cfg.objective, T, g, chunk_lengths=self._chunk_lengths(T),
                                           train=train))
            noises.append(torch.randn(batch.latents.shape[1:], generator=g))
        return plans, torch.stack(noises)

    # -- the step ------------------------------------------------------------------------------------
    def _loss(self, batch: ModelBatch, plans: list[NoisePlan], noise: Tensor) -> tuple[Tensor, Tensor]:
        cfg, dev = self.cfg, self.device
        batch = batch.to(dev)
        sigma = torch.stack([p.sigma for p in plans]).to(dev)  # (B, T)
        loss_mask = torch.stack([p.loss_mask for p in plans]).to(dev)
        x_t, target = make_noisy(batch.latents, sigma, noise.to(dev))
        timestep = (1000 * sigma)[:, None, :]  # (B, 1, T); the model floors it
        text, text_mask = batch.text.clone(), batch.text_mask.clone()
        if any(p.drop_caption for p in plans):
            null_text, null_mask = self._null_caption()
            for i, p in enumerate(plans):
                if p.drop_caption:
                    text[i], text_mask[i] = null_text.to(dev), null_mask.to(dev)
        T = x_t.shape[2]
        obj = cfg.objective
        chunked = obj.recipe == "chunk_causal"
        kwargs = {"mode": "chunk_causal" if chunked else "bidirectional", "chunk_lengths": self._chunk_lengths(T)}
        # Camera dropout: one forward for the whole batch, the dropped rows masked out of both camera
        # branches, so every rank runs the same collectives whichever rows it dropped.
        has_camera = torch.tensor([not p.drop_camera for p in plans], device=dev)
        extra = {} if batch.extra is None else {"extra": batch.extra}  # dropped cameras in it too: _conditioned
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            pred = self.denoiser(x_t, timestep, text, text_mask, batch.camera_vector, batch.plucker, **kwargs,
                                 camera_mask=has_camera, **extra)
        weight = sigma.square() if obj.loss_weighting == "x0" else None  # x0 error = sigma * velocity error
        return flow_loss(pred, target, loss_mask, weight, self.channel_weight)

    def _chunk_lengths(self, num_frames: int) -> list[int] | None:
        """The model's chunks over ``num_frames`` latent frames for the chunk-causal recipe; None otherwise."""
        if self.cfg.objective.recipe != "chunk_causal":
            return None
        return chunk_schedule(num_frames, self.model_config.chunk_frames)

    def _null_states(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """``data.text: none``: the null caption (``y_embedder.y_embedding``) for every sample."""
        y = self.raw_model.y_embedder.y_embedding.detach().float().cpu()
        n = len(captions)
        return y.expand(n, -1, -1).clone(), torch.ones(n, y.shape[0], dtype=torch.bool)

    def _null_caption(self) -> tuple[Tensor, Tensor]:
        if self.cfg.objective.null_caption == "empty_prompt" and self.cfg.data.text != "none":
            text, mask = self.text_encoder.empty_prompt()
            return text[0], mask[0]
        y = self.raw_model.y_embedder.y_embedding.detach()
        return y, torch.ones(y.shape[0], dtype=torch.bool)

    def _lr(self, step: int) -> float:
        lr = self.cfg.stage_lr(self.stage_index)
        s = self.cfg.schedule
        if s.kind == "warmup":
            lr *= min(1.0, (step + 1) / s.warmup_steps)
        return lr

    def accumulate_gradients(self, step: int) -> tuple[Tensor, set[str]]:
        """The forwards and backwards of optimizer step ``step`` (0-based): ``data.accumulation`` micro-batches,
        their gradients summed into ``.grad`` with each loss divided by the count, so the gradient is that of
        the mean loss over every sample of the step. Returns that mean loss (this rank) and the strategies used."""
        n = self.data.accumulation
        seen: dict[str, int] = {}
        total, strategies = torch.zeros((), device=self.device), set()
        for _ in range(n):
            batch = self._batch(self._next_samples(self.data.batch_size))
            plans, noise = self._plans(batch, "train", step, train=True, seen=seen)
            loss, _ = self._loss(self._conditioned(batch, plans), plans, noise)
            # Each micro-batch's backward also reduces gradients across ranks (FSDP2/DDP); summing the
            # reduced means gives the same result as reducing once at the end.
            (loss / n).backward()
            total += loss.detach().float()
            strategies |= {p.strategy for p in plans}
        return total / n, strategies

    def train_step(self, step: int) -> dict:
        """One optimizer step (``step`` is 0-based); returns its metrics."""
        t0 = time.perf_counter()
        loss, strategies = self.accumulate_gradients(step)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.optimizer.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        lr = self._lr(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            with torch.no_grad():
                for name, p in self.raw_model.named_parameters():
                    if name in self.ema:
                        self.ema[name].lerp_(p.detach(), 1 - self.cfg.ema.decay)
        global_loss = float(all_reduce_mean(loss.detach().float(), self.env))
        seconds = time.perf_counter() - t0
        return {"step": step + 1, "stage": self.stage_index, "loss": global_loss, "grad_norm": float(grad_norm),
                "lr": lr, "epoch": self.dataset.epoch, "global_batch": self.global_batch,
                "samples_per_s": self.global_batch / seconds, "strategies": sorted(strategies)}

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step in the current stage, over all ranks."""
        return self.data.batch_size * self.data.accumulation * self.env.world_size

    # -- validation ----------------------------------------------------------------------------------
    def _build_val_set(self) -> list:
        v = self.cfg.validation
        data = self.data
        dataset = self._dataset(data, root=v.root or data.root, shuffle=False, window_mode="start", crop="center")
        bs = v.batch_size or data.batch_size
        samples = list(dataset)
        batches = [samples[i:i + bs] for i in range(0, len(samples), bs)]
        if v.num_batches is not None:
            batches = batches[:v.num_batches]
        # Every rank must run the same number of forwards (FSDP gathers weights collectively).
        count = torch.tensor(float(len(batches)))
        if self.env.distributed:
            torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN)
        out = []
        for group in batches[:int(count)]:
            batch = self._batch(group)
            plans, noise = self._plans(batch, "validation", train=False)  # the same noise at every evaluation
            out.append((self._conditioned(batch, plans), plans, noise))
        if not out:
            raise RuntimeError(f"validation: no usable clips in {v.root or data.root} for rank {self.env.rank}")
        return out

    @torch.no_grad()
    def validate(self) -> float:
        if self._val_set is None:
            self._val_set = self._build_val_set()
        total = torch.zeros(2, dtype=torch.float64)
        for batch, plans, noise in self._val_set:
            _, per_sample = self._loss(batch, plans, noise)
            total += torch.tensor([float(per_sample.sum()), per_sample.numel()], dtype=torch.float64)
        if self.env.distributed:
            torch.distributed.all_reduce(total)
        return float(total[0] / total[1])

    # -- bookkeeping -----------------------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        if not self.env.is_main:
            return
        if self._metrics_file is None:
            path = self.cfg.metrics_path
            path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics_file = path.open("a")
        self._metrics_file.write(json.dumps(record) + "\n")
        self._metrics_file.flush()
        if self._tensorboard is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tensorboard.add_scalar(k, v, record["step"])

    def _trim_metrics(self, step: int) -> None:
        trim_metrics(self.cfg.metrics_path, step)

    def _open_tensorboard(self) -> None:
        if not (self.cfg.logging.tensorboard and self.env.is_main):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("logging.tensorboard is on but the tensorboard package is not installed; "
                        "metrics go to %s only", self.cfg.metrics_path)
            return
        self._tensorboard = SummaryWriter(str(Path(self.cfg.output_dir) / "tensorboard"))

    def save(self, step: int) -> Path:
        data_states = all_gather_objects(self.dataset.state_dict(), self.env)
        state = {"stage": self.stage_index, "schedule": {"kind": self.cfg.schedule.kind, "step": step},
                 "batch": {"batch_size": self.data.batch_size, "accumulation": self.data.accumulation,
                           "global_batch": self.global_batch},
                 "config": config_to_dict(self.cfg)}
        return save_checkpoint(self.cfg.checkpoint_dir, step, env=self.env, model=self.model,
                               optimizer=self.optimizer, model_config=self.model_config.to_dict(),
                               trainer_state=state, data_states=data_states, ema=self.ema,
                               keep_last=self.cfg.checkpoint.keep_last, lora=self.lora, lora_base=self.lora_base,
                               wrapper=self.wrapper.settings_dict() if self.wrapper is not None else None)

    # -- the loop --------------------------------------------------------------------------------------
    def run(self, *, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        cfg, env = self.cfg, self.env
        step = 0
        ckpt = resume_checkpoint(cfg.checkpoint_dir, resume, is_main=env.is_main)
        if ckpt is not None:
            state = load_checkpoint(ckpt, env=env, model=self.model, optimizer=self.optimizer, ema=self.ema,
                                    lora=self.lora, lora_base=self.lora_base)
            step = state["step"]
            stage, start = cfg.stage_at(step)
            # A checkpoint taken exactly at a stage boundary belongs to the stage that just ended.
            same_stage = state["stage"] == stage
            self._enter_stage(stage, state["data"][env.rank] if same_stage else None)
            if env.is_main:
                log.info("resumed from %s at step %d (stage %d)", ckpt, step, stage)
                saved_batch = state.get("batch", {}).get("global_batch")
                if same_stage and saved_batch is not None and saved_batch != self.global_batch:
                    log.warning("the global batch changes at this resume: %d samples per step before, %d now "
                                "(data.batch_size x data.accumulation x ranks)", saved_batch, self.global_batch)
        else:
            self._enter_stage(0)
        if env.is_main:
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(cfg.output_dir) / "config.json", config_to_dict(cfg), indent=2)
            self._trim_metrics(step)
        self._open_tensorboard()

        result = TrainResult(step=step, world_size=env.world_size)
        end = cfg.total_steps if stop_after is None else min(stop_after, cfg.total_steps)
        v = cfg.validation
        if v.every and v.at_start and step == 0:
            result.val_losses[0] = self.validate()
            self._log({"step": 0, "val_loss": result.val_losses[0]})
        bar = tqdm(total=cfg.total_steps, initial=step, disable=not (cfg.logging.progress_bar and env.is_main),
                   dynamic_ncols=True)
        try:
            while step < end:
                stage, _ = cfg.stage_at(step)
                if stage != self.stage_index:
                    self._enter_stage(stage)
                metrics = self.train_step(step)
                step += 1
                result.step = step
                result.losses[step] = metrics["loss"]
                if step % cfg.logging.every == 0:
                    self._log(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", samples_s=f"{metrics['samples_per_s']:.2f}")
                if v.every and step % v.every == 0:
                    result.val_losses[step] = self.validate()
                    self._log({"step": step, "val_loss": result.val_losses[step]})
                    if env.is_main and cfg.logging.progress_bar:
                        bar.write(f"step {step}: validation loss {result.val_losses[step]:.5f}")
                final = step == cfg.total_steps and cfg.checkpoint.save_final
                if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or final:
                    result.checkpoint = self.save(step)
        finally:
            bar.close()
            if self._metrics_file is not None:
                self._metrics_file.close()
            if self._tensorboard is not None:
                self._tensorboard.close()
        return result


def trim_metrics(path: Path, step: int) -> None:
    """Drop the records of a metrics JSONL file for steps after ``step`` (those a killed run logged after its last
    checkpoint, which the resumed run logs again) and a line cut off by the kill, so no step appears twice."""
    if not path.is_file():
        return
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = 0 < record["step"] <= step
        except (ValueError, TypeError, KeyError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))
        log.info("%s: dropped %d record(s) after step %d, which this run writes again", path, dropped, step)
