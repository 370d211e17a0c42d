"""One prepared GPU benchmark: kernel correctness and speed, the 2.6B model, refiner, VAE, pipeline RTF.

    python benchmarks/gpu_suite.py --out DIR            # on one GPU (H100/H200): released shapes, bf16
    python benchmarks/gpu_suite.py --out DIR --tiny     # tiny configs on CPU in seconds (CI runs this)
    bash benchmarks/gpu_suite.sh DIR                    # the same on the device machine, carried wheels first

Writes ``DIR/gpu_suite.json`` (every number, the errors) and ``DIR/gpu_suite.md`` (tables), rewritten
after every section so a run stopped half-way still leaves what it measured. Sections, in order:

1. ``environment``: machine, GPU, driver, CUDA, library versions;
2. ``kernel_correctness``: the Triton GDN scan against the naive scan in float64 on the same device, at
   the released shapes (B=1, H=20, D=112, S=880, T=21), every mode and branch, forward and backward,
   float32 and bfloat16 inputs;
3. ``kernel_speed``: Triton vs the fast form vs the naive loop at T = 21, 61, 241 (main branch,
   bidirectional, float32 inputs as the model passes them), against the memory-bandwidth bound of
   reading the inputs and writing the output; ``attention``: chunk-causal softmax attention at 41 latent
   frames, FlexAttention with a block mask vs SDPA chunk by chunk;
4. ``bidirectional``: ``official-2.6b`` with random weights in bf16 at 704x1280 (22x40 latents), one
   forward at 41, 121 and 241 latent frames; the 60-step CFG time of a 60 s clip (121 latent frames,
   two forwards per step) derived from the 121-frame forward;
5. ``streaming``: stage 1 with the released 4-step schedule for 20 chunks, time and peak memory per chunk,
   real-time factor = 1.5 s of video per chunk / chunk time;
6. ``refiner``: the LTX-2 refiner transformer at diffusers' default (released) size, random weights,
   block-streaming chunks until its window is full;
7. ``vae_decode``: the causal LTX-2 VAE (diffusers' default size) decoding one 3-latent-frame chunk at 720p;
8. ``pipeline``: the streaming pipeline's real-time factor from sections 5-7 run one after another
   (no stream overlap); ``plan_24gb``: the setting ``sana-wm plan --gpu-memory 24`` chooses, stage 1 + refiner +
   VAE decode chunk by chunk under a 24 GiB cap (``set_per_process_memory_fraction``), peak and real-time
   factor against the plan's estimate;
9. ``pipeline_overlap``: the whole streaming ``SanaWMPipeline`` (stage 1, the refiner and the causal VAE at their
   released sizes, random weights, 704x1280) generating the same 8 chunks in order (``overlap=False``) and with
   its stages overlapped on CUDA streams (``overlap=True``, :mod:`sana_wm.pipeline.overlap`): both real-time
   factors (whole run and steady chunks), peak memory, and whether frames and latents are bit-identical;
10. ``streaming_compiled``: section 5 again (8 chunks) with ``SanaWMTransformer.compile_blocks()``, the
   compilation in the first three chunks, the difference to the eager chunks;
11. ``streaming_graphs``: an experiment, the same with ``compile_blocks(mode="reduce-overhead")`` (CUDA graphs),
   whether the streaming cache survives graph replays (the last section: it runs only if budget is left).

Every section records its error and the suite goes on (an out-of-memory in one does not stop the
others); sections are skipped once the time budget (``--budget-s``, 8 minutes) is spent. First calls
(Triton compilation, cuDNN/cuBLAS heuristics, allocator growth) are timed apart as ``warmup_s``. GPU
times come from CUDA events around the work; peak memory from ``torch.cuda.max_memory_allocated`` reset
before each measured piece. With ``--tiny`` on CPU the Triton kernels run in Triton's interpreter: those
times say nothing about speed and are marked so.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_transformer's random model and inputs

RELEASED_GDN = dict(B=1, H=20, D=112, S=880)
TINY_GDN = dict(B=1, H=1, D=16, S=4)
# Peak DRAM bandwidth by GPU name (vendor data sheets, bytes/s): the kernel's bound is its bytes over this.
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100": 2.0e12}
VIDEO_SECONDS_PER_CHUNK = 3 * 8 / 16  # 3 latent frames x 8 raw frames at 16 fps


class BudgetSpent(Exception):
    """The suite's time budget ran out inside a section; what it measured so far is kept."""


