"""Bad inputs and faults thrown at the `sana-wm` command, one table shared by the tests and the counting script.

Every case runs ``sana_wm.cli.main`` in-process in a workspace of good and bad input files, and records an
:class:`Outcome`: the exit status, stderr, whether a raw traceback escaped, and which files of the workspace
changed, appeared or vanished. A user error passes when it exits 2 with a short message naming the culprit and
leaves every file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

from sana_wm.bundled import bundled_model_dir
from sana_wm.camera.actions import action_to_trajectory
from sana_wm.camera.formats import write_trajectory
from sana_wm.camera.trajectory import Trajectory
from sana_wm.cli import main
from sana_wm.data.shards import FORMAT_NAME, FORMAT_VERSION, INDEX_NAME


# -- the workspace ----------------------------------------------------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's header, without the bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17]))
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def build_workspace(root: Path) -> Path:
    """Good and bad inputs, and an earlier output that no failing command may touch."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(root / "frame.png")
    (root / "bomb.png").write_bytes(_png_claiming(30000, 30000))  # 900 Mpx: over PIL's own bomb limit
    (root / "huge.png").write_bytes(_png_claiming(9000, 9000))  # 81 Mpx: over ours, under PIL's
    (root / "not_an_image.png").write_text("hello")
    good = action_to_trajectory("w-16")
    write_trajectory(good, root / "good.npz")
    bent = good.c2w.copy()
    bent[5, :3, :3] *= 1.5  # frame 5 is no longer a rotation
    write_trajectory(Trajectory(bent, fps=good.fps), root / "bent.npz")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "earlier.mp4").write_bytes(b"an earlier video that must survive")
    (root / "a_file").write_text("a file, not a folder")
    (root / "folder.mp4").mkdir()
    (root / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    (root / "pickle.pt").write_bytes(b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR.")
    # A dataset from someone else whose index names a clip "../evil": inspecting it must not write outside.
    data = root / "dataset"
    data.mkdir()
    (data / "shard-000000.tar").write_bytes(b"")
    clip = {"key": "../evil", "num_frames": 2, "fps": 16.0, "height": 8, "width": 8, "frames_codec": "npz",
            "has_depth": False, "members": {}}
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
             "shards": [{"name": "shard-000000.tar", "bytes": 0, "clips": [clip]}]}
    import json

    (data / INDEX_NAME).write_text(json.dumps(index))
    # The bundled model with one weight turned to NaN.
    nan_model = root / "nan_model"
    shutil.copytree(bundled_model_dir(), nan_model)
    weights = nan_model / "sana_dit" / "model.pt"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    _poison(state)
    torch.save(state, weights)
    (root / "bad_types.yaml").write_text("model:\n  config: tiny\ntraining:\n  steps: many\n")
    return root


def _poison(state) -> None:
    """Set the first float tensor found (depth first) to NaN in place."""
    for value in state.values():
        if isinstance(value, dict):
            return _poison(value)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            value.view(-1)[0] = float("nan")
            return None
    raise AssertionError("no float tensor to poison")


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- cases --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    kind: str  # the class of the issue: trajectories, actions, images, checkpoints, numbers, paths, faults, other
    name: str
    argv: Callable[[Path], list[str]]
    culprit: tuple[str, ...]  # each must appear in the message ("{ws}" stands for the workspace)
    status: int = 2
    patches: tuple[tuple[str, BaseException], ...] = ()  # (target, exception raised by it)
    env: dict[str, str] = field(default_factory=dict)


def _gen(*extra: str) -> Callable[[Path], list[str]]:
    def argv(ws: Path) -> list[str]:
        defaults = {"--image": str(ws / "frame.png"), "--out": str(ws / "new.mp4")}
        given = [a for a in extra if a.startswith("--")]
        args = ["generate", *[x.format(ws=ws) for x in extra]]
        for flag, value in defaults.items():
            if flag not in given:
                args += [flag, value]
        if not any(a in given for a in ("--action", "--camera", "--preset")):
            args += ["--action", "w-32"]
        return args + ["--no-progress"]
    return argv


def _cmd(*parts: str) -> Callable[[Path], list[str]]:
    return lambda ws: [p.format(ws=ws) for p in parts]


def _disk(code: int) -> OSError:
    return OSError(code, os.strerror(code), "out.npz")


CASES: tuple[Case, ...] = (
    # trajectories
    Case("trajectories", "generate-invalid-rotation", _gen("--camera", "{ws}/bent.npz"),
         ("--camera", "frame 5", "--no-validate")),
    Case("trajectories", "json-nesting-bomb", _cmd("camera", "validate", "{ws}/deep.json", "--from", "nerf"),
         ("deep.json", "nested")),
    Case("trajectories", "missing-file", _cmd("camera", "info", "{ws}/nowhere.npz"), ("nowhere.npz",)),
    # actions
    Case("actions", "huge-frame-count", _cmd("camera", "action", "w-99999999999999999999999", "--out", "{ws}/a.npz"),
         ("w-99999999999999999999999", "SANA_WM_MAX_FRAMES")),
    Case("actions", "thousand-digit-count", _cmd("camera", "action", "w-" + "9" * 5000, "--out", "{ws}/a.npz"),
         ("segment 1", "SANA_WM_MAX_FRAMES")),
    Case("actions", "sum-over-limit", _gen("--action", "w-5000,s-5000"), ("s-5000", "9601")),
    # images
    Case("images", "decompression-bomb", _gen("--image", "{ws}/bomb.png"), ("--image", "bomb.png")),
    Case("images", "over-pixel-limit", _gen("--image", "{ws}/huge.png"),
         ("--image", "huge.png", "SANA_WM_MAX_IMAGE_PIXELS")),
    Case("images", "not-an-image", _gen("--image", "{ws}/not_an_image.png"), ("--image", "not_an_image.png")),
    # checkpoints
    Case("checkpoints", "garbage-safetensors", _cmd("model", "info", "{ws}/garbage.safetensors"),
         ("garbage.safetensors",)),
    Case("checkpoints", "pickle-payload", _cmd("model", "info", "{ws}/pickle.pt"), ("pickle.pt",)),
    Case("checkpoints", "non-finite-weights", _gen("--model", "{ws}/nan_model"), ("model.pt", "NaN")),
    Case("checkpoints", "hub-offline", _gen("--model", "nosuch-org/nosuch-model"),
         ("--model nosuch-org/nosuch-model", "HF_HUB_OFFLINE"), env={"HF_HUB_OFFLINE": "1"}),
    # numbers
    Case("numbers", "cfg-nan", _gen("--cfg", "nan"), ("--cfg",)),
    Case("numbers", "camera-cfg-nan", _gen("--camera-cfg", "nan"), ("--camera-cfg",)),
    Case("numbers", "fov-0", _gen("--fov", "0"), ("--fov", "25")),
    Case("numbers", "fov-179", _gen("--fov", "179"), ("--fov", "120")),
    Case("numbers", "fov-negative", _gen("--fov", "-30"), ("--fov",)),
    Case("numbers", "seconds-nan", _gen("--seconds", "nan"), ("--seconds",)),
    Case("numbers", "seconds-inf", _gen("--seconds", "inf"), ("--seconds",)),
    Case("numbers", "seconds-1e9", _gen("--seconds", "1e9"), ("--seconds", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "num-frames-1e9", _gen("--num-frames", "1000000000"), ("--num-frames", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "steps-0", _gen("--steps", "0"), ("--steps",)),
    Case("numbers", "preset-seconds-1e9", _cmd("camera", "preset", "orbit", "--seconds", "1e9", "--out", "{ws}/p.npz"),
         ("preset orbit", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "resample-fps-1e9",
         _cmd("camera", "resample", "{ws}/good.npz", "--to-fps", "1e9", "--snap", "none", "--out", "{ws}/r.npz"),
         ("resample", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "synth-scenes-0", _cmd("data", "synth", "--out", "{ws}/synth", "--scenes", "0"), ("--scenes",)),
    Case("numbers", "synth-seconds-1e9", _cmd("data", "synth", "--out", "{ws}/synth", "--seconds", "1e9"),
         ("--seconds", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "synth-size-huge", _cmd("data", "synth", "--out", "{ws}/synth", "--size", "100000x100000"),
         ("--size", "4096")),
    Case("numbers", "eval-seeds-reversed", _cmd("eval", "synth", "--seeds", "10-3", "--out", "{ws}/eval"),
         ("--seeds", "10-3")),
    Case("numbers", "env-limit-not-a-number", _cmd("camera", "action", "w-10", "--out", "{ws}/a.npz"),
         ("SANA_WM_MAX_FRAMES",), env={"SANA_WM_MAX_FRAMES": "lots"}),
    # paths
    Case("paths", "out-folder-missing", _gen("--out", "{ws}/no/such/folder/v.mp4"), ("--out", "does not exist")),
    Case("paths", "out-is-a-folder", _gen("--out", "{ws}/folder.mp4"), ("--out", "folder")),
    Case("paths", "out-parent-is-a-file", _gen("--out", "{ws}/a_file/v.mp4"), ("--out", "a_file")),
    Case("paths", "synth-out-is-a-file", _cmd("data", "synth", "--out", "{ws}/a_file", "--scenes", "1"),
         ("--out", "a_file", "is a file")),
    Case("paths", "synth-out-under-a-file", _cmd("data", "synth", "--out", "{ws}/a_file/sub", "--scenes", "1"),
         ("--out", "a_file", "is a file")),
    Case("paths", "index-key-escapes", _cmd("data", "inspect", "{ws}/dataset", "--out", "{ws}/inspect"),
         ("../evil", "index.json")),
    # faults
    Case("faults", "disk-full", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/out.npz"), ("out.npz", "disk is full"),
         patches=(("sana_wm.camera.formats.write_trajectory", _disk(errno.ENOSPC)),)),
    Case("faults", "read-only", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/out.npz"), ("out.npz", "read-only"),
         patches=(("sana_wm.camera.formats.write_trajectory", _disk(errno.EROFS)),)),
    Case("faults", "permission", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/out.npz"),
         ("out.npz", "permission denied"),
         patches=(("sana_wm.camera.formats.write_trajectory", PermissionError(errno.EACCES, "denied", "out.npz")),)),
    Case("faults", "ctrl-c", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/out.npz"), ("interrupted",), status=130,
         patches=(("sana_wm.camera.formats.write_trajectory", KeyboardInterrupt()),)),
    # other commands
    Case("other", "train-config-wrong-type", _cmd("train", "{ws}/bad_types.yaml"), ("bad_types.yaml",)),
)


@dataclass
class Outcome:
    status: int | None
    stderr: str
    traceback: bool  # an exception escaped main, or a traceback was printed
    changed: list[str]  # workspace files modified, created or removed
    escaped: str | None = None  # the type of the exception that escaped main, if one did

    def problems(self, case: Case, ws: Path) -> list[str]:
        """What is wrong with this outcome for ``case``; empty when it passes."""
        found = []
        if self.status != case.status:
            found.append(f"exit status {self.status}, expected {case.status}")
        if self.traceback:
            found.append("raw traceback")
        if self.changed:
            found.append(f"files changed: {self.changed}")
        message = self.stderr.replace(str(ws) + "/", "")
        missing = [c for c in case.culprit if c.format(ws=ws).replace(str(ws) + "/", "") not in message]
        if missing:
            found.append(f"message lacks {missing}: {self.stderr!r}")
        if len([line for line in self.stderr.splitlines() if line.startswith("sana-wm:")]) > 3:
            found.append("message longer than a few lines")
        return found


def run_case(case: Case, ws: Path) -> Outcome:
    """Run ``case`` against the workspace ``ws`` and record what happened."""
    before = snapshot(ws)
    err = io.StringIO()
    escaped = None
    status = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, case.env))
        for target, exc in case.patches:
            stack.enter_context(mock.patch(target, side_effect=exc))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        try:
            status = main(case.argv(ws))
        except SystemExit as exc:  # argparse's own errors exit 2 with a usage line
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - any escape is what the suite counts
            escaped = type(exc).__name__
    after = snapshot(ws)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    stderr = err.getvalue()
    printed = "Traceback (most recent call last)" in stderr
    return Outcome(status, stderr, escaped is not None or printed, changed, escaped)
