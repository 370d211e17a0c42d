"""`sana-wm data ...`: make synthetic datasets, inspect clip datasets, encode their captions for training."""

from __future__ import annotations

import argparse
from pathlib import Path

from sana_wm.cli import CLIError, check_output_folder
from sana_wm.limits import check_finite, check_frames


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 128x128, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    if h > _MAX_SIDE or w > _MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: each side may be at most {_MAX_SIDE} pixels "
                                         "(the renderer ray-casts every pixel on the CPU)")
    return h, w


# The CPU ray caster renders ~1 Mpx/s; these bounds keep a typo from filling the disk for days.
_MAX_SIDE = 4096
_MAX_SCENES = 100_000


def _check_synth_numbers(args: argparse.Namespace) -> None:
    from sana_wm.camera.trajectory import DEFAULT_FOV_RANGE_DEG

    if not 1 <= args.scenes <= _MAX_SCENES:
        raise CLIError(f"--scenes {args.scenes}: must be between 1 and {_MAX_SCENES}")
    check_finite(args.seconds, "--seconds", low=0.0, low_open=True)
    check_finite(args.fps, "--fps", low=0.0, low_open=True)
    check_finite(args.fov, "--fov", low=DEFAULT_FOV_RANGE_DEG[0], high=DEFAULT_FOV_RANGE_DEG[1])
    check_frames(args.seconds * args.fps + 1, f"--seconds {args.seconds:g} at --fps {args.fps:g}")


def register(groups: argparse._SubParsersAction) -> None:
    grp = groups.add_parser("data", help="make synthetic datasets, inspect clip datasets, encode their captions",
                            description="Clip datasets: tar shards of frames, cameras, depth and captions.")
    sub = grp.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "synth", help="render a synthetic dataset with exact cameras and metric depth",
        description=(
            "Render procedural scenes (rooms, corridors, open ground) along exploration paths (walks,\n"
            "orbits, look-arounds, revisits) on the CPU and write them as a clip dataset: RGB frames,\n"
            "exact camera poses and intrinsics, metric depth and a static scene caption per clip.\n"
            "Scene i uses seed SEED + i, so any clip can be re-rendered from its seed."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="dataset directory to write (must be empty)")
    p.add_argument("--scenes", type=int, default=8, metavar="N", help="number of clips, one scene each (default: 8)")
    p.add_argument("--seconds", type=float, default=4.0, metavar="S", help="clip length in seconds (default: 4)")
    p.add_argument("--fps", type=float, default=16.0, help="frames per second (default: 16)")
    p.add_argument("--size", type=_size, default=(128, 128), metavar="HxW", help="frame size (default: 128x128)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="seed of the first scene (default: 0)")
    p.add_argument("--kinds", metavar="LIST", help="comma-separated scene kinds to cycle through "
                                                   "(room, corridor, open; default: drawn from each seed)")
    p.add_argument("--style", default="mixed", choices=("mixed", "walk", "orbit", "look_around", "revisit"),
                   help="camera path style (default: mixed, drawn per clip)")
    p.add_argument("--fov", type=float, default=70.0, metavar="DEG", help="horizontal field of view (default: 70)")
    p.add_argument("--codec", default="mp4", choices=("mp4", "png", "npz"),
                   help="frame storage: mp4 (H.264, small) or lossless png / npz (default: mp4)")
    p.add_argument("--no-depth", action="store_true", help="do not store metric depth")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out after its finished shards (give the same settings); "
                        "it ends with the dataset an uninterrupted run writes")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "inspect", help="summarise a dataset and draw a contact sheet and trajectory plots",
        description="Count clips, frames and durations, check the cameras, and write summary.json,\n"
                    "contact_sheet.png, trajectories_topdown.png and a few per-clip trajectory plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="DIR", help="dataset directory")
    p.add_argument("--out", metavar="DIR", help="where to write the pictures (default: DIR/inspect)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "encode-text", help="encode every caption of a dataset with Gemma-2 for training (data.text: text_cache)",
        description="Encode each distinct caption of DATASET once with the text encoder, as generation does\n"
                    "(instruction prefix, 300-token window), and store the states in DATASET/text_states/ for\n"
                    "the trainer. Captions already encoded by the same encoder are kept.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", metavar="DATASET", help="dataset directory")
    p.add_argument("--text-encoder", required=True, metavar="DIR",
                   help="Gemma-2 folder (the layout of Efficient-Large-Model/gemma-2-2b-it)")
    p.add_argument("--device", default="cpu", help="device to run the encoder on (default: cpu)")
    p.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16",
                   help="encoder weights' dtype (default: bf16, as generation loads it)")
    p.add_argument("--negative-prompt", action="append", default=[], metavar="TEXT",
                   help="also store this negative prompt (no instruction prefix, as generation encodes it), for a "
                        "distillation config's negative_prompt; repeat for several (the empty one is always stored)")
    p.set_defaults(func=cmd_encode_text)


def cmd_synth(args: argparse.Namespace) -> int:
    from sana_wm.cli import CLIError
    from sana_wm.io import check_free_space
    from sana_wm.synth.dataset import write_synthetic_dataset

    _check_synth_numbers(args)
    check_output_folder(Path(args.out), "--out")
    # Room for the first clip, uncompressed: RGB bytes and float32 depth per pixel of every frame.
    height, width = args.size
    frames = int(args.seconds * args.fps) + 1
    check_free_space(args.out, frames * height * width * (3 + (0 if args.no_depth else 4)), f"--out {args.out}")
    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    if args.resume and args.overwrite:
        raise CLIError("--resume keeps the shards already written and --overwrite deletes them: give one")
    index = write_synthetic_dataset(
        args.out, args.scenes, seed=args.seed, kinds=kinds, frames_codec=args.codec, overwrite=args.overwrite,
        resume=args.resume, progress=True, seconds=args.seconds, fps=args.fps, size=args.size, style=args.style,
        fov_deg=args.fov, with_depth=not args.no_depth,
    )
    print(f"wrote {len(index.entries)} clips in {len(index.shards)} shard(s) to {args.out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sana_wm.data import inspect_dataset

    out = args.out or str(Path(args.root) / "inspect")
    info = inspect_dataset(args.root, out)
    print(json.dumps(info, indent=2, default=str))
    return 0


def cmd_encode_text(args: argparse.Namespace) -> int:
    import torch

    from sana_wm.pipeline.text import TextEncoder
    from sana_wm.train.text_states import TEXT_STATES_DIR, encode_captions

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    encoder = TextEncoder.from_pretrained(args.text_encoder, dtype=dtype, device=args.device)
    counts = encode_captions(args.root, encoder, negative_prompts=args.negative_prompt, progress=True)
    print(f"{args.root}/{TEXT_STATES_DIR}: {counts['captions']} captions, {counts['computed']} encoded now, "
          f"{counts['cached']} already there")
    return 0