class Suite:
    """The run's settings, clock and results; sections write into ``results[name]`` as they go."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tiny = args.tiny
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.dtype = torch.bfloat16
        self.deadline = time.monotonic() + args.budget_s
        self.out = Path(args.out)
        self.results: dict = {"settings": {"tiny": args.tiny, "device": str(self.device),
                                           "budget_s": args.budget_s, "dtype": "bfloat16"}}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_time(self) -> None:
        if self.remaining() <= 0:
            raise BudgetSpent("time budget spent")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def allocated_gib(self) -> float | None:
        return torch.cuda.memory_allocated(self.device) / 2**30 if self.cuda else None

    def time_s(self, fn: Callable[[], object]) -> float:
        """Seconds ``fn`` takes: on the GPU, CUDA events around the work ``fn`` queues (from the start of the first
        kernel to the end of the last, launch gaps included, so a launch-bound step shows as such); wall clock
        on CPU."""
        if not self.cuda:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(self.device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000

    def write(self) -> None:
        from sana_wm.io import write_json_atomic, write_text_atomic

        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "gpu_suite.json", self.results)
        write_text_atomic(self.out / "gpu_suite.md", render_markdown(self.results))


def run_section(suite: Suite, name: str, fn: Callable[[Suite, dict], None], min_seconds: float) -> None:
    """Run one section into ``results[name]``; record its error or skip reason and go on."""
    result: dict = {}
    suite.results[name] = result
    if suite.remaining() < min_seconds:
        result["status"] = f"skipped: {suite.remaining():.0f} s of the budget left, the section needs {min_seconds:.0f}"
        suite.write()
        return
    start = time.monotonic()
    try:
        fn(suite, result)
        result["status"] = "ok"
    except BudgetSpent:
        result["status"] = "stopped: time budget spent (partial results kept)"
    except Exception as error:  # noqa: BLE001 -- one section's failure (OOM included) must not stop the others
        kind = "out of memory" if isinstance(error, torch.cuda.OutOfMemoryError) else type(error).__name__
        result["status"] = f"error: {kind}: {str(error).splitlines()[0] if str(error) else ''}"
        result["traceback"] = traceback.format_exc()[-4000:]
    result["section_s"] = round(time.monotonic() - start, 3)
    gc.collect()
    if suite.cuda:
        torch.cuda.empty_cache()
    print(f"[gpu_suite] {name}: {result['status']} ({result['section_s']:.1f} s)", flush=True)
    suite.write()


# ------------------------------------------------------------------------------------------------
# 1. Environment
# ------------------------------------------------------------------------------------------------
def environment(suite: Suite, result: dict) -> None:
    import triton

    result.update(python=platform.python_version(), platform=platform.platform(), cpus=os.cpu_count(),
                  torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                  cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                  triton_interpreter=os.environ.get("TRITON_INTERPRET") == "1")
    for package in ("diffusers", "transformers", "numpy"):
        with contextlib.suppress(ImportError):
            result[package] = __import__(package).__version__
    if suite.cuda:
        props = torch.cuda.get_device_properties(suite.device)
        result.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                      sm_count=props.multi_processor_count, capability=f"{props.major}.{props.minor}")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            result["nvidia_smi"] = smi.stdout.strip()


# ------------------------------------------------------------------------------------------------
# 2-3. The GDN kernels
# ------------------------------------------------------------------------------------------------
def gdn_inputs(B: int, H: int, T: int, S: int, D: int, device, dtype, seed: int = 0) -> dict:
    """Model-like scan inputs: ReLU-like q/k, keys scaled by 1/sqrt(D*S), rotated copies (a per-token rotation)."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def rand(*shape, normal=False):
        x = torch.randn(*shape, generator=g) if normal else torch.rand(*shape, generator=g)
        return x.to(device)

    q, k = rand(B, H, T, S, D), rand(B, H, T, S, D) * (D * S) ** -0.5
    angle = 6.3 * rand(T, S, D // 2)

    def rotate(x):
        cos, sin = angle.cos(), angle.sin()
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    x = dict(q=q, k=k, v=rand(B, H, T, S, D, normal=True), beta=rand(B, H, T, S), gamma=0.5 + 0.5 * rand(B, H, T),
             q_rot=rotate(q), k_rot=rotate(k))
    return {name: t.to(dtype) for name, t in x.items()}


def run_scan(x: dict, impl: str, mode: str, with_normalizer: bool):
    from sana_wm.ops import gdn_scan, released_chunk_lengths

    T = x["q"].shape[2]
    chunks = released_chunk_lengths(T) if mode == "chunk_causal" else None
    rotated = dict(q_rot=x["q_rot"], k_rot=x["k_rot"]) if with_normalizer else {}
    return gdn_scan(x["q"], x["k"], x["v"], x["beta"], x["gamma"], **rotated, with_normalizer=with_normalizer,
                    mode=mode, chunk_lengths=chunks, impl=impl)


def relative_error(actual, expected) -> float:
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-300)).item()


