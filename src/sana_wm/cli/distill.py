"""`sana-wm distill [ode-data] CONFIG.yaml [--resume]`: the few-step streaming student from a teacher."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Distil the chunk-causal teacher into a few-step streaming student, in three stages, each run from
its own YAML config (examples in configs/distill/):

  sana-wm distill ode-data CONFIG.yaml    the teacher's ODE trajectories at the student's timesteps
                                          (resumable: a rerun skips the clips already stored)
  sana-wm distill CONFIG.yaml             the stage the config names: `stage: ode` (ODE regression) or
                                          `stage: self_forcing` (Self-Forcing rollouts + DMD)
  sana-wm distill CONFIG.yaml --resume    continue from the newest checkpoint, exactly

The last step writes OUTPUT_DIR/student/, a streaming model folder (sana_dit/model.pt in the released
layout, transformer/ in ours, config.yaml with the student's timesteps):
  sana-wm generate --variant streaming --model OUTPUT_DIR/student ...

Several processes: torchrun --nproc_per_node N -m sana_wm distill CONFIG.yaml (FSDP2; gloo on CPU,
nccl on GPUs)."""


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("distill", help="distil a teacher into a few-step streaming student",
                          usage="sana-wm distill [ode-data] CONFIG.yaml [--resume]",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="+", metavar="[ode-data] CONFIG.yaml",
                   help="a distillation config; `ode-data CONFIG.yaml` writes the teacher's trajectories instead")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the config's checkpoint folder (both models, both "
                        "optimizers, the exit-step generator, the data position)")
    p.set_defaults(func=cmd_distill)


def cmd_distill(args: argparse.Namespace) -> int:
    from sana_wm.cli import CLIError

    what = list(args.what)
    ode_data = what[0] == "ode-data"
    if ode_data:
        what = what[1:]
    if len(what) != 1:
        raise CLIError("give one config: `sana-wm distill CONFIG.yaml` or `sana-wm distill ode-data CONFIG.yaml`")
    from sana_wm.distill import load_distill_config, run_distill, write_ode_data

    cfg = load_distill_config(what[0])
    if ode_data:
        if args.resume:
            raise CLIError("--resume goes with a training stage; ode-data always skips the clips already stored")
        folder = write_ode_data(cfg)
        print(f"teacher trajectories in {folder}")
        return 0
    result = run_distill(cfg, resume=args.resume)
    summary = f"distilled ({cfg.stage}) to step {result.step}"
    if result.checkpoint:
        summary += f", checkpoint {result.checkpoint}"
    if result.student:
        summary += f", student {result.student}"
    print(summary)
    return 0
