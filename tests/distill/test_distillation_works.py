"""Distillation works, in small: ODE regression brings the 4-step streaming student closer to the teacher's
50-step samples than the teacher itself gets with the same 4 timesteps.

The teacher is a random ``tiny`` model (every weight random, so its velocity field is far from linear and 4
Euler steps miss its ODE's end); the student starts from it and regresses the ends of the teacher's
trajectories of the 4 training clips. It is scored on those clips from the trajectories' own starting noise,
i.e. on how well it learned to jump along its teacher's ODE. The same question on a trained teacher with
held-out scenes, and after Self-Forcing + DMD, is answered by ``benchmarks/bench_distill.py``
(docs/benchmarks.md)."""

import torch
from distill_helpers import distill_config

from random_weights import randomize_
from sana_wm.distill import OdeTrajectories, run_distill, write_ode_data
from sana_wm.distill.data import DistillData, batch_conditioning
from sana_wm.distill.evaluation import frechet_distance, latent_psnr, student_samples, teacher_samples
from sana_wm.model import SanaWMTransformer, from_pretrained, save_pretrained
from sana_wm.samplers import SigmaSchedule
from sana_wm.train.distributed import init_distributed


def test_ode_student_beats_the_teacher_at_four_steps(distill_dataset, tmp_path):
    torch.manual_seed(0)
    teacher = randomize_(SanaWMTransformer(_config(distill_dataset, tmp_path)), 7, bias_scale=0.3)
    teacher_dir = save_pretrained(teacher, tmp_path / "teacher")
    cfg = distill_config(distill_dataset, tmp_path / "ode", teacher_dir, steps=40, data={"batch_size": 4},
                         ode_data={"teacher_steps": 50, "teacher_shift": 3.0}, optimizer={"lr": 1e-3})
    write_ode_data(cfg, progress=False)
    student = from_pretrained(run_distill(cfg).student / "transformer", dtype=torch.float32)
    teacher = from_pretrained(teacher_dir, dtype=torch.float32)

    data = DistillData(cfg, init_distributed(), teacher.y_embedder.y_embedding, shuffle=False)
    batch = data.batch(list(data.dataset))
    trajectories = OdeTrajectories(cfg.ode_data.dir, cfg.denoising_steps)
    noise = torch.stack([trajectories[key][0] for key in batch.keys])  # the trajectories' starting noise
    cond, first, T = batch_conditioning(batch), batch.latents[:, :, :1], batch.latents.shape[2]
    reference = teacher_samples(teacher, cond, first, T, SigmaSchedule.shifted(50, 3.0), noise)
    four = cfg.schedule
    teacher4 = teacher_samples(teacher, cond, first, T, four, noise)
    student4 = student_samples(student, cond, first, T, four, noise)
    psnr_teacher, psnr_student = latent_psnr(teacher4, reference), latent_psnr(student4, reference)
    fd_teacher, fd_student = frechet_distance(teacher4, reference), frechet_distance(student4, reference)
    print(f"PSNR teacher@4 {psnr_teacher:.2f} student@4 {psnr_student:.2f}; FD {fd_teacher:.4f} {fd_student:.4f}")
    assert psnr_student > psnr_teacher + 3.0  # dB
    assert fd_student < 0.5 * fd_teacher


def _config(dataset, tmp_path):
    from sana_wm.model import SanaWMConfig

    return SanaWMConfig.load_json(distill_config(dataset, tmp_path / "cfg", tmp_path).model.config_path)
