"""The action language: parsing, both key mappings, and the legacy rollout against diffusers."""

import math
import random

import numpy as np
import pytest

from sana_wm.camera.actions import (
    MAPPINGS,
    ActionConfig,
    ActionError,
    action_to_c2w,
    action_to_trajectory,
    parse_actions,
    per_frame_keys,
    rot_x,
    rot_y,
)
from sana_wm.camera.trajectory import Intrinsics, TrajectoryError

STEP = 0.025 / (1 + 1e-6)  # a current-mapping step: directions are normalised by (norm + 1e-6)


def _yaw_deg(R):
    return math.degrees(math.atan2(R[0, 2], R[2, 2]))


def _pitch_deg(R):
    """Elevation of the optical axis above the horizon (world up is -Y)."""
    return math.degrees(math.asin(-R[1, 2]))


# -- parsing ------------------------------------------------------------------------------------------


def test_parse_segments_case_whitespace_fullwidth_comma():
    assert parse_actions(" dW - 60 \uff0c NoNe-3,w-1") == [
        (frozenset("dw"), 60), (frozenset(), 3), (frozenset("w"), 1)
    ]
    assert parse_actions("ws-2") == [(frozenset("ws"), 2)]
    assert parse_actions("ww-007") == [(frozenset("w"), 7)]


def test_per_frame_keys_one_entry_per_frame():
    keys = per_frame_keys("w-2,none-1,ad-3")
    assert keys == [frozenset("w")] * 2 + [frozenset()] + [frozenset("ad")] * 3


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("", ["empty"]),
        ("  \t ", ["empty"]),
        ("w-10,x-5", ["segment 2 of 2", "'x-5'", "unknown key 'x'"]),
        ("w-10,dwq-5,a-1", ["segment 2 of 3", "'dwq-5'", "unknown key 'q'"]),
        ("w10", ["segment 1 of 1", "'w10'", "missing '-'"]),
        ("w-3,a-0", ["segment 2 of 2", "'a-0'", "must be positive, got 0"]),
        ("w--3", ["'w--3'", "must be positive, got -3"]),
        ("w-1.5", ["'w-1.5'", "'1.5' is not a positive integer"]),
        ("w-x", ["'w-x'", "not a positive integer"]),
        ("w-", ["'w-'", "missing frame count"]),
        ("-4", ["'-4'", "no keys", "none-4"]),
        ("w-3,,a-2", ["segment 2 of 3", "empty"]),
        ("w-3,", ["segment 2 of 2", "empty"]),
        ("nonew-3", ["'nonew-3'", "unknown keys 'n', 'o', 'e'"]),
    ],
)
def test_parse_errors_quote_segment_and_position(action, expected):
    with pytest.raises(ActionError) as info:
        parse_actions(action)
    assert isinstance(info.value, TrajectoryError) and isinstance(info.value, ValueError)
    for text in expected:
        assert text in str(info.value)


def test_non_string_action_is_an_error():
    with pytest.raises(ActionError, match="string"):
        parse_actions(None)


# -- rollout basics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_rollout_length_identity_first_float64(mapping):
    c2w = action_to_c2w("w-5,dw-3,none-2", mapping)
    assert c2w.shape == (11, 4, 4) and c2w.dtype == np.float64
    np.testing.assert_array_equal(c2w[0], np.eye(4))
    np.testing.assert_array_equal(c2w[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (11, 1)))


@pytest.mark.parametrize("mapping", MAPPINGS)
@pytest.mark.parametrize("pair", ["ws", "ad", "ik", "jl", "wsadikjl"])
def test_opposite_keys_cancel(mapping, pair):
    c2w = action_to_c2w(f"{pair}-12", mapping)
    np.testing.assert_array_equal(c2w, np.tile(np.eye(4), (13, 1, 1)))


def test_unknown_mapping_and_settings():
    with pytest.raises(ActionError, match="current, legacy"):
        action_to_c2w("w-1", "qwerty")
    with pytest.raises(TypeError, match="translation_speed"):
        action_to_c2w("w-1", translaton_speed=1.0)
    with pytest.raises(ActionError, match="tau_coast_s"):
        action_to_c2w("w-1", tau_coast_s=0.0)
    with pytest.raises(ActionError, match="pitch_limit_mode"):
        ActionConfig(pitch_limit_mode="wrap")