def kernel_correctness(suite: Suite, result: dict) -> None:
    shape = TINY_GDN if suite.tiny else RELEASED_GDN
    T = 4 if suite.tiny else 21
    result["shape"] = dict(shape, T=T)
    # Pass bars: float32 arithmetic over T frames; bf16 adds the output's own rounding (2**-8).
    bars = {"float32": 1e-4, "bfloat16": 1e-2}
    rows = result.setdefault("rows", [])
    for dtype in (torch.float32, torch.bfloat16):
        x = gdn_inputs(**shape, T=T, device=suite.device, dtype=dtype)
        # The oracle sees the same rounded inputs in float64.
        x64 = {name: t.double() for name, t in x.items()}
        for mode in ("bidirectional", "chunk_causal", "causal"):
            for with_normalizer in (True, False):
                suite.check_time()
                leaves = {name: t.clone().requires_grad_() for name, t in x.items()}
                leaves64 = {name: t.clone().requires_grad_() for name, t in x64.items()}
                out = run_scan(leaves, "triton", mode, with_normalizer)
                expected = run_scan(leaves64, "naive", mode, with_normalizer)
                weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(suite.device)
                (out.float() * weight).sum().backward()
                (expected * weight.double()).sum().backward()
                grad_error = max(relative_error(leaves[n].grad, leaves64[n].grad) for n in x
                                 if leaves64[n].grad is not None)
                forward_error = relative_error(out, expected.detach())
                bar = bars[str(dtype).removeprefix("torch.")]
                rows.append(dict(dtype=str(dtype).removeprefix("torch."), mode=mode,
                                 branch="main" if with_normalizer else "camera",
                                 forward_rel_error=forward_error, backward_rel_error=grad_error, bar=bar,
                                 passed=forward_error < bar and grad_error < bar))
                del leaves, leaves64, out, expected
    result["all_passed"] = all(row["passed"] for row in rows)


def kernel_speed(suite: Suite, result: dict) -> None:
    from sana_wm.ops.gdn_triton import interpreted

    shape = TINY_GDN if suite.tiny else RELEASED_GDN
    frames = (3,) if suite.tiny else (21, 61, 241)
    result["shape"] = shape
    result["interpreted"] = interpreted()
    if interpreted():
        result["note"] = "Triton ran in its CPU interpreter: these times are not kernel speed"
    bandwidth = None
    if suite.cuda:
        name = torch.cuda.get_device_properties(suite.device).name
        bandwidth = next((bw for key, bw in PEAK_BANDWIDTH.items() if key in name), None)
    result["peak_bandwidth_bytes_per_s"] = bandwidth
    rows = result.setdefault("rows", [])
    for T in frames:
        x = gdn_inputs(**shape, T=T, device=suite.device, dtype=torch.float32)
        # Bytes a fused scan must move at least: q, k, v, q_rot, k_rot and beta read, the output written.
        numel = x["q"].numel()
        min_bytes = 4 * (6 * numel + x["beta"].numel())
        row = dict(T=T, min_bytes=min_bytes,
                   bound_s=(min_bytes / bandwidth) if bandwidth else None)
        for impl in ("triton", "fast", "naive"):
            suite.check_time()
            fn = lambda impl=impl, x=x: run_scan(x, impl, "bidirectional", True)  # noqa: E731
            with torch.no_grad():
                suite.reset_peak()
                row[f"{impl}_warmup_s"] = suite.time_s(fn)
                times = [suite.time_s(fn) for _ in range(1 if suite.tiny else 3)]
            row[f"{impl}_s"] = statistics.median(times)
            row[f"{impl}_peak_gib"] = suite.peak_gib()
        # Training: forward + backward of the two fast forms.
        for impl in ("triton", "fast"):
            suite.check_time()
            leaves = {name: t.clone().requires_grad_() for name, t in x.items()}

            def train_step(impl=impl, leaves=leaves):
                run_scan(leaves, impl, "bidirectional", True).sum().backward()

            suite.time_s(train_step)
            row[f"{impl}_fwd_bwd_s"] = suite.time_s(train_step)
            del leaves
        row["speedup_triton_vs_fast"] = row["fast_s"] / row["triton_s"]
        if row["bound_s"]:
            row["triton_over_bound"] = row["triton_s"] / row["bound_s"]
        rows.append(row)


