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
