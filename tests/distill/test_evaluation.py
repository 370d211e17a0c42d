"""The distillation benchmark's statistics: the paired bootstrap."""

import numpy as np
import pytest
import torch

from sana_wm.distill.evaluation import frechet_distance, paired_bootstrap


def _mean_gap(x, reference):
    return float((x - reference).mean())


def test_paired_bootstrap_resamples_candidates_and_reference_together():
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(40, 2, 3, 2, 2, generator=g)
    # b = a + 0.1 exactly, so every resample gives b's gap 0.1 above a's however noisy a is.
    a = reference + torch.randn(40, 2, 3, 2, 2, generator=g)
    b = a + 0.1
    spread = paired_bootstrap({"a": a, "b": b}, reference, _mean_gap, rounds=300, seed=1)
    assert spread["a"].shape == (300,)
    np.testing.assert_allclose(spread["b"] - spread["a"], 0.1, atol=1e-6)
    # Hand check of the spread: the mean of 40 resampled per-sample gaps has a standard deviation of about
    # std(per-sample gaps) / sqrt(40).
    gaps = (a - reference).mean(dim=(1, 2, 3, 4)).double().numpy()
    assert spread["a"].std() == pytest.approx(gaps.std() / np.sqrt(40), rel=0.15)
    assert spread["a"].mean() == pytest.approx(gaps.mean(), abs=3 * gaps.std() / np.sqrt(40 * 300) + 1e-3)
    # Same seed, same draws; and the FD of a set with itself is 0 in every resample.
    again = paired_bootstrap({"a": a, "b": b}, reference, _mean_gap, rounds=300, seed=1)
    assert np.array_equal(again["a"], spread["a"])
    assert np.allclose(paired_bootstrap({"a": a}, a, frechet_distance, rounds=5)["a"], 0, atol=1e-9)
    with pytest.raises(ValueError, match="'a' has 40 samples, the reference 39"):
        paired_bootstrap({"a": a}, reference[:39], _mean_gap)
