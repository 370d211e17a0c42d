"""`sana-wm plan`: the settings under which a generation fits a GPU's memory, best first."""

from __future__ import annotations

import argparse
import json
import sys

from sana_wm.cli import CLIError

DESCRIPTION = """\
List the settings under which a generation fits a GPU memory budget, the chosen one first, with the
expected peak memory of each stage, the largest parts and the speed cost; no weights are loaded (the
transformers are built on the meta device, the other parts counted from their file headers).

Settings varied: precision of stage 1 and of the refiner (bf16, int8, fp8, int4, nvfp4: what the GPU's
compute capability runs), the text encoders run first on the GPU or on the CPU (they are freed before the
transformers load either way; --prompt-embeds skips them), the refiner resident or moved in block by block,
and the streaming refiner's K/V window (11 frames as released; 2 saves memory with more flicker).

Ranking: fits; then not slower than real time from weight transfers alone (offloaded blocks cross PCIe at an
assumed 25 GB/s); then quality, in the order measured on the CPU emulation (bf16, then int8/fp8, then int4,
then nvfp4; the 2-frame window counts as one step); then speed. A precision that raised the camera error by
more than 10% on the bundled model is listed but never chosen. The estimate is the memory model that
`generate` checks before sampling: an upper bound, measured on the CPU, not yet on a GPU.

`sana-wm generate --gpu-memory GIB` applies the chosen setting to the flags you did not set.
"""


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("plan", help="settings that fit a GPU memory budget (precision, offload, K/V window)",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu-memory", type=float, metavar="GIB",
                   help="the GPU's memory in GiB (default: the free memory of this machine's GPU)")
    p.add_argument("--model", metavar="DIR_OR_HF_ID",
                   help="a model folder in the released layout (default: the released SANA-WM sizes)")
    p.add_argument("--variant", choices=("bidirectional", "chunk-causal", "streaming"), default="streaming",
                   help="default: streaming")
    p.add_argument("--refiner", choices=("on", "off"), default="on", help="run the stage-2 refiner (default on)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=60.0, metavar="S", help="video length (default 60)")
    length.add_argument("--num-frames", type=int, metavar="N", help="video frames (instead of --seconds)")
    p.add_argument("--cfg", type=float, metavar="W",
                   help="text guidance scale (doubles the batch unless 1; default: 1 streaming, 5 otherwise)")
    p.add_argument("--device-capability", metavar="MAJOR.MINOR",
                   help="plan for a GPU of this compute capability, e.g. 8.9 (Ada), 9.0 (Hopper), 10.0 "
                        "(Blackwell) (default: this machine's GPU, else 9.0)")
    p.add_argument("--text-encoder-dtype", choices=("bf16", "fp32"), default="bf16",
                   help="precision the text encoders run in, on the GPU or the CPU (default: bf16)")
    p.add_argument("--all", action="store_true", help="list every candidate, not only the ones that fit")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)


def parse_capability(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    major, dot, minor = text.partition(".")
    if not (major.isdigit() and (not dot or minor.isdigit())) or not 1 <= int(major) <= 20:
        raise CLIError(f"--device-capability {text}: write MAJOR.MINOR, e.g. 9.0 for an H100")
    return int(major), int(minor or 0)


def cmd_plan(args: argparse.Namespace) -> int:
    import torch

    from sana_wm.limits import check_finite, check_frames
    from sana_wm.pipeline import OptionError
    from sana_wm.pipeline.plan import PlanRequest, budget_bytes, model_sizes, official_sizes, plan_generation
    from sana_wm.pipeline.text import text_encoder_dtype

    check_finite(args.gpu_memory, "--gpu-memory", low=0.0, high=4096.0, low_open=True)
    check_finite(args.seconds, "--seconds", low=0.0, low_open=True)
    check_finite(args.cfg, "--cfg")
    capability = parse_capability(args.device_capability)
    cuda = torch.cuda.is_available()
    if capability is None:
        capability = tuple(torch.cuda.get_device_capability()) if cuda else (9, 0)
    try:
        if args.gpu_memory is None:
            if not cuda:
                raise CLIError("no GPU here: give the memory of the GPU to plan for with --gpu-memory GIB")
            budget = int(torch.cuda.mem_get_info()[0])
        else:
            budget = budget_bytes(args.gpu_memory)
        if args.model is None:
            sizes = official_sizes()
        else:
            from sana_wm.pipeline.pipeline import _refiner_source, resolve_model
            from sana_wm.pipeline.refiner import resolve_refiner

            files = resolve_model(args.model, args.variant)
            source = _refiner_source(files, "auto") if args.refiner == "on" else None
            sizes = model_sizes(files, resolve_refiner(source) if source is not None else None)
        if args.num_frames is not None:
            num_frames, what = args.num_frames, f"--num-frames {args.num_frames}"
        else:
            num_frames, what = int(round(args.seconds * sizes.fps)) + 1, f"--seconds {args.seconds:g}"
        check_frames(num_frames, what)
        if num_frames < 2:
            raise CLIError(f"{what}: give a video of at least 2 frames")
        cfg = args.cfg if args.cfg is not None else (1.0 if args.variant == "streaming" else 5.0)
        request = PlanRequest(budget, args.variant, num_frames, args.refiner == "on", cfg != 1.0, capability,
                              text_encoder_bytes=text_encoder_dtype(args.text_encoder_dtype).itemsize)
        plan = plan_generation(sizes, request)
    except OptionError as exc:
        from sana_wm.cli.generate import flag

        raise CLIError(exc.render(flag)) from None
    if args.json:
        json.dump(plan.to_dict(), sys.stdout, indent=1)
        print()
    else:
        print(f"GPU compute capability {capability[0]}.{capability[1]}")
        print(plan.table(all_rows=args.all))
    return 0
