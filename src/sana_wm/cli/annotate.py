"""`sana-wm annotate`: videos -> a clip dataset with metric camera poses."""

from __future__ import annotations

import argparse
from pathlib import Path

from sana_wm.cli import CLIError, check_output_folder
from sana_wm.limits import check_finite, check_frames

_MAX_WIDTH = 4096
_MAX_WORKERS = 256


def _four_floats(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fx,fy,cx,cy in pixels, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 numbers fx,fy,cx,cy, got {len(values)} in {text!r}")
    return values


def register(groups: argparse._SubParsersAction) -> None:
    from sana_wm.annotate.captions import MAX_FRAMES as MAX_CAPTION_FRAMES
    from sana_wm.annotate.captions import MAX_NEW_TOKENS
    from sana_wm.geometry.backends import BACKENDS

    p = groups.add_parser(
        "annotate", help="turn videos into training clips with metric camera poses",
        description=(
            "Annotate videos (files PyAV reads, folders of them, or folders of images) into a clip dataset:\n"
            "frames at --fps and --width, split into shots (PySceneDetect; short, black and static shots\n"
            "dropped), intrinsics (--fov / --intrinsics, a VIDEO.camera.json sidecar, camera metadata, or\n"
            "estimated), camera poses (--backend; pycolmap by default), metric scale (--scale,\n"
            "--camera-height, a VIDEO.depth.npz ground-truth sidecar, or --depth-model), quality scores\n"
            "with thresholds and, with --caption-model, a caption of each kept clip (a local VLM).\n"
            "Writes the dataset into --out, with OUT/annotate/report.md saying what was kept and why the\n"
            "rest was not, and a trajectory plot and contact sheet per clip in OUT/annotate/videos/*/previews.\n"
            "Run the same command again to resume a stopped run."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="video files, folders of videos, image folders")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder to write (or resume)")
    p.add_argument("--fps", type=float, default=10.0, help="frames per second of the clips (default: 10)")
    p.add_argument("--width", type=int, default=640, metavar="PX",
                   help="frame width of the clips, height by the aspect ratio (default: 640; 0: the source's)")
    p.add_argument("--max-frames", type=int, metavar="N", help="read at most N frames of each input")
    p.add_argument("--backend", choices=BACKENDS, default="pycolmap",
                   help="pose backend (default: pycolmap, COLMAP's mapper; opencv: the light visual odometry; "
                        "learned: a feed-forward network from --pose-weights)")
    p.add_argument("--pose-weights", metavar="DIR",
                   help="weights of the learned backend: a folder with config.json and model.safetensors of a "
                        "sana-wm-relpose network (see sana_wm.geometry.learned)")
    lens = p.add_mutually_exclusive_group()
    lens.add_argument("--fov", type=float, metavar="DEG", help="horizontal field of view of every input")
    lens.add_argument("--intrinsics", type=_four_floats, metavar="FX,FY,CX,CY",
                      help="pinhole intrinsics in pixels of the source video")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=float, metavar="S", help="metres per reconstruction unit, if known")
    scale.add_argument("--camera-height", type=float, metavar="M",
                       help="the camera's height above the ground in metres (walking footage: about 1.6)")
    scale.add_argument("--depth-model", metavar="PATH_OR_ID",
                       help="a transformers metric depth-estimation model (local folder or hub id)")
    p.add_argument("--no-depth-sidecar", action="store_true",
                   help="ignore VIDEO.depth.npz ground-truth depth beside the inputs")
    captions = p.add_argument_group("captions (optional; off without --caption-model)")
    captions.add_argument("--caption-model", metavar="DIR",
                          help="a local transformers vision-language model folder (e.g. SmolVLM, Qwen2-VL, LLaVA) "
                               "that writes each kept clip's caption")
    captions.add_argument("--caption-prompt", metavar="TEXT", help="what the model is asked (default: describe the "
                                                                   "scene and how the camera moves)")
    captions.add_argument("--caption-frames", type=int, metavar="N",
                          help=f"frames shown per clip, evenly spread (default: 4; at most {MAX_CAPTION_FRAMES})")
    captions.add_argument("--caption-max-tokens", type=int, metavar="N",
                          help=f"longest caption in tokens, greedy decoding (default: 64; at most {MAX_NEW_TOKENS})")
    p.add_argument("--source", default="", help="source recorded in every clip (default: the input's file name)")
    p.add_argument("--licence", default="", help="licence recorded in every clip, e.g. CC-BY-4.0")
    p.add_argument("--codec", default="mp4", choices=("mp4", "png"),
                   help="frame storage of the clips: mp4 (H.264, small) or png (lossless; the same run gives the "
                        "same bytes) (default: mp4)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="inputs annotated at once (default: 1)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run inputs as Ray tasks on the cluster at ADDRESS ('local': start Ray here); needs the "
                        "ray extra")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an --out that holds an annotation made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_annotate)


