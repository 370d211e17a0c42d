"""Distillation works: a tiny teacher trained on the synthetic world, distilled into a 4-step streaming student
(ODE regression, then Self-Forcing + DMD), scored against the teacher's 50-step samples.

Everything runs on the CPU in one process, from scratch, seeded:

1. render the synthetic world (train and held-out scenes, 25 frames at 32x32: 4 latent frames of 4x4 with the
   synthetic encoder);
2. train the ``tiny`` transformer with 1-frame chunks (chunks [2, 1, 1]: three streamed chunks at the least cost)
   bidirectionally (the critic's and real score's start), then fine-tune it
   chunk-causally (the teacher), text-free;
3. `ode-data` on the train scenes, the ODE stage, then the Self-Forcing stage from the ODE student;
4. on the held-out scenes (``--eval-scenes``) times ``--draws`` noise draws, each row from the same noise: the
   teacher's ODE with 50 steps (the reference), the teacher with the student's 4 timesteps, and both students
   streaming with them; latent PSNR against the reference, Fréchet distances to the reference samples and to the
   data (:mod:`sana_wm.distill.evaluation`), each with a 90 % paired-bootstrap interval, each student's difference
   to the 4-step teacher with its interval, and the sampling time of each.

    python benchmarks/bench_distill.py --out runs/bench_distill          # the full setting
    python benchmarks/bench_distill.py --out /tmp/b --scale 0.3          # the table in docs/benchmarks.md
    python benchmarks/bench_distill.py --out /tmp/b --scale 0.3 --reuse --ode-steps 120   # continue the ODE stage

Prints a markdown table and writes ``results.json`` in ``--out``; the machine's load average is printed with it
(timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

SIZE, FRAMES, STRIDE, BATCH = 32, 25, 8, 4


MODEL_CONFIG = Path("tiny-chunk1.json")  # set in main(), inside --out


def _write_model_config(path: Path) -> Path:
    import dataclasses

    from sana_wm.model import get_config

    path.parent.mkdir(parents=True, exist_ok=True)
    dataclasses.replace(get_config("tiny"), chunk_frames=1).save_json(path)
    return path


def _train_config(out: Path, data: Path, steps: int, recipe: str, init_from: str | None, lr: float):
    from sana_wm.train import config_from_dict

    return config_from_dict({
        "output_dir": str(out), "seed": 0,
        "model": {"name": None, "config_path": str(MODEL_CONFIG), "init_from": init_from},
        "data": {"root": str(data), "window": FRAMES, "size": [SIZE, SIZE], "spatial_stride": STRIDE,
                 "batch_size": BATCH, "shuffle": True, "window_mode": "start", "text": "none"},
        "objective": {"recipe": recipe, "shift": 3.0, "image_condition_prob": 1.0, "caption_dropout_prob": 0.0},
        "optimizer": {"lr": lr, "grad_clip": 0.5},
        "schedule": {"kind": "warmup", "warmup_steps": 20},
        "stages": [{"steps": steps}],
        "checkpoint": {"every": 0, "keep_last": 1},
        "logging": {"progress_bar": True},
    })


def _distill_config(out: Path, data: Path, stage: str, steps: int, **model):
    from sana_wm.distill import distill_config_from_dict

    return distill_config_from_dict({
        "output_dir": str(out), "seed": 0, "stage": stage, "steps": steps,
        "model": {"name": None, "config_path": str(MODEL_CONFIG), **model},
        "data": {"root": str(data), "window": FRAMES, "size": [SIZE, SIZE], "spatial_stride": STRIDE,
                 "batch_size": BATCH, "shuffle": True, "window_mode": "start", "text": "none"},
        "ode_data": {"dir": str(out.parent / "ode_data"), "teacher_steps": 50, "teacher_shift": 3.0},
        # A tiny model a few hundred steps from its teacher: learning rates far above the released 2e-5 / 1e-5.
        "optimizer": {"lr": 3e-4, "weight_decay": 0.01, "grad_clip": 1.0} if stage == "ode" else
                     {"lr": 3e-5, "betas": [0.0, 0.999], "weight_decay": 0.0, "grad_clip": 10.0},
        "self_forcing": {"critic_optimizer": {"lr": 1e-4, "betas": [0.0, 0.999], "weight_decay": 0.0,
                                              "grad_clip": 10.0}},
        "checkpoint": {"every": 0, "keep_last": 1},
        "logging": {"progress_bar": True},
    })


def evaluate(teacher_path: Path, students: dict[str, Path], eval_data: Path, *, draws: int = 1,
             reference_steps: int = 50, rounds: int = 1000) -> dict:
    """The table's rows on every clip of ``eval_data`` times ``draws`` noise draws: ``{name: {"psnr", "fd_teacher",
    "fd_data", "seconds", "speedup"}}``, each metric with its 90 % paired-bootstrap interval (``*_interval``) and,
    for the students, its difference to the 4-step teacher's (``*_vs_teacher4``: value and interval)."""
    import numpy as np

    from sana_wm.distill.data import DistillData, batch_conditioning
    from sana_wm.distill.evaluation import (
        frechet_distance,
        latent_psnr,
        paired_bootstrap,
        student_samples,
        teacher_samples,
    )
    from sana_wm.model import from_pretrained
    from sana_wm.samplers import SigmaSchedule
    from sana_wm.samplers.schedules import DISTILL_TIMESTEPS
    from sana_wm.train.distributed import init_distributed

    cfg = _distill_config(Path("/nonexistent/x"), eval_data, "ode", 1, teacher=str(teacher_path))
    teacher = from_pretrained(teacher_path, dtype=torch.float32)
    data = DistillData(cfg, init_distributed(), teacher.y_embedder.y_embedding, shuffle=False)
    batch = data.batch(list(data.dataset))
    cond, first, T = batch_conditioning(batch), batch.latents[:, :, :1], batch.latents.shape[2]
    four = SigmaSchedule.from_timesteps(DISTILL_TIMESTEPS)
    reference_name = f"teacher, {reference_steps} steps (reference)"
    samplers = {reference_name: lambda noise: teacher_samples(teacher, cond, first, T,
                                                              SigmaSchedule.shifted(reference_steps, 3.0), noise),
                "teacher, 4 steps": lambda noise: teacher_samples(teacher, cond, first, T, four, noise)}
    for name, path in students.items():
        student = from_pretrained(path, dtype=torch.float32)
        samplers[name] = lambda noise, student=student: student_samples(student, cond, first, T, four, noise)
    samples = {name: [] for name in samplers}
    seconds = dict.fromkeys(samplers, 0.0)
    for draw in range(draws):  # every sampler starts from the same noise in each draw
        noise = torch.randn(batch.latents.shape, generator=torch.Generator().manual_seed(1234 + draw))
        for name, sample in samplers.items():
            t0 = time.perf_counter()
            samples[name].append(sample(noise))
            seconds[name] += time.perf_counter() - t0
    # Sample i of every row comes from the same clip and noise draw; the data row repeats the clips per draw.
    samples = {name: torch.cat(parts) for name, parts in samples.items()}
    reference, data_latents = samples[reference_name], batch.latents.repeat(draws, 1, 1, 1, 1)
    metrics = {"psnr": (latent_psnr, reference), "fd_teacher": (frechet_distance, reference),
               "fd_data": (frechet_distance, data_latents)}
    rows = {name: {"seconds": seconds[name], "speedup": seconds[reference_name] / seconds[name]} for name in samplers}
    for key, (metric, against) in metrics.items():
        candidates = {name: x for name, x in samples.items() if not (name == reference_name and against is reference)}
        spread = paired_bootstrap(candidates, against, metric, rounds=rounds)
        for name, x in candidates.items():
            rows[name][key] = metric(x, against)
            rows[name][f"{key}_interval"] = [float(v) for v in np.quantile(spread[name], [0.05, 0.95])]
            if name in students:
                diff = spread[name] - spread["teacher, 4 steps"]
                rows[name][f"{key}_vs_teacher4"] = {
                    "value": rows[name][key] - rows["teacher, 4 steps"][key],
                    "interval": [float(v) for v in np.quantile(diff, [0.05, 0.95])]}
    rows[reference_name] |= {"psnr": float("inf"), "fd_teacher": 0.0}
    return rows | {"_clips": len(batch.keys), "_draws": draws}