def attention(suite: Suite, result: dict) -> None:
    """Chunk-causal softmax attention: one FlexAttention call with a block mask vs SDPA chunk by chunk."""
    import warnings

    from sana_wm.model.attention import _chunk_causal_flex, _chunk_causal_sdpa
    from sana_wm.model.layout import TokenLayout

    frames, grid, H, D = (5, (2, 3), 2, 112) if suite.tiny else (41, (22, 40), 20, 112)
    layout = TokenLayout.build(frames, *grid, "chunk_causal")
    N = layout.num_tokens
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, H, N, D, generator=g).to(suite.device, suite.dtype) for _ in range(3))
    scale = 1 / math.sqrt(D)
    result.update(latent_frames=frames, tokens=N, heads=H, head_dim=D)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "flex_attention called without torch.compile")
        result["flex_warmup_s"] = suite.time_s(lambda: _chunk_causal_flex(q, k, v, layout, scale, 0))
        result["flex_s"] = suite.time_s(lambda: _chunk_causal_flex(q, k, v, layout, scale, 0))
        result["sdpa_chunks_s"] = suite.time_s(lambda: _chunk_causal_sdpa(q, k, v, layout, scale, 0))
        expected = _chunk_causal_sdpa(q.float(), k.float(), v.float(), layout, scale, 0)
        result["flex_rel_error"] = relative_error(_chunk_causal_flex(q, k, v, layout, scale, 0).float(),
                                                  expected.double())


# ------------------------------------------------------------------------------------------------
# 4-5. The stage-1 model
# ------------------------------------------------------------------------------------------------
def stage1_setup(suite: Suite):
    from bench_transformer import _random_model

    from sana_wm.model import get_config

    config = get_config("tiny" if suite.tiny else "official-2.6b")
    grid = (2, 3) if suite.tiny else (22, 40)
    model = _random_model(config, seed=1, device=str(suite.device)).to(suite.dtype)
    return config, grid, model


def stage1_inputs(config, frames: int, grid: tuple[int, int], suite: Suite) -> dict:
    from bench_transformer import _inputs

    inputs = _inputs(config, frames, *grid, text_len=16 if suite.tiny else 300)
    return {name: t.to(suite.device) for name, t in inputs.items()}


def bidirectional(suite: Suite, result: dict) -> None:
    config, grid, model = stage1_setup(suite)
    result.update(config="tiny" if suite.tiny else "official-2.6b", grid=list(grid))
    rows = result.setdefault("rows", [])
    with torch.inference_mode():
        for frames in ((5, 9) if suite.tiny else (41, 121, 241)):
            suite.check_time()
            inputs = stage1_inputs(config, frames, grid, suite)
            row = dict(latent_frames=frames, tokens=frames * grid[0] * grid[1])
            rows.append(row)
            suite.reset_peak()
            row["warmup_s"] = suite.time_s(lambda inputs=inputs: model(**inputs))
            row["forward_s"] = suite.time_s(lambda inputs=inputs: model(**inputs))
            row["peak_gib"] = suite.peak_gib()
            if frames == (9 if suite.tiny else 121):
                # 60 steps, classifier-free guidance = two forwards per step (batch 1 each).
                row["derived_60_step_cfg_s"] = 60 * 2 * row["forward_s"]
            del inputs


def run_stream(suite: Suite, model, config, grid, chunks: int, result: dict, warmup_chunks: int) -> list:
    """Stream ``chunks`` chunks with the released 4-step schedule; one row per chunk into ``result``; the latents."""
    from sana_wm.samplers import stream_sample
    from sana_wm.samplers.conditioning import Conditioning

    frames = 1 + 3 * chunks  # released schedule: 4 frames (the conditioning frame + 3), then 3 per chunk
    inputs = stage1_inputs(config, frames, grid, suite)
    cond = Conditioning(inputs["text"][:, 0], inputs["text_mask"], inputs["camera_vector"], inputs["plucker"])
    first = inputs["latents"][:, :, :1].float()
    result.update(config="tiny" if suite.tiny else "official-2.6b", grid=list(grid), latent_frames=frames,
                  steps=4, warmup_chunks=warmup_chunks)
    rows = result.setdefault("rows", [])
    latents = []
    generator = torch.Generator(device=suite.device).manual_seed(0)
    stream = stream_sample(model, cond, first, frames, generator=generator)
    while True:
        suite.check_time()
        suite.reset_peak()
        start = time.perf_counter()
        chunk = next(stream, None)
        suite.sync()
        if chunk is None:
            break
        rows.append(dict(chunk=chunk.index, frames=chunk.latents.shape[2], seconds=time.perf_counter() - start,
                         peak_gib=suite.peak_gib(), allocated_gib=suite.allocated_gib()))
        latents.append(chunk.latents.cpu())
    # The first chunks hold the one-time costs (kernel compilation; chunk 0 also has one more frame).
    steady = [row["seconds"] for row in rows[warmup_chunks:]]
    result["warmup_s"] = sum(row["seconds"] for row in rows[:warmup_chunks])
    if steady:
        result["chunk_s_median"] = statistics.median(steady)
        result["real_time_factor"] = VIDEO_SECONDS_PER_CHUNK / result["chunk_s_median"]
    peaks = {row["chunk"]: row["peak_gib"] for row in rows}
    if suite.cuda and 4 in peaks and max(peaks) >= 4:
        last = max(peaks)
        result["peak_gib_chunk_5"], result[f"peak_gib_chunk_{last + 1}"] = peaks[4], peaks[last]
        result["peak_change_5_to_last"] = peaks[last] / peaks[4] - 1
    return latents


