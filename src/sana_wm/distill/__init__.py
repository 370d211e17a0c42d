"""Distillation: from a many-step chunk-causal teacher to a few-step streaming student (reference §9.1).

Three stages, each run from one YAML config (``configs/distill/``):

1. :func:`~sana_wm.distill.ode_data.write_ode_data` (`sana-wm distill ode-data`): the teacher's ODE
   trajectories at the student's timesteps, in sharded safetensors;
2. ODE regression (``stage: ode``): the student, initialised from the teacher, regresses the clean end of the
   trajectories from a random snapshot per chunk;
3. Self-Forcing + DMD (``stage: self_forcing``): the student rolls out whole clips with its own streaming
   cache and is pushed by distribution-matching gradients from a critic and the frozen bidirectional teacher.

Layout: :mod:`~sana_wm.distill.config` (the YAML schema), :mod:`~sana_wm.distill.objective` (the losses and
random draws as plain tensor functions), :mod:`~sana_wm.distill.rollout` (the Self-Forcing rollout),
:mod:`~sana_wm.distill.ode_data`, :mod:`~sana_wm.distill.loop` (``run_distill``),
:mod:`~sana_wm.distill.checkpoint`, :mod:`~sana_wm.distill.student` (the output model folder).
"""

from sana_wm.distill.config import DistillConfig, distill_config_from_dict, load_distill_config
from sana_wm.distill.loop import DistillResult, DistillTrainer, run_distill
from sana_wm.distill.ode_data import OdeTrajectories, write_ode_data

__all__ = [
    "DistillConfig",
    "DistillResult",
    "DistillTrainer",
    "OdeTrajectories",
    "distill_config_from_dict",
    "load_distill_config",
    "run_distill",
    "write_ode_data",
]
