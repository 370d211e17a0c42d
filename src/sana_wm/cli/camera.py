"""`sana-wm camera ...`: make, convert, inspect, resample and plot camera trajectories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sana_wm.camera.trajectory import Intrinsics, Trajectory

CONVENTION = """\
Canonical convention: camera-to-world 4x4 poses in OpenCV camera axes (+X right, +Y down,
+Z forward), translations in metres, per-frame pinhole intrinsics fx, fy, cx, cy in pixels
of a stated image size, and an fps. Every file format is converted to and from this at the
edge; see `sana-wm camera convert --help` for the formats and their conventions.
"""

FORMATS_HELP = """\
formats (--from / --to; detected from the path when omitted):
  npy        (F,4,4) c2w .npy, OpenCV axes; optional intrinsics .npy of shape (3,3), (F,3,3),
             (4,) or (F,4) in pixels (--intrinsics, or the <stem>_intrinsics.npy sibling)
  bench-npz  SANA-WM-Bench .npz: c2w (F,4,4), intrinsics (F,3,3) in pixels, fps, num_frames
  re10k      RealEstate10K / CameraCtrl .txt: URL line, then per frame
             `timestamp_us fx fy cx cy 0 0 <w2c 3x4 row-major>`, intrinsics normalised by image size
  colmap     COLMAP text model folder: cameras.txt + images.txt (w2c quaternions), frames by image name
  nerf       NeRF / Nerfstudio transforms.json: c2w in OpenGL axes (+Y up, +Z backward)
  lingbot    LingBot-World folder: poses.npy (N,4,4) c2w OpenCV + intrinsics.npy (N,4) pixels
  worldplay  HY-WorldPlay JSON: {"0": {"extrinsic": c2w 4x4, "K": 3x3}, ...}
Formats that keep intrinsics without an image size (npy, bench-npz, re10k, lingbot, worldplay)
need --width and --height to read them.
"""

RESAMPLE_RULES = """\
frame-count rules:
  The model needs 8k+1 raw frames (k latent frames after the first). --snap picks how a
  requested count becomes 8k+1: `down` (largest 8k+1 <= n), `up` (smallest >= n), `nearest`
  (ties go up, as in the diffusers port), or `none` (use the count as given).
  When the trajectory has more frames than requested, the first N frames are kept (truncation,
  as the released pipeline caps the request by the trajectory length). When it has fewer:
  --extend error (default) refuses and says how many frames there are; --extend hold repeats
  the last pose; --extend resample stretches the whole path in time over N frames (slerp for
  rotations, linear for translations and intrinsics).
  --fps instead resamples over the same time span to a new frame rate (duration kept).
