import math

import pytest

from sana_wm.errors import LimitError, UserError
from sana_wm.limits import MAX_JSON_DEPTH, check_finite, check_frames, check_json_depth, loads_json, max_frames


def test_json_depth_counts_brackets_outside_strings_only():
    check_json_depth('{"a": "' + "[" * 1000 + '"}', "f.json")  # brackets inside a string are text
    check_json_depth("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "f.json")
    with pytest.raises(LimitError, match="f.json"):
        check_json_depth("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "f.json")


def test_json_depth_is_not_fooled_by_escaped_quotes():
    text = '["\\"' + "[" * 100 + '"]'  # the string holds an escaped quote, then brackets: still one level
    check_json_depth(text, "f.json")


def test_loads_json_names_the_file_and_line():
    with pytest.raises(UserError, match=r"cfg.json: not valid JSON .* line 2"):
        loads_json('{"a": 1,\n oops}', "cfg.json")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_check_finite_refuses_non_finite(value):
    with pytest.raises(UserError, match="--cfg"):
        check_finite(value, "--cfg")


def test_check_finite_bounds():
    check_finite(25.0, "--fov", low=25, high=120)
    with pytest.raises(UserError, match=r"--fov 0: must be >= 25 and <= 120"):
        check_finite(0.0, "--fov", low=25, high=120)
    with pytest.raises(UserError, match="> 0"):
        check_finite(0.0, "--shift", low=0, low_open=True)


def test_frame_limit_and_its_variable(monkeypatch):
    check_frames(max_frames(), "--num-frames")
    with pytest.raises(LimitError, match="SANA_WM_MAX_FRAMES"):
        check_frames(max_frames() + 1, "--num-frames")
    with pytest.raises(LimitError):
        check_frames(math.nan, "--seconds")
    monkeypatch.setenv("SANA_WM_MAX_FRAMES", "100000")
    check_frames(50_000, "--num-frames")