def cmd_annotate(args: argparse.Namespace) -> int:
    from sana_wm.annotate import AnnotateConfig, annotate
    from sana_wm.annotate.captions import CaptionConfig
    from sana_wm.geometry.learned import FORMAT as LEARNED_FORMAT

    check_finite(args.fps, "--fps", low=0.0, low_open=True, high=240.0)
    if not 0 <= args.width <= _MAX_WIDTH:
        raise CLIError(f"--width {args.width}: must be between 1 and {_MAX_WIDTH} (or 0 for the source's)")
    if args.max_frames is not None:
        if args.max_frames < 2:
            raise CLIError(f"--max-frames {args.max_frames}: must be at least 2")
        check_frames(args.max_frames, "--max-frames")
    if not 1 <= args.workers <= _MAX_WORKERS:
        raise CLIError(f"--workers {args.workers}: must be between 1 and {_MAX_WORKERS}")
    if args.ray and args.workers != 1:
        raise CLIError("--workers and --ray: choose one (Ray decides how many inputs run at once)")
    from sana_wm.annotate.intrinsics import FOV_RANGE_DEG

    check_finite(args.fov, "--fov", low=FOV_RANGE_DEG[0], high=FOV_RANGE_DEG[1])  # the lenses annotated
    check_finite(args.scale, "--scale", low=0.0, low_open=True)
    check_finite(args.camera_height, "--camera-height", low=0.0, low_open=True, high=100.0)
    if args.backend == "learned" and not args.pose_weights:
        raise CLIError(f"--backend learned needs --pose-weights DIR: {LEARNED_FORMAT}")
    if args.pose_weights and args.backend != "learned":
        raise CLIError(f"--pose-weights is only read by --backend learned (the backend is {args.backend})")
    caption_options = {"prompt": args.caption_prompt, "frames": args.caption_frames,
                       "max_new_tokens": args.caption_max_tokens}
    given = {k: v for k, v in caption_options.items() if v is not None}
    if given and not args.caption_model:
        flags = {"prompt": "--caption-prompt", "frames": "--caption-frames", "max_new_tokens": "--caption-max-tokens"}
        raise CLIError(f"{', '.join(flags[k] for k in given)}: captions are off without --caption-model DIR")
    captions = CaptionConfig(model=args.caption_model, **given)
    captions.check()
    check_output_folder(Path(args.out), "--out")
    cfg = AnnotateConfig(fps=args.fps, width=args.width or None, max_frames=args.max_frames, backend=args.backend,
                         pose_weights=args.pose_weights, captions=captions,
                         fov=args.fov, intrinsics=args.intrinsics, scale=args.scale,
                         camera_height=args.camera_height, depth_model=args.depth_model,
                         use_depth_sidecar=not args.no_depth_sidecar, source=args.source, licence=args.licence,
                         frames_codec=args.codec)
    s = annotate(args.inputs, args.out, cfg, workers=args.workers, ray_address=args.ray, overwrite=args.overwrite,
                 progress=not args.quiet)
    print(f"{s.out}: {s.clips_kept} clips kept, {s.clips_rejected} rejected, {s.shots_dropped} shots dropped, "
          f"from {s.inputs} inputs ({s.skipped} already done); {s.frames} frames in {s.seconds:.1f} s "
          f"({s.frames_per_second:.2f} frames/s); report: {Path(s.out) / 'annotate' / 'report.md'}")
    if s.failed:
        print(f"could not read {len(s.failed)} inputs (see the report): {', '.join(s.failed[:3])}")
    return 0