def streaming(suite: Suite, result: dict) -> None:
    config, grid, model = stage1_setup(suite)
    suite.stream_latents = run_stream(suite, model, config, grid, 2 if suite.tiny else 20, result, warmup_chunks=1)


def streaming_compiled(suite: Suite, result: dict) -> None:
    """The same stream with ``compile_blocks()`` (Inductor on CUDA; TorchDynamo's eager backend with --tiny on
    CPU, which checks the capture, not speed); the first three chunks compile (three cache shapes)."""
    options = {} if suite.cuda else dict(backend="eager")
    result["compile_options"] = options or "torch.compile defaults (inductor), dynamic=False"
    compiled_stream(suite, result, options)


def compiled_stream(suite: Suite, result: dict, options: dict) -> None:
    """Section 5's stream (8 chunks) with ``compile_blocks(**options)``, against its eager latents."""
    config, grid, model = stage1_setup(suite)  # the same seed: the same weights as ``streaming``
    model.compile_blocks(**options)
    latents = run_stream(suite, model, config, grid, 2 if suite.tiny else 8, result, warmup_chunks=3)
    eager = getattr(suite, "stream_latents", None)
    if eager:
        result["max_rel_diff_vs_eager"] = max(
            relative_error(a, b.double()) for a, b in zip(latents, eager, strict=False))


def streaming_graphs(suite: Suite, result: dict) -> None:
    """An experiment, not offered to users: the stream with ``compile_blocks(mode="reduce-overhead")``, CUDA graphs
    through Inductor's cudagraph trees. A replayed graph writes its outputs into memory it owns, while the immutable
    streaming cache keeps some block outputs from one chunk to the next: whether that is refused (an error naming an
    overwritten output), wrong (``max_rel_diff_vs_eager``) or fine, and at what chunk time, is what this records.
    Without a GPU there is nothing to capture: the section only says so (the capture itself is the one of
    ``streaming_compiled``, which --tiny checks)."""
    if not suite.cuda:
        result["note"] = "CUDA graphs need a GPU: not run"
        return
    torch._dynamo.reset()  # no compiled code of the section before: its guards would count against this one's
    result["compile_options"] = dict(mode="reduce-overhead")
    compiled_stream(suite, result, result["compile_options"])


# ------------------------------------------------------------------------------------------------
# 6-7. Refiner and VAE at their released sizes (diffusers' defaults), random weights
# ------------------------------------------------------------------------------------------------
TINY_REFINER = dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16,
                    cross_attention_dim=32, caption_channels=32, num_layers=2, audio_in_channels=8,
                    audio_out_channels=8, audio_num_attention_heads=1, audio_attention_head_dim=8,
                    audio_cross_attention_dim=8)
TINY_VAE = dict(latent_channels=16, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32),
                layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1))


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def refiner(suite: Suite, result: dict) -> None:
    from diffusers import LTX2VideoTransformer3DModel

    from sana_wm.model.refiner import RefinerTransformer
    from sana_wm.samplers.sdedit import RELEASED_BLOCK_FRAMES, RELEASED_KV_MAX_FRAMES, RefinerStream

    # Built on the GPU in bf16 directly (default init): 19B parameters never pass through host memory.
    start = time.perf_counter()
    with default_dtype(suite.dtype), torch.device(suite.device):
        model = LTX2VideoTransformer3DModel(**(TINY_REFINER if suite.tiny else {}))
    transformer = RefinerTransformer(model)
    suite.sync()
    result["build_s"] = time.perf_counter() - start
    result["parameters_b"] = sum(p.numel() for p in transformer.parameters()) / 1e9
    C = transformer.config.in_channels
    h, w = (2, 3) if suite.tiny else (22, 40)
    g = torch.Generator().manual_seed(0)
    text = transformer.project_text(torch.randn(1, 64 if suite.tiny else 256, transformer.config.caption_channels,
                                                generator=g))
    stream = RefinerStream(transformer, text, fps=16.0, seed=0, mode="streaming")
    blocks = 1 if suite.tiny else math.ceil(RELEASED_KV_MAX_FRAMES / RELEASED_BLOCK_FRAMES) + 1  # window full
    result.update(block_frames=RELEASED_BLOCK_FRAMES, kv_max_frames=RELEASED_KV_MAX_FRAMES, grid=[h, w])
    rows = result.setdefault("rows", [])
    with torch.inference_mode():
        result["sink_s"] = suite.time_s(lambda: stream.push(torch.randn(1, C, 1, h, w, generator=g)))
        for index in range(blocks):
            suite.check_time()
            latents = torch.randn(1, C, RELEASED_BLOCK_FRAMES, h, w, generator=g)
            suite.reset_peak()
            rows.append(dict(block=index, seconds=suite.time_s(lambda latents=latents: stream.push(latents)),
                             peak_gib=suite.peak_gib(), history_frames=stream.window.history_frames))
    result["warmup_s"] = rows[0]["seconds"]
    result["chunk_s"] = rows[-1]["seconds"]  # the window is full: the steady-state cost of one chunk


