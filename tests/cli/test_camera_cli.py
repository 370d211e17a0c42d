import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sana_wm.camera.actions import action_to_c2w
from sana_wm.camera.formats import read_trajectory
from sana_wm.cli import build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_every_option_has_help():
    for parser in _all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog}: option {action.option_strings or action.dest} has no help"


def test_help_mentions_convention_and_rules(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["camera", "--help"])
    assert exc.value.code == 0
    assert "+Y down" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["camera", "resample", "--help"])
    out = capsys.readouterr().out
    assert "8k+1" in out and "--extend hold" in out
    with pytest.raises(SystemExit):
        main(["camera", "preset", "--help"])
    out = capsys.readouterr().out
    for name in ("orbit", "dolly", "pan", "tilt", "truck", "crane", "spiral", "figure_eight", "look_around_return"):
        assert name in out


def test_action_writes_the_rollout(tmp_path, capsys):
    out = tmp_path / "walk.npy"
    code, stdout, _ = run(capsys, "camera", "action", "w-40,dw-20", "--out", str(out))
    assert code == 0, stdout
    arr = np.load(out)
    assert arr.shape == (61, 4, 4)
    np.testing.assert_allclose(arr, action_to_c2w("w-40,dw-20"), atol=1e-12)
    code, _, _ = run(capsys, "camera", "action", "w-10", "--mapping", "legacy", "--translation-speed", "0.1",
                     "--out", str(tmp_path / "fast.npy"))
    assert code == 0
    assert np.load(tmp_path / "fast.npy")[-1, 2, 3] == pytest.approx(1.0)


def test_bad_action_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "camera", "action", "w-40,x-3", "--out", str(tmp_path / "t.npy"))
    assert code == 2
    assert "x-3" in err
    assert not (tmp_path / "t.npy").exists()


def test_preset_info_and_validate(tmp_path, capsys):
    path = tmp_path / "orbit.npz"
    code, _, _ = run(capsys, "camera", "preset", "orbit", "--seconds", "2", "--param", "radius=3", "--out", str(path))
    assert code == 0
    code, out, _ = run(capsys, "camera", "info", str(path), "--json")
    info = json.loads(out)
    assert info["num_frames"] == 33 and info["valid"]
    assert info["duration_s"] == pytest.approx(2.0)
    code, out, _ = run(capsys, "camera", "info", "--preset", "dolly", "--seconds", "1")
    assert code == 0 and "path length" in out and "check             ok" in out
    code, out, _ = run(capsys, "camera", "validate", str(path))
    assert code == 0 and out.startswith("ok: 33 frames")


def test_validate_reports_the_bad_frame(tmp_path, capsys):
    c2w = action_to_c2w("w-5")
    c2w[3, :3, :3] *= 2
    np.save(tmp_path / "bad.npy", c2w)
    code, _, err = run(capsys, "camera", "validate", str(tmp_path / "bad.npy"))
    assert code == 2
    assert "frame 3" in err and "orthonormal" in err
    code, _, _ = run(capsys, "camera", "validate", str(tmp_path / "bad.npy"), "--orthonormalize")
    assert code == 0


def test_missing_file_and_two_sources(tmp_path, capsys):
    code, _, err = run(capsys, "camera", "info", str(tmp_path / "nope.npy"))
    assert code == 2 and "nope.npy" in err
    code, _, err = run(capsys, "camera", "info", str(tmp_path / "nope.npy"), "--action", "w-3")
    assert code == 2 and "exactly one" in err


def test_convert_round_trip_through_re10k(tmp_path, capsys):
    src = tmp_path / "walk.npy"
    run(capsys, "camera", "action", "w-16,aw-16", "--out", str(src))
    txt = tmp_path / "walk.txt"
    code, _, err = run(capsys, "camera", "convert", str(src), str(txt), "--fov", "70", "--width", "640",
                       "--height", "360")
    assert code == 0, err
    back = read_trajectory(txt, width=640, height=360)
    np.testing.assert_allclose(back.c2w, np.load(src), atol=1e-9)
    np.testing.assert_allclose(back.intrinsics.fov_deg()[:, 0], 70.0, atol=1e-9)


def test_resample_snaps_to_8k_plus_1(tmp_path, capsys):
    src = tmp_path / "walk.npy"
    run(capsys, "camera", "action", "w-30", "--out", str(src))  # 31 poses
    out = tmp_path / "snapped.npy"
    code, stdout, _ = run(capsys, "camera", "resample", str(src), "--num-frames", "30", "--snap", "down",
                          "--out", str(out))
    assert code == 0 and "31 -> 25 frames" in stdout
    np.testing.assert_allclose(np.load(out), np.load(src)[:25])
    code, _, err = run(capsys, "camera", "resample", str(src), "--num-frames", "41", "--out", str(out))
    assert code == 2 and "31" in err and "41" in err


def test_show_writes_a_png(tmp_path, capsys):
    out = tmp_path / "plot.png"
    code, _, _ = run(capsys, "camera", "show", "--action", "w-20,dw-20", "--out", str(out))
    assert code == 0
    with Image.open(out) as im:
        assert im.size[0] > 200 and im.size[1] > 200


def test_console_script_entry_point():
    script = Path(sys.executable).parent / "sana-wm"
    assert script.exists(), "the sana-wm console script is not installed next to the interpreter"
    res = subprocess.run([str(script), "camera", "info", "--action", "w-8"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "sana_wm", "--version"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "sana-wm" in res.stdout
