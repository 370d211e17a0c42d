"""`sana-wm train CONFIG.yaml [--resume]`: the flow-matching trainer."""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser(
        "train", help="train or fine-tune a SANA-WM model from a YAML config",
        description=(
            "Train or fine-tune a SANA-WM transformer with flow matching, as the YAML config says\n"
            "(model, data, objective and recipe, optimizer, progressive stages, checkpoints, logging).\n"
            "Examples live in configs/train/. The config is checked before training starts; an unknown\n"
            "key or a wrong type is refused with its key path.\n\n"
            "Several processes: torchrun --nproc_per_node N -m sana_wm train CONFIG.yaml\n"
            "(gloo on CPU, nccl on GPUs; the global batch is the per-rank batch times the world size)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="training config")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the config's checkpoint folder (model, "
                        "optimizer, LR schedule, data position and RNG states)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sana_wm.train import run_training

    if not Path(args.config).is_file():
        raise FileNotFoundError(f"training config not found: {args.config}")
    result = run_training(args.config, resume=args.resume)
    last = max(result.losses) if result.losses else None
    summary = f"trained to step {result.step}"
    if last is not None:
        summary += f", last loss {result.losses[last]:.4f}"
    if result.checkpoint:
        summary += f", checkpoint {result.checkpoint}"
    print(summary)
    return 0