def vae_decode(suite: Suite, result: dict) -> None:
    from diffusers import AutoencoderKLLTX2Video

    from sana_wm.vae import VideoVAE

    with default_dtype(suite.dtype), torch.device(suite.device):
        vae = VideoVAE(AutoencoderKLLTX2Video(**(TINY_VAE if suite.tiny else {}), decoder_causal=True))
    C = vae.latent_channels
    h, w = (2, 3) if suite.tiny else (22, 40)
    decoder = vae.stream_decoder()
    g = torch.Generator().manual_seed(0)
    result["grid"] = [h, w]
    with torch.inference_mode():
        first = torch.randn(1, C, 4, h, w, generator=g)
        result["warmup_s"] = suite.time_s(lambda: decoder.decode_chunk(first))  # chunk 0: 4 latent frames
        chunk = torch.randn(1, C, 3, h, w, generator=g)
        suite.reset_peak()
        frames = []
        result["chunk_s"] = suite.time_s(lambda: frames.append(decoder.decode_chunk(chunk)))
        result["peak_gib"] = suite.peak_gib()
        result["output_shape"] = list(frames[0].shape)


def plan_24gb(suite: Suite, result: dict) -> None:
    """The setting ``sana-wm plan --gpu-memory 24`` chooses for the released two-stage streaming pipeline, run
    with random weights at the released sizes under a 24 GiB cap (``set_per_process_memory_fraction``): stage 1,
    the refiner and the VAE decode chunk by chunk, peak memory and time per chunk against the plan's estimate.
    The weights are built and quantized before the cap is set. With --tiny: the same setting on the tiny configs,
    on the CPU (nothing measured)."""
    from dataclasses import asdict

    from diffusers import AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel

    from sana_wm.model.refiner import RefinerTransformer
    from sana_wm.pipeline.plan import GIB, PlanRequest, official_sizes, plan_generation
    from sana_wm.quant import quantize_model
    from sana_wm.samplers import stream_sample
    from sana_wm.samplers.conditioning import Conditioning
    from sana_wm.samplers.sdedit import RefinerStream
    from sana_wm.vae import VideoVAE

    budget = 24 * GIB
    capability = tuple(torch.cuda.get_device_capability(suite.device)) if suite.cuda else (9, 0)
    chunks = 2 if suite.tiny else 6
    plan = plan_generation(official_sizes(), PlanRequest(budget, num_frames=1 + 24 * chunks, capability=capability))
    chosen = plan.chosen
    if chosen is None:
        raise RuntimeError("the planner found no setting for 24 GiB")
    setting = chosen.setting
    result.update(setting=asdict(setting), flags=" ".join(setting.flags()), chunks=chunks,
                  estimated_peak_gib=chosen.peak_bytes / GIB,
                  estimated_stage_peaks_gib={k: v / GIB for k, v in chosen.stage_peaks().items()})
    config, grid, stage1 = stage1_setup(suite)
    quantize_model(stage1, setting.stage1_precision, device=suite.device)
    with default_dtype(suite.dtype), torch.device(suite.device):
        raw = LTX2VideoTransformer3DModel(**(TINY_REFINER if suite.tiny else {}))
        vae = VideoVAE(AutoencoderKLLTX2Video(**(TINY_VAE if suite.tiny else {}), decoder_causal=True))
    refiner = RefinerTransformer(raw)
    quantize_model(refiner, setting.refiner_precision, device=suite.device, flag="--refiner-precision")
    if setting.refiner_offload == "blocks":
        refiner.offload_blocks(suite.device)
    g = torch.Generator().manual_seed(0)
    text = refiner.project_text(torch.randn(1, 64 if suite.tiny else 256, refiner.config.caption_channels,
                                            generator=g).to(suite.device))
    frames = 1 + 3 * chunks
    inputs = stage1_inputs(config, frames, grid, suite)
    cond = Conditioning(inputs["text"][:, 0], inputs["text_mask"], inputs["camera_vector"], inputs["plucker"])
    gc.collect()
    if suite.cuda:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(suite.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), suite.device)
        result["cap_gib"] = budget / GIB
    rows = result.setdefault("rows", [])
    try:
        with torch.inference_mode():
            stream = RefinerStream(refiner, text, fps=16.0, seed=0, mode="streaming",
                                   kv_max_frames=setting.refiner_kv_frames or 11)
            decoder = vae.stream_decoder()
            sampled = stream_sample(stage1, cond, inputs["latents"][:, :, :1].float(), frames,
                                    generator=torch.Generator(device=suite.device).manual_seed(0))
            suite.reset_peak()
            while True:
                suite.check_time()
                start = time.perf_counter()
                chunk = next(sampled, None)
                if chunk is None:
                    break
                ready = stream.push(chunk.latents)
                if ready is not None:
                    decoder.decode_chunk(ready.to(suite.dtype))
                suite.sync()
                rows.append(dict(chunk=chunk.index, seconds=time.perf_counter() - start, peak_gib=suite.peak_gib()))
    finally:
        if suite.cuda:
            torch.cuda.set_per_process_memory_fraction(1.0, suite.device)
    steady = [row["seconds"] for row in rows[1:]]
    if steady:
        result["chunk_s_median"] = statistics.median(steady)
        result["real_time_factor"] = VIDEO_SECONDS_PER_CHUNK / result["chunk_s_median"]
    if suite.cuda:
        result["peak_gib"] = max(row["peak_gib"] for row in rows)
        result["within_cap"] = result["peak_gib"] <= budget / GIB