"""


def register(groups: argparse._SubParsersAction) -> None:
    cam = groups.add_parser(
        "camera",
        help="make, convert, inspect, resample and plot camera trajectories",
        description="Camera trajectory tools.\n\n" + CONVENTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = cam.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    # -- convert ---------------------------------------------------------------------------------
    p = sub.add_parser(
        "convert", help="convert a trajectory between file formats",
        description="Read a trajectory in one format and write it in another.\n\n" + FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="input file or folder")
    p.add_argument("output", metavar="OUT", help="output file or folder")
    p.add_argument("--to", dest="to_fmt", metavar="FMT", help="output format (default: from OUT's name)")
    _add_read_options(p)
    p.set_defaults(func=_checked(cmd_convert))

    # -- action ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "action", help="roll out a keyboard-style action string into a trajectory",
        description=(
            "Roll out a SANA-WM action string into (F+1) camera poses, identity first.\n\n"
            "Grammar: comma-separated <keys>-<frames> segments; keys from w,a,s,d,i,j,k,l, combinable\n"
            "(e.g. dw-60), or `none` to stand still. Example: \"w-100,dw-60,w-100,aw-40\".\n\n"
            "Mappings:\n"
            "  current (default, the released scheme): w/s forward/back, a/d yaw left/right,\n"
            "          i/k pitch up/down, j/l strafe left/right; 0.025 m and 0.6 deg per frame with\n"
            "          eased velocities; pitch saturates at +-60 deg.\n"
            "  legacy  (the first release): w/s forward/back, a/d strafe, i/k pitch, j/l yaw;\n"
            "          0.05 m and 1.2 deg per frame, no easing; a pitch step past +-85 deg is dropped.\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", metavar="ACTIONS", help='action string, e.g. "w-40,dw-20"')
    p.add_argument("--mapping", choices=("current", "legacy"), default="current",
                   help="key mapping and speeds (default: current)")
    p.add_argument("--translation-speed", type=float, metavar="M",
                   help="metres per frame (default: 0.025 current, 0.05 legacy)")
    p.add_argument("--rotation-speed", type=float, metavar="DEG",
                   help="degrees per frame (default: 0.6 current, 1.2 legacy)")
    p.add_argument("--pitch-limit", type=float, metavar="DEG",
                   help="pitch limit in degrees (default: 60 current, 85 legacy)")
    p.add_argument("--fps", type=float, default=16.0, help="frames per second of the path (default: 16)")
    _add_out(p, "trajectory file to write; a .npy gets the (F+1,4,4) c2w array")
    p.set_defaults(func=_checked(cmd_action))

    # -- preset ----------------------------------------------------------------------------------
    from sana_wm.camera.presets import preset_help

    p = sub.add_parser(
        "preset", help="make a named metric camera path (orbit, dolly, pan, ...)",
        description="Make a named camera path with metric parameters. The path starts at the identity\n"
                    "pose; world up is -Y.\n\npresets and parameters (set with --param NAME=VALUE):\n"
                    + preset_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="preset name")
    p.add_argument("--seconds", type=float, default=10.0, help="duration in seconds (default: 10)")
    p.add_argument("--fps", type=float, default=16.0, help="frames per second (default: 16)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="preset parameter, repeatable (e.g. --param radius=3)")
    _add_out(p, "trajectory file to write")
    p.set_defaults(func=_checked(cmd_preset))

    # -- show --------------------------------------------------------------------------------------
    p = sub.add_parser(
        "show", help="plot a trajectory (top-down path + 3D frustums) to a PNG",
        description="Draw a top-down view of the path and a 3D view with camera frustums, coloured by\n"
                    "time, with scale in metres.\n\n" + TRAJ_SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source(p)
    p.add_argument("--every", type=int, metavar="N", help="draw a frustum every N frames (default: ~12 in all)")
    p.add_argument("--title", help="plot title")
    _add_out(p, "PNG file to write", default="trajectory.png", with_format=False)
    p.set_defaults(func=_checked(cmd_show))

    # -- info --------------------------------------------------------------------------------------
    p = sub.add_parser(
        "info", help="print frames, duration, path length, speeds and rotation range",
        description="Describe a trajectory and check it.\n\n" + TRAJ_SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_checked(cmd_info))

    # -- validate ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "validate", help="check a trajectory; exit status 2 and the frame at fault if it is invalid",
        description="Check a trajectory: finite values, orthonormal rotations with det +1, positive focal\n"
                    "lengths and a field of view inside the accepted range.\n\n" + TRAJ_SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source(p)
    p.add_argument("--min-frames", type=int, metavar="N", help="require at least N frames")
    p.add_argument("--rotation-tol", type=float, default=1e-4,
                   help="tolerance on |R^T R - I| and |det R - 1| (default: 1e-4)")
    p.add_argument("--fov-range", type=float, nargs=2, default=(25.0, 120.0), metavar=("MIN", "MAX"),
                   help="accepted field of view in degrees (default: 25 120)")
    p.add_argument("--require-intrinsics", action="store_true", help="fail when intrinsics are missing")
    p.set_defaults(func=_checked(cmd_validate))

    # -- resample ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "resample", help="resample to a frame count or fps, snapping to 8k+1 frames",
        description="Resample a trajectory to a frame count or frame rate.\n\n" + RESAMPLE_RULES
                    + "\n" + TRAJ_SOURCE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source(p)
    grp = p.add_mutually_exclusive_group(required=True)
    grp.add_argument("--num-frames", type=int, metavar="N", help="target number of frames")
    grp.add_argument("--to-fps", type=float, metavar="FPS", help="target frame rate (keeps the duration)")
    p.add_argument("--snap", choices=("none", "down", "up", "nearest"), default="none",
                   help="snap the frame count to 8k+1 (default: none)")
    p.add_argument("--extend", choices=("error", "hold", "resample"), default="error",
                   help="what to do when the path is shorter than --num-frames (default: error)")
    _add_out(p, "trajectory file to write")
    p.set_defaults(func=_checked(cmd_resample))


TRAJ_SOURCE_HELP = """\
The trajectory comes from a file (TRAJ, any format of `sana-wm camera convert --help`), or from
--action "w-40,dw-20" or --preset NAME instead of a file.
"""


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_fmt", metavar="FMT", help="input format (default: detected)")
    p.add_argument("--width", type=int, help="image width in pixels that the intrinsics refer to")
    p.add_argument("--height", type=int, help="image height in pixels that the intrinsics refer to")
    p.add_argument("--fps", type=float, help="frames per second (overrides the file's)")
    p.add_argument("--intrinsics", metavar="NPY",
                   help="intrinsics .npy for the npy format: (3,3), (F,3,3), (4,) or (F,4) in pixels")
    p.add_argument("--fov", type=float, metavar="DEG",
                   help="if the trajectory has no intrinsics, use centred ones with this horizontal FOV "
                        "(needs --width and --height)")
    p.add_argument("--orthonormalize", action="store_true",
                   help="project rotations onto SO(3) after reading (otherwise they are only checked)")


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("traj", metavar="TRAJ", nargs="?", help="trajectory file or folder")
    p.add_argument("--action", metavar="ACTIONS", help="use an action string instead of a file")
    p.add_argument("--mapping", choices=("current", "legacy"), default="current",
                   help="key mapping for --action (default: current)")
    p.add_argument("--preset", metavar="NAME", help="use a preset instead of a file (see `camera preset --help`)")
    p.add_argument("--seconds", type=float, default=10.0, help="duration for --preset (default: 10)")
    _add_read_options(p)


def _add_out(p: argparse.ArgumentParser, what: str, default: str | None = None, with_format: bool = True) -> None:
    p.add_argument("--out", "-o", required=default is None, default=default, metavar="PATH", help=what)
    if with_format:
        p.add_argument("--to", dest="to_fmt", metavar="FMT", help="output format (default: from the path)")


# -- helpers ---------------------------------------------------------------------------------------


def _finish(traj: Trajectory, args: argparse.Namespace) -> Trajectory:
    """Apply the reading options shared by every command: fps override, explicit FOV, orthonormalisation."""
    from dataclasses import replace

    from sana_wm.cli import CLIError

    if getattr(args, "fps", None) and args.fps != traj.fps:
        traj = replace(traj, fps=args.fps)
    if getattr(args, "fov", None) is not None and traj.intrinsics is None:
        if not (args.width and args.height):
            raise CLIError("--fov needs --width and --height (the image size the intrinsics refer to)")
        traj = traj.with_intrinsics(Intrinsics.from_fov(args.fov, args.width, args.height, traj.num_frames))
    if getattr(args, "orthonormalize", False):
        traj = traj.orthonormalized()
    return traj


# The number flags of the camera commands: (lowest, highest, lowest excluded). Checked before any file is read,
# so that a typo is named as the flag (the library names its own parameters).
_NUMBER_FLAGS = {
    "fps": (0.0, 1000.0, True), "to_fps": (0.0, 1000.0, True), "seconds": (0.0, None, True),
    "translation_speed": (0.0, 100.0, False), "rotation_speed": (0.0, 180.0, False), "pitch_limit": (0.0, 90.0, False),
    "width": (1, 65536, False), "height": (1, 65536, False), "fov": (0.0, 180.0, True), "every": (1, None, False),
    "num_frames": (1, None, False), "min_frames": (1, None, False), "rotation_tol": (0.0, 1.0, True),
}


def _check_numbers(args: argparse.Namespace) -> None:
    from sana_wm.limits import check_finite, check_frames

    for name, (low, high, low_open) in _NUMBER_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            check_finite(value, "--" + name.replace("_", "-"), low=low, high=high, low_open=low_open)
    if getattr(args, "num_frames", None) is not None:
        check_frames(args.num_frames, f"--num-frames {args.num_frames}")
    if getattr(args, "seconds", None) is not None and (getattr(args, "preset", None) or not hasattr(args, "traj")):
        fps = args.fps or 16.0
        check_frames(args.seconds * fps + 1, f"--seconds {args.seconds:g} at {fps:g} fps")


def _check_output_is_not_the_input(args: argparse.Namespace) -> None:
    """A command that reads a trajectory and writes one must not replace the file (or folder) it reads."""
    from sana_wm.cli import CLIError
    from sana_wm.io import paths_overlap

    source = getattr(args, "input", None) or getattr(args, "traj", None)
    target = getattr(args, "output", None) or getattr(args, "out", None)
    if source and target and Path(source).exists() and paths_overlap(source, target):
        raise CLIError(f"{target}: is the input {source} (or inside it); writing it would replace the input. "
                       "Choose another output")


def _checked(command):
    """``command`` with the number flags and the output checked first."""
    def run(args: argparse.Namespace) -> int:
        _check_numbers(args)
        _check_output_is_not_the_input(args)
        return command(args)

    run.__name__ = run.__qualname__ = command.__name__
    run.__doc__ = command.__doc__
    return run


def load_source(args: argparse.Namespace) -> Trajectory:
    """The trajectory named on the command line: a file, --action or --preset (exactly one)."""
    from sana_wm.cli import CLIError

    given = [x for x in (args.traj, args.action, args.preset) if x]
    if len(given) != 1:
        raise CLIError("give exactly one trajectory: a TRAJ file, --action STRING or --preset NAME")
    if args.action:
        from sana_wm.camera.actions import action_to_trajectory

        traj = action_to_trajectory(args.action, mapping=args.mapping, fps=args.fps or 16.0)
    elif args.preset:
        from sana_wm.camera.presets import make_preset

        traj = make_preset(args.preset, seconds=args.seconds, fps=args.fps or 16.0)
    else:
        traj = _read(args.traj, args)
    return _finish(traj, args)


def _read(path: str, args: argparse.Namespace) -> Trajectory:
    from sana_wm.camera.formats import read_trajectory

    if not Path(path).exists():
        raise FileNotFoundError(f"trajectory not found: {path}")
    return read_trajectory(path, args.from_fmt, width=args.width, height=args.height, fps=args.fps,
                           intrinsics_path=args.intrinsics)


def _write(traj: Trajectory, path: str, fmt: str | None) -> None:
    from sana_wm.camera.formats import write_trajectory

    written = write_trajectory(traj, path, fmt)
    for f in written:
        print(f"wrote {f}")


def _warn_if_invalid(traj: Trajectory, source: str) -> None:
    """Say on stderr when a path fails `camera validate`: converting or plotting it is allowed, silently not."""
    import sys

    from sana_wm.camera.trajectory import TrajectoryError

    try:
        traj.validate()
    except TrajectoryError as exc:
        print(f"sana-wm: warning: {source}: {exc} (`sana-wm generate` refuses it without --no-validate)",
              file=sys.stderr)


# -- commands --------------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    traj = _finish(_read(args.input, args), args)
    _warn_if_invalid(traj, args.input)
    _write(traj, args.output, args.to_fmt)
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    from sana_wm.camera.actions import action_to_trajectory

    overrides = {k: v for k, v in (("translation_speed", args.translation_speed),
                                   ("rotation_speed_deg", args.rotation_speed),
                                   ("pitch_limit_deg", args.pitch_limit)) if v is not None}
    traj = action_to_trajectory(args.action, mapping=args.mapping, fps=args.fps, **overrides)
    _write(traj, args.out, args.to_fmt)
    print(f"{traj.num_frames} poses ({traj.num_frames - 1} frames of actions), mapping {args.mapping}")
    return 0


def cmd_preset(args: argparse.Namespace) -> int:
    from sana_wm.camera.presets import make_preset
    from sana_wm.cli import CLIError

    params = {}
    for item in args.param:
        if "=" not in item:
            raise CLIError(f"--param {item!r}: expected NAME=VALUE")
        key, value = item.split("=", 1)
        try:
            params[key.strip().replace("-", "_")] = float(value)
        except ValueError:
            params[key.strip().replace("-", "_")] = value.strip()
    traj = make_preset(args.name, seconds=args.seconds, fps=args.fps, **params)
    _write(traj, args.out, args.to_fmt)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from sana_wm.camera.plot import plot_trajectory

    traj = load_source(args)
    _warn_if_invalid(traj, args.traj or "the trajectory")
    out = plot_trajectory(traj, args.out, every=args.every, title=args.title)
    print(f"wrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from sana_wm.camera.stats import describe, format_description
    from sana_wm.camera.trajectory import TrajectoryError

    traj = load_source(args)
    info = describe(traj)
    try:
        traj.validate()
        info["valid"], info["problem"] = True, None
    except TrajectoryError as exc:
        info["valid"], info["problem"] = False, str(exc)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_description(info))
        print("check             " + ("ok" if info["valid"] else f"INVALID: {info['problem']}"))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from sana_wm.camera.trajectory import TrajectoryError

    traj = load_source(args)
    try:
        traj.validate(min_frames=args.min_frames, rotation_tol=args.rotation_tol,
                      fov_range_deg=tuple(args.fov_range), require_intrinsics=args.require_intrinsics)
    except TrajectoryError as exc:
        source = args.traj or (f"--action {args.action}" if args.action else f"--preset {args.preset}")
        raise TrajectoryError(f"{source}: {exc}") from None
    print(f"ok: {traj.num_frames} frames, {traj.duration:.2f} s"
          + ("" if traj.intrinsics is None else f", intrinsics for {traj.intrinsics.width}x{traj.intrinsics.height}"))
    return 0


def cmd_resample(args: argparse.Namespace) -> int:
    from sana_wm.camera.resample import fit_to_frames, resample, snap_frame_count

    traj = load_source(args)
    if args.to_fps is not None:
        out = resample(traj, fps=args.to_fps)
        if args.snap != "none":
            out = fit_to_frames(out, snap_frame_count(out.num_frames, mode=args.snap), extend=args.extend)
    else:
        n = args.num_frames if args.snap == "none" else snap_frame_count(args.num_frames, mode=args.snap)
        out = fit_to_frames(traj, n, extend=args.extend)
    _write(out, args.out, args.to_fmt)
    print(f"{traj.num_frames} -> {out.num_frames} frames at {out.fps:g} fps")
    return 0
