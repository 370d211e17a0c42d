"""The ``sana-wm`` command line. Each command group lives in its own module and registers
its sub-parsers here; the CLI only parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from pathlib import Path

from sana_wm import __version__
from sana_wm.errors import UserError

DESCRIPTION = """\
sana-wm: an independent implementation of the SANA-WM world model
(one image + a 6-DoF camera path -> a long video).

Command groups:
  camera   make, convert, inspect, resample and plot camera trajectories
  generate generate a video from an image and a camera path (stage 1, and the refiner if the model has one)
  encode-prompt  encode a prompt once with a model's text encoders, for generate --prompt-embeds
  plan     the settings (precision, offload, K/V window) under which a generation fits a GPU's memory
  data     render synthetic datasets and inspect clip datasets
  annotate turn videos into training clips with metric camera poses
  distill  distil a teacher into a few-step streaming student
  eval     score a model on the synthetic world (frames and camera following)
  bench    SANA-WM-Bench, the one-minute benchmark: run a model on it, build one with ground truth
  model    inspect transformer configs and checkpoints (parameter count, block pattern)
  train    train or fine-tune a model from a YAML config
  vae      fit the bundled model's patch codec; encode datasets into latent caches
  serve    walk through a generated world live in the browser, driven by the keyboard

Run `sana-wm GROUP --help` or `sana-wm GROUP COMMAND --help` for details.
"""


class CLIError(UserError):
    """A problem with the user's input that the CLI reports in one line and exits with status 2."""


def check_output_folder(folder: Path, flag: str) -> None:
    """Refuse an output folder that cannot be made or written, before any work: a file in its place or its
    path, or a nearest existing folder that is not writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{flag} {folder}: is a file, not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{flag} {folder}: {existing} is a file, so the folder cannot be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {folder}: {existing} is not writable; choose another {flag}")


def build_parser() -> argparse.ArgumentParser:
    from sana_wm.cli import (
        annotate,
        camera,
        data,
        distill,
        evaluation,
        generate,
        model,
        plan,
        prompt,
        serve,
        train,
        vae,
    )

    parser = argparse.ArgumentParser(
        prog="sana-wm", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"sana-wm {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of any error, user errors included")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    groups.required = True
    camera.register(groups)
    generate.register(groups)
    prompt.register(groups)
    plan.register(groups)
    data.register(groups)
    evaluation.register(groups)
    model.register(groups)
    train.register(groups)
    vae.register(groups)
    serve.register(groups)
    annotate.register(groups)
    distill.register(groups)
    from sana_wm.cli.bench import register as register_bench
    register_bench(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # The `with` blocks between here and the interrupted line have closed their files on the way up.
        if args.debug:
            traceback.print_exc()
        print("sana-wm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_error_message(exc, args)
        if message is None:
            raise  # a bug in sana-wm: the traceback is what a report needs
        if args.debug:
            traceback.print_exc()
        print(f"sana-wm: error: {message}", file=sys.stderr)
        return 2


_DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                errno.EDQUOT: "the disk quota is exceeded"}


_HUB_FLAGS = ("model", "text_encoder", "refiner")  # the flags that accept a hub id


def user_error_message(exc: BaseException, args: argparse.Namespace | None = None) -> str | None:
    """The one- or two-line message for an error the user can fix, or None for a bug (shown as a traceback)."""
    if isinstance(exc, UserError):
        return str(exc)
    try:
        from PIL import Image

        if isinstance(exc, Image.DecompressionBombError):
            return (f"{exc}\nthe image is far larger than a video frame; scale it down "
                    "(or set SANA_WM_MAX_IMAGE_PIXELS)")
    except ImportError:  # pragma: no cover - PIL is a dependency
        pass
    hub = _hub_error_message(exc, args)
    if hub is not None:
        return hub
    if type(exc).__name__ == "SafetensorError":
        return f"a .safetensors file is damaged or not a safetensors file ({exc}); replace it"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno in _DISK_ERRNOS:
            return f"{where}cannot write: {_DISK_ERRNOS[exc.errno]}; free space or choose another output folder"
        if isinstance(exc, PermissionError):
            return f"{where}permission denied; choose a folder you can write to (or fix its permissions)"
        if isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)):
            return f"{where}{exc.strerror}" if exc.filename and exc.strerror else str(exc)
        if exc.filename and exc.strerror:  # about a file the user named: a link loop, a name too long ...
            return f"{where}{exc.strerror}"
        return None
    # Anything else, a plain ValueError included, is a bug: sana-wm raises UserError types for what the user gave.
    return None


def _hub_error_message(exc: BaseException, args: argparse.Namespace | None) -> str | None:
    """Hugging Face hub failures: name the repository, say what to try (offline mode, a local folder)."""
    try:
        from huggingface_hub import errors as hub
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return None
    repo = getattr(exc, "repo_id", None)
    named = f"hub repository {repo!r}" if repo else "the hub repository"
    if not repo and args is not None:
        # The offline error does not say which repository it wanted: name the hub ids given on the command line.
        given = [f"--{name.replace('_', '-')} {value}" for name in _HUB_FLAGS
                 if isinstance(value := getattr(args, name, None), str) and "/" in value and not os.path.exists(value)]
        named = f"the hub repository of {' or '.join(given)}" if given else named
    if isinstance(exc, hub.RepositoryNotFoundError):
        return f"{named} not found (misspelled id, or private without a token); check the --model / --text-encoder id"
    if isinstance(exc, hub.LocalEntryNotFoundError):
        return (f"{named} is not in the local cache and the hub cannot be reached (HF_HUB_OFFLINE="
                f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}); connect once to download it, or pass a local folder")
    if isinstance(exc, hub.HfHubHTTPError):
        return f"{named}: the hub answered with an error ({exc}); try again, or pass a local folder"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
