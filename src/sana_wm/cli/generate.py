"""`sana-wm generate`: one image + a camera path (+ a prompt) -> an MP4 and its JSON sidecar."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from sana_wm.cli import CLIError
from sana_wm.limits import check_finite, check_frames, check_image_pixels

DESCRIPTION = """\
Generate a video from a first frame and a camera path with a SANA-WM model.

The camera path is one of:
  --action STR   keyboard-style actions, e.g. "w-100,dw-60,a-40" (keys w a s d i j k l or none,
                 each held for the given number of frames; see `sana-wm camera action --help`)
  --camera FILE  a trajectory file or folder in any format `sana-wm camera convert` reads
  --preset NAME  a built-in path (see `sana-wm camera preset --help`)

Frames: the video has --num-frames frames (or --seconds * fps + 1; default: the whole path),
rounded down to 8k+1 (streaming: 24k+1) as the video VAE needs (a warning says how many were
dropped). A path shorter than that is an error unless --extend hold|resample. An option that cannot
take effect (a prompt for a text-free model, refiner options without a refiner, --fov for a path
with intrinsics, ...) prints a warning and is left out of the sidecar. Output: 16 fps MP4 (H.264)
plus OUT.sana-wm.json, a sidecar with everything needed to regenerate the video
(`sana_wm.pipeline.regenerate_from_sidecar`).
Streaming writes each chunk as soon as it is decoded, so an interrupted run keeps its frames.

