"""What each precision costs in quality, measured on the CPU with the exact emulation (sana_wm.quant).

Four parts (each optional):

* ``stage1``: the released stage-1 block shapes (official-2.6b: width 2240, 20 heads, FFN 6720) at a reduced
  depth (``--depth``, one GDN block and one softmax block by default) with random weights (camera paths
  included), on a small latent grid. For each precision: the relative error of one denoising step (the
  velocity) against the float32 model, the relative error of the *camera effect* (velocity with the moving
  path minus velocity with a standing camera, both with the same stochastic-rounding draws: the small residual
  the release says NVFP4 loses without the Hadamard transform), and the relative error of the first 4-step
  streaming chunk (released timesteps 1000, 960, 889, 727).
* ``refiner``: the LTX-2 refiner's block shapes (width 4096, 32 heads, FFN 16384, caption 3840) at
  ``--refiner-depth`` layers with random weights; relative error of one velocity on a small block.
* ``bundled``: the bundled model ``sana-wm-synth`` through the synthetic-world protocol
  (:func:`sana_wm.eval.synth_eval.evaluate_synth`, no baselines) at each precision: camera error (RotErr,
  TransErr_rel over the whole clip) and PSNR at each mark.

* ``paired``: the bundled runs already in ``--eval-dir``, each precision against the unquantized model clip by
  clip, with 95% bootstrap intervals (enough clips to tell precisions apart: ``--seeds 2000 ... 2011``).

``nvfp4-no-rht`` is stage-1 NVFP4 without the Hadamard transform and stochastic rounding (the refiner's
recipe), to test the release's reason for them. ``bf16`` is the model in bfloat16 (weights and
activations), the floor every quantized row sits on. Usage::

    python benchmarks/bench_quant.py --parts stage1 refiner bundled --out bench-quant.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time

import numpy as np
import torch

from sana_wm.model.random_init import randomize_
from sana_wm.quant import STAGE1_RULES, quantize_model

PRECISIONS = ("bf16", "fp8", "fp8-block", "int8", "int4", "nvfp4", "nvfp4-no-rht")
STREAM_TIMESTEPS = (1000.0, 960.0, 889.0, 727.0, 0.0)
NO_RHT = dataclasses.replace(STAGE1_RULES, name="stage1", nvfp4_hadamard=False, nvfp4_stochastic_rounding=False)


def quantized_copy(model, precision: str):
    """``model`` at ``precision``: a bfloat16 copy, or a float32 copy quantized by the emulation."""
    q = copy.deepcopy(model)
    if precision == "bf16":
        return q.to(torch.bfloat16)
    base = "nvfp4" if precision == "nvfp4-no-rht" else precision
    quantize_model(q, base, "emulate", rules=NO_RHT if precision == "nvfp4-no-rht" else None)
    return q


def reseed(model: torch.nn.Module) -> None:
    """Restart every stochastic-rounding generator of an emulated model from its seed."""
    import zlib

    from sana_wm.quant.modules import EmulatedLinear

    for m in model.modules():
        if isinstance(m, EmulatedLinear) and m.generator is not None:
            m.generator.manual_seed(zlib.crc32(m.name.encode("utf-8")))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# -- stage 1 -----------------------------------------------------------------------------------------------------
def _camera(frames: int, height: int, width: int, still: bool):
    from sana_wm.camera.conditioning import prepare_camera

    n_raw = 8 * (frames - 1) + 1
    s = np.linspace(0.0, 1.0, n_raw)
    c2w = np.tile(np.eye(4), (n_raw, 1, 1))
    if not still:
        a = 0.5 * s
        c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = np.cos(a), np.sin(a), -np.sin(a), np.cos(a)
        c2w[:, :3, 3] = np.stack([0.5 * s, 0.05 * np.sin(4 * s), 1.2 * s], -1)
    cam = prepare_camera(c2w, [150.0, 140.0, 96.0, 64.0], target_size=(32 * height, 32 * width)).batched(1)
    return cam.camera_vector, cam.plucker


def bench_stage1(depth: int, frames: int, height: int, width: int, precisions) -> list[dict]:
    from sana_wm.model import SanaWMTransformer, get_config
    from sana_wm.samplers import Conditioning, SigmaSchedule, stream_sample

    base = get_config("official-2.6b")
    config = dataclasses.replace(base, depth=depth, softmax_blocks=(depth - 1,))
    torch.manual_seed(0)
    model = SanaWMTransformer(config).eval()
    randomize_(model, 1)
    g = torch.Generator().manual_seed(2)
    latents = torch.randn(1, config.in_channels, frames, height, width, generator=g)
    timestep = torch.full((1, 1, frames), 500.0)
    timestep[..., 0] = 0.0
    text = torch.randn(1, 1, 16, config.caption_channels, generator=g)
    text_mask = torch.ones(1, 16)
    moving, standing = _camera(frames, height, width, False), _camera(frames, height, width, True)
    chunk = config.chunk_frames + 1  # the first streaming chunk holds the conditioning frame too
    stream_cond = Conditioning(text[:, 0], text_mask, *_camera(chunk, height, width, False))
    first = torch.randn(1, config.in_channels, 1, height, width, generator=g)
    schedule = SigmaSchedule.from_timesteps(STREAM_TIMESTEPS)

    @torch.no_grad()
    def measure(m):
        dtype = next(m.parameters()).dtype
        t0 = time.perf_counter()

        def v(camera):
            reseed(m)  # common random numbers: both camera paths see the same stochastic-rounding draws
            return m(latents=latents.to(dtype), timestep=timestep, text=text.to(dtype), text_mask=text_mask,
                     camera_vector=camera[0], plucker=camera[1].to(dtype)).float()

        v_move, v_still = v(moving), v(standing)
        cond = Conditioning(stream_cond.text.to(dtype), stream_cond.text_mask, stream_cond.camera_vector,
                            stream_cond.plucker.to(dtype))
        out = next(iter(stream_sample(m, cond, first.to(dtype), chunk, schedule,
                                      generator=torch.Generator().manual_seed(3)))).latents.float()
        return v_move, v_move - v_still, out, time.perf_counter() - t0

    ref_v, ref_cam, ref_chunk, ref_s = measure(model)
    rows = [{"precision": "fp32", "step": 0.0, "camera_effect": 0.0, "chunk": 0.0, "seconds": ref_s,
             "camera_effect_norm": float(ref_cam.norm() / ref_v.norm())}]
    for p in precisions:
        q = quantized_copy(model, p)
        v, cam, out, s = measure(q)
        rows.append({"precision": p, "step": rel(v, ref_v), "camera_effect": rel(cam, ref_cam),
                     "chunk": rel(out, ref_chunk), "seconds": s})
        print(json.dumps(rows[-1]), flush=True)
        del q
    return rows


# -- refiner -----------------------------------------------------------------------------------------------------
def bench_refiner(depth: int, frames: int, height: int, width: int, precisions) -> list[dict]:
    from diffusers import LTX2VideoTransformer3DModel

    from sana_wm.model.refiner import RefinerTransformer

    torch.manual_seed(0)
    raw = LTX2VideoTransformer3DModel(num_layers=depth, audio_in_channels=8, audio_out_channels=8,
                                      audio_num_attention_heads=1, audio_attention_head_dim=8,
                                      audio_cross_attention_dim=8)
    model = RefinerTransformer(raw)
    randomize_(model.model, 4)
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if "scale_shift_table" in name:
                p.normal_(0.0, 0.5)
    g = torch.Generator().manual_seed(5)
    latents = torch.randn(1, raw.config.in_channels, frames, height, width, generator=g)
    embeds = torch.randn(1, 32, raw.config.caption_channels, generator=g)

    @torch.no_grad()
    def measure(m):
        t0 = time.perf_counter()
        text = m.project_text(embeds, torch.ones(1, 32))
        v, _ = m.forward_block(latents, 0.6, list(range(1, frames + 1)), text, 16.0)
        return v, time.perf_counter() - t0

    ref, ref_s = measure(model)
    rows = [{"precision": "fp32", "step": 0.0, "seconds": ref_s}]
    for p in precisions:
        if p == "nvfp4-no-rht":
            continue  # the refiner's nvfp4 already has neither
        q = copy.deepcopy(model)
        if p == "bf16":
            q.model.to(torch.bfloat16)
        else:
            quantize_model(q, p, "emulate")
        v, s = measure(q)
        rows.append({"precision": p, "step": rel(v, ref), "seconds": s})
        print(json.dumps(rows[-1]), flush=True)
        del q
    return rows


# -- bundled model -----------------------------------------------------------------------------------------------
def bench_bundled(seeds, trajectories, marks, precisions, out_dir: str) -> list[dict]:
    from sana_wm.eval.model_adapter import pipeline_generate_fn, weights_fingerprint
    from sana_wm.eval.synth_eval import evaluate_synth
    from sana_wm.pipeline import SanaWMPipeline

    rows = []
    for p in precisions:
        if p == "bf16":
            continue  # the bundled model runs in float32 on the CPU: "fp32" is its unquantized row
        pipe = SanaWMPipeline.from_pretrained("sana-wm-synth")
        if p != "fp32":
            pipe.quantization = {"stage1": quantized_in_place(pipe.transformer, p)}
        t0 = time.perf_counter()
        report = evaluate_synth(pipeline_generate_fn(pipe, seed=0), seeds=seeds, trajectories=trajectories,
                                size=pipe.image_size, fps=pipe.fps, seconds_marks=marks,
                                out_dir=os.path.join(out_dir, p), baselines=False, estimator_floor=False,
                                generator_settings={"seed": 0, "precision": p}, weights=weights_fingerprint(pipe))
        agg = report["aggregate"]["model"]
        row = {"precision": p, "seconds": time.perf_counter() - t0, "clips": agg["num_clips"],
               "camera": agg["camera"], "psnr": {t: (m or {}).get("psnr") for t, m in agg["marks"].items()},
               "motion_gain": agg["motion"].get("gain")}
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    return rows


CAMERA = ("RotErr", "TransErr_rel", "CamMC_rel")


def paired_against_reference(eval_dir: str, precisions, reference: str = "fp32") -> list[dict]:
    """Each precision's clips against the reference's, clip by clip (the same scene, path and noise): for the
    camera errors over the whole clip and the PSNR at each mark, the reference mean, the precision's mean, the
    relative change and a 95% bootstrap interval of it (paired: the resampling keeps each clip's pair), and
    whether the camera error rose by more than 10% (the rule for offering a precision as a default)."""
    import glob

    from sana_wm.eval.synth_eval import paired_interval

    def load(name):
        clips = {}
        for path in glob.glob(os.path.join(eval_dir, name, "clips", "*.json")):
            with open(path) as f:
                record = json.load(f)
            clips[record["key"]] = record["methods"]["model"]
        return clips

    def value(clip, metric):
        if metric in CAMERA:
            v = clip["camera"].get(metric)
        else:  # "PSNR 1 s"
            mark = (clip["marks"].get(metric.split()[1]) or {})
            v = mark.get("psnr")
        v = None if v is None else float(v)
        return v if v is not None and math.isfinite(v) else None

    ref = load(reference)
    marks = sorted({t for clip in ref.values() for t in clip["marks"]}, key=float)
    metrics = [*CAMERA, *(f"PSNR {t} s" for t in marks)]
    rows = []
    for p in precisions:
        if p in (reference, "bf16"):
            continue
        clips = load(p)
        row = {"precision": p, "clips": len(set(clips) & set(ref))}
        for metric in metrics:
            pairs = [(value(ref[k], metric), value(clips[k], metric)) for k in sorted(set(clips) & set(ref))]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            a = np.array([x for x, _ in pairs])
            b = np.array([y for _, y in pairs])
            change = paired_interval(list(b - a))  # the precision minus the reference, per clip
            scale = abs(a.mean()) if metric in CAMERA else 1.0  # camera: relative; PSNR: dB
            row[metric] = {"reference": float(a.mean()), "value": float(b.mean()), "clips": len(pairs),
                           "change": change["mean"] / scale, "ci95": [c / scale for c in change["ci95"]]}
        row["camera_rise_over_10pct"] = any(row[m]["change"] > 0.10 for m in ("RotErr", "TransErr_rel"))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def paired_markdown(rows: list[dict]) -> str:
    metrics = [k for k in rows[0] if k not in ("precision", "clips", "camera_rise_over_10pct")]
    head = "| precision | clips | " + " | ".join(metrics) + " | camera error +10%? |"
    lines = [head, "|" + "---|" * (len(metrics) + 3)]
    for row in rows:
        cells = []
        for m in metrics:
            r = row[m]
            if m in CAMERA:
                cells.append(f"{r['value']:.3g} ({100 * r['change']:+.1f}%, [{100 * r['ci95'][0]:+.1f}, "
                             f"{100 * r['ci95'][1]:+.1f}])")
            else:
                cells.append(f"{r['value']:.2f} ({r['change']:+.2f} dB, [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}])")
        lines.append(f"| {row['precision']} | {row['clips']} | " + " | ".join(cells) + " | "
                     + ("yes" if row["camera_rise_over_10pct"] else "no") + " |")
    return "\n".join(lines)


def quantized_in_place(model, precision: str):
    base = "nvfp4" if precision == "nvfp4-no-rht" else precision
    return quantize_model(model, base, "emulate", rules=NO_RHT if precision == "nvfp4-no-rht" else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", nargs="+", default=["stage1", "refiner", "bundled"],
                    choices=["stage1", "refiner", "bundled", "paired"],
                    help="paired: compare the bundled runs already in --eval-dir clip by clip (no generation)")
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--depth", type=int, default=2, help="stage-1 blocks (the last one softmax)")
    ap.add_argument("--frames", type=int, default=4, help="latent frames of the one-step stage-1 measurement")
    ap.add_argument("--height", type=int, default=4)
    ap.add_argument("--width", type=int, default=6)
    ap.add_argument("--refiner-depth", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2000, 2001, 2002, 2003])
    ap.add_argument("--trajectories", nargs="+", default=["explore:walk", "explore:orbit"])
    ap.add_argument("--marks", type=float, nargs="+", default=[1.0, 5.0])
    ap.add_argument("--no-reference", action="store_true",
                    help="bundled: skip the unquantized row (to run precisions in parallel processes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-dir", default="bench-quant-eval")
    ap.add_argument("--out", default="bench-quant.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"args": vars(args), "load_before": os.getloadavg()}
    if "stage1" in args.parts:
        result["stage1"] = bench_stage1(args.depth, args.frames, args.height, args.width, args.precisions)
    if "refiner" in args.parts:
        result["refiner"] = bench_refiner(args.refiner_depth, 3, args.height, args.width, args.precisions)
    if "bundled" in args.parts:
        reference = () if args.no_reference else ("fp32",)
        result["bundled"] = bench_bundled(args.seeds, args.trajectories, args.marks, (*reference, *args.precisions),
                                          args.eval_dir)
    if "paired" in args.parts:
        result["paired"] = paired_against_reference(args.eval_dir, args.precisions)
        print(paired_markdown(result["paired"]))
    result["load_after"] = os.getloadavg()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
