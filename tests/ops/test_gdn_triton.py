"""Triton GDN scan == the float64 naive oracle, forward and backward, in every mode and branch.

Without a GPU the kernels run in Triton's CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before anything imports them); with one they are compiled and run on CUDA tensors. Shapes are tiny
because the interpreter runs every program of the grid in Python.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from test_gdn import MODES, assert_close, make_inputs, random_state, scan

from sana_wm.ops import GDNState
from sana_wm.ops import gdn as gdn_module
from sana_wm.ops.gdn_triton import interpreted

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# (D, S, T, chunk lengths): D not a power of two and the released 112 (7 programs of 16 state rows),
# S not a multiple of any block, chunk lengths that do not divide T, one-frame scans.
SHAPES = [
    (8, 3, 5, [2, 3]),
    (20, 17, 7, [4, 3]),
    (112, 2, 3, [1, 2]),
    (6, 1, 1, [1]),
]


def to(x: dict, dtype: torch.dtype) -> dict:
    return {name: t.to(DEVICE, dtype) for name, t in x.items()}


def state_to(state: GDNState | None, dtype: torch.dtype, device: torch.device = DEVICE) -> GDNState | None:
    if state is None:
        return None
    return GDNState(S=state.S.to(device, dtype), z=None if state.z is None else state.z.to(device, dtype))


def test_kernels_run_interpreted_without_a_gpu():
    """Guards the conftest: on a machine without CUDA the kernels must be the interpreter's, not fail to compile."""
    assert interpreted() == (not torch.cuda.is_available())


@pytest.mark.parametrize(("D", "S", "T", "chunks"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_matches_naive(D, S, T, chunks, dtype):
    x64 = make_inputs(B=2, H=1, T=T, S=S, D=D, seed=D + S + T)
    # The oracle gets the same (rounded) inputs in float64: the only difference left is float32 arithmetic.
    x64 = {name: t.to(dtype).double() for name, t in x64.items()}
    for mode, with_normalizer, seeded in itertools.product(MODES, (True, False), (False, True)):
        state = state_to(random_state(x64, with_normalizer), dtype) if seeded else None
        kwargs = dict(mode=mode, with_normalizer=with_normalizer, return_state=True)
        if mode == "chunk_causal":
            kwargs["chunk_lengths"] = chunks
        out, final = scan(to(x64, dtype), impl="triton", initial_state=state, **kwargs)
        state = state_to(state, torch.float64, torch.device("cpu"))
        expected, expected_final = scan(x64, impl="naive", initial_state=state, **kwargs)
        assert out.dtype == dtype and final.S.dtype == torch.float32
        rel = 1e-5 if dtype == torch.float32 else 4e-3  # bf16: the output's own rounding (2**-8)
        assert_close(out.double().cpu(), expected, rel)
        assert_close(final.S.double().cpu(), expected_final.S, 1e-5)
        if with_normalizer:
            assert_close(final.z.double().cpu(), expected_final.z, 1e-5)
        else:
            assert final.z is None


def test_per_frame_beta():
    x64 = make_inputs(B=1, H=2, T=4, S=3, D=8)
    x64["beta"] = x64["beta"][..., 0]
    out = scan(to(x64, torch.float32), impl="triton", mode="chunk_causal", chunk_lengths=[3, 1])
    assert_close(out.double().cpu(), scan(x64, impl="naive", mode="chunk_causal", chunk_lengths=[3, 1]), 1e-5)


@pytest.mark.parametrize(("mode", "with_normalizer"), list(itertools.product(MODES, (True, False))))
def test_gradients_match_naive(mode, with_normalizer):
    """Gradients of the output and of the carried-out state reach every input and the carried-in state."""
    x64 = make_inputs(B=1, H=2, T=5, S=3, D=6, seed=7)
    state64 = random_state(x64, with_normalizer)
    g = torch.Generator().manual_seed(3)
    out_weight = torch.randn(x64["v"].shape, generator=g, dtype=torch.float64)
    state_weight = torch.randn(state64.S.shape, generator=g, dtype=torch.float64)
    z_weight = torch.randn(x64["q"].shape[:2] + x64["q"].shape[-1:], generator=g, dtype=torch.float64)
    kwargs = dict(mode=mode, with_normalizer=with_normalizer, return_state=True)
    if mode == "chunk_causal":
        kwargs["chunk_lengths"] = [2, 3]

    def gradients(impl: str, dtype: torch.dtype) -> dict:
        leaves = {name: t.to(DEVICE, dtype).requires_grad_() for name, t in x64.items()}
        S0 = state64.S.to(DEVICE, dtype).requires_grad_()
        z0 = state64.z.to(DEVICE, dtype).requires_grad_() if with_normalizer else None
        out, final = scan(leaves, impl=impl, initial_state=GDNState(S=S0, z=z0), **kwargs)
        loss = (out * out_weight.to(DEVICE, dtype)).sum() + (final.S * state_weight.to(DEVICE, dtype)).sum()
        if with_normalizer:
            loss = loss + (final.z * z_weight.to(DEVICE, dtype)).sum()
        loss.backward()
        grads = {name: t.grad for name, t in leaves.items()} | {"S0": S0.grad, "z0": None if z0 is None else z0.grad}
        return {name: grad.double().cpu() for name, grad in grads.items() if grad is not None}

    actual, expected = gradients("triton", torch.float32), gradients("naive", torch.float64)
    assert actual.keys() == expected.keys()
    if with_normalizer:
        assert {"q", "k", "q_rot", "k_rot", "z0"} <= actual.keys()
    for name in expected:
        assert_close(actual[name], expected[name], 1e-5)


def test_auto_picks_triton_only_for_cuda_tensors():
    x = torch.zeros(1, 1, 1, 1, 8)
    assert gdn_module._auto_impl(x, torch.float32) == "fast"
    if torch.cuda.is_available():
        assert gdn_module._auto_impl(x.cuda(), torch.float32) == "triton"
        assert gdn_module._auto_impl(x.cuda(), torch.float64) == "fast"


def test_refuses_float64_with_a_pointer_to_the_oracle():
    x64 = {name: t.to(DEVICE) for name, t in make_inputs(T=2, S=2, D=4).items()}
    with pytest.raises(ValueError, match="impl='naive' for float64"):
        scan(x64, impl="triton")
