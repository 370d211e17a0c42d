"""The refiner with its blocks in host memory (offload_blocks): the same numbers, two blocks on the device."""

import copy

import pytest
import torch

from sana_wm.model.refiner import RefinerTransformer
from sana_wm.quant import quantize_model
from sana_wm.samplers.sdedit import RefinerStream

TINY = dict(in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
            caption_channels=32, num_layers=5, audio_in_channels=8, audio_out_channels=8,
            audio_num_attention_heads=1, audio_attention_head_dim=8, audio_cross_attention_dim=8)


def tiny_refiner(seed: int = 0) -> RefinerTransformer:
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    model = RefinerTransformer(LTX2VideoTransformer3DModel(**TINY))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.model.parameters():  # zero-initialised gates and tables would hide a wrong block
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def refine(model: RefinerTransformer) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    text = model.project_text(torch.randn(1, 8, 32, generator=g))
    stream = RefinerStream(model, text, fps=16.0, seed=0, mode="streaming", kv_max_frames=5)
    out = [stream.push(torch.randn(1, 16, 1, 2, 3, generator=g))]
    for _ in range(3):
        out.append(stream.push(torch.randn(1, 16, 3, 2, 3, generator=g)))
    out.append(stream.finish())
    return [t for t in out if t is not None]


@pytest.mark.parametrize("precision", ["bf16", "int4"])
def test_offloaded_blocks_give_the_same_refinement(precision):
    resident = tiny_refiner()
    if precision != "bf16":
        quantize_model(resident, precision, "emulate")
    offloaded = copy.deepcopy(resident)
    offloaded.offload_blocks("cpu")
    assert offloaded.offloaded and len(offloaded.model.transformer_blocks) == 0
    expected, got = refine(resident), refine(offloaded)
    assert len(got) == len(expected) >= 3
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # On the device: everything but the blocks, and two block slots (5 blocks in host memory).
    block = sum(t.numel() for t in (*resident.model.transformer_blocks[0].parameters(),
                                    *resident.model.transformer_blocks[0].buffers()))
    total = sum(t.numel() for t in (*resident.parameters(), *resident.buffers()))
    on_device = sum(t.numel() for t in (*offloaded.parameters(), *offloaded.buffers()))
    assert on_device == total - 3 * block


def test_offloading_twice_is_refused():
    model = tiny_refiner()
    model.offload_blocks("cpu")
    with pytest.raises(ValueError, match="already offloaded"):
        model.offload_blocks("cpu")
