"""`sana-wm eval ...`: score a model on the synthetic world against exact ground truth."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sana_wm.cli import check_output_folder


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write numbers separated by commas, e.g. 1,5,10") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: write finite non-negative numbers, e.g. 1,5,10")
    return values


_MAX_SEEDS = 10_000  # each seed renders and generates a clip; more is a typo, not an evaluation


def _ints(text: str) -> list[int]:
    out = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise argparse.ArgumentTypeError(f"range {part.strip()!r} runs backwards; write {hi}-{lo}")
                if hi - lo >= _MAX_SEEDS:
                    raise argparse.ArgumentTypeError(f"range {part.strip()!r} holds more than {_MAX_SEEDS} seeds")
                out.extend(range(lo, hi + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write integers and ranges, e.g. 1000-1003,1007") from None
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r}: no seeds given")
    if len(out) > _MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{len(out)} seeds: more than {_MAX_SEEDS}")
    return out


def register(groups: argparse._SubParsersAction) -> None:
    grp = groups.add_parser("eval", help="score a model on the synthetic world (frames and camera following)",
                            description="Evaluation against exact ground truth.")
    sub = grp.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser(
        "synth", help="PSNR/SSIM at time marks and camera-following error on held-out synthetic scenes",
        description=(
            "For each scene seed and trajectory: render the ground truth, give the model the first frame and\n"
            "the requested camera path, and score the video: PSNR and SSIM against the ground truth at each\n"
            "time mark, and the camera-following error of poses re-estimated from the video (OpenCV, true\n"
            "intrinsics; RotErr in degrees, TransErr_rel, CamMC_rel, ATE), over the whole video and over the\n"
            "path up to each time mark (the estimator run on those frames alone). Two baselines are scored the same\n"
            "way: repeating the first frame, and the same model asked for a static camera; the estimator's\n"
            "own error on the ground-truth video is reported as the floor, and the ground truth passed\n"
            "through the model's own VAE as the ceiling (the best any generator can do through that VAE).\n"
            "Image motion needs no feature matches, so it still reads blurry videos: the affine motion\n"
            "between consecutive frames (OpenCV ECC alignment) against the ground truth's, as a gain (1 moves\n"
            "like the truth, 0 stands still) and a correlation (right direction and timing).\n"
            "Results are written per clip as they finish (a rerun skips clips finished with the same weights,\n"
            "compared by content, and settings), then report.json,\n"
            "report.md (with a table per trajectory when there are several) and contact_sheet.png.\n\n"
            "Trajectories: explore:walk, explore:orbit, explore:look_around, explore:revisit, a preset name\n"
            "(orbit, dolly, pan, ...) or a trajectory file; paths start at a free pose in each scene."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", metavar="DIR",
                   help="model folder in the released layout (default: the bundled sana-wm-synth)")
    p.add_argument("--text-encoder", metavar="DIR", help="Gemma-2 folder (default: the model's own text_encoder/)")
    p.add_argument("--vae", metavar="DIR", help="VAE folder (default: the model's own)")
    p.add_argument("--variant", choices=("bidirectional", "chunk-causal", "streaming"),
                   help="variant to run (default: detected from the model folder)")
    p.add_argument("--steps", type=int, help="sampling steps (default: the variant's)")
    p.add_argument("--shift", type=float, metavar="S",
                   help="flow shift of the sigma schedule, as in `generate` (default: the variant's)")
    p.add_argument("--camera-cfg", type=float, metavar="W",
                   help="camera guidance scale, as in `generate` (default: the model's, else 1 = off)")
    p.add_argument("--camera-cfg-chunks", type=int, metavar="N",
                   help="streaming: guide only the first N chunks, as in `generate` (default: the model's, else all)")
    p.add_argument("--stage1-precision", choices=("bf16", "fp8", "nvfp4", "int8", "int4"), default="bf16",
                   help="quantize stage 1 as `generate --stage1-precision` does (on the CPU: the exact emulation), "
                        "to measure what a precision costs (default: bf16, not quantized)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--seeds", type=_ints, default=list(range(1000, 1004)), metavar="LIST",
                   help="held-out scene seeds, e.g. 1000-1003 or 1000,1007 (default: 1000-1003)")
    p.add_argument("--trajectories", default="explore:walk,explore:orbit", metavar="LIST",
                   help="comma-separated trajectories (default: explore:walk,explore:orbit)")
    p.add_argument("--marks", type=_floats, default=[1.0, 5.0, 10.0], metavar="SECONDS",
                   help="time marks in seconds where frames are scored (default: 1,5,10)")
    p.add_argument("--fov", type=float, default=70.0, metavar="DEG", help="lens of the rendered scenes (default: 70)")
    p.add_argument("--no-baselines", action="store_true", help="skip the two baselines")
    p.add_argument("--no-ceiling", action="store_true",
                   help="skip the autoencoder ceiling (the ground truth through the VAE)")
    p.add_argument("--out", default="eval-synth", metavar="DIR", help="report folder (default: eval-synth)")
    p.set_defaults(func=cmd_synth)


def _check_numbers(args: argparse.Namespace) -> None:
    """The sampler's numbers by generate's rules, the lens and the time marks, before any model is loaded."""
    from sana_wm.cli import CLIError
    from sana_wm.cli.generate import flag
    from sana_wm.limits import check_finite, check_frames
    from sana_wm.pipeline import OptionError
    from sana_wm.pipeline.pipeline import check_generation_numbers

    values = {name: getattr(args, name) for name in ("steps", "shift", "camera_cfg", "camera_cfg_chunks", "fov",
                                                      "seed")}
    try:
        check_generation_numbers(values)
    except OptionError as exc:
        raise CLIError(exc.render(flag)) from None
    for mark in args.marks:
        check_finite(mark, "--marks", low=0.0)
    check_frames(max(args.marks) * 16 + 1, f"--marks {max(args.marks):g}")


def cmd_synth(args: argparse.Namespace) -> int:
    import json

    from sana_wm.eval.model_adapter import autoencoder_roundtrip_fn, pipeline_generate_fn, weights_fingerprint
    from sana_wm.eval.synth_eval import evaluate_synth
    from sana_wm.pipeline import SanaWMPipeline

    _check_numbers(args)
    check_output_folder(Path(args.out), "--out")
    if args.model is None:
        from sana_wm.bundled import bundled_model_dir

        args.model = str(bundled_model_dir())
    pipe = SanaWMPipeline.from_pretrained(args.model, args.variant, text_encoder=args.text_encoder, vae=args.vae,
                                          stage1_precision=args.stage1_precision)
    chosen = (("steps", args.steps), ("shift", args.shift), ("camera_cfg", args.camera_cfg),
              ("camera_cfg_chunks", args.camera_cfg_chunks))
    kwargs = {k: v for k, v in chosen if v is not None}
    generate = pipeline_generate_fn(pipe, variant=args.variant, seed=args.seed, **kwargs)
    sampler = {"variant": args.variant or pipe.variant, "seed": args.seed, **kwargs}
    report = evaluate_synth(
        generate, seeds=args.seeds, trajectories=[t.strip() for t in args.trajectories.split(",") if t.strip()],
        size=pipe.image_size, fps=pipe.fps, seconds_marks=args.marks, out_dir=args.out, fov_deg=args.fov,
        model_name=Path(args.model).name, baselines=not args.no_baselines, progress=True,
        ceiling_fn=None if args.no_ceiling else autoencoder_roundtrip_fn(pipe), generator_settings=sampler,
        weights=weights_fingerprint(pipe),
    )
    print(json.dumps(report.get("aggregate", report), indent=2, default=str))
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0
