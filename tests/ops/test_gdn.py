"""Frame-wise Gated DeltaNet scan: fast form == naive oracle, mode identities, streaming, diffusers oracle."""

from __future__ import annotations

import itertools

import pytest
import torch

from sana_wm.ops import GDNState, gdn_scan, released_chunk_lengths

MODES = ("bidirectional", "chunk_causal", "causal")


def make_inputs(B=2, H=2, T=5, S=3, D=8, dtype=torch.float64, seed=0):
    """Inputs shaped like the model's: ReLU'd q/k, keys scaled by 1/sqrt(D*S), RoPE-like rotated copies."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    q = rand(B, H, T, S, D)
    k = rand(B, H, T, S, D) * (D * S) ** -0.5
    v = torch.randn(B, H, T, S, D, generator=g, dtype=dtype)
    beta = rand(B, H, T, S)
    gamma = 0.5 + 0.5 * rand(B, H, T)
    # A norm-preserving rotation of channel pairs, different per token, stands in for RoPE.
    angle = 6.3 * rand(T, S, max(D // 2, 1))

    def rotate(x):
        cos, sin = angle.cos(), angle.sin()
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    return dict(q=q, k=k, v=v, beta=beta, gamma=gamma, q_rot=rotate(q), k_rot=rotate(k))


def random_state(x, with_normalizer, seed=1):
    B, H, _, _, D = x["q"].shape
    g = torch.Generator().manual_seed(seed)
    S = 0.3 * torch.randn(B, H, D, D, generator=g, dtype=x["q"].dtype)
    z = 0.3 * torch.rand(B, H, D, generator=g, dtype=x["q"].dtype) if with_normalizer else None
    return GDNState(S=S, z=z)


def scan(x, **kwargs):
    return gdn_scan(x["q"], x["k"], x["v"], x["beta"], x["gamma"], q_rot=x["q_rot"], k_rot=x["k_rot"], **kwargs)


def frames(x, start, stop):
    """The inputs restricted to frames [start, stop)."""
    return {name: t[:, :, start:stop] for name, t in x.items()}


def assert_close(actual, expected, rel):
    """Equal to ``rel`` times the largest magnitude of ``expected`` (outputs span a few orders)."""
    scale = expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=rel * scale)


# ---------------------------------------------------------------------------------------------------
# The fast form is the naive oracle, over shapes, modes, branches, dtypes and initial states.


@pytest.mark.parametrize(("D", "S", "T"), list(itertools.product((4, 8, 16), (1, 3, 7), (1, 2, 5, 9))))
def test_fast_matches_naive(D, S, T):
    for dtype, rel in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        x = make_inputs(B=2, H=2, T=T, S=S, D=D, dtype=dtype, seed=D * 100 + S * 10 + T)
        for mode, with_normalizer, seeded in itertools.product(MODES, (True, False), (False, True)):
            state = random_state(x, with_normalizer) if seeded else None
            kwargs = dict(mode=mode, with_normalizer=with_normalizer, initial_state=state, return_state=True)
            out_fast, state_fast = scan(x, impl="fast", **kwargs)
            out_naive, state_naive = scan(x, impl="naive", **kwargs)
            assert out_fast.dtype == dtype and state_fast.S.dtype == dtype
            assert_close(out_fast, out_naive, rel)
            assert_close(state_fast.S, state_naive.S, rel)
            if with_normalizer:
                assert_close(state_fast.z, state_naive.z, rel)
            else:
                assert state_fast.z is None and state_naive.z is None


def test_chunk_causal_with_explicit_chunks_matches_naive():
    x = make_inputs(T=9, S=5, D=8)
    for lengths in ([2, 2, 2, 2, 1], [1, 5, 3], [9]):
        for with_normalizer in (True, False):
            kwargs = dict(mode="chunk_causal", chunk_lengths=lengths, with_normalizer=with_normalizer)
            assert_close(scan(x, impl="fast", **kwargs), scan(x, impl="naive", **kwargs), 1e-10)


@pytest.mark.parametrize("impl", ["naive", "fast"])
def test_gradients_match_naive(impl):
    """The fast form is differentiable and its gradients are the oracle's."""
    x = make_inputs(B=1, H=2, T=4, S=3, D=4)
    weight = torch.randn(x["v"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grads = {}
    for name in ("naive", impl):
        leaves = {key: t.clone().requires_grad_() for key, t in x.items()}
        (scan(leaves, mode="chunk_causal", chunk_lengths=[3, 1], impl=name) * weight).sum().backward()
        grads[name] = {key: t.grad for key, t in leaves.items()}
    for key in x:
        assert_close(grads[impl][key], grads["naive"][key], 1e-10)


# ---------------------------------------------------------------------------------------------------
# Mode identities.


def reverse_exclusive(x):
    """Frames reversed and shifted by one: a dummy frame (k = v = 0, beta = 0, gamma = 1) first, the
    first frame dropped, queries reversed unshifted. A causal scan of this reads, at frame t, frames t+1..T-1."""
    out = {}
    for name, t in x.items():
        flipped = t.flip(2)
        if name in ("q", "q_rot"):
            out[name] = flipped
            continue
        pad = torch.ones_like(flipped[:, :, :1]) if name == "gamma" else torch.zeros_like(flipped[:, :, :1])
        out[name] = torch.cat([pad, flipped[:, :, :-1]], dim=2)
    return out


def numerator_and_denominator(x, mode, **kwargs):
    """Numerator from the camera (numerator-only) scan; denominator as a numerator-only scan with unit
    values read by un-rotated q/k: every row of S then evolves exactly as the normalizer z."""
    num = scan(x, mode=mode, with_normalizer=False, **kwargs)
    ones = dict(x, v=torch.ones_like(x["v"]), q_rot=x["q"], k_rot=x["k"])
    den = scan(ones, mode=mode, with_normalizer=False, **kwargs)[..., 0]
    return num, den


def test_normalizer_is_scan_with_unit_values():
    x = make_inputs(T=5, S=3, D=8)
    for mode in MODES:
        num, den = numerator_and_denominator(x, mode)
        assert_close(scan(x, mode=mode), num / (den[..., None] + 1e-8), 1e-10)


def test_bidirectional_is_forward_inclusive_plus_backward_exclusive():
    x = make_inputs(T=6, S=4, D=8)
    num_f, den_f = numerator_and_denominator(x, "causal")
    num_b, den_b = numerator_and_denominator(reverse_exclusive(x), "causal")
    num_b, den_b = num_b.flip(2), den_b.flip(2)
    for impl in ("naive", "fast"):
        assert_close(
            scan(x, mode="bidirectional", impl=impl), (num_f + num_b) / (den_f + den_b + 1e-8)[..., None], 1e-10
        )
        assert_close(scan(x, mode="bidirectional", with_normalizer=False, impl=impl), num_f + num_b, 1e-10)


def test_chunk_causal_with_one_chunk_is_bidirectional():
    x = make_inputs(T=7, S=3, D=8)
    for with_normalizer in (True, False):
        chunked = scan(x, mode="chunk_causal", chunk_lengths=[7], with_normalizer=with_normalizer)
        assert_close(chunked, scan(x, mode="bidirectional", with_normalizer=with_normalizer), 1e-12)


def test_chunk_causal_with_one_frame_chunks_is_causal():
    """A one-frame chunk has no later frame inside it, so the backward pass adds nothing."""
    x = make_inputs(T=7, S=3, D=8)
    for with_normalizer in (True, False):
        chunked = scan(x, mode="chunk_causal", chunk_lengths=[1] * 7, with_normalizer=with_normalizer)
        assert_close(chunked, scan(x, mode="causal", with_normalizer=with_normalizer), 1e-12)


def test_chunk_causal_frames_do_not_see_later_chunks():
    x = make_inputs(T=9, S=3, D=8)
    y = dict(x, v=x["v"].clone(), k_rot=x["k_rot"].clone())
    y["v"][:, :, 7:] += 1.0
    y["k_rot"][:, :, 7:] *= 0.5
    a, b = scan(x, mode="chunk_causal"), scan(y, mode="chunk_causal")  # chunks [4, 3, 2]
    assert_close(a[:, :, :7], b[:, :, :7], 1e-12)
    assert (a[:, :, 7:] - b[:, :, 7:]).abs().max() > 1e-3


def test_bidirectional_state_is_the_causal_state():
    x = make_inputs(T=5, S=3, D=8)
    _, causal = scan(x, mode="causal", return_state=True)
    for mode in ("bidirectional", "chunk_causal"):
        _, state = scan(x, mode=mode, return_state=True)
        assert_close(state.S, causal.S, 1e-12)
        assert_close(state.z, causal.z, 1e-12)


def test_causal_state_matches_naive_frame_by_frame():
    """The returned state is the forward state after the last frame: the naive state, frame by frame."""
    x = make_inputs(T=6, S=3, D=8)
    _, whole = scan(x, mode="causal", return_state=True, impl="fast")
    state = None
    for t in range(6):
        _, state = scan(frames(x, t, t + 1), mode="causal", initial_state=state, return_state=True, impl="naive")
    assert_close(whole.S, state.S, 1e-10)
    assert_close(whole.z, state.z, 1e-10)


# ---------------------------------------------------------------------------------------------------
# Streaming: chunk by chunk with a carried forward state == one chunk-causal call.


@pytest.mark.parametrize("impl", ["naive", "fast"])
@pytest.mark.parametrize("with_normalizer", [True, False], ids=["main", "camera"])
def test_streaming_chunks_equal_one_chunk_causal_call(impl, with_normalizer):
    x = make_inputs(T=9, S=3, D=8)
    lengths = released_chunk_lengths(9)
    assert lengths == [4, 3, 2]
    whole, final = scan(x, mode="chunk_causal", with_normalizer=with_normalizer, return_state=True, impl=impl)
    pieces, state, start = [], None, 0
    for length in lengths:
        chunk = frames(x, start, start + length)
        out, state = scan(
            chunk,
            mode="bidirectional",
            with_normalizer=with_normalizer,
            initial_state=state,
            return_state=True,
            impl=impl,
        )
        pieces.append(out)
        start += length
    assert_close(torch.cat(pieces, dim=2), whole, 1e-10)
    assert_close(state.S, final.S, 1e-10)
    if with_normalizer:
        assert_close(state.z, final.z, 1e-10)


def test_streaming_causal_frames_equal_one_causal_call():
    x = make_inputs(T=5, S=3, D=8)
    whole = scan(x, mode="causal")
    state, pieces = None, []
    for t in range(5):
        out, state = scan(frames(x, t, t + 1), mode="causal", initial_state=state, return_state=True)
        pieces.append(out)
    assert_close(torch.cat(pieces, dim=2), whole, 1e-10)


# ---------------------------------------------------------------------------------------------------
# Public entry: chunk schedule, dtypes, errors.


def test_released_chunk_lengths():
    assert released_chunk_lengths(1) == [1]
    assert released_chunk_lengths(4) == [4]
    assert released_chunk_lengths(5) == [4, 1]
    assert released_chunk_lengths(121) == [4] + [3] * 39
    with pytest.raises(ValueError):
        released_chunk_lengths(0)


def test_low_precision_inputs_scan_in_float32():
    x64 = make_inputs(T=3, S=3, D=8)
    x16 = {name: t.to(torch.bfloat16) for name, t in x64.items()}
    out, state = scan(x16, return_state=True)
    assert out.dtype == torch.bfloat16 and state.S.dtype == torch.float32
    expected = scan({name: t.to(torch.float64) for name, t in x16.items()})
    assert_close(out.double(), expected, 1e-2)


def test_per_frame_beta_broadcasts():
    x = make_inputs(T=3, S=4, D=8)
    per_frame = x["beta"][..., 0]
    expanded = dict(x, beta=per_frame[..., None].expand_as(x["beta"]))
    assert_close(scan(dict(x, beta=per_frame)), scan(expanded), 0.0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(gamma=torch.ones(2, 2, 4)), "gamma"),
        (dict(beta=torch.ones(2, 2, 5, 2)), "beta"),
        (dict(v=torch.ones(2, 2, 5, 3, 4)), "v has shape"),
        (dict(mode="sideways"), "unknown mode"),
        (dict(mode="bidirectional", chunk_lengths=[5]), "only applies"),
        (dict(mode="chunk_causal", chunk_lengths=[2, 2]), "sum to the 5 frames"),
        (dict(impl="sideways"), "unknown impl"),
        (dict(initial_state=GDNState(S=torch.zeros(2, 2, 8, 8, dtype=torch.float64))), "z is None"),
    ],
)
def test_errors_name_the_problem(change, match):
    x = make_inputs(T=5, S=3, D=8)
    kwargs = {key: change.pop(key) for key in list(change) if key not in x}
    with pytest.raises(ValueError, match=match):
        scan(dict(x, **change), **kwargs)


