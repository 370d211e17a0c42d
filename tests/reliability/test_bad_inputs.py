"""Every bad input and fault in the table exits with its status, names the culprit and changes no file."""

import shutil
import traceback

import pytest
from reliability_cases import CASES, Case, build_workspace, run_case

from sana_wm.cli import main


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("reliability") / "ws")


@pytest.fixture(scope="module")
def shared(pristine, tmp_path_factory):
    """One workspace for the whole table: a case that leaves it as it was (the point of every case) leaves it for
    the next; one that changed it fails and the workspace is copied afresh, so no failure can hide another."""
    ws = tmp_path_factory.mktemp("shared") / "ws"
    shutil.copytree(pristine, ws, symlinks=True)
    return ws


@pytest.fixture
def workspace(pristine, tmp_path):
    """A fresh copy, for the tests below that write into it."""
    ws = tmp_path / "ws"
    shutil.copytree(pristine, ws, symlinks=True)
    return ws


# The slow cases (a model loaded, a codec fitted or a video generated before the fault) run in count.py.
FAST = [c for c in CASES if not c.slow]


@pytest.mark.parametrize("case", FAST, ids=[f"{c.kind}:{c.name}" for c in FAST])
def test_bad_input(case: Case, shared, pristine):
    outcome = run_case(case, shared)
    if outcome.changed:
        shutil.rmtree(shared)
        shutil.copytree(pristine, shared, symlinks=True)
    assert not outcome.problems(case, shared), outcome.problems(case, shared)


def test_every_class_of_the_issue_has_a_case():
    kinds = {c.kind for c in CASES}
    assert kinds >= {"trajectories", "actions", "images", "checkpoints", "numbers", "paths", "faults", "other"}


def test_the_table_is_at_the_scale_of_the_issue():
    """The issue was written from 426 bad inputs and faults; the table covers at least as many."""
    assert len(CASES) >= 426
    assert len({(c.kind, c.name) for c in CASES}) == len(CASES)


def test_an_internal_value_error_is_a_bug_with_its_traceback(monkeypatch, capsys, pristine):
    """A plain ValueError from inside sana-wm is not the user's: main lets it escape (Python prints the
    traceback and exits 1), while every case of the table, run in the same process, exits cleanly."""
    import sana_wm.camera.formats as formats

    def broken(*args, **kwargs):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(formats, "read_trajectory", broken)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        main(["camera", "info", str(pristine / "good.npz")])
    assert "error" not in capsys.readouterr().err  # no message pretends it was the user's


def test_a_bug_still_shows_its_traceback(monkeypatch, capsys):
    """An error that is not the user's (here a TypeError inside a command) escapes the boundary."""
    import sana_wm.cli.camera as camera

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(camera, "cmd_info", broken)
    with pytest.raises(TypeError, match="a bug"):
        main(["camera", "info", "x.npz"])


def test_debug_shows_the_traceback_of_a_user_error(capsys, tmp_path):
    code = main(["--debug", "camera", "info", str(tmp_path / "nowhere.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err and "nowhere.npz" in err


def test_without_debug_a_user_error_is_one_line(capsys, tmp_path):
    code = main(["camera", "info", str(tmp_path / "nowhere.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err


def test_generate_refuses_the_bent_path_before_loading_the_model(workspace, monkeypatch, capsys):
    """Validation happens at the entry: the model loader is never reached."""
    from sana_wm.pipeline import SanaWMPipeline

    def no_load(*args, **kwargs):
        traceback.print_stack()
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(SanaWMPipeline, "from_pretrained", no_load)
    code = main(["generate", "--image", str(workspace / "frame.png"), "--camera", str(workspace / "bent.npz"),
                 "--out", str(workspace / "v.mp4")])
    assert code == 2 and "frame 5" in capsys.readouterr().err


def test_no_validate_lets_the_bent_path_through(workspace, monkeypatch):
    """--no-validate skips the check: the run reaches the model loader (stubbed here)."""
    from sana_wm.pipeline import SanaWMPipeline

    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(SanaWMPipeline, "from_pretrained", reached)
    with pytest.raises(Reached):
        main(["generate", "--image", str(workspace / "frame.png"), "--camera", str(workspace / "bent.npz"),
              "--out", str(workspace / "v.mp4"), "--no-validate"])


def test_camera_convert_warns_about_invalid_poses(workspace, capsys):
    code = main(["camera", "convert", str(workspace / "bent.npz"), str(workspace / "copy.npz")])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning" in err and "frame 5" in err


def test_camera_show_warns_about_invalid_poses(workspace, capsys):
    code = main(["camera", "show", str(workspace / "bent.npz"), "--out", str(workspace / "bent.png")])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning" in err and "frame 5" in err


def test_the_frame_limit_can_be_raised(workspace, monkeypatch, capsys):
    monkeypatch.setenv("SANA_WM_MAX_FRAMES", "20000")
    code = main(["camera", "action", "w-10000", "--out", str(workspace / "long.npz")])
    assert code == 0, capsys.readouterr().err
