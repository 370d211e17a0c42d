"""`sana-wm train CONFIG.yaml [--resume]`: the flow-matching trainer; `--merge-lora OUT` exports a LoRA run."""

from __future__ import annotations

import argparse

from sana_wm.errors import ConfigError


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser(
        "train", help="train or fine-tune a SANA-WM model from a YAML config",
        description=(
            "Train or fine-tune a SANA-WM transformer with flow matching, as the YAML config says\n"
            "(model, data, objective and recipe, optimizer, progressive stages, checkpoints, logging).\n"
            "Examples live in configs/train/. The config is checked before training starts; an unknown\n"
            "key or a wrong type is refused with its key path.\n\n"
            "Several processes: torchrun --nproc_per_node N -m sana_wm train CONFIG.yaml\n"
            "(gloo on CPU, nccl on GPUs; the global batch is the per-rank batch times the world size).\n\n"
            "LoRA (a `lora:` section, e.g. configs/train/finetune_lora.yaml): the base model stays frozen and\n"
            "checkpoints hold the adapter in peft's format (checkpoints/step-N/adapter/). Afterwards\n"
            "  sana-wm train CONFIG.yaml --merge-lora OUT_DIR\n"
            "folds the newest checkpoint's adapter (or --checkpoint's) into the base model (model.init_from)\n"
            "and writes a model directory that `sana-wm generate` and sana_wm.model.from_pretrained load."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="training config")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the config's checkpoint folder (model, "
                        "optimizer, LR schedule, data position and RNG states)")
    p.add_argument("--merge-lora", metavar="OUT_DIR",
                   help="do not train: merge the LoRA adapter of this run's newest checkpoint into the base model "
                        "and write a model directory to OUT_DIR")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="with --merge-lora: a checkpoint directory (step-N), or an adapter directory, to merge "
                        "instead of the newest checkpoint")
    p.add_argument("--ema", action="store_true", help="with --merge-lora: merge the EMA adapter (adapter-ema/)")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                   help="with --merge-lora: dtype of the written weights (the merge itself runs in float32)")
    p.add_argument("--overwrite", action="store_true", help="with --merge-lora: replace OUT_DIR if it exists")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sana_wm.train import run_training

    if not Path(args.config).is_file():
        raise FileNotFoundError(f"training config not found: {args.config}")
    if args.merge_lora:
        return _merge(args)
    if args.checkpoint or args.ema or args.overwrite:
        from sana_wm.cli import CLIError

        raise CLIError("--checkpoint, --ema and --overwrite go with --merge-lora")
    result = run_training(args.config, resume=args.resume)
    last = max(result.losses) if result.losses else None
    summary = f"trained to step {result.step}"
    if last is not None:
        summary += f", last loss {result.losses[last]:.4f}"
    if result.checkpoint:
        summary += f", checkpoint {result.checkpoint}"
    print(summary)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sana_wm.train import latest_checkpoint, load_config, merge_lora

    cfg = load_config(args.config)
    if cfg.lora is None:
        raise ConfigError(f"{args.config} has no lora section: its checkpoints hold full models already "
                         "(load checkpoints/step-N with sana_wm.model.from_pretrained)")
    source = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(cfg.checkpoint_dir)
    if source is None:
        raise FileNotFoundError(f"no checkpoint in {cfg.checkpoint_dir}; train first, or pass --checkpoint")
    if args.ema:
        adapter = source / "adapter-ema"
        if not adapter.is_dir():
            raise FileNotFoundError(f"{source} has no adapter-ema/: the run kept no EMA (ema.decay 0)")
    else:
        adapter = source / "adapter" if (source / "adapter").is_dir() else source  # or an adapter directory itself
    out = merge_lora(adapter, args.merge_lora, base=cfg.model.init_from, dtype=args.dtype, overwrite=args.overwrite)
    print(f"merged {adapter} into {cfg.model.init_from}: {out}")
    return 0
