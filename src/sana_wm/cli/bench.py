"""`sana-wm bench`: SANA-WM-Bench, the one-minute benchmark (run a model on it; build one from the synthetic world)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from sana_wm.cli import CLIError, check_output_folder
from sana_wm.limits import check_finite

_MAX_SYNTH_SCENES = 1000
_MAX_SIDE = 2048
_MAX_RAY_TASKS = 4096


def register(groups: argparse._SubParsersAction) -> None:
    from sana_wm.bench.layout import SPLITS

    group = groups.add_parser(
        "bench", help="SANA-WM-Bench, the one-minute benchmark: run a model on it, build one with ground truth",
        description=(
            "SANA-WM-Bench: 961-frame (60 s at 16 fps) camera paths from a first-frame image and a prompt, in two\n"
            f"splits ({', '.join(SPLITS)}). `bench run` generates every scene with a model, `bench synth`\n"
            "builds a benchmark in the same layout from the synthetic world, with exact ground-truth renders.\n"
            "The layout and the released metric definitions: docs/benchmark.md."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = group.add_subparsers(dest="bench_command", metavar="COMMAND")
    sub.required = True
    _register_run(sub)
    _register_synth(sub)
    _register_score(sub)


def _register_score(sub: argparse._SubParsersAction) -> None:
    """`bench score`: its parser and command live in sana_wm/cli/bench_score.py (``register(sub)``), with the
    scorer; registered here whenever that module is present."""
    if importlib.util.find_spec("sana_wm.cli.bench_score") is not None:
        from sana_wm.cli import bench_score

        bench_score.register(sub)


def _register_run(sub: argparse._SubParsersAction) -> None:
    from sana_wm.bench.layout import SPLITS
    from sana_wm.bench.runner import REFINE_MODES

    p = sub.add_parser(
        "run", help="generate every scene of a benchmark split with a model (resumable, shardable)",
        description=(
            "Generate every scene of --split with --model: the scene's first-frame image, prompt and camera\n"
            "path (resampled to the model's frame rate; intrinsics carried through the model's crop), with the\n"
            "reference settings unless told otherwise: the model's own sampler settings (for the released\n"
            "bidirectional model 60 steps, CFG 5, flow shift 8), seed 42, and the refiner with seed 42 when the\n"
            "model has one. Writes RUN/videos/<scene>.mp4 with its sidecar RUN/videos/<scene>.sana-wm.json, and\n"
            "RUN/run.json with the settings that took effect.\n\n"
            "Resume: run the same command again; scenes already made with these settings are skipped.\n"
            "Several GPUs: start one process per shard (--shard i/n), or under torchrun (the shard is the rank),\n"
            "or with --ray ADDRESS (one Ray task per shard). Every shard makes the same videos one process would."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bench", required=True, type=Path, metavar="DIR",
                   help="the benchmark folder (SANA-WM-Bench as downloaded, or made by `bench synth`)")
    p.add_argument("--split", required=True, choices=tuple(SPLITS), help="which split to generate")
    p.add_argument("--scenes", metavar="A,B,...", help="only these scenes (default: every scene of the split)")
    p.add_argument("--model", default="sana-wm-synth",
                   help="model folder, hub id, or the bundled model's name (default: sana-wm-synth)")
    p.add_argument("--variant", help="bidirectional, chunk-causal or streaming (default: from the model folder)")
    p.add_argument("--out", required=True, type=Path, metavar="RUN", help="run folder to write (or resume)")
    p.add_argument("--seconds", type=float, metavar="S",
                   help="keep only the first S seconds of every path (default: the whole path, 60 s)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    p.add_argument("--cfg", type=float, help="text guidance scale (default: the model's)")
    p.add_argument("--shift", type=float, help="flow shift (default: the model's)")
    p.add_argument("--seed", type=int, default=42, help="noise seed of every scene (default: 42)")
    p.add_argument("--refine", choices=REFINE_MODES, default="auto",
                   help="the stage-2 refiner: auto = when the model has one (the reference setting), on = required, "
                        "off = stage 1 only (default: auto)")
    p.add_argument("--refiner-seed", type=int, help="the refiner's noise seed (default: --seed)")
    p.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda when available; under torchrun the "
                                    "rank's GPU)")
    p.add_argument("--dtype", help="transformer dtype (default: bf16 on CUDA, float32 on CPU)")
    shard = p.add_mutually_exclusive_group()
    shard.add_argument("--shard", metavar="I/N", help="this process makes every N-th scene from the I-th (0-based)")
    shard.add_argument("--ray", metavar="ADDRESS",
                       help="run the shards as Ray tasks on the cluster at ADDRESS ('local': start Ray here); needs "
                            "the ray extra")
    p.add_argument("--ray-tasks", type=int, metavar="N",
                   help="with --ray: number of shards (default: one per GPU of the cluster, else 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="generate every scene again, and replace a run.json made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    from sana_wm.bench.synth import DEFAULT_SCENES, DEFAULT_SECONDS

    p = sub.add_parser(
        "synth", help="build a benchmark in the SANA-WM-Bench layout from the synthetic world, with ground truth",
        description=(
            "Build a benchmark folder in the SANA-WM-Bench layout from procedural scenes: per scene a first-frame\n"
            "image and a prompt, a simple path (smooth walking and turning) and a hard one (sharp turns,\n"
            "backtracking), both coming back to earlier viewpoints (the revisit pairs in\n"
            "scene_trajectories_v2.json), and beside them the exact ground truth: a lossless render of every\n"
            "path (ground_truth/<split folder>/<scene>.mp4) and its metric depth (<scene>_depth.npz)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="benchmark folder to write")
    p.add_argument("--scenes", type=int, default=DEFAULT_SCENES, metavar="N",
                   help=f"number of scenes, cycling through rooms, corridors and open ground (default: "
                        f"{DEFAULT_SCENES})")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, metavar="S",
                   help=f"length of every path (default: {DEFAULT_SECONDS:g}, as released)")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="image size (default: the bundled model's, 128x128)")
    p.add_argument("--fps", type=float, default=16.0, help="frame rate of the paths (default: 16, as released)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first scene (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise CLIError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 128x128")
    width, height = int(w), int(h)
    if not (16 <= width <= _MAX_SIDE and 16 <= height <= _MAX_SIDE):
        raise CLIError(f"--size {text}: each side must be 16 to {_MAX_SIDE} pixels")
    return width, height


def cmd_run(args: argparse.Namespace) -> int:
    from sana_wm.bench.runner import RunSettings, parse_shard, run_bench, run_bench_ray
    from sana_wm.cli.generate import flag, show_option_warnings
    from sana_wm.pipeline.errors import OptionError

    check_output_folder(args.out, "--out")
    if args.ray_tasks is not None:
        if args.ray is None:
            raise CLIError("--ray-tasks is only used with --ray")
        if not 1 <= args.ray_tasks <= _MAX_RAY_TASKS:
            raise CLIError(f"--ray-tasks {args.ray_tasks}: must be 1 to {_MAX_RAY_TASKS}")
    scenes = None if args.scenes is None else [s.strip() for s in args.scenes.split(",") if s.strip()]
    if scenes is not None and not scenes:
        raise CLIError("--scenes: give scene names separated by commas")
    settings = RunSettings(model=args.model, variant=args.variant, steps=args.steps, cfg=args.cfg, shift=args.shift,
                           seed=args.seed, refine=args.refine, refiner_seed=args.refiner_seed, seconds=args.seconds,
                           device=args.device, dtype=args.dtype)
    with show_option_warnings():
        try:
            if args.ray is not None:
                results = run_bench_ray(args.bench, args.split, args.out, settings, tasks=args.ray_tasks,
                                        address=args.ray, scenes=scenes, overwrite=args.overwrite,
                                        progress=not args.quiet)
            else:
                shard = None if args.shard is None else parse_shard(args.shard)
                results = [run_bench(args.bench, args.split, args.out, settings, scenes=scenes, shard=shard,
                                     overwrite=args.overwrite, progress=not args.quiet)]
        except OptionError as exc:
            raise CLIError(exc.render(flag)) from None
    made = sum(len(r.generated) for r in results)
    kept = sum(len(r.skipped) for r in results)
    shards = f" ({len(results)} shards)" if len(results) > 1 else ""
    print(f"{args.out}: {made} scenes generated, {kept} already done{shards}; videos in {args.out / 'videos'}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sana_wm.bench.synth import build_synth_bench

    check_output_folder(args.out, "--out")
    if not 1 <= args.scenes <= _MAX_SYNTH_SCENES:
        raise CLIError(f"--scenes {args.scenes}: must be 1 to {_MAX_SYNTH_SCENES}")
    check_finite(args.fps, "--fps", low=0.0, low_open=True, high=120.0)
    check_finite(args.seconds, "--seconds", low=0.0, low_open=True)
    summary = build_synth_bench(args.out, num_scenes=args.scenes, seconds=args.seconds, fps=args.fps,
                                size=_size(args.size), seed=args.seed, overwrite=args.overwrite,
                                progress=not args.quiet)
    print(f"wrote {summary.root}: {len(summary.scenes)} scenes x {len(summary.splits)} splits, "
          f"{summary.num_frames} frames each, ground truth in {summary.root / 'ground_truth'}")
    return 0
