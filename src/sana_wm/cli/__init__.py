"""The ``sana-wm`` command line. Each command group lives in its own module and registers
its sub-parsers here; the CLI only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import sys

from sana_wm import __version__

DESCRIPTION = """\
sana-wm: an independent implementation of the SANA-WM world model
(one image + a 6-DoF camera path -> a long video).

Command groups:
  camera   make, convert, inspect, resample and plot camera trajectories
  generate generate a video from an image and a camera path (stage 1, and the refiner if the model has one)
  data     render synthetic datasets and inspect clip datasets
  eval     score a model on the synthetic world (frames and camera following)
  model    inspect transformer configs and checkpoints (parameter count, block pattern)
  train    train or fine-tune a model from a YAML config
  vae      fit the bundled model's patch codec; encode datasets into latent caches

Run `sana-wm GROUP --help` or `sana-wm GROUP COMMAND --help` for details.
"""


class CLIError(Exception):
    """A problem with the user's input that the CLI reports in one line and exits with status 2."""


def build_parser() -> argparse.ArgumentParser:
    from sana_wm.cli import camera, data, evaluation, generate, model, train, vae

    parser = argparse.ArgumentParser(
        prog="sana-wm", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"sana-wm {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    groups.required = True
    camera.register(groups)
    generate.register(groups)
    data.register(groups)
    evaluation.register(groups)
    model.register(groups)
    train.register(groups)
    vae.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"sana-wm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