def pipeline(suite: Suite, result: dict) -> None:
    stage1 = suite.results.get("streaming", {}).get("chunk_s_median")
    refine = suite.results.get("refiner", {}).get("chunk_s")
    decode = suite.results.get("vae_decode", {}).get("chunk_s")
    if None in (stage1, refine, decode):
        raise RuntimeError("needs the streaming, refiner and vae_decode sections' chunk times")
    total = stage1 + refine + decode
    result.update(stage1_s=stage1, refiner_s=refine, vae_decode_s=decode, chunk_s=total,
                  real_time_factor=VIDEO_SECONDS_PER_CHUNK / total,
                  note="the three stages one after another per chunk; no CUDA-stream overlap")


def pipeline_overlap(suite: Suite, result: dict) -> None:
    """The streaming pipeline, end to end, in order and with its stages overlapped on CUDA streams; with --tiny on
    the CPU the stages cannot overlap (both runs are in order): a dry run of the section."""
    import warnings

    import numpy as np
    from diffusers import AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel

    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.model.refiner import RefinerTransformer
    from sana_wm.pipeline import GenerationRequest, OptionWarning, Refiner, SanaWMPipeline, TextEmbedding
    from sana_wm.vae import VideoVAE

    config, grid, stage1 = stage1_setup(suite)
    with default_dtype(suite.dtype), torch.device(suite.device):
        raw = LTX2VideoTransformer3DModel(**(TINY_REFINER if suite.tiny else {}))
        # The tiny VAE with the released strides, which the pipeline's camera conditioning reads from it.
        tiny_vae = dict(TINY_VAE, spatial_compression_ratio=32, temporal_compression_ratio=8)
        vae = VideoVAE(AutoencoderKLLTX2Video(**(tiny_vae if suite.tiny else {}), decoder_causal=True))
    refiner = Refiner(RefinerTransformer(raw), None)
    size = (grid[0] * vae.spatial_stride, grid[1] * vae.spatial_stride)
    pipe = SanaWMPipeline(stage1, vae, None, variant="streaming", image_size=size, fps=16.0, device=suite.device,
                          refiner=refiner)
    g = torch.Generator().manual_seed(0)
    text_len = 16 if suite.tiny else 300
    prompt = TextEmbedding(torch.randn(1, text_len, config.caption_channels, generator=g),
                           torch.ones(1, text_len, dtype=torch.bool))
    refiner_prompt = TextEmbedding(torch.randn(1, 64 if suite.tiny else 256, raw.config.caption_channels, generator=g),
                                   torch.ones(1, 64 if suite.tiny else 256, dtype=torch.bool))
    image = (torch.rand(*size, 3, generator=g) * 255).to(torch.uint8).numpy()
    chunks = 4 if suite.tiny else 8
    result.update(config="tiny" if suite.tiny else "official-2.6b", image_size=list(size), chunks=chunks)

    def generate(num_chunks: int, overlap: bool):
        options = dict(num_frames=1 + 24 * num_chunks, prompt=prompt, refiner_prompt=refiner_prompt, seed=0,
                       progress=False, memory_check=False, overlap=overlap)
        trajectory = action_to_trajectory(f"w-{24 * num_chunks}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptionWarning)  # on the CPU: overlap does not take effect
            took_effect = pipe.plan(GenerationRequest(image, trajectory, **options)).overlap
            suite.reset_peak()
            start = time.perf_counter()
            out = pipe.generate(image, trajectory, **options)
            suite.sync()
        seconds = time.perf_counter() - start
        steady = out.timing["steady_chunk_s"]  # None with fewer chunks than the K/V window needs to fill
        return out, dict(overlap=overlap, took_effect=bool(took_effect), seconds=seconds,
                         real_time_factor=out.num_frames / pipe.fps / seconds,
                         first_chunk_s=out.timing["first_chunk_s"], steady_chunk_s=steady,
                         steady_real_time_factor=None if steady is None else VIDEO_SECONDS_PER_CHUNK / steady,
                         peak_gib=suite.peak_gib())

    suite.check_time()
    result["warmup_s"] = generate(2, False)[1]["seconds"]  # first calls: kernel selection, allocator growth
    rows = result.setdefault("rows", [])
    outputs = []
    for overlap in (False, True):
        suite.check_time()
        out, row = generate(chunks, overlap)
        rows.append(row)
        outputs.append(out)
    in_order, overlapped = outputs
    result["frames_identical"] = bool(np.array_equal(in_order.frames, overlapped.frames))
    result["latents_identical"] = bool(in_order.latents.equal(overlapped.latents)
                                       and in_order.stage1_latents.equal(overlapped.stage1_latents))
    result["speedup"] = rows[0]["seconds"] / rows[1]["seconds"]
    if not rows[1]["took_effect"]:
        result["note"] = "the stages cannot overlap on this device: both runs are in order (a dry run)"


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    keys = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(key)) for key in keys) + " |" for row in rows]
    return lines