def _finished(run: Path, steps: int, reuse: bool) -> Path | None:
    """A training run's final checkpoint, when ``reuse`` and an earlier run wrote it."""
    final = run / "checkpoints" / f"step-{steps:08d}"
    return final if reuse and (final / "model.safetensors").is_file() else None


def _distill_stage(cfg, reuse: bool, redo: bool = False) -> tuple[Path, bool]:
    """The stage's student and whether it was (re)trained now. With ``reuse`` an earlier run in the same folder is
    kept when it finished this config, and continued from its last checkpoint when only ``steps`` was raised;
    otherwise (or with ``redo``: its input changed) the folder is cleared and the stage runs from scratch."""
    import dataclasses
    import shutil

    from sana_wm.distill import run_distill

    out = Path(cfg.output_dir)
    saved = out / "config.json"
    if reuse and not redo and saved.is_file():
        before, now = json.loads(saved.read_text()), json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
        if {**before, "steps": 0} == {**now, "steps": 0} and before["steps"] <= cfg.steps:
            student = out / "student"
            if before["steps"] == cfg.steps and (student / "transformer" / "model.safetensors").is_file():
                return student, False
            return run_distill(cfg, resume=True).student, True
    shutil.rmtree(out, ignore_errors=True)
    return run_distill(cfg).student, True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/bench_distill")
    p.add_argument("--scale", type=float, default=1.0, help="multiply scene counts and step counts")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ode-steps", type=int, help="ODE-regression steps (default: 200 x scale)")
    p.add_argument("--sf-steps", type=int, help="Self-Forcing steps (default: 100 x scale)")
    p.add_argument("--eval-scenes", type=int, default=16, help="held-out scenes (default 16, whatever the scale)")
    p.add_argument("--draws", type=int, default=4, help="noise draws per held-out clip (default 4)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the intervals")
    p.add_argument("--reuse", action="store_true",
                   help="keep what an earlier run in --out finished (teachers, trajectories, students); a stage "
                        "whose step count was raised continues from its last checkpoint (and the stages after it "
                        "run again)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from sana_wm.distill import write_ode_data
    from sana_wm.synth.dataset import write_synthetic_dataset
    from sana_wm.train import run_training

    out = Path(args.out)
    global MODEL_CONFIG
    MODEL_CONFIG = _write_model_config(out / "tiny-chunk1.json")
    s = args.scale
    n = {"train_scenes": int(32 * s), "eval_scenes": args.eval_scenes, "bi_steps": int(300 * s),
         "cc_steps": int(150 * s), "ode_steps": int(200 * s), "sf_steps": int(100 * s)}
    n["ode_steps"] = args.ode_steps or n["ode_steps"]
    n["sf_steps"] = args.sf_steps or n["sf_steps"]
    times = {}
    t0 = time.perf_counter()
    for name, count, seed in (("train", n["train_scenes"], 0), ("eval", n["eval_scenes"], 10_000)):
        if not (out / name / "index.json").is_file():
            write_synthetic_dataset(out / name, count, seed=seed, frames_codec="npz", seconds=(FRAMES - 1) / 16,
                                    fps=16.0, size=(SIZE, SIZE), with_depth=False, progress=True)
    times["render"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bi = _finished(out / "bidirectional", n["bi_steps"], args.reuse) or run_training(
        _train_config(out / "bidirectional", out / "train", n["bi_steps"], "bidirectional", None, 2e-3)).checkpoint
    cc = _finished(out / "chunk_causal", n["cc_steps"], args.reuse) or run_training(
        _train_config(out / "chunk_causal", out / "train", n["cc_steps"], "chunk_causal", str(bi), 1e-3)).checkpoint
    times["teachers"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ode_cfg = _distill_config(out / "ode", out / "train", "ode", n["ode_steps"], teacher=str(cc))
    write_ode_data(ode_cfg)
    times["ode_data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ode, ode_trained = _distill_stage(ode_cfg, args.reuse)
    times["ode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sf, _ = _distill_stage(_distill_config(out / "self_forcing", out / "train", "self_forcing", n["sf_steps"],
                                           generator_init=str(ode / "transformer"), score_init=str(bi)),
                           args.reuse, redo=ode_trained)
    times["self_forcing"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = evaluate(cc, {"student after ODE, 4 steps": ode / "transformer",
                         "student after DMD, 4 steps": sf / "transformer"}, out / "eval", draws=args.draws,
                    rounds=args.bootstrap)
    times["evaluation"] = time.perf_counter() - t0
    clips, draws = rows.pop("_clips"), rows.pop("_draws")
    load = os.getloadavg()
    print(f"\n{clips} held-out clips x {draws} noise draws, {FRAMES} frames at {SIZE}x{SIZE}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; stage times (s): "
          + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print("90 % paired-bootstrap intervals over the clip x draw samples in brackets.")
    print("| sampler | latent PSNR vs 50-step teacher (dB) | FD to teacher samples | FD to data | sampling s | "
          "speed-up |")
    print("|---|---|---|---|---|---|")

    def cell(r: dict, key: str, fmt: str) -> str:
        if f"{key}_interval" not in r:
            return "-" if key == "psnr" else "0"
        low, high = r[f"{key}_interval"]
        return f"{r[key]:{fmt}} [{low:{fmt}}, {high:{fmt}}]"

    for name, r in rows.items():
        print(f"| {name} | {cell(r, 'psnr', '.2f')} | {cell(r, 'fd_teacher', '.4f')} | {cell(r, 'fd_data', '.4f')} "
              f"| {r['seconds']:.1f} | {r['speedup']:.1f}x |")
    print("\nstudent minus the 4-step teacher (PSNR: higher is closer; FD: lower is closer):")
    for name, r in rows.items():
        if "psnr_vs_teacher4" in r:
            parts = [f"{key} {r[f'{key}_vs_teacher4']['value']:+.4f} [{r[f'{key}_vs_teacher4']['interval'][0]:+.4f}, "
                     f"{r[f'{key}_vs_teacher4']['interval'][1]:+.4f}]" for key in ("psnr", "fd_teacher", "fd_data")]
            print(f"- {name}: " + "; ".join(parts))
    (out / "results.json").write_text(json.dumps({"rows": rows, "clips": clips, "draws": draws, "sizes": n,
                                                  "stage_seconds": times, "load_average": load}, indent=1))


if __name__ == "__main__":
    main()