def test_mapping_defaults():
    cur, leg = ActionConfig.for_mapping("current"), ActionConfig.for_mapping("legacy")
    assert (cur.translation_speed, cur.rotation_speed_deg, cur.pitch_limit_deg) == (0.025, 0.6, 60.0)
    assert cur.smoothing and cur.pitch_limit_mode == "clamp"
    assert (leg.translation_speed, leg.rotation_speed_deg, leg.pitch_limit_deg) == (0.05, 1.2, 85.0)
    assert not leg.smoothing and leg.pitch_limit_mode == "drop"


def test_action_to_trajectory():
    intr = Intrinsics.from_fov(60.0, 1280, 704)
    traj = action_to_trajectory("w-8,d-8", fps=12.0, intrinsics=intr)
    assert traj.num_frames == 17 and traj.fps == 12.0 and traj.intrinsics.num_frames == 17
    assert traj.meta["mapping"] == "current"
    traj.validate()
    np.testing.assert_array_equal(traj.c2w, action_to_c2w("w-8,d-8"))


# -- current mapping ------------------------------------------------------------------------------------


def test_current_w_from_rest_moves_quarter_metre_forward():
    c2w = action_to_c2w("w-10")
    np.testing.assert_array_equal(c2w[:, :3, :3], np.tile(np.eye(3), (11, 1, 1)))
    np.testing.assert_allclose(c2w[:, :3, 3], np.outer(np.arange(11) * STEP, [0, 0, 1]), atol=1e-15)
    np.testing.assert_allclose(c2w[-1, :3, 3], [0.0, 0.0, 0.25], atol=1e-6)


def test_current_release_coasts_with_exponential_decay():
    c2w = action_to_c2w("w-10,none-5")
    steps = np.diff(c2w[:, 2, 3])
    # Independent check: a coasting velocity shrinks by exp(-dt / tau_coast) per frame.
    expected = [0.025 * math.exp(-k / 16.0) / (1 + 1e-6) for k in range(1, 6)]
    np.testing.assert_allclose(steps[10:], expected, rtol=1e-12)
    assert np.all(c2w[:, 0, 3] == 0) and np.all(c2w[:, 1, 3] == 0)


def test_current_no_new_key_accelerates_smoothly_new_key_snaps():
    # "ws" then "w": no key newly pressed, so the forward velocity rises from 0 with tau = 0.45 s.
    c2w = action_to_c2w("ws-3,w-2")
    alpha = 1 - math.exp(-(1 / 16) / 0.45)
    v1 = 0.025 * alpha
    v2 = v1 + alpha * (0.025 - v1)
    np.testing.assert_allclose(np.diff(c2w[:, 2, 3])[3:], np.array([v1, v2]) / (1 + 1e-6), rtol=1e-12)
    # Pressing w again after a pause snaps straight back to full speed.
    c2w = action_to_c2w("w-2,none-3,w-1")
    assert np.diff(c2w[:, 2, 3])[-1] == pytest.approx(STEP, rel=1e-12)


def test_current_smoothing_can_be_switched_off():
    c2w = action_to_c2w("w-4,none-4", smoothing=False)
    np.testing.assert_allclose(np.diff(c2w[:, 2, 3]), [STEP] * 4 + [0.0] * 4, rtol=1e-12)


def test_current_pitch_saturates_at_60_degrees_and_stays():
    c2w = action_to_c2w("i-200")
    pitch = np.array([_pitch_deg(R) for R in c2w[:, :3, :3]])
    assert np.all(np.diff(pitch) >= -1e-12)
    assert pitch.max() <= 60.0 + 1e-9
    np.testing.assert_allclose(pitch[101:], 60.0, atol=1e-9)
    np.testing.assert_allclose(pitch[:100], 0.6 * np.arange(100), atol=1e-9)
    down = np.array([_pitch_deg(R) for R in action_to_c2w("k-150")[:, :3, :3]])
    np.testing.assert_allclose(down[-1], -60.0, atol=1e-9)


def test_current_yaw_right_turns_forward_toward_plus_x():
    R = action_to_c2w("d-30")[-1, :3, :3]
    assert R[0, 2] > 0  # optical axis gained +X
    assert _yaw_deg(R) == pytest.approx(18.0, abs=1e-9)
    assert _yaw_deg(action_to_c2w("a-30")[-1, :3, :3]) == pytest.approx(-18.0, abs=1e-9)
    np.testing.assert_allclose(R, rot_y(math.radians(18.0)), atol=1e-12)


