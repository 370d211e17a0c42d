"""Noise schedules: the sigmas a sampler walks from pure noise (sigma = 1) to the clean sample (sigma = 0).

Flow matching (reference §3.2): ``x_sigma = (1 - sigma) x0 + sigma eps`` and the model is fed the timestep
``t = 1000 sigma`` (which it floors to an integer, §1.5). Two kinds of schedule are used by SANA-WM:

* the teacher samplers (bidirectional, chunk-causal) take ``N`` uniform sigmas bent by the flow shift ``s``,
  ``sigma' = s sigma / (1 + (s - 1) sigma)``, exactly as diffusers' ``FlowMatchEulerDiscreteScheduler(shift=s)
  .set_timesteps(N)`` builds them (config shift 9.8, benchmark and streaming 8.0; §14.2);
* the distilled streaming student uses an explicit list of timesteps, taken verbatim with no shift
  (``[1000, 960, 889, 727, 0]`` in the streaming script, ``[1000, 967, 908, 764, 0]`` in the distill configs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["DISTILL_TIMESTEPS", "NUM_TRAIN_TIMESTEPS", "STREAMING_TIMESTEPS", "SigmaSchedule", "shift_sigmas"]

NUM_TRAIN_TIMESTEPS = 1000  # t = 1000 sigma
STREAMING_TIMESTEPS = (1000, 960, 889, 727, 0)  # streaming script default (--denoising_step_list)
DISTILL_TIMESTEPS = (1000, 967, 908, 764, 0)  # distillation configs (denoising_step_list)


def shift_sigmas(sigmas, shift: float):
    """The flow-shift map ``s sigma / (1 + (s - 1) sigma)``: keeps 0 and 1, spends more steps at high noise."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


@dataclass(frozen=True)
class SigmaSchedule:
    """A decreasing list of noise levels ending at 0: step ``i`` moves from ``sigmas[i]`` to ``sigmas[i + 1]``.

    ``sigmas``: ``(num_steps + 1,)`` float32, ``sigmas[0] <= 1`` and ``sigmas[-1] == 0``.
    """

    sigmas: Tensor

    def __post_init__(self) -> None:
        s = torch.as_tensor(self.sigmas, dtype=torch.float32).detach().cpu().reshape(-1)
        object.__setattr__(self, "sigmas", s)
        if s.numel() < 2:
            raise ValueError(f"a sigma schedule needs at least one step (two sigmas), got {s.tolist()}")
        if s[-1] != 0:
            raise ValueError(f"a sigma schedule must end at sigma 0 (the clean sample), got {s.tolist()}")
        if not bool((s[1:] < s[:-1]).all()) or s[0] > 1:
            raise ValueError(f"sigmas must decrease strictly from at most 1 to 0, got {s.tolist()}")

    # -------------------------------------------------------------------------------------------
    @classmethod
    def shifted(cls, num_steps: int, shift: float = 1.0) -> SigmaSchedule:
        """``num_steps`` shifted sigmas, equal to diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)``
        after ``set_timesteps(num_steps)`` (its ``sigmas``, terminal 0 included).

        Diffusers builds them in two passes, which we reproduce to the bit: its constructor shifts the 1000
        training sigmas ``1, 0.999, ..., 0.001`` (float32), so its ``sigma_min`` is the *shifted* 0.001;
        ``set_timesteps`` then spaces ``num_steps`` sigmas uniformly from 1 down to that ``sigma_min``
        (float64) and shifts them again before casting to float32 and appending 0.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        train_sigmas = torch.from_numpy(
            np.linspace(1, NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS, dtype=np.float32)[::-1].copy()
        ) / NUM_TRAIN_TIMESTEPS
        train_sigmas = shift_sigmas(train_sigmas, shift)
        sigma_max, sigma_min = train_sigmas[0].item(), train_sigmas[-1].item()
        sigmas = np.linspace(sigma_max * NUM_TRAIN_TIMESTEPS, sigma_min * NUM_TRAIN_TIMESTEPS, num_steps)
        sigmas = shift_sigmas(sigmas / NUM_TRAIN_TIMESTEPS, shift)
        return cls(torch.cat([torch.from_numpy(sigmas).float(), torch.zeros(1)]))

    @classmethod
    def from_timesteps(cls, timesteps: Sequence[float] = STREAMING_TIMESTEPS) -> SigmaSchedule:
        """An explicit timestep list in ``[0, 1000]`` ending with 0, used verbatim (no shift), e.g.
        :data:`STREAMING_TIMESTEPS`. Like the reference, ``sigma = t / 1000`` rounded to float32."""
        timesteps = [float(t) for t in timesteps]
        if len(timesteps) < 2 or timesteps[-1] != 0:
            raise ValueError(f"an explicit timestep list needs >= 2 entries and must end with 0, got {timesteps}")
        sigmas = np.array([t / NUM_TRAIN_TIMESTEPS for t in timesteps[:-1]]).astype(np.float32)
        return cls(torch.cat([torch.from_numpy(sigmas), torch.zeros(1)]))

    # -------------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self.sigmas.numel() - 1

    @property
    def timesteps(self) -> Tensor:
        """``(num_steps + 1,)`` float32 model timesteps ``1000 sigma`` (the last is 0: a clean frame)."""
        return self.sigmas * NUM_TRAIN_TIMESTEPS

    def __repr__(self) -> str:
        return f"SigmaSchedule(timesteps={[round(t, 3) for t in self.timesteps.tolist()]})"
