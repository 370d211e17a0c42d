"""`sana-wm model ...`: inspect transformer configs and checkpoints."""

from __future__ import annotations

import argparse


def register(groups: argparse._SubParsersAction) -> None:
    grp = groups.add_parser(
        "model", help="inspect transformer configs and checkpoints",
        description="Inspect SANA-WM transformer configs and checkpoints.",
    )
    sub = grp.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "info", help="parameter count and block pattern of a config or a checkpoint",
        description="Print the parameter count (split by part), the block pattern (G = Gated DeltaNet,\n"
                    "S = softmax) and the widths of a named config, or of a checkpoint: a released\n"
                    ".safetensors, a streaming model.pt, or a sana-wm / diffusers model directory.\n"
                    "Checkpoints are read from their tensor shapes only, never loaded into memory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", nargs="?", help="checkpoint file or model directory")
    p.add_argument("--config", metavar="NAME", help="a named config instead of a checkpoint "
                                                     "(see `sana-wm model configs`)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "export", help="write a training checkpoint and a VAE as a model folder `sana-wm generate` loads",
        description="Write a training checkpoint (checkpoints/step-N/ of `sana-wm train`) and a VAE folder as a\n"
                    "model folder in the released layout of --variant (streaming: sana_dit/model.pt and\n"
                    "ltx2_causal_vae/; a patch codec from `sana-wm vae fit-pca` goes to patch_codec/), with a\n"
                    "config.yaml naming the transformer config, the model wrapper it was trained in (if any),\n"
                    "frame size, fps, text mode and sampling defaults. The EMA weights are used when the\n"
                    "checkpoint has them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_DIR", help="training checkpoint folder (step-N)")
    p.add_argument("--vae", required=True, metavar="DIR", help="VAE folder: diffusers, or a patch codec from "
                   "`sana-wm vae fit-pca`")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder to write")
    p.add_argument("--variant", choices=("bidirectional", "chunk-causal", "streaming"), default="streaming",
                   help="folder layout and default sampler (default: streaming)")
    p.add_argument("--size", default="128x128", metavar="HxW", help="frame size the model generates (default: 128x128)")
    p.add_argument("--fps", type=float, default=16.0, help="frames per second (default: 16)")
    p.add_argument("--with-text", action="store_true",
                   help="the model takes text (default: text-free, conditioned on its null caption)")
    p.add_argument("--steps", type=int, help="default sampling steps recorded in config.yaml")
    p.add_argument("--shift", type=float, help="default flow shift recorded in config.yaml")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights even if EMA weights exist")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default="fp16", help="stored weight dtype "
                   "(default: fp16)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("configs", help="list the named configs",
                       description="List the named transformer configs and their sizes.")
    p.set_defaults(func=cmd_configs)


def cmd_info(args: argparse.Namespace) -> int:
    from sana_wm.cli import CLIError
    from sana_wm.model.inspect_checkpoint import as_json, describe_checkpoint, describe_config, format_report

    if (args.path is None) == (args.config is None):
        raise CLIError("give a checkpoint PATH or --config NAME (one of the two)")
    if args.config is not None:
        from sana_wm.model.config import CONFIGS

        if args.config not in CONFIGS:
            raise CLIError(f"unknown config {args.config!r}; named configs: {', '.join(CONFIGS)}")
        info = describe_config(args.config)
    else:
        info = describe_checkpoint(args.path)
    print(as_json(info) if args.json else format_report(info))
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    from sana_wm.model.config import CONFIGS
    from sana_wm.model.inspect_checkpoint import describe_config

    for name in CONFIGS:
        info = describe_config(name)
        print(f"{name:<16}{info['parameters']:>16,} parameters  {info['depth']} blocks  "
              f"width {info['hidden_size']}  {info['block_pattern']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from sana_wm.cli import CLIError
    from sana_wm.io import check_free_space
    from sana_wm.limits import check_finite
    from sana_wm.pipeline.export import export_model_folder

    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise CLIError(f"--size {args.size!r}: write HxW, e.g. 128x128") from None
    if not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise CLIError(f"--size {args.size}: each side must be between 1 and 4096 pixels")
    check_finite(args.fps, "--fps", low=0.0, high=1000.0, low_open=True)
    check_finite(args.shift, "--shift", low=0.0, low_open=True)
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise CLIError(f"--steps {args.steps}: must be between 1 and 1000")
    # The model folder holds the checkpoint's weights (at most as wide as float32) and a copy of the VAE folder.
    need = sum(f.stat().st_size for d in (args.checkpoint, args.vae) if Path(d).is_dir()
               for f in Path(d).rglob("*") if f.is_file())
    check_free_space(args.out, need, f"--out {args.out}")
    sampler = {k: v for k, v in (("steps", args.steps), ("shift", args.shift)) if v is not None}
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    out = export_model_folder(args.checkpoint, args.vae, args.out, variant=args.variant, image_size=(h, w),
                              fps=args.fps, text_free=not args.with_text, sampler=sampler or None,
                              use_ema=not args.no_ema, dtype=dtype, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