# ---------------------------------------------------------------------------------------------------
# Oracle: the diffusers port of the reference scan, on the same inputs in its (B, H, D, T*S) layout.


@pytest.fixture(scope="module")
def sana_wm_diffusers():
    import diffusers.models.transformers.transformer_sana_wm as module

    return module


def to_diffusers(x):
    """(B, H, T, S, D) -> (B, H, D, N) with N = T*S frame-major, the layout of the diffusers scan functions."""
    B, H, T, S, D = x.shape
    return x.permute(0, 1, 4, 2, 3).reshape(B, H, D, T * S)


def test_forward_scan_matches_diffusers_functions(sana_wm_diffusers):
    x = make_inputs(T=7, S=5, D=16, dtype=torch.float32)
    d = {name: to_diffusers(x[name]) for name in ("q", "k", "v", "q_rot", "k_rot")}
    for chunk_size in (2, 21):
        expected = sana_wm_diffusers.torch_chunk_sana_gdn(
            d["q"], d["k"], d["v"], d["q_rot"], d["k_rot"], x["beta"], x["gamma"], chunk_size=chunk_size, eps=1e-8
        )
        assert_close(to_diffusers(scan(x, mode="causal")), expected, 1e-5)
        expected = sana_wm_diffusers.torch_chunk_cam_single_path_delta_rule(
            d["q_rot"], d["k_rot"], d["v"], x["beta"], x["gamma"], chunk_size=chunk_size
        )
        assert_close(to_diffusers(scan(x, mode="causal", with_normalizer=False)), expected, 1e-5)


