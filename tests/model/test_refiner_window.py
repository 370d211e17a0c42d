"""The refiner's sliding window: a shifted sink plus a frame-granular KVWindow of refined frames."""

import torch

from sana_wm.model.cache import KVWindow
from sana_wm.model.refiner import RefinerWindow


def _block(frames: int, value: float):
    """One layer's keys/values of ``frames`` latent frames of 6 tokens, 2 heads of 2 channels."""
    kv = torch.full((1, 6 * frames, 2, 2), value)
    return ((kv, kv.clone()),)


def test_window_keeps_sink_plus_history():
    window = RefinerWindow.start(((torch.full((1, 6, 4), -1.0),) * 2,), 1, max_history_frames=4)
    assert window.sink_positions(1) == [0]
    window = window.push(_block(3, 1.0), 3)
    assert window.history_frames == 3 and window.sink_positions(4) == [0]
    window = window.push(_block(3, 2.0), 3)
    keys, values = window.history[0].keys_values()
    assert window.history_frames == 4 and keys.shape == values.shape == (1, 24, 2, 2)  # 4 frames x 6 tokens
    assert keys[0, :6].eq(1.0).all() and keys[0, 6:].eq(2.0).all()  # the oldest 2 frames of the first block went
    assert window.sink_positions(7) == [2]  # the sink slides to sit just before the history (frames 3..6)
    assert window.sink[0][0].eq(-1.0).all()  # and is never trimmed


def test_history_slides_frame_by_frame_like_a_plain_list():
    """The history equals the last ``limit`` frames of everything pushed, whatever the block sizes."""
    limit, pushed, tokens = 5, [], 4
    window = RefinerWindow.start(((torch.zeros(1, tokens, 3),) * 2,), 1, max_history_frames=limit)
    g = torch.Generator().manual_seed(0)
    for frames in (3, 1, 2, 3, 3, 1):
        k, v = torch.randn(1, tokens * frames, 1, 3, generator=g), torch.randn(1, tokens * frames, 1, 3, generator=g)
        pushed += list(zip(k.split(tokens, dim=1), v.split(tokens, dim=1), strict=True))
        window = window.push(((k, v),), frames)
        keys, values = window.history[0].keys_values()
        expected = pushed[-limit:]
        torch.testing.assert_close(keys, torch.cat([e[0] for e in expected], dim=1), rtol=0, atol=0)
        torch.testing.assert_close(values, torch.cat([e[1] for e in expected], dim=1), rtol=0, atol=0)
        assert window.history_frames == len(expected)


def test_unbounded_history_keeps_everything():
    window = RefinerWindow.start(((torch.zeros(1, 6, 4),) * 2,), 1)
    for _ in range(4):
        window = window.push(_block(3, 1.0), 3)
    assert window.history_frames == 12 and isinstance(window.history[0], KVWindow)
    assert window.history[0].max_chunks is None
