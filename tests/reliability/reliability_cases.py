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
import traceback
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
    # a camera path named like the sidecar of a video: generate --out v.mp4 would replace it
    write_trajectory(good, root / "v.sana-wm.json", "nerf")
    _bad_files(root)
    _bad_trajectories(root)
    _bad_images(root)
    _bad_checkpoints(root)
    _datasets(root)
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


_HASHED_BYTES = 1 << 20  # files up to this size are hashed; larger ones (model weights) are compared by stat


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every small file under ``root``, size and modification time of the large ones
    (the copied model folders: any write changes their modification time), the target of every link."""
    found = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            found[key] = "link:" + os.readlink(p)
        elif p.is_file():
            st = p.stat()
            found[key] = hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size <= _HASHED_BYTES \
                else f"{st.st_size}:{st.st_mtime_ns}"
        elif p.is_dir():
            found[key + "/"] = "dir"
    return found


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
    free_bytes: int | None = None  # the free space every file system reports (shutil.disk_usage), when set
    slow: bool = False  # loads a model, fits a codec or generates before it fails: count.py runs it, pytest not
    # new files the command keeps on purpose when it fails (a finished video under its partial name, when only its
    # sidecar could not be written); anything else that appears, or any earlier file that changes, counts
    leaves: tuple[str, ...] = ()


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


BASE_CASES: tuple[Case, ...] = (
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
         ("--seconds", "SANA_WM_MAX_FRAMES")),
    Case("numbers", "resample-fps-1e9",
         _cmd("camera", "resample", "{ws}/good.npz", "--to-fps", "1e9", "--snap", "none", "--out", "{ws}/r.npz"),
         ("--to-fps", "1000")),
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
            found.append(f"raw traceback ({self.escaped or 'printed'})")
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
        if case.free_bytes is not None:
            usage = shutil.disk_usage(ws)
            stack.enter_context(mock.patch("shutil.disk_usage",
                                           return_value=usage._replace(free=case.free_bytes)))
        stack.enter_context(contextlib.redirect_stderr(err))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        try:
            status = main(case.argv(ws))
        except SystemExit as exc:  # argparse's own errors exit 2 with a usage line
            status = exc.code if isinstance(exc.code, int) else 1
        except (Exception, KeyboardInterrupt) as exc:  # any escape is what the suite counts (count.py's alarm passes)
            escaped = type(exc).__name__
            traceback.print_exc(file=err)  # what a user would have seen
    after = snapshot(ws)
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and not (k in case.leaves and k not in before))
    for name in case.leaves:  # kept on purpose: removed here so that the next case finds the workspace as it was
        if name not in before:
            (ws / name).unlink(missing_ok=True)
    stderr = err.getvalue()
    printed = "Traceback (most recent call last)" in stderr
    return Outcome(status, stderr, escaped is not None or printed, changed, escaped)


# -- generated families ------------------------------------------------------------------------------------
# Each family crosses one kind of input (a flag that takes a number, a flag that reads a file, a trajectory
# format, ...) with the ways it can be wrong, so that the table covers every flag and format systematically.

_BAD_KINDS = ("missing", "folder", "empty", "truncated", "wrong-format", "garbage", "symlink-loop")
_EXTS = ("png", "npz", "npy", "json", "txt", "safetensors", "pt", "yaml", "mp4")


def _bad_files(root: Path) -> None:
    """``bad/<kind>.<ext>``: for every extension an empty file, random bytes, the first half of a good file, a
    file of another format under the name, a link to itself and a folder (``missing`` is never created)."""
    bad = root / "bad"
    bad.mkdir()
    rng = np.random.default_rng(0)
    good = {"png": (root / "frame.png").read_bytes(), "npz": (root / "good.npz").read_bytes(),
            "json": b'{"frames": [{"transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}',
            "txt": b"https://example.com/v\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n",
            "yaml": b"model:\n  name: tiny\ndata:\n  root: somewhere\n", "mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(64)}
    buf = io.BytesIO()
    np.save(buf, np.eye(4)[None].repeat(3, 0))
    good["npy"] = buf.getvalue()
    good["safetensors"] = (root / "garbage.safetensors").read_bytes()
    good["pt"] = b"PK\x03\x04" + bytes(100)
    for ext in _EXTS:
        (bad / f"empty.{ext}").write_bytes(b"")
        (bad / f"garbage.{ext}").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        (bad / f"truncated.{ext}").write_bytes(good[ext][:max(1, len(good[ext]) // 2)])
        other = "png" if ext != "png" else "json"
        (bad / f"wrong-format.{ext}").write_bytes(good[other])
        (bad / f"symlink-loop.{ext}").symlink_to(f"symlink-loop.{ext}")
        (bad / f"folder.{ext}").mkdir()


def _bad_file(ext: str, kind: str) -> str:
    return f"{{ws}}/bad/{kind}.{ext}"


def _save_npz(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


def _bad_trajectories(root: Path) -> None:
    """Malformed trajectories in every format the readers take (``traj/``)."""
    t = root / "traj"
    t.mkdir()
    eye = np.eye(4)
    c2w = np.repeat(eye[None], 5, 0)
    nan = c2w.copy()
    nan[2, 0, 3] = np.nan
    reflect = c2w.copy()
    reflect[3, :3, :3] = np.diag([1.0, 1.0, -1.0])
    K = np.array([[50.0, 0, 32], [0, 50, 32], [0, 0, 1]])
    # npy
    np.save(t / "wrong-shape.npy", np.zeros((5, 3, 3)))
    np.save(t / "nan.npy", nan)
    np.save(t / "reflection.npy", reflect)
    np.save(t / "one-dim.npy", np.zeros(7))
    np.save(t / "zero-frames.npy", np.zeros((0, 4, 4)))
    np.save(t / "strings.npy", np.array(["a", "b"]))
    np.save(t / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(t / "complex.npy", c2w.astype(np.complex128))
    np.save(t / "bad-bottom-row.npy", c2w + np.array([0, 0, 0, 0.5])[None, :, None].T)
    # bench-npz
    _save_npz(t / "no-c2w.npz", intrinsics=np.repeat(K[None], 5, 0))
    _save_npz(t / "wrong-intrinsics.npz", c2w=c2w, intrinsics=np.zeros((5, 2, 2)), fps=16.0)
    _save_npz(t / "count-mismatch.npz", c2w=c2w, intrinsics=np.repeat(K[None], 3, 0), fps=16.0)
    _save_npz(t / "nan-fps.npz", c2w=c2w, intrinsics=np.repeat(K[None], 5, 0), fps=np.nan)
    _save_npz(t / "negative-fps.npz", c2w=c2w, intrinsics=np.repeat(K[None], 5, 0), fps=-16.0)
    _save_npz(t / "zero-focal.npz", c2w=c2w, intrinsics=np.repeat((K * [[0], [0], [1]])[None], 5, 0), fps=16.0)
    _save_npz(t / "nan-pose.npz", c2w=nan, intrinsics=np.repeat(K[None], 5, 0), fps=16.0)
    np.savez(t / "pickled.npz", c2w=np.array([{"a": 1}], dtype=object))
    # re10k
    (t / "re10k-short-row.txt").write_text("https://x\n0 0.5 0.5 0.5 0.5 0 0\n")
    (t / "re10k-words.txt").write_text("https://x\n0 a b c d 0 0 " + " ".join(["x"] * 12) + "\n")
    (t / "re10k-nan.txt").write_text("https://x\n0 0.5 0.5 0.5 0.5 0 0 " + " ".join(["nan"] * 12) + "\n")
    (t / "re10k-no-rows.txt").write_text("https://x\n")
    (t / "re10k-binary.txt").write_bytes(b"\xff\xfe\x00garbage\n")
    # colmap (folders)
    for name, cameras, images in (
            ("colmap-empty", "", ""),
            ("colmap-bad-camera", "1 PINHOLE 64 64 a b c d\n", "1 1 0 0 0 0 0 0 1 a.png\n\n"),
            ("colmap-unknown-model", "1 WEIRD 64 64 50 50 32 32\n", "1 1 0 0 0 0 0 0 1 a.png\n\n"),
            ("colmap-missing-camera", "1 PINHOLE 64 64 50 50 32 32\n", "1 1 0 0 0 0 0 0 7 a.png\n\n"),
            ("colmap-zero-quaternion", "1 PINHOLE 64 64 50 50 32 32\n", "1 0 0 0 0 0 0 0 1 a.png\n\n"),
            ("colmap-short-line", "1 PINHOLE 64 64 50 50 32 32\n", "1 1 0\n\n")):
        d = t / name
        d.mkdir()
        (d / "cameras.txt").write_text(cameras)
        (d / "images.txt").write_text(images)
    # nerf
    (t / "nerf-no-frames.json").write_text('{"camera_angle_x": 0.8}')
    (t / "nerf-bad-matrix.json").write_text('{"camera_angle_x": 0.8, "frames": [{"transform_matrix": [[1, 2], [3]]}]}')
    (t / "nerf-string-angle.json").write_text('{"camera_angle_x": "wide", "frames": [{"transform_matrix": '
                                              '[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}')
    (t / "nerf-frames-not-list.json").write_text('{"frames": 7}')
    (t / "nerf-nan.json").write_text('{"camera_angle_x": 0.8, "frames": [{"transform_matrix": '
                                     '[[NaN,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}')
    (t / "nerf-huge-number.json").write_text('{"camera_angle_x": 0.8, "frames": [{"transform_matrix": '
                                             '[[1e999,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}')
    (t / "json-list.json").write_text("[1, 2, 3]")
    (t / "json-invalid.json").write_text('{"frames": [')
    # worldplay
    (t / "worldplay-bad-K.json").write_text('{"0": {"extrinsic": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], '
                                            '"K": [[1, 2]]}}')
    (t / "worldplay-gap.json").write_text('{"0": {"extrinsic": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}, '
                                          '"5": {"extrinsic": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}}')
    (t / "worldplay-not-index.json").write_text('{"zero": {"extrinsic": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}}')
    # lingbot (folders)
    for name, poses, intr in (("lingbot-wrong-shape", np.zeros((4, 3)), None),
                              ("lingbot-count-mismatch", c2w, np.zeros((3, 4))),
                              ("lingbot-nan", nan, np.tile([50.0, 50, 32, 32], (5, 1)))):
        d = t / name
        d.mkdir()
        np.save(d / "poses.npy", poses)
        if intr is not None:
            np.save(d / "intrinsics.npy", intr)


_TRAJECTORY_CASES = (
    ("wrong-shape.npy", None), ("nan.npy", None), ("reflection.npy", None), ("one-dim.npy", None),
    ("zero-frames.npy", None), ("strings.npy", None), ("objects.npy", None), ("complex.npy", None),
    ("bad-bottom-row.npy", None), ("no-c2w.npz", None), ("wrong-intrinsics.npz", None),
    ("count-mismatch.npz", None), ("nan-fps.npz", None), ("negative-fps.npz", None), ("zero-focal.npz", None),
    ("nan-pose.npz", None), ("pickled.npz", None), ("re10k-short-row.txt", None), ("re10k-words.txt", None),
    ("re10k-nan.txt", None), ("re10k-no-rows.txt", None), ("re10k-binary.txt", None), ("colmap-empty", None),
    ("colmap-bad-camera", None), ("colmap-unknown-model", None), ("colmap-missing-camera", None),
    ("colmap-zero-quaternion", None), ("colmap-short-line", None), ("nerf-no-frames.json", "nerf"),
    ("nerf-bad-matrix.json", "nerf"), ("nerf-string-angle.json", "nerf"), ("nerf-frames-not-list.json", "nerf"),
    ("nerf-nan.json", "nerf"), ("nerf-huge-number.json", "nerf"), ("json-list.json", None),
    ("json-invalid.json", None), ("worldplay-bad-K.json", "worldplay"), ("worldplay-gap.json", "worldplay"),
    ("worldplay-not-index.json", "worldplay"), ("lingbot-wrong-shape", None), ("lingbot-count-mismatch", None),
    ("lingbot-nan", None),
)


# Files that read as a path whose poses are invalid: `camera convert` converts them with a warning (its documented
# behaviour), every other reader refuses them.
_INVALID_POSES = {"nan.npy", "reflection.npy", "bad-bottom-row.npy", "zero-focal.npz", "nan-pose.npz", "nerf-nan.json",
                  "nerf-huge-number.json", "lingbot-nan", "re10k-nan.txt"}


def _trajectory_family() -> list[Case]:
    cases = []
    for name, fmt in _TRAJECTORY_CASES:
        src = f"{{ws}}/traj/{name}"
        given = ["--from", fmt] if fmt else []
        size = ["--width", "64", "--height", "64"]
        cases.append(Case("trajectories", f"validate:{name}", _cmd("camera", "validate", src, *given, *size), (name,)))
        if name not in _INVALID_POSES:
            cases.append(Case("trajectories", f"convert:{name}",
                              _cmd("camera", "convert", src, "{ws}/converted.npz", *given, *size), (name,)))
        if fmt is None:  # generate detects the format
            cases.append(Case("trajectories", f"generate:{name}", _gen("--camera", src), (name,)))
    # the generic bad files, read as trajectories by every command that reads one
    for ext in ("npz", "npy", "json", "txt"):
        for kind in _BAD_KINDS:
            src = _bad_file(ext, kind)
            for command in ("info", "validate"):
                cases.append(Case("trajectories", f"{command}:{kind}.{ext}", _cmd("camera", command, src),
                                  (f"{kind}.{ext}",)))
            cases.append(Case("trajectories", f"resample:{kind}.{ext}",
                              _cmd("camera", "resample", src, "--num-frames", "9", "--out", "{ws}/r.npz"),
                              (f"{kind}.{ext}",)))
    return cases


_BAD_ACTIONS = (
    "", ",", "w", "w-", "-5", "w-0", "w--3", "w-1.5", "w-nan", "w-inf", "q-10", "wz-10", "w-10,,a-5", "w-10;a-5",
    "w-10 a-5", "w-0x10", "w-1e3", "w-١٠", "w-10,", "none-", "w-10,a-99999999999999999999",
    "w-5000,a-5000", "\x00-10", "w-" + "1" * 30, "w+10", "w-10,none-x",
)


def _action_family() -> list[Case]:
    cases = []
    for i, action in enumerate(_BAD_ACTIONS):
        # the message quotes the segment at fault, or says the string is empty
        cases.append(Case("actions", f"action:{i}:{action[:12]!r}",
                          _cmd("camera", "action", action, "--out", "{ws}/a.npz"), ("segment" if action else "empty",)))
        cases.append(Case("actions", f"generate:{i}:{action[:12]!r}", _gen("--action", action), ("--action",)))
    for flag in ("--mapping",):
        cases.append(Case("actions", "unknown-mapping", _cmd("camera", "action", "w-10", flag, "diagonal",
                                                             "--out", "{ws}/a.npz"), (flag,)))
    return cases


def _bad_images(root: Path) -> None:
    """``img/``: broken and unusual first frames."""
    d = root / "img"
    d.mkdir()
    good = (root / "frame.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    (d / "zero-size.png").write_bytes(_png_claiming(0, 0))
    Image.fromarray(np.full((64, 64), 3.5, np.float32), mode="F").save(d / "float-out-of-range.tiff")
    Image.fromarray(np.full((64, 64), np.nan, np.float32), mode="F").save(d / "float-nan.tiff")
    (d / "bomb-jpeg.jpg").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(d / "bomb-jpeg.jpg")
    data = bytearray((d / "bomb-jpeg.jpg").read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)  # 3.6 Gpx claimed in the frame header
    (d / "bomb-jpeg.jpg").write_bytes(bytes(data))
    (d / "text.jpg").write_text("not a jpeg")
    (d / "svg.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")


_IMAGE_CASES = ("truncated.png", "zero-size.png", "float-out-of-range.tiff", "float-nan.tiff",
                "bomb-jpeg.jpg", "text.jpg", "svg.svg")


def _image_family() -> list[Case]:
    cases = [Case("images", f"generate:img/{name}", _gen("--image", f"{{ws}}/img/{name}"), (name,))
             for name in _IMAGE_CASES]
    for kind in _BAD_KINDS:
        # (a PNG named .mp4 or .json is a good image: only the .png's other format is wrong)
        for ext in ("png",) if kind == "wrong-format" else ("png", "mp4", "json"):
            cases.append(Case("images", f"generate:{kind}.{ext}", _gen("--image", _bad_file(ext, kind)),
                              ("--image", f"{kind}.{ext}")))
    return cases


def _bad_checkpoints(root: Path) -> None:
    """``ckpt/``: damaged and malicious checkpoints, and bundled-model folders with one file broken."""
    from safetensors.torch import save_file

    d = root / "ckpt"
    d.mkdir()
    good = {"proj.weight": torch.ones(4, 4), "proj.bias": torch.zeros(4)}
    save_file(good, str(d / "good.safetensors"))
    data = (d / "good.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(data[: len(data) - 20])
    (d / "header-only.safetensors").write_bytes(data[:8])
    (d / "huge-header.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    save_file({"something.else": torch.ones(2)}, str(d / "wrong-keys.safetensors"))
    save_file({"proj.weight": torch.full((4, 4), float("nan"))}, str(d / "nan.safetensors"))
    torch.save({"generator": {"a": torch.ones(2)}}, d / "wrong-keys.pt")
    (d / "truncated.pt").write_bytes((root / "nan_model" / "sana_dit" / "model.pt").read_bytes()[:1000])
    import pickle

    class _Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    (d / "reduce-payload.pt").write_bytes(pickle.dumps(_Payload()))
    # model folders: the bundled model with one part broken
    for name in ("model-wrong-config-type", "model-unknown-config-key", "model-garbage-weights",
                 "model-truncated-weights", "model-wrong-weights", "model-no-weights", "model-bad-codec",
                 "model-bad-yaml", "model-escaping-vae"):
        shutil.copytree(bundled_model_dir(), d / name)
    cfg = (d / "model-wrong-config-type" / "config.yaml")
    cfg.write_text(cfg.read_text().replace("depth: 8", "depth: eight"))
    cfg = (d / "model-unknown-config-key" / "config.yaml")
    cfg.write_text(cfg.read_text().replace("depth: 8", "depth: 8\n    wings: 2"))
    (d / "model-garbage-weights" / "sana_dit" / "model.pt").write_bytes(b"garbage" * 100)
    weights = d / "model-truncated-weights" / "sana_dit" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:5000])
    torch.save({"generator": {"a": torch.ones(2)}}, d / "model-wrong-weights" / "sana_dit" / "model.pt")
    (d / "model-no-weights" / "sana_dit" / "model.pt").unlink()
    (d / "model-bad-codec" / "patch_codec" / "codec.safetensors").write_bytes(b"\x00" * 64)
    (d / "model-bad-yaml" / "config.yaml").write_text("sana_wm: [unclosed\n")
    cfg = d / "model-escaping-vae" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("vae: patch_codec", "vae: ../../../etc"))


# (`model info` describes any tensors it can read, so a file of other keys or NaN weights is no error for it.)
_CHECKPOINT_FILES = ("truncated.safetensors", "header-only.safetensors", "huge-header.safetensors", "truncated.pt",
                     "reduce-payload.pt")
# folders whose fault shows only once the transformer (or more) is loaded
_LOADING_MODEL_FOLDERS = {"model-wrong-weights", "model-bad-codec", "model-escaping-vae"}
_MODEL_FOLDERS = ("model-wrong-config-type", "model-unknown-config-key", "model-garbage-weights",
                  "model-truncated-weights", "model-wrong-weights", "model-no-weights", "model-bad-codec",
                  "model-bad-yaml", "model-escaping-vae")


def _checkpoint_family() -> list[Case]:
    cases = [Case("checkpoints", f"info:ckpt/{name}", _cmd("model", "info", f"{{ws}}/ckpt/{name}"), (name,))
             for name in _CHECKPOINT_FILES]
    cases += [Case("checkpoints", f"generate:{name}", _gen("--model", f"{{ws}}/ckpt/{name}"), (name,),
                   slow=name in _LOADING_MODEL_FOLDERS) for name in _MODEL_FOLDERS]
    for kind in _BAD_KINDS:
        for ext in ("safetensors", "pt"):
            cases.append(Case("checkpoints", f"info:{kind}.{ext}", _cmd("model", "info", _bad_file(ext, kind)),
                              (f"{kind}.{ext}",)))
        cases.append(Case("checkpoints", f"generate-model:{kind}", _gen("--model", _bad_file("pt", kind)),
                          (f"{kind}.pt",)))
        cases.append(Case("checkpoints", f"generate-vae:{kind}", _gen("--vae", _bad_file("json", kind)),
                          (f"{kind}.json",), slow=True))
        cases.append(Case("checkpoints", f"train-config:{kind}", _cmd("train", _bad_file("yaml", kind)),
                          (f"{kind}.yaml",)))
    return cases


def _datasets(root: Path) -> None:
    """``data/good``: a one-clip synthetic dataset; beside it copies whose index escapes or is damaged."""
    from sana_wm.synth.dataset import write_synthetic_dataset

    d = root / "data"
    write_synthetic_dataset(d / "good", 1, seconds=0.5, fps=16, size=(32, 32), frames_codec="npz")
    index = (d / "good" / INDEX_NAME).read_text()
    import json

    doc = json.loads(index)
    key = doc["shards"][0]["clips"][0]["key"]
    for name, text in (("escaping-key", index.replace(f'"{key}"', '"../../evil"')),
                       ("absolute-key", index.replace(f'"{key}"', '"/tmp/evil"')),
                       ("escaping-shard", index.replace('"shard-000000.tar"', '"../shard-000000.tar"')),
                       ("index-not-json", "{not json"), ("index-wrong-types", index.replace('"num_frames": ',
                                                                                           '"num_frames": "x", "_": ')),
                       ("index-empty", "")):
        shutil.copytree(d / "good", d / name)
        (d / name / INDEX_NAME).write_text(text)


# (a folder of shards without its index is read by listing the shards, and a truncated shard's clips are
# skipped with a warning: no errors)
_BAD_DATASETS = ("escaping-key", "absolute-key", "escaping-shard", "index-not-json", "index-wrong-types",
                 "index-empty")


def _dataset_family() -> list[Case]:
    cases = []
    for name in _BAD_DATASETS:
        src = f"{{ws}}/data/{name}"
        cases.append(Case("paths", f"inspect:{name}", _cmd("data", "inspect", src, "--out", "{ws}/inspect"), (name,)))
        cases.append(Case("paths", f"fit-pca:{name}", _cmd("vae", "fit-pca", "--data", src, "--out", "{ws}/codec",
                                                          "--frames", "9", "--max-clips", "1", "--held-out", "0",
                                                          "--channels", "4"), (name,), slow=True))
        cases.append(Case("paths", f"encode:{name}", _cmd("vae", "encode", src, "--vae",
                                                         str(bundled_model_dir() / "patch_codec"), "--frames", "9"),
                          (name,)))
    for kind in _BAD_KINDS:
        cases.append(Case("paths", f"inspect:{kind}", _cmd("data", "inspect", _bad_file("json", kind), "--out",
                                                          "{ws}/inspect"), (f"{kind}.json",)))
    return cases


# flag -> the values that are wrong for it; "huge" is 1e30 (or 10**30 for whole numbers)
_VALUES = {"nan": "nan", "inf": "inf", "negative": "-1", "zero": "0", "huge": "1e30", "word": "lots"}
_ALL = tuple(_VALUES)
_NOT_ZERO_OR_HUGE = ("nan", "inf", "negative", "word")


def _numbers(kind_of_command: str, argv: Callable[[str, str], Callable[[Path], list[str]]], flags) -> list[Case]:
    cases = []
    for flag, bad in flags:
        for key in bad:
            cases.append(Case("numbers", f"{kind_of_command}{flag}={key}", argv(flag, _VALUES[key]), (flag,)))
    return cases


def _number_family() -> list[Case]:
    gen = [("--seconds", _ALL), ("--num-frames", _ALL), ("--fov", _ALL), ("--steps", _ALL),
           ("--cfg", _NOT_ZERO_OR_HUGE), ("--camera-cfg", _NOT_ZERO_OR_HUGE), ("--shift", ("nan", "inf", "negative",
                                                                                           "zero", "word")),
           ("--camera-cfg-chunks", _ALL), ("--refiner-block-frames", _ALL), ("--refiner-kv-max-frames", _ALL),
           ("--resume-every", ("nan", "inf", "negative", "huge", "word")), ("--seed", ("nan", "inf", "huge", "word")),
           ("--refiner-seed", ("nan", "inf", "huge", "word")), ("--gpu-memory", _ALL)]
    cases = _numbers("generate", lambda f, v: _gen(f, v), gen)
    plan = [("--gpu-memory", _ALL), ("--seconds", ("nan", "inf", "negative", "zero", "word")),
            ("--cfg", ("nan", "inf", "word"))]
    cases += _numbers("plan", lambda f, v: _cmd("plan", "--gpu-memory", "24", f, v) if f != "--gpu-memory"
                      else _cmd("plan", f, v), plan)
    cases.append(Case("numbers", "generate--seed=10**30", _gen("--seed", str(10**30)), ("--seed",)))
    preset = [("--seconds", _ALL), ("--fps", _ALL)]
    cases += _numbers("preset", lambda f, v: _cmd("camera", "preset", "orbit", f, v, "--out", "{ws}/p.npz"), preset)
    action = [("--fps", _ALL), ("--translation-speed", ("nan", "inf", "huge", "word")),
              ("--rotation-speed", ("nan", "inf", "huge", "word")), ("--pitch-limit", ("nan", "inf", "huge", "word"))]
    cases += _numbers("action", lambda f, v: _cmd("camera", "action", "w-10", f, v, "--out", "{ws}/a.npz"), action)
    reader = [("--fps", _ALL), ("--width", _ALL), ("--height", _ALL), ("--fov", _ALL)]
    for command in ("info", "convert"):
        extra = ("{ws}/c.npz",) if command == "convert" else ()
        cases += _numbers(command, lambda f, v, c=command, e=extra: _cmd("camera", c, "{ws}/traj/nan.npy", *e, f, v),
                          reader)
    resample = [("--num-frames", _ALL), ("--to-fps", _ALL)]
    cases += _numbers("resample", lambda f, v: _cmd("camera", "resample", "{ws}/good.npz", f, v, "--out",
                                                    "{ws}/r.npz"), resample)
    cases += _numbers("show", lambda f, v: _cmd("camera", "show", "{ws}/good.npz", f, v, "--out", "{ws}/s.png"),
                      [("--every", _ALL)])
    synth = [("--scenes", _ALL), ("--seconds", _ALL), ("--fps", _ALL), ("--fov", _ALL), ("--seed", ("nan", "word"))]
    cases += _numbers("synth", lambda f, v: _cmd("data", "synth", "--out", "{ws}/synth", f, v), synth)
    cases += [Case("numbers", f"synth--size={size}", _cmd("data", "synth", "--out", "{ws}/synth", "--size", size),
                   ("--size",)) for size in ("0x0", "-8x8", "nanxnan", "8", "8x8x8", "x", "1e30x1e30")]
    fit = [("--frames", _ALL), ("--patch-size", _ALL), ("--channels", _ALL), ("--max-clips", _ALL),
           ("--held-out", ("nan", "inf", "negative", "huge", "word"))]
    cases += _numbers("fit-pca", lambda f, v: _cmd("vae", "fit-pca", "--data", "{ws}/data/good", "--out",
                                                   "{ws}/codec", f, v), fit)
    cases += _numbers("encode", lambda f, v: _cmd("vae", "encode", "{ws}/data/good", "--vae",
                                                  str(bundled_model_dir() / "patch_codec"), f, v), [("--frames", _ALL)])
    cases += [Case("numbers", f"encode--part={part}", _cmd("vae", "encode", "{ws}/data/good", "--vae",
                                                            str(bundled_model_dir() / "patch_codec"), "--frames", "9",
                                                            "--part", part), ("--part",))
              for part in ("0/1", "2/1", "1/0", "a/b", "1", "-1/2")]
    export = [("--fps", _ALL), ("--steps", _ALL), ("--shift", ("nan", "inf", "negative", "zero", "word"))]
    cases += _numbers("export", lambda f, v: _cmd("model", "export", "{ws}/ckpt", "--vae",
                                                  str(bundled_model_dir() / "patch_codec"), "--out", "{ws}/exported",
                                                  f, v), export)
    cases += [Case("numbers", f"export--size={size}", _cmd("model", "export", "{ws}/ckpt", "--vae",
                                                            str(bundled_model_dir() / "patch_codec"), "--out",
                                                            "{ws}/exported", "--size", size), ("--size",))
              for size in ("0x0", "-8x8", "nanxnan", "8", "x", "100000x100000")]
    evaluation = [("--steps", _ALL), ("--shift", ("nan", "inf", "negative", "zero", "word")),
                  ("--camera-cfg", _NOT_ZERO_OR_HUGE), ("--camera-cfg-chunks", _ALL), ("--fov", _ALL),
                  ("--marks", ("nan", "inf", "negative", "huge", "word")), ("--seed", ("nan", "huge", "word"))]
    cases += _numbers("eval", lambda f, v: _cmd("eval", "synth", "--seeds", "1000", "--out", "{ws}/eval", f, v),
                      evaluation)
    cases += [Case("numbers", f"eval--seeds={seeds}", _cmd("eval", "synth", "--seeds", seeds, "--out", "{ws}/eval"),
                   ("--seeds",)) for seeds in ("", "a-b", "1-", "-", "5-3", "1-100000", ",", "1e3")]
    return cases


def _file_flag_family() -> list[Case]:
    """Every flag that reads a file, crossed with the ways a file can be wrong."""
    cases = []
    for kind in _BAD_KINDS:
        cases.append(Case("paths", f"generate--prompt-file:{kind}", _gen("--prompt-file", _bad_file("txt", kind)),
                          ("--prompt-file", f"{kind}.txt")) if kind not in ("empty", "truncated", "wrong-format")
                     else Case("paths", f"generate--text-encoder:{kind}", _gen("--text-encoder",
                                                                               _bad_file("json", kind)),
                               (f"{kind}.json",)))
        cases.append(Case("paths", f"generate--resume:{kind}", _cmd("generate", "--resume", _bad_file("mp4", kind)),
                          (f"{kind}.resume",)))
        cases.append(Case("paths", f"generate--refiner:{kind}", _gen("--refiner", _bad_file("json", kind)),
                          (f"{kind}.json",), slow=True))
        cases.append(Case("paths", f"convert--intrinsics:{kind}",
                          _cmd("camera", "convert", "{ws}/traj/nan.npy", "{ws}/c.npz", "--intrinsics",
                               _bad_file("npy", kind)), (f"{kind}.npy",)))
        cases.append(Case("paths", f"fit-pca--data:{kind}", _cmd("vae", "fit-pca", "--data", _bad_file("json", kind),
                                                                "--out", "{ws}/codec"), (f"{kind}.json",)))
        cases.append(Case("paths", f"encode--vae:{kind}", _cmd("vae", "encode", "{ws}/data/good", "--vae",
                                                              _bad_file("json", kind), "--frames", "9"),
                          (f"{kind}.json",)))
        cases.append(Case("paths", f"export-checkpoint:{kind}", _cmd("model", "export", _bad_file("pt", kind),
                                                                    "--vae", str(bundled_model_dir() / "patch_codec"),
                                                                    "--out", "{ws}/exported"), (f"{kind}.pt",)))
        cases.append(Case("paths", f"eval--model:{kind}", _cmd("eval", "synth", "--seeds", "1000", "--model",
                                                              _bad_file("pt", kind), "--out", "{ws}/eval"),
                          (f"{kind}.pt",), slow=True))
    return cases


_WRITERS = (
    ("camera-convert", "sana_wm.camera.formats.write_trajectory",
     _cmd("camera", "convert", "{ws}/good.npz", "{ws}/out.npz")),
    ("camera-action", "sana_wm.camera.formats.write_trajectory", _cmd("camera", "action", "w-10", "--out",
                                                                       "{ws}/out.npz")),
    ("camera-preset", "sana_wm.camera.formats.write_trajectory", _cmd("camera", "preset", "orbit", "--seconds", "1",
                                                                       "--out", "{ws}/out.npz")),
    ("camera-resample", "sana_wm.camera.formats.write_trajectory",
     _cmd("camera", "resample", "{ws}/good.npz", "--num-frames", "9", "--out", "{ws}/out.npz")),
    ("camera-show", "matplotlib.figure.Figure.savefig", _cmd("camera", "show", "{ws}/good.npz", "--out",
                                                             "{ws}/out.png")),
    ("data-inspect", "sana_wm.data.inspection.write_text_atomic", _cmd("data", "inspect", "{ws}/data/good", "--out",
                                                                       "{ws}/out")),
    ("vae-fit-pca", "sana_wm.bundled.codec.PatchPCACodec.save_pretrained",
     _cmd("vae", "fit-pca", "--data", "{ws}/data/good", "--out", "{ws}/out", "--frames", "9", "--max-clips", "1",
          "--held-out", "0", "--channels", "4")),
    ("generate-video", "sana_wm.pipeline.video.VideoWriter.write", _gen("--out", "{ws}/out.mp4", "--seconds", "1.5")),
    ("generate-sidecar", "sana_wm.pipeline.pipeline.publish_video", _gen("--out", "{ws}/out.mp4", "--seconds",
                                                                            "1.5")),
)


# the video is complete when its sidecar fails: it stays under its partial name (see docs/reliability.md)
_KEPT_ON_FAILURE = {"generate-sidecar": ("out.partial.mp4",)}
_SLOW_WRITERS = {"vae-fit-pca", "generate-video", "generate-sidecar", "camera-show", "data-inspect"}


def _fault_family() -> list[Case]:
    faults = (("disk-full", lambda: _disk(errno.ENOSPC), "disk is full", 2),
              ("read-only", lambda: _disk(errno.EROFS), "read-only", 2),
              ("permission", lambda: PermissionError(errno.EACCES, "denied", "out.npz"), "permission denied", 2),
              ("ctrl-c", KeyboardInterrupt, "interrupted", 130))
    cases = []
    for writer, target, argv in _WRITERS:
        for name, make, words, status in faults:
            cases.append(Case("faults", f"{writer}:{name}", argv, (words,), status=status,
                              patches=((target, make()),), slow=writer in _SLOW_WRITERS,
                              leaves=_KEPT_ON_FAILURE.get(writer, ())))
    # a disk too full for what is about to be written, refused before any work
    for name, argv in (("generate", _gen("--out", "{ws}/out.mp4")),
                       ("data-synth", _cmd("data", "synth", "--out", "{ws}/out", "--scenes", "1")),
                       ("vae-fit-pca", _cmd("vae", "fit-pca", "--data", "{ws}/data/good", "--out", "{ws}/out")),
                       ("model-export", _cmd("model", "export", "{ws}/data", "--vae",
                                             str(bundled_model_dir() / "patch_codec"), "--out", "{ws}/out"))):
        cases.append(Case("faults", f"{name}:no-free-space", argv, ("--out", "free"), free_bytes=1000))
    return cases


def _other_family() -> list[Case]:
    """Outputs pointed at inputs, and other commands' misuse."""
    return [
        Case("other", "convert-onto-itself", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/good.npz"),
             ("good.npz",)),
        Case("other", "resample-onto-input", _cmd("camera", "resample", "{ws}/good.npz", "--num-frames", "9",
                                                  "--out", "{ws}/good.npz"), ("good.npz",)),
        Case("other", "show-onto-input", _cmd("camera", "show", "{ws}/frame.png", "--out", "{ws}/frame.png",
                                              "--from", "npy"), ("frame.png",)),
        Case("other", "generate-out-inside-model", _gen("--model", "{ws}/nan_model", "--out",
                                                        "{ws}/nan_model/v.mp4"), ("--out", "--model")),
        Case("other", "generate-sidecar-onto-camera", _gen("--camera", "{ws}/v.sana-wm.json", "--out", "{ws}/v.mp4"),
             ("--out",)),
        Case("other", "synth-into-dataset", _cmd("data", "synth", "--out", "{ws}/data/good", "--scenes", "1"),
             ("data/good", "--overwrite")),
        Case("other", "fit-pca-onto-data", _cmd("vae", "fit-pca", "--data", "{ws}/data/good", "--out",
                                                "{ws}/data/good", "--overwrite"), ("--out", "--data")),
        Case("other", "fit-pca-inside-data", _cmd("vae", "fit-pca", "--data", "{ws}/data/good", "--out",
                                                  "{ws}/data/good/codec"), ("--out", "--data")),
        Case("other", "export-onto-existing", _cmd("model", "export", "{ws}/data", "--vae",
                                                   str(bundled_model_dir() / "patch_codec"), "--out", "{ws}/data"),
             ("--out", "overlaps")),
        Case("other", "inspect-out-is-a-file", _cmd("data", "inspect", "{ws}/data/good", "--out", "{ws}/a_file"),
             ("a_file",)),
        Case("other", "train-missing-config", _cmd("train", "{ws}/nowhere.yaml"), ("nowhere.yaml",)),
        Case("other", "train-lora-flags-without-merge", _cmd("train", "{ws}/bad_types.yaml", "--ema"),
             ("--merge-lora",)),
        Case("other", "generate-resume-with-flags", _cmd("generate", "--resume", "{ws}/earlier.mp4", "--steps", "3"),
             ("--steps",)),
        Case("other", "generate-resume-no-file", _cmd("generate", "--resume", "{ws}/earlier.mp4"), ("earlier",)),
        Case("other", "generate-unknown-example", _cmd("generate", "--example", "moon", "--out", "{ws}/v.mp4"),
             ("--example",)),
        Case("other", "generate-out-not-mp4", _gen("--out", "{ws}/v.avi"), ("--out", ".mp4")),
        Case("other", "generate-preset-arg-malformed", _gen("--preset", "orbit", "--preset-arg", "radius"),
             ("--preset-arg",)),
        Case("other", "generate-preset-arg-unknown", _gen("--preset", "orbit", "--preset-arg", "wings=2"),
             ("wings",)),
        Case("other", "generate-unknown-preset", _gen("--preset", "moonwalk"), ("moonwalk",)),
        Case("other", "preset-param-not-a-number", _cmd("camera", "preset", "orbit", "--param", "radius=far",
                                                        "--out", "{ws}/p.npz"), ("radius",)),
        Case("other", "convert-unknown-format", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/c.xyz"), ("c.xyz",)),
        Case("other", "convert-to-unknown", _cmd("camera", "convert", "{ws}/good.npz", "{ws}/c.npz", "--to", "vhs"),
             ("vhs",)),
    ]


CASES: tuple[Case, ...] = (*BASE_CASES, *_trajectory_family(), *_action_family(), *_image_family(),
                           *_checkpoint_family(), *_dataset_family(), *_number_family(), *_file_flag_family(),
                           *_fault_family(), *_other_family())