def render_markdown(results: dict) -> str:
    lines = ["# GPU suite", ""]
    for name, section in results.items():
        lines += [f"## {name}", ""]
        scalars = {k: v for k, v in section.items() if k not in ("rows", "traceback")}
        lines += [f"- {key}: {_fmt(value)}" for key, value in scalars.items()]
        if section.get("rows"):
            lines += [""] + _table(section["rows"])
        if section.get("traceback"):
            lines += ["", "```", section["traceback"].rstrip(), "```"]
        lines.append("")
    return "\n".join(lines)


SECTIONS = [  # (name, function, seconds it needs at least to be worth starting, at the released size)
    ("environment", environment, 0),
    ("kernel_correctness", kernel_correctness, 20),
    ("kernel_speed", kernel_speed, 20),
    ("attention", attention, 15),
    ("bidirectional", bidirectional, 60),
    ("streaming", streaming, 45),
    ("refiner", refiner, 45),
    ("vae_decode", vae_decode, 20),
    ("pipeline", pipeline, 0),
    ("pipeline_overlap", pipeline_overlap, 120),
    ("plan_24gb", plan_24gb, 90),
    ("streaming_compiled", streaming_compiled, 150),  # late: compilation may take what budget is left
    ("streaming_graphs", streaming_graphs, 150),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--tiny", action="store_true", help="tiny configs and shapes (CPU, seconds): checks the "
                        "suite runs, measures nothing")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu (only with --tiny)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="total time budget in seconds (default 480)")
    parser.add_argument("--sections", nargs="+", choices=[name for name, _, _ in SECTIONS],
                        help="run only these sections (default: all)")
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cpu" and not args.tiny:
        parser.error("the full suite needs a GPU (--device cuda); on CPU run it with --tiny")
    if not 0 < args.budget_s <= 3600:
        parser.error(f"--budget-s must be in (0, 3600], got {args.budget_s}")
    if args.tiny:
        torch.set_num_threads(1)  # tiny tensors: thread hand-offs cost more than the math
    if args.device == "cpu":
        # Triton reads this when the kernels are defined: run them in its interpreter on CPU tensors.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    suite = Suite(args)
    for name, fn, min_seconds in SECTIONS:
        if args.sections is None or name in args.sections:
            run_section(suite, name, fn, 0 if args.tiny else min_seconds)
    print(f"[gpu_suite] wrote {suite.out / 'gpu_suite.json'} and {suite.out / 'gpu_suite.md'}", flush=True)
    failed = [name for name, section in suite.results.items() if str(section.get("status", "ok")).startswith("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
