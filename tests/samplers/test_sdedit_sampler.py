"""The refiner's SDEdit sampler on an exact flow: re-noising, Euler steps, block order, window bookkeeping."""

import pytest
import torch

from sana_wm.samplers.sdedit import STAGE2_SIGMAS, RefinerStream, check_refiner_schedule, sdedit_refine

C, H, W, TOKENS = 4, 2, 3, 6  # latent channels, latent grid, tokens per latent frame
TEXT = object()  # the projected prompt: the sampler passes it through untouched


class ExactFlowBlocks:
    """A block model whose velocity leads every frame straight to ``target``: ``v = (x - target) / sigma``, so
    each Euler step lands on the line towards ``target`` and the last one on ``target`` itself. Records its
    calls and returns per-frame keys/values holding the frame index, so the window can be followed."""

    device = torch.device("cpu")

    def __init__(self, target: torch.Tensor) -> None:
        self.target = target
        self.calls = []  # (sigma, frames, capture, sink positions, history frame indices, first x)

    def forward_block(self, latents, sigma, frames, text, fps, *, window=None, capture=None):
        assert text is TEXT and fps == 16.0
        frames = list(frames)
        history = None
        if window is not None:
            history = [int(k[0, 0, 0, 0]) for k, _ in window.history[0].chunks]
        self.calls.append((sigma, frames, capture, None if window is None else window.sink_positions(frames[0]),
                           history, latents.clone()))
        target = self.target[:, :, frames]
        velocity = torch.zeros_like(latents) if sigma == 0.0 else (latents - target) / sigma
        kv = None
        if capture is not None:
            index = torch.tensor(frames, dtype=torch.float32).repeat_interleave(TOKENS)
            if capture == "sink":
                keys = index[None, :, None].expand(1, -1, 4)  # (B, N, H * D) before RoPE
            else:
                keys = index[None, :, None, None].expand(1, -1, 2, 2)  # (B, N, H, D) after RoPE
            kv = ((keys.clone(), keys.clone()),)
        return velocity, kv


def _video(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(1, C, frames, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["bidirectional", "streaming"])
def test_exact_flow_lands_on_the_target_and_keeps_the_sink(mode):
    z, target = _video(9, 0), _video(9, 1)
    out = sdedit_refine(ExactFlowBlocks(target), z, TEXT, fps=16.0, seed=3, mode=mode, kv_max_frames=5)
    assert out.shape == z.shape and torch.equal(out[:, :, :1], z[:, :, :1])  # the sink, bit for bit
    torch.testing.assert_close(out[:, :, 1:], target[:, :, 1:], rtol=0, atol=1e-5)


def test_first_step_sees_the_renoised_stage1_latents_drawn_per_block_in_order():
    """x = (1 - s0) z + s0 eps, eps one CPU standard-normal draw of each block's shape, in block order."""
    z, target = _video(8, 0), _video(8, 1)
    model = ExactFlowBlocks(target)
    sdedit_refine(model, z, TEXT, fps=16.0, seed=11, mode="streaming")
    g = torch.Generator().manual_seed(11)
    s0 = STAGE2_SIGMAS[0]
    first_steps = [c for c in model.calls if c[0] == s0]
    assert [c[1] for c in first_steps] == [[1, 2, 3], [4, 5, 6], [7]]
    for _, frames, _, _, _, x in first_steps:
        eps = torch.randn(1, C, len(frames), H, W, generator=g)
        torch.testing.assert_close(x, (1 - s0) * z[:, :, frames] + s0 * eps, rtol=0, atol=0)


def test_streaming_blocks_window_and_calls():
    z, target = _video(11, 0), _video(11, 1)
    model = ExactFlowBlocks(target)
    sdedit_refine(model, z, TEXT, fps=16.0, seed=0, mode="streaming", block_frames=3, kv_max_frames=5)
    steps = len(STAGE2_SIGMAS) - 1
    # sink pass; per block: the Euler steps, then a clean history pass (not after the last block)
    assert [(c[0], c[2]) for c in model.calls[:1]] == [(0.0, "sink")]
    blocks = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    calls = iter(model.calls[1:])
    history = []
    for i, frames in enumerate(blocks):
        for sigma in STAGE2_SIGMAS[:steps]:
            c = next(calls)
            assert (c[0], c[1], c[2]) == (sigma, frames, None)
            assert c[4] == history  # the window holds the newest kv_max_frames - sink_frames refined frames
            assert c[3] == [frames[0] - len(history) - 1]  # the sink sits just before the history
        if i < len(blocks) - 1:
            c = next(calls)
            assert (c[0], c[1], c[2]) == (0.0, frames, "history")
            history = (history + frames)[-4:]
    assert next(calls, None) is None


def test_bidirectional_refines_everything_in_one_block():
    z, target = _video(6, 0), _video(6, 1)
    model = ExactFlowBlocks(target)
    sdedit_refine(model, z, TEXT, fps=16.0, seed=0, mode="bidirectional")
    assert [(c[1], c[2]) for c in model.calls] == [([0], "sink")] + [([1, 2, 3, 4, 5], None)] * 3


def test_stream_in_pieces_equals_one_call():
    z, target = _video(10, 0), _video(10, 1)
    whole = sdedit_refine(ExactFlowBlocks(target), z, TEXT, fps=16.0, seed=5, mode="streaming")
    stream = RefinerStream(ExactFlowBlocks(target), TEXT, fps=16.0, seed=5, mode="streaming", num_frames=10)
    parts = [stream.push(z[:, :, :2]), stream.push(z[:, :, 2:4]), stream.push(z[:, :, 4:]), stream.finish()]
    assert [None if p is None else p.shape[2] for p in parts] == [1, 3, 6, None]
    assert torch.equal(torch.cat([p for p in parts if p is not None], dim=2), whole)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "causal"}, "refiner mode must be one of"),
    ({"block_frames": 0}, "block_frames and sink_frames must be >= 1"),
    ({"kv_max_frames": 1}, r"kv_max_frames \(1\) must exceed sink_frames"),
    ({"sigmas": (0.9, 0.95, 0.0)}, "must decrease"),
    ({"sigmas": (0.9, 0.5)}, "must decrease"),
])
def test_bad_schedules_are_refused(kwargs, message):
    args = {"mode": "streaming", "block_frames": 3, "kv_max_frames": 11, "sink_frames": 1, "sigmas": STAGE2_SIGMAS}
    with pytest.raises(ValueError, match=message):
        check_refiner_schedule(**{**args, **kwargs})
    with pytest.raises(ValueError, match=message):
        RefinerStream(ExactFlowBlocks(_video(2, 0)), TEXT, fps=16.0, seed=0, **{**args, **kwargs})


def test_too_few_frames_for_the_sink_is_explained():
    stream = RefinerStream(ExactFlowBlocks(_video(2, 0)), TEXT, fps=16.0, seed=0, sink_frames=2)
    assert stream.push(_video(1, 0)) is None
    with pytest.raises(ValueError, match="more than 2 sink frame"):
        stream.finish()