def test_current_pitch_up_looks_toward_world_up():
    R = action_to_c2w("i-10")[-1, :3, :3]
    assert R[1, 2] < 0  # optical axis gained -Y, i.e. up
    np.testing.assert_allclose(R, rot_x(math.radians(6.0)), atol=1e-12)


def test_current_strafe_moves_along_plus_x():
    t = action_to_c2w("l-10")[-1, :3, 3]
    np.testing.assert_allclose(t, [10 * STEP, 0, 0], atol=1e-15)
    t = action_to_c2w("j-10")[-1, :3, 3]
    np.testing.assert_allclose(t, [-10 * STEP, 0, 0], atol=1e-15)


@pytest.mark.parametrize(("current", "legacy"), [("d", "l"), ("a", "j"), ("i", "i"), ("k", "k"),
                                                 ("l", "d"), ("j", "a"), ("w", "w"), ("s", "s")])
def test_current_and_legacy_share_sign_conventions(current, legacy):
    same = {"translation_speed": 0.025, "rotation_speed_deg": 0.6, "smoothing": False,
            "pitch_limit_deg": 60.0, "pitch_limit_mode": "clamp", "direction_eps": 1e-6}
    np.testing.assert_allclose(action_to_c2w(f"{current}-20", "current"),
                               action_to_c2w(f"{legacy}-20", "legacy", **same), atol=1e-15)


def test_current_translation_stays_horizontal_when_pitched():
    c2w = action_to_c2w("iw-120,kdl-40,s-30,none-20,kw-200,jiw-30")
    assert np.all(c2w[:, 1, 3] == 0.0)
    # Walking while looking up moves at (almost) full speed on the ground.
    t = action_to_c2w("i-50,w-10")[:, :3, 3]
    assert np.linalg.norm(t[-1] - t[-11]) == pytest.approx(0.25, abs=1e-5)


# -- legacy mapping against diffusers -----------------------------------------------------------------


def _random_action(rng: random.Random) -> str:
    def ws() -> str:
        return rng.choice(["", "", " ", "\t", "  "])

    parts = []
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.12:
            keys = "".join(c.upper() if rng.random() < 0.5 else c for c in "none")
        else:
            keys = "".join(rng.choice("wasdijkl") for _ in range(rng.randint(1, 4)))
            keys = "".join(c.upper() if rng.random() < 0.3 else c for c in keys)
        frames = rng.randint(1, 30)
        if rng.random() < 0.15:  # a long pitch run that crosses the +-85 deg limit
            keys, frames = rng.choice(["i", "k", "iw", "kd", "il"]), rng.randint(75, 160)
        parts.append(f"{ws()}{keys}{ws()}-{ws()}{frames}{ws()}")
    sep = [rng.choice([",", "\uff0c", " , "]) for _ in parts[1:]]
    return parts[0] + "".join(s + p for s, p in zip(sep, parts[1:], strict=True))


def test_legacy_equals_diffusers_on_random_actions():
    import diffusers.pipelines.sana_wm.cam_utils as cam_utils
    rng = random.Random(1234)
    hit_limit = 0
    for _ in range(100):
        action = _random_action(rng)
        ours = action_to_c2w(action, "legacy")
        ref = cam_utils.action_string_to_c2w(action)  # float32
        assert ours.shape == ref.shape, action
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6, err_msg=action)
        pitch = np.degrees(np.arcsin(np.clip(-ours[:, 1, 2], -1, 1)))
        hit_limit += bool(np.abs(pitch).max() > 84.0)
    assert hit_limit >= 5  # the generator really exercised the dropped pitch steps


def test_legacy_equals_diffusers_with_custom_speeds():
    import diffusers.pipelines.sana_wm.cam_utils as cam_utils
    action = "dw-30,il-40,k-10,as-25"
    ours = action_to_c2w(action, "legacy", translation_speed=0.03, rotation_speed_deg=2.5, pitch_limit_deg=40)
    ref = cam_utils.action_string_to_c2w(action, translation_speed=0.03, rotation_speed_deg=2.5,
                                         pitch_limit_deg=40)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_legacy_pitch_step_over_limit_is_dropped():
    c2w = action_to_c2w("i-100", "legacy")
    pitch = [_pitch_deg(R) for R in c2w[:, :3, :3]]
    assert c2w.shape == (101, 4, 4)
    # 70 steps of 1.2 deg reach 84 deg; the 71st would give 85.2 > 85 and is skipped, as are all later.
    assert pitch[70] == pytest.approx(84.0, abs=1e-9)
    np.testing.assert_allclose(pitch[70:], 84.0, atol=1e-9)