def test_bidirectional_matches_diffusers_attention_classes(sana_wm_diffusers):
    """The diffusers attention classes take tokens (B, N, H, D), scale keys by 1/sqrt(D*S) and apply RoPE
    themselves; the camera class with identity ray transforms and no RoPE is the bare bidirectional scan."""
    B, H, T, S, D = 2, 3, 6, 5, 16
    N = T * S
    g = torch.Generator().manual_seed(7)
    q, k = torch.rand(B, N, H, D, generator=g), torch.rand(B, N, H, D, generator=g)
    v = torch.randn(B, N, H, D, generator=g)
    beta = torch.rand(B, H, T, S, generator=g)
    gamma = 0.5 + 0.5 * torch.rand(B, H, T, generator=g)
    freqs = torch.polar(torch.ones(N, D // 2), 6.3 * torch.rand(N, D // 2, generator=g))

    def ours(x):  # (B, N, H, D) -> (B, H, T, S, D)
        return x.view(B, T, S, H, D).permute(0, 3, 1, 2, 4)

    def theirs(y):  # (B, H, T, S, D) -> (B, N, H * D)
        return y.permute(0, 2, 3, 1, 4).reshape(B, N, H * D)

    def rope(x):  # the oracle's own RoPE, on our layout
        rotated = sana_wm_diffusers._apply_rotary_emb(to_diffusers(x), freqs)
        return rotated.view(B, H, D, T, S).permute(0, 1, 3, 4, 2)

    q_, k_, v_ = ours(q), ours(k) * (D * S) ** -0.5, ours(v)

    attention = sana_wm_diffusers.SanaWMBidirectionalGDNAttention(eps=1e-8, chunk_size=4)
    expected = attention(q, k, v, beta, gamma, torch.zeros(1), num_frames=T, rotary_emb=freqs)
    for impl in ("naive", "fast"):
        got = gdn_scan(q_, k_, v_, beta, gamma, q_rot=rope(q_), k_rot=rope(k_), impl=impl)
        assert_close(theirs(got), expected, 1e-5)

    camera = sana_wm_diffusers.SanaWMBidirectionalGDNCamAttention(chunk_size=4)
    identity = torch.eye(4).expand(B, N, 4, 4)
    expected = camera(q, k, v, (identity, identity, identity, None), beta, gamma, num_frames=T)
    for impl in ("naive", "fast"):
        got = gdn_scan(q_, k_, v_, beta, gamma, with_normalizer=False, impl=impl)
        assert_close(theirs(got), expected, 1e-5)
