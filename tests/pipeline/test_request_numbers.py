"""GenerationRequest applies the number rules the command line applies (one table for both)."""

import math

import pytest

from sana_wm.camera.actions import action_to_trajectory
from sana_wm.errors import LimitError
from sana_wm.pipeline import OptionError
from sana_wm.pipeline.pipeline import GenerationRequest, check_generation_numbers

TRAJ = action_to_trajectory("w-16")


@pytest.mark.parametrize("option, value, words", [
    ("cfg", math.nan, "finite"), ("cfg", -1.0, ">= 0"), ("camera_cfg", math.inf, "finite"),
    ("shift", 0.0, "> 0"), ("fov", 10.0, ">= 25"), ("fov", 179.0, "<= 120"), ("steps", 0, ">= 1"),
    ("steps", 5000, "<= 1000"), ("num_frames", 0, ">= 1"), ("camera_cfg_chunks", 0, ">= 1"),
    ("resume_every", -1, ">= 0"), ("seed", 2**64, "<= "), ("steps", 2.5, "whole"), ("cfg", "high", "number"),
])
def test_request_refuses_what_the_cli_refuses(option, value, words):
    with pytest.raises(OptionError) as caught:
        GenerationRequest(image=None, trajectory=TRAJ, **{option: value})
    assert str(caught.value).startswith(option) and words in str(caught.value)
    # The same rule, spelled as the command line's flag.
    flag = "--" + option.replace("_", "-")
    assert caught.value.render(lambda name: "--" + name.replace("_", "-")).startswith(flag)


def test_frame_count_over_the_limit_is_a_limit_error():
    with pytest.raises(LimitError, match="SANA_WM_MAX_FRAMES"):
        GenerationRequest(image=None, trajectory=TRAJ, num_frames=10**9)


def test_refiner_settings_numbers_are_checked():
    with pytest.raises(OptionError, match=r"refiner_settings\['block_frames'\]"):
        GenerationRequest(image=None, trajectory=TRAJ, refiner_settings={"block_frames": 0})


def test_valid_numbers_pass():
    check_generation_numbers({"cfg": 0.0, "camera_cfg": 7.5, "shift": 3.0, "fov": 25.0, "steps": 1000,
                              "num_frames": 9601, "seed": -(2**63), "resume_every": 0})
    GenerationRequest(image=None, trajectory=TRAJ, cfg=1.0, fov=120.0, seed=2**64 - 1)