Resuming (streaming, without a refiner): every --resume-every chunks (default 1) the run saves
OUT.resume.safetensors next to the video (the streaming cache, the noise generator's state, the
finished chunks' latents and the request), removed when the run ends. After a kill or Ctrl-C,
`sana-wm generate --resume OUT.mp4` continues from the last saved chunk with the recorded image,
camera path, model and settings, and writes the same video an uninterrupted run writes.

Variant defaults: bidirectional 60 steps, cfg 5, shift 8; chunk-causal 60 steps, cfg 5,
shift 9.8; streaming the 4-step list 1000,960,889,727,0 with cfg 1.

Refiner (stage 2): used whenever the model folder has one (refiner/ or refiner_diffusers/), or
given with --refiner; --no-refiner skips it. It re-noises the stage-1 latents to sigma 0.909 and
takes 3 steps with the first latent frame as a clean sink: all frames at once for bidirectional
and chunk-causal, chunk by chunk (blocks of 3 latent frames, 11-frame K/V window) for streaming.
As in the release, the refined video drops the first (sink) frame: 8k frames instead of 8k+1
(--keep-sink-frame keeps it).

Low precision: --stage1-precision / --refiner-precision quantize the transformers' block GEMMs
(fp8, nvfp4, int8, int4; torchao on a GPU that runs them, an exact but slow emulation on the CPU).
Prompts: the text encoders run first and are freed before the transformers load; with
--prompt-embeds (from `sana-wm encode-prompt`) they are not loaded at all.

Memory plan: --gpu-memory GIB picks the precisions, refiner offload, refiner K/V window and where
the text encoders run so that the run fits a GPU of that much memory (`sana-wm plan` shows the
choices); flags you set yourself are kept and the rest planned around them. The chosen plan is
printed and recorded in the sidecar. On the CPU it does not take effect (said in one line).

On a GPU, streaming: stage 1, the refiner and the VAE decode of successive chunks run overlapped on
separate CUDA streams (the same video as in order; --no-overlap turns it off). --compile compiles the
transformer's blocks with torch.compile: the first chunks take longer while each new shape compiles,
later chunks run without per-kernel launch overhead; the sidecar's "timing" keeps the first chunk's time
apart from the steady per-chunk time. Neither takes effect on the CPU (a warning says so).
"""


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("generate", help="generate a video from an image and a camera path",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", metavar="IMG", help="first frame (any image PIL reads); resized keeping its aspect "
                   "and centre-cropped to the model size (704x1280 for the official model)")
    p.add_argument("--example", metavar="NAME",
                   help="a bundled example: its first frame and camera path stand in for --image and --camera "
                        "(names: `sana-wm generate --list-examples`)")
    p.add_argument("--list-examples", action="store_true", help="list the bundled examples and exit")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--action", metavar="STR", help="action string, e.g. \"w-100,dw-60\"")
    src.add_argument("--camera", metavar="TRAJ", help="trajectory file or folder (intrinsics in pixels of --image)")
    src.add_argument("--preset", metavar="NAME", help="built-in camera preset")
    p.add_argument("--preset-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of --preset (repeatable), e.g. --preset-arg degrees=180")
    p.add_argument("--mapping", choices=("current", "legacy"), default="current",
                   help="key mapping of --action (default: current, the released one)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, metavar="S", help="video length in seconds (frames = S * fps + 1)")
    length.add_argument("--num-frames", type=int, metavar="N", help="number of frames (rounded down to 8k+1)")
    p.add_argument("--extend", choices=("error", "hold", "resample"), default="error",
                   help="when the path is shorter than the video: error (default), hold the last pose, "
                        "or resample (stretch) the path")
    p.add_argument("--fov", type=float, metavar="DEG",
                   help="horizontal field of view when the path has no intrinsics (default: 60)")
    p.add_argument("--prompt", metavar="TEXT", help="scene description (default: a generic static-scene prompt; "
                   "describe the scene, not the camera motion)")
    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a UTF-8 text file")
    p.add_argument("--prompt-embeds", metavar="FILE.safetensors",
                   help="prompt states written by `sana-wm encode-prompt` for this model, in place of --prompt "
                        "(the text encoders are then not loaded at all). Without it the text encoders run first "
                        "and are freed before the transformers load")
    p.add_argument("--negative-prompt", metavar="TEXT", help="negative prompt of text guidance (default: empty; "
                   "used only when --cfg is not 1)")
    p.add_argument("--model", metavar="DIR_OR_HF_ID",
                   help="model folder in the released layout or a hub id such as "
                        "Efficient-Large-Model/SANA-WM_bidirectional (default: the bundled sana-wm-synth, a small "
                        "model of our synthetic world that runs on a CPU)")
    p.add_argument("--variant", choices=("bidirectional", "chunk-causal", "streaming"),
                   help="which weights/sampler (default: detected from the model folder)")
    p.add_argument("--vae", metavar="DIR", help="VAE folder (default: the model's vae/ or ltx2_causal_vae/)")
    p.add_argument("--text-encoder", metavar="DIR_OR_HF_ID",
                   help="Gemma-2 folder or hub id (default: the model's text_encoder/ or "
                        "Efficient-Large-Model/gemma-2-2b-it)")
    p.add_argument("--steps", type=int, metavar="N", help="denoising steps (default: per variant)")
    p.add_argument("--cfg", type=float, metavar="W", help="text guidance scale (default: per variant; 1 = off)")
    p.add_argument("--shift", type=float, metavar="S", help="flow shift of the sigma schedule (default: per variant)")
    p.add_argument("--camera-cfg", type=float, metavar="W",
                   help="camera guidance: contrast the path with a camera that stands still (W > 1), meant for the "
                        "released models; on the bundled model it lowers both image quality and camera-following "
                        "(at W 2: PSNR at 1 s 22.0 -> 17.6 dB, motion gain 0.75 -> 0.48 on validation seeds) "
                        "(default: the model's, else 1 = off; use it instead of --cfg, not with it)")
    p.add_argument("--camera-cfg-chunks", type=int, metavar="N",
                   help="streaming: apply --camera-cfg to the first N chunks only (3 latent frames = 24 video frames "
                        "each; the first also holds the image), so guidance moves the start without compounding "
                        "drift over a long rollout (default: the model's, else every chunk)")
    p.add_argument("--seed", type=int, default=42, metavar="K", help="random seed (default: 42)")
    refiner = p.add_mutually_exclusive_group()
    refiner.add_argument("--no-refiner", action="store_true", help="stage 1 only, even if the model has a refiner")
    refiner.add_argument("--refiner", metavar="DIR_OR_HF_ID",
                         help="stage-2 refiner: a refiner folder (transformer/ + connectors/), a model folder "
                              "holding refiner/ or refiner_diffusers/, or a hub id (default: the model's own)")
    p.add_argument("--refiner-text-encoder", metavar="DIR",
                   help="the refiner's Gemma-3 folder (default: refiner/text_encoder/ or gemma3_12b/)")
    p.add_argument("--refiner-mode", choices=("bidirectional", "streaming"),
                   help="all frames at once, or blocks over a sliding window (default: streaming for the "
                        "streaming variant, else bidirectional)")
    p.add_argument("--refiner-seed", type=int, metavar="K", help="refiner noise seed (default: --seed)")
    p.add_argument("--refiner-block-frames", type=int, metavar="N",
                   help="latent frames per refiner block in streaming mode (default: 3)")
    p.add_argument("--refiner-kv-max-frames", type=int, metavar="N",
                   help="latent frames of K/V the streaming refiner keeps, sink included (default: 11)")
    p.add_argument("--keep-sink-frame", action="store_true",
                   help="keep the refiner's first (sink) frame, so the video has 8k+1 frames")
    p.add_argument("--gpu-memory", type=float, metavar="GIB",
                   help="plan the settings you did not set (precisions, --refiner-offload, --refiner-kv-max-frames, "
                        "--text-encoder-device) to fit a GPU of GIB GiB, or refuse naming the nearest setting "
                        "(see `sana-wm plan`)")
    p.add_argument("--refiner-offload", choices=("resident", "blocks"),
                   help="blocks: keep the refiner's blocks in host memory and move each to the GPU while it runs "
                        "(two at once, the next copied while one computes), for GPUs too small for the whole "
                        "refiner; slower by the copies (default: resident)")
    p.add_argument("--text-encoder-device", metavar="DEVICE",
                   help="where the text encoders run before generation (default: --device); cpu keeps them off "
                        "the GPU (slower, once per prompt)")
    p.add_argument("--text-encoder-dtype", choices=("bf16", "fp32"),
                   help="precision the text encoders run in, on any device (default: bf16, the released weights' "
                        "own; fp32 doubles their memory: 49 GB for the refiner's Gemma-3-12B)")
    p.add_argument("--offload", action="store_true",
                   help="keep the text encoders, VAE and refiner on the CPU while they are idle (less GPU memory)")
    precisions = ("bf16", "fp8", "nvfp4", "int8", "int4")
    p.add_argument("--stage1-precision", choices=precisions,
                   help="quantize stage 1's block GEMMs (embedders, camera projections and the final layer stay "
                        "unquantized): fp8 (W8A8, GPUs sm_89+), nvfp4 (W4A4 with the Hadamard transform and "
                        "stochastic rounding, sm_100+), int8/int4 (weight-only, any CUDA GPU); on the CPU an exact "
                        "emulation, slower, for measuring quality. Default bf16: not quantized (see --dtype)")
    p.add_argument("--refiner-precision", choices=precisions,
                   help="the same for the refiner's blocks (its input/output projections, time embedding and "
                        "caption projection stay unquantized); default bf16")
    p.add_argument("--no-overlap", dest="overlap", action="store_const", const=False,
                   help="streaming on CUDA: run stage 1, the refiner and the VAE decode one after another instead of "
                        "overlapped on separate CUDA streams (the video is the same either way; default: overlapped "
                        "there; elsewhere they always run in order)")
    p.add_argument("--compile", action="store_true",
                   help="CUDA: torch.compile the transformer's blocks; the first chunks take longer while each new "
                        "shape compiles (reported apart), later ones run without per-kernel launch overhead")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"),
                   help="transformer precision (default: bf16 on GPU, fp32 on CPU)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--prompt-cache", metavar="DIR", help="cache encoded prompts in this folder")
    p.add_argument("--no-action-overlay", action="store_true", help="do not draw the held keys on --action videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-validate", action="store_true",
                   help="experts: use the camera path without the checks of `sana-wm camera validate` "
                        "(orthonormal rotations, no reflections, field of view 25-120 degrees, finite values)")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="experts: run even when the memory estimate (weights, activations, cache, frames) exceeds "
                        "the free memory of the device (host RAM on the CPU); without it such a run is refused "
                        "before sampling, with settings that would fit")
    p.add_argument("--out", "-o", metavar="VIDEO.mp4",
                   help="output video, a .mp4 file (required unless --list-examples or --resume)")
    p.add_argument("--resume", metavar="VIDEO.mp4",
                   help="continue the interrupted streaming run that was writing VIDEO.mp4, from its "
                        "VIDEO.resume.safetensors (the recorded inputs and settings are used: give no others)")
    p.add_argument("--resume-every", type=int, metavar="N",
                   help="streaming: save the resume file every N chunks (default 1; 0 = never). Each save writes "
                        "the streaming cache and the latents so far")
    p.set_defaults(func=cmd_generate)


# The pipeline's options that the CLI spells otherwise than "--" + the name with dashes.
_FLAGS = {
    "output": "--out",
    "memory_check": "--skip-memory-check",
    "refiner_settings.mode": "--refiner-mode",
    "refiner_settings.seed": "--refiner-seed",
    "refiner_settings.block_frames": "--refiner-block-frames",
    "refiner_settings.kv_max_frames": "--refiner-kv-max-frames",
    "refiner_settings.keep_sink_frame": "--keep-sink-frame",
    "overlap": "--no-overlap",
}


def flag(option: str) -> str:
    """The flag of a pipeline option (``camera_cfg_chunks`` -> ``--camera-cfg-chunks``)."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def _show_option_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from sana_wm.pipeline import OptionWarning

    if isinstance(message, OptionWarning):
        print(f"sana-wm: warning: {message.render(flag)}", file=sys.stderr)
    else:
        print(f"sana-wm: warning: {message}", file=sys.stderr)


@contextmanager
def show_option_warnings():
    """Within the block, warnings print as one line each, options spelled as flags."""
    with warnings.catch_warnings():
        warnings.showwarning = _show_option_warning
        yield


def _trajectory(args: argparse.Namespace, image_size: tuple[int, int]):
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.camera.formats import read_trajectory
    from sana_wm.camera.presets import make_preset
    from sana_wm.cli import CLIError

    if args.action is not None:
        from sana_wm.camera.trajectory import TrajectoryError

        try:
            return action_to_trajectory(args.action, args.mapping)
        except TrajectoryError as exc:
            raise CLIError(f"--action: {exc}") from None
    if args.camera is not None:
        return read_trajectory(args.camera, width=image_size[0], height=image_size[1])
    params = {}
    for item in args.preset_arg:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--preset-arg {item!r}: write KEY=VALUE")
        params[key.strip()] = value.strip()
    seconds = args.seconds if args.seconds is not None else 10.0
    return make_preset(args.preset, seconds=seconds, **params)


# Flags naming files or folders that generate reads; --out (and the files written beside it) may be none of them.
_INPUT_FLAGS = ("image", "camera", "prompt_file", "prompt_embeds", "model", "vae", "text_encoder", "refiner",
                "refiner_text_encoder")


def _check_out_is_not_an_input(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --out whose video, partial video or sidecar would replace an input: the same
    file under any name (links, ``..``), or a file inside an input folder (a --camera folder, the model's)."""
    from sana_wm.cli import CLIError
    from sana_wm.io import paths_overlap, same_file
    from sana_wm.pipeline.sidecar import sidecar_path
    from sana_wm.pipeline.video import partial_video_path

    out = Path(args.out)
    written = (out, partial_video_path(out), sidecar_path(out))
    for name in _INPUT_FLAGS:
        given = getattr(args, name, None)
        if given is None or not Path(given).exists():  # a hub id, or a missing file that is reported later
            continue
        source = Path(given)
        for target in written:
            if paths_overlap(target, source):
                what = "is" if target == out else f"would write {target}, which is"
                where = "" if same_file(target, source) else "inside "
                raise CLIError(f"--out {out} {what} {where}{flag(name)} {source}; writing it would replace an "
                               "input. Choose another --out")


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse non-finite and nonsensical numbers and sizes above the limits before any file is read, by the rules
    the pipeline applies to every request (``check_generation_numbers``)."""
    from sana_wm.pipeline import OptionError
    from sana_wm.pipeline.pipeline import check_generation_numbers

    check_finite(args.seconds, "--seconds", low=0.0, low_open=True)
    check_finite(args.gpu_memory, "--gpu-memory", low=0.0, high=4096.0, low_open=True)
    values = {name: getattr(args, name) for name in ("num_frames", "steps", "cfg", "camera_cfg", "shift", "fov",
                                                      "camera_cfg_chunks", "resume_every", "seed")}
    values["refiner_settings.seed"] = args.refiner_seed
    values["refiner_settings.block_frames"] = args.refiner_block_frames
    values["refiner_settings.kv_max_frames"] = args.refiner_kv_max_frames
    try:
        check_generation_numbers(values)
    except OptionError as exc:
        raise CLIError(exc.render(flag)) from None


def _check_output_folder(out: Path) -> None:
    """The folder of --out must exist and be writable before a model is loaded and sampled."""
    folder = out.parent
    if out.is_dir():
        raise CLIError(f"--out {out}: is a folder; give a file name ending in .mp4")
    if not folder.exists():
        raise CLIError(f"--out {out}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise CLIError(f"--out {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: the folder {folder} is not writable; choose another --out")


# Flags that may come with --resume (where and how to run, not what to make); all others must be left unset.
_RESUME_FLAGS = {"resume", "resume_every", "device", "no_progress", "skip_memory_check", "overlap", "func", "group"}
_DEFAULTS = {"mapping": "current", "extend": "error", "seed": 42, "preset_arg": []}  # argparse defaults not None


def _resume(args: argparse.Namespace) -> int:
    """``--resume VIDEO.mp4``: continue the run from its resume file, with the request recorded there."""
    from sana_wm.cli import CLIError
    from sana_wm.pipeline.resume import read_resume_record, resume_path
    from sana_wm.pipeline.sidecar import regenerate_from_record

    given = sorted(key for key, value in vars(args).items()
                   if key not in _RESUME_FLAGS and value != _DEFAULTS.get(key, None) and value is not False)
    if given:
        flags = ", ".join(flag(key) for key in given)
        raise CLIError(f"--resume continues the recorded run with its own inputs and settings; drop {flags}")
    video = Path(args.resume)
    if video.suffix.lower() != ".mp4":
        raise CLIError(f"--resume {video}: give the video the interrupted run was writing (a .mp4 file)")
    record = read_resume_record(resume_path(video))
    image = Path(record["image"].get("path", ""))
    if not image.is_file():
        raise CLIError(f"--resume {video}: the recorded first frame {image} is missing; put it back to continue")
    device = args.device or record["settings"].get("device")
    result = regenerate_from_record(record, video, device=device, check_image=False, progress=not args.no_progress,
                                    resume=True, resume_every=args.resume_every,
                                    memory_check=not args.skip_memory_check, overlap=args.overlap)
    print(f"wrote {result.video_path} ({result.num_frames} frames at {result.fps:g} fps, resumed, "
          f"{result.seconds:.1f} s) and {result.sidecar}")
    return 0


def _apply_memory_plan(args: argparse.Namespace, device, num_frames: int, refiner) -> dict | None:
    """``--gpu-memory``: plan the settings the user did not set and write them into ``args``; the record of the
    plan for the sidecar (None where it does not take effect). Refuses, naming the nearest setting, when nothing
    fits."""
    from dataclasses import asdict

    from sana_wm.cli import CLIError
    from sana_wm.pipeline.pipeline import VARIANT_DEFAULTS, _refiner_source, resolve_model
    from sana_wm.pipeline.plan import PlanRequest, budget_bytes, model_sizes, nothing_fits, plan_generation
    from sana_wm.pipeline.refiner import resolve_refiner
    from sana_wm.pipeline.text import text_encoder_dtype

    if args.gpu_memory is None:
        return None
    budget = budget_bytes(args.gpu_memory)
    if device.type != "cuda":
        print(f"sana-wm: --gpu-memory {args.gpu_memory:g} does not take effect: this run is on the {device.type}, "
              "not a GPU (the settings are the ones given)", file=sys.stderr)
        return None
    import torch

    files = resolve_model(args.model, args.variant, vae=args.vae, text_encoder=args.text_encoder)
    source = _refiner_source(files, refiner)
    refiner_files = resolve_refiner(source, text_encoder=args.refiner_text_encoder) if source is not None else None
    sizes = model_sizes(files, refiner_files)
    defaults = VARIANT_DEFAULTS[files.variant]
    guided = (args.cfg if args.cfg is not None else defaults.cfg) != 1.0 or (args.camera_cfg or 1.0) != 1.0
    fixed = {name: value for name, value in (
        ("stage1_precision", args.stage1_precision), ("refiner_precision", args.refiner_precision),
        ("refiner_offload", args.refiner_offload), ("refiner_kv_frames", args.refiner_kv_max_frames)) if value}
    if args.prompt_embeds is not None:
        fixed["text_encoders"] = "embeds"
    elif args.text_encoder_device is not None:
        fixed["text_encoders"] = "cpu" if torch.device(args.text_encoder_device).type == "cpu" else "gpu"
    request = PlanRequest(budget, files.variant, num_frames, refiner_files is not None, guided,
                          tuple(torch.cuda.get_device_capability(device)), fixed,
                          text_encoder_bytes=text_encoder_dtype(args.text_encoder_dtype).itemsize)
    plan = plan_generation(sizes, request)
    chosen = plan.chosen
    if chosen is None:
        raise CLIError(nothing_fits(plan).render(flag))
    s = chosen.setting
    args.stage1_precision = s.stage1_precision
    if refiner_files is not None:
        args.refiner_precision, args.refiner_offload = s.refiner_precision, s.refiner_offload
        if files.variant == "streaming":
            args.refiner_kv_max_frames = s.refiner_kv_frames
    if s.text_encoders == "cpu":
        args.text_encoder_device = "cpu"
    print(f"sana-wm: --gpu-memory {args.gpu_memory:g}: {s.describe()} (estimated peak "
          f"{chosen.peak_bytes / 2**30:.1f} GiB)", file=sys.stderr)
    return {"gpu_memory_gib": args.gpu_memory, "setting": asdict(s), "set_by_user": sorted(fixed),
            "estimated_peak_gib": round(chosen.peak_bytes / 2**30, 3),
            "stage_peaks_gib": {k: round(v / 2**30, 3) for k, v in chosen.stage_peaks().items()}}


def _encode_first(args: argparse.Namespace, prompt: str | None, refiner, device):
    """The prompt states, from the model's text encoders loaded and freed here, before any transformer loads
    (None for a model that takes no text: the pipeline then reports a given prompt as ignored)."""
    from sana_wm.pipeline.pipeline import TEXT_FREE, resolve_model
    from sana_wm.pipeline.prompt_embeds import encode_for_files
    from sana_wm.pipeline.text import DEFAULT_PROMPT

    files = resolve_model(args.model, args.variant, vae=args.vae, text_encoder=args.text_encoder)
    if files.text_encoder == TEXT_FREE:
        for given, value in (("--text-encoder-device", args.text_encoder_device),
                             ("--text-encoder-dtype", args.text_encoder_dtype)):
            if value is not None:
                warnings.warn(f"{given} is ignored: this model takes no text", stacklevel=2)
        return None
    return encode_for_files(files, DEFAULT_PROMPT if prompt is None else prompt,
                            negative_prompt=args.negative_prompt or "", refiner=refiner,
                            refiner_text_encoder=args.refiner_text_encoder,
                            device=args.text_encoder_device or device, cache=args.prompt_cache,
                            text_encoder_dtype=args.text_encoder_dtype)


def cmd_generate(args: argparse.Namespace) -> int:
    from PIL import Image, UnidentifiedImageError

    from sana_wm.bundled import bundled_model_dir, example_files
    from sana_wm.cli import CLIError

    examples = example_files()
    if args.list_examples:
        for name, (image_file, camera_file) in examples.items():
            print(f"{name:16s} {image_file}  {camera_file}")
        return 0
    if args.resume is not None:
        from sana_wm.pipeline import OptionError

        with show_option_warnings():
            try:
                return _resume(args)
            except OptionError as exc:
                raise CLIError(exc.render(flag)) from None
    if args.out is None:
        raise CLIError("--out VIDEO.mp4 is required")
    if Path(args.out).suffix.lower() != ".mp4":
        raise CLIError(f"--out {args.out}: the video is written as H.264 MP4, so the name must end in .mp4")
    if args.example is not None:
        if args.example not in examples:
            raise CLIError(f"--example {args.example!r}: no such bundled example; choose from "
                           f"{', '.join(examples) or '(none installed)'}")
        if args.image is not None:
            raise CLIError("--example gives the first frame: drop --image (or drop --example)")
        args.image = str(examples[args.example][0])
        if args.action is None and args.camera is None and args.preset is None:
            args.camera = str(examples[args.example][1])
    if args.image is None:
        raise CLIError("give a first frame with --image IMG (or a bundled --example NAME)")
    if args.action is None and args.camera is None and args.preset is None:
        raise CLIError("give a camera path: --action STR, --camera FILE or --preset NAME")
    if args.model is None:
        args.model = str(bundled_model_dir())
    _check_numbers(args)
    _check_output_folder(Path(args.out))
    _check_out_is_not_an_input(args)
    image = Path(args.image)
    if not image.is_file():
        raise CLIError(f"--image {image}: file not found")
    try:
        with Image.open(image) as im:
            check_image_pixels(*im.size, f"--image {image}")  # from the header, before any pixel is decoded
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise CLIError(f"--image {image}: not a readable image ({exc})") from None
    from sana_wm.pipeline.image import ImageError, load_image

    try:
        # Decoded and converted now (EXIF orientation, bit depth), so a frame that cannot be used is refused before
        # any model is loaded; its size is the one the camera path's intrinsics refer to.
        image_size = load_image(image).size
    except ImageError as exc:
        raise CLIError(f"--image: {exc}") from None
    prompt = args.prompt
    if args.prompt_file is not None:
        if prompt is not None:
            raise CLIError("give --prompt or --prompt-file, not both")
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
            raise CLIError(f"--prompt-file {args.prompt_file}: cannot read it ({why})") from None
    if args.prompt_embeds is not None:
        given = [name for name in ("prompt", "prompt_file", "negative_prompt") if getattr(args, name) is not None]
        if given:
            raise CLIError(f"--prompt-embeds holds the encoded prompts: drop {flag(given[0])} (or encode it into the "
                           "file with `sana-wm encode-prompt`)")

    traj = _trajectory(args, image_size)
    if not args.no_validate:
        from sana_wm.camera.trajectory import TrajectoryError

        try:
            traj.validate()
        except TrajectoryError as exc:
            source = next(f"--{k} {getattr(args, k)}" for k in ("action", "camera", "preset")
                          if getattr(args, k) is not None)
            raise CLIError(f"{source}: {exc}\n(check it with `sana-wm camera validate`; --no-validate uses it "
                           "anyway)") from None
    num_frames = args.num_frames
    if args.seconds is not None:
        check_frames(args.seconds * traj.fps + 1, f"--seconds {args.seconds:g}")
        num_frames = int(round(args.seconds * traj.fps)) + 1

    import torch

    from sana_wm.io import check_free_space
    from sana_wm.pipeline import OptionError, SanaWMPipeline
    from sana_wm.pipeline.pipeline import first_write_bytes

    # Before a model is loaded: room for the first chunk (streaming) or the whole video, and the resume file.
    check_free_space(Path(args.out).parent, first_write_bytes(args.model, args.variant, num_frames or traj.num_frames),
                     f"--out {args.out}")

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    refiner = None if args.no_refiner else (args.refiner if args.refiner is not None else "auto")
    for given, value in (("--text-encoder-device", args.text_encoder_device),
                         ("--text-encoder-dtype", args.text_encoder_dtype)):
        if args.prompt_embeds is not None and value is not None:
            raise CLIError(f"--prompt-embeds holds the encoded prompts, so no text encoder runs: drop {given}")
    if args.text_encoder_device is not None:
        try:
            torch.device(args.text_encoder_device)
        except RuntimeError:
            raise CLIError(f"--text-encoder-device {args.text_encoder_device}: not a torch device; use cpu or "
                           "cuda") from None
    try:
        memory_plan = _apply_memory_plan(args, device, num_frames or traj.num_frames, refiner)
    except OptionError as exc:
        raise CLIError(exc.render(flag)) from None
    # Only the refiner options given on the command line (or planned), so that the pipeline can say which ones
    # cannot act.
    given = {"mode": args.refiner_mode, "seed": args.refiner_seed, "block_frames": args.refiner_block_frames,
             "kv_max_frames": args.refiner_kv_max_frames, "keep_sink_frame": args.keep_sink_frame or None}
    refiner_settings = {key: value for key, value in given.items() if value is not None}
    from sana_wm.quant import DeviceInfo, choose_backend

    args.stage1_precision = args.stage1_precision or "bf16"
    info = DeviceInfo.of(device)  # a precision this device cannot run is refused before anything loads
    choose_backend(args.stage1_precision, info)
    if args.refiner_precision is not None:
        choose_backend(args.refiner_precision, info, flag="--refiner-precision")
    with show_option_warnings():
        try:
            embeds = args.prompt_embeds or _encode_first(args, prompt, refiner, device)
            pipe = SanaWMPipeline.from_pretrained(args.model, args.variant, text_encoder=args.text_encoder,
                                                  vae=args.vae, device=device, dtype=args.dtype, offload=args.offload,
                                                  prompt_cache=args.prompt_cache, refiner=refiner,
                                                  refiner_text_encoder=args.refiner_text_encoder,
                                                  stage1_precision=args.stage1_precision,
                                                  refiner_precision=args.refiner_precision,
                                                  text_encoders=embeds is None,
                                                  refiner_offload=args.refiner_offload, compile=args.compile,
                                                  text_encoder_dtype=args.text_encoder_dtype)
            pipe.memory_plan = memory_plan
            if pipe.compiled:
                print("sana-wm: --compile: the transformer's blocks compile on their first calls, so the first "
                      "chunks take longer (timed apart)", file=sys.stderr)
            if embeds is not None:
                prompt = args.negative_prompt = None
            result = pipe.generate(image, traj, num_frames=num_frames, prompt=prompt, prompt_embeds=embeds,
                                   negative_prompt=args.negative_prompt, steps=args.steps, cfg=args.cfg,
                                   shift=args.shift, camera_cfg=args.camera_cfg,
                                   camera_cfg_chunks=args.camera_cfg_chunks, seed=args.seed, output=args.out,
                                   progress=not args.no_progress, fov=args.fov, extend=args.extend,
                                   action=args.action, overlay_actions=not args.no_action_overlay,
                                   refiner_settings=refiner_settings or None, resume_every=args.resume_every,
                                   memory_check=not args.skip_memory_check, overlap=args.overlap)
        except OptionError as exc:
            raise CLIError(exc.render(flag)) from None
    stage = "stage 1 + refiner" if pipe.refiner is not None else "stage 1"
    if pipe.compiled and result.timing is not None:
        steady = result.timing["steady_chunk_s"]
        print(f"sana-wm: --compile: first chunk {result.timing['first_chunk_s']:.2f} s (compilation included)"
              + ("" if steady is None else f", then {steady:.3f} s per chunk"), file=sys.stderr)
    print(f"wrote {result.video_path} ({result.num_frames} frames at {result.fps:g} fps, {stage}, "
          f"{result.seconds:.1f} s) and {result.sidecar}")
    return 0
