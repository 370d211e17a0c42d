import json
import math
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sana_wm.camera.formats import DEFAULT_FPS, FORMATS, detect_format, read_trajectory, write_trajectory
from sana_wm.camera.trajectory import Intrinsics, Trajectory, TrajectoryError

W, H = 1280, 704
FPS = 20.0  # not the default, so a reader that ignores the file's fps fails; 1e6 / 20 us is exact

# Where each format is written, and what it keeps by itself (the rest is passed to the reader).
TARGETS = {"npy": "out/traj.npy", "bench-npz": "out/scene.npz", "re10k": "out/cam.txt",
           "colmap": "out/sparse", "nerf": "out/transforms.json", "lingbot": "out/lingbot",
           "worldplay": "out/pose.json"}
KEEPS_SIZE = {"npy", "bench-npz", "colmap", "nerf"}
KEEPS_FPS = {"npy", "bench-npz", "re10k", "nerf"}
NEEDS_INTRINSICS = {"re10k", "colmap"}


def random_trajectory(num_frames: int = 6, seed: int = 0, intrinsics: bool = True,
                      fps: float = FPS) -> Trajectory:
    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    c2w[:, :3, :3] = Rotation.random(num_frames, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.normal(scale=3.0, size=(num_frames, 3))
    intr = None
    if intrinsics:
        focal = rng.uniform(400.0, 1200.0, size=(num_frames, 2))
        centre = rng.uniform([600.0, 330.0], [680.0, 370.0], size=(num_frames, 2))
        intr = Intrinsics(np.concatenate([focal, centre], axis=1), W, H)
    return Trajectory(c2w, intr, fps)


def reader_kwargs(fmt: str) -> dict:
    kwargs = {}
    if fmt not in KEEPS_SIZE:
        kwargs.update(width=W, height=H)
    if fmt not in KEEPS_FPS:
        kwargs.update(fps=FPS)
    return kwargs


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_intrinsics(tmp_path, fmt):
    traj = random_trajectory(seed=FORMATS.index(fmt))
    target = tmp_path / TARGETS[fmt]
    written = write_trajectory(traj, target, fmt)
    assert written and all(p.is_file() for p in written)
    assert detect_format(target) == fmt
    back = read_trajectory(target, **reader_kwargs(fmt))
    assert back.num_frames == traj.num_frames
    np.testing.assert_allclose(back.c2w, traj.c2w, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.intrinsics.values, traj.intrinsics.values, rtol=1e-12, atol=1e-9)
    assert (back.intrinsics.width, back.intrinsics.height) == (W, H)
    assert back.fps == pytest.approx(FPS, rel=1e-12)
    assert back.meta["format"] == fmt
    assert back.meta["fps_source"] == ("file" if fmt in KEEPS_FPS else "argument")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_write_that_fails_midway_keeps_the_earlier_files(tmp_path, fmt, monkeypatch):
    target = tmp_path / TARGETS[fmt]
    write_trajectory(random_trajectory(seed=1), target, fmt)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sana_wm.io.os.replace", full_disk)  # every file is complete before it is renamed
    with pytest.raises(OSError, match="No space left"):
        write_trajectory(random_trajectory(seed=2), target, fmt)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # no temporary file left


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in NEEDS_INTRINSICS])
def test_round_trip_without_intrinsics(tmp_path, fmt):
    traj = random_trajectory(seed=10 + FORMATS.index(fmt), intrinsics=False)
    target = tmp_path / TARGETS[fmt]
    write_trajectory(traj, target, fmt)
    back = read_trajectory(target, fmt)  # no width/height needed without intrinsics
    np.testing.assert_allclose(back.c2w, traj.c2w, rtol=0, atol=1e-9)
    assert back.intrinsics is None
    assert back.fps == (FPS if fmt in KEEPS_FPS else DEFAULT_FPS)
    assert back.meta["fps_source"] == ("file" if fmt in KEEPS_FPS else "default")


@pytest.mark.parametrize("fmt", sorted(NEEDS_INTRINSICS))
def test_formats_that_need_intrinsics_refuse_to_write_without(tmp_path, fmt):
    with pytest.raises(TrajectoryError, match="intrinsics"):
        write_trajectory(random_trajectory(intrinsics=False), tmp_path / TARGETS[fmt], fmt)


def test_explicit_fps_overrides_the_file(tmp_path):
    write_trajectory(random_trajectory(), tmp_path / "t.npy")
    back = read_trajectory(tmp_path / "t.npy", fps=30)
    assert back.fps == 30.0 and back.meta["fps_source"] == "argument"


def test_written_file_names(tmp_path):
    traj = random_trajectory(3)
    folder = tmp_path / "a"
    assert write_trajectory(traj, folder / "walk.npy") == [
        folder / "walk.npy", folder / "walk_intrinsics.npy", folder / "walk_meta.json"]
    assert write_trajectory(traj, tmp_path / "noext", "bench-npz") == [tmp_path / "noext.npz"]
    assert write_trajectory(traj, tmp_path / "ns", "nerf") == [tmp_path / "ns" / "transforms.json"]
    assert write_trajectory(traj, tmp_path / "lb", "lingbot") == [tmp_path / "lb" / "poses.npy",
                                                                  tmp_path / "lb" / "intrinsics.npy"]
    assert [p.name for p in write_trajectory(traj, str(tmp_path / "cm") + "/", "colmap")] == [
        "cameras.txt", "images.txt", "points3D.txt"]
    sidecar = json.loads((tmp_path / "a" / "walk_meta.json").read_text())
    assert sidecar["intrinsics"] == "walk_intrinsics.npy" and (sidecar["width"], sidecar["height"]) == (W, H)


def test_names_survive_colmap_and_nerf_round_trips(tmp_path):
    traj = random_trajectory(3)
    colmap = Trajectory(traj.c2w, traj.intrinsics, FPS, {"image_names": ["a_1.jpg", "a_2.jpg", "a_10.jpg"]})
    write_trajectory(colmap, tmp_path / "cm", "colmap")
    assert read_trajectory(tmp_path / "cm").meta["image_names"] == ["a_1.jpg", "a_2.jpg", "a_10.jpg"]
    # Names that would sort into another order are replaced, so reading keeps the frame order.
    unsorted = Trajectory(traj.c2w, traj.intrinsics, FPS, {"file_paths": ["c.png", "b.png", "a.png"]})
    write_trajectory(unsorted, tmp_path / "transforms.json")
    back = read_trajectory(tmp_path / "transforms.json")
    assert back.meta["file_paths"] == [f"images/frame_{i:05d}.png" for i in range(3)]
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-12)


def test_npy_sidecar_ignores_a_stale_intrinsics_file(tmp_path):
    write_trajectory(random_trajectory(3), tmp_path / "t.npy")
    write_trajectory(random_trajectory(3, intrinsics=False), tmp_path / "t.npy")
    assert (tmp_path / "t_intrinsics.npy").exists()
    assert read_trajectory(tmp_path / "t.npy").intrinsics is None


def test_lingbot_writer_refuses_to_leave_stale_intrinsics(tmp_path):
    write_trajectory(random_trajectory(3), tmp_path / "lb", "lingbot")
    with pytest.raises(TrajectoryError, match="intrinsics.npy"):
        write_trajectory(random_trajectory(3, intrinsics=False), tmp_path / "lb", "lingbot")


def test_re10k_round_trip_at_30_fps_keeps_fps_despite_integer_timestamps(tmp_path):
    write_trajectory(random_trajectory(40, fps=30.0), tmp_path / "t.txt")
    assert read_trajectory(tmp_path / "t.txt", width=W, height=H).fps == pytest.approx(30.0, rel=1e-6)


# -- conventions, from hand-made files ------------------------------------------------------------


def project(c2w: np.ndarray, K: np.ndarray, point) -> np.ndarray:
    """Pixel (u, v) and depth of a world point seen by an OpenCV camera."""
    p = np.linalg.inv(c2w) @ np.append(point, 1.0)
    return np.array([*(K @ (p[:3] / p[2]))[:2], p[2]])


def test_nerf_opengl_camera_looking_at_the_origin(tmp_path):
    # An OpenGL camera at (0, 0, 5) with identity rotation looks down world -Z, at the origin; +Y is up.
    doc = {"camera_angle_x": math.radians(90.0), "w": 640, "h": 480,
           "frames": [{"file_path": "a.png", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5],
                                                                  [0, 0, 0, 1]]}]}
    traj = read_trajectory(write_json(tmp_path / "transforms.json", doc))
    c2w = traj.c2w[0]
    np.testing.assert_allclose(c2w[:3, 3], [0, 0, 5])
    to_origin = -c2w[:3, 3] / np.linalg.norm(c2w[:3, 3])
    np.testing.assert_allclose(c2w[:3, 2], to_origin, atol=1e-12)  # +Z (forward) points at the origin
    np.testing.assert_allclose(c2w[:3, 1], [0, -1, 0], atol=1e-12)  # +Y (down) points down the world
    np.testing.assert_allclose(c2w[:3, 0], [1, 0, 0], atol=1e-12)  # +X (right) stays right
    # f = 0.5 w / tan(fov / 2) = 320 for a 90 deg horizontal field of view; centre by default.
    np.testing.assert_allclose(traj.intrinsics.values[0], [320, 320, 320, 240], atol=1e-9)
    K = traj.intrinsics.matrices()[0]
    np.testing.assert_allclose(project(c2w, K, [0, 0, 0]), [320, 240, 5], atol=1e-9)
    u, v, _ = project(c2w, K, [1, 1, 0])
    assert u > 320 and v < 240  # world right-and-up appears right and above the centre


def test_colmap_quaternion_for_a_90_degree_yaw(tmp_path):
    s = math.sqrt(0.5)  # q = (cos 45, 0, sin 45, 0): +90 deg about +Y
    (tmp_path / "cameras.txt").write_text("# comment\n1 PINHOLE 640 480 500 510 320 240\n")
    (tmp_path / "images.txt").write_text(f"# comment\n1 {s!r} 0 {s!r} 0 1 2 3 1 img.png\n\n")
    traj = read_trajectory(tmp_path, fps=10)
    R_w2c = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    t_w2c = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(traj.c2w[0, :3, :3], R_w2c.T, atol=1e-12)
    np.testing.assert_allclose(traj.positions[0], -R_w2c.T @ t_w2c, atol=1e-12)
    np.testing.assert_allclose(traj.intrinsics.values[0], [500, 510, 320, 240])
    assert (traj.intrinsics.width, traj.intrinsics.height, traj.fps) == (640, 480, 10.0)
    assert traj.meta["image_names"] == ["img.png"]


def test_re10k_line_is_world_to_camera_with_normalised_intrinsics(tmp_path):
    w2c = np.eye(4)
    w2c[:3, :3] = Rotation.from_euler("zyx", [30, -20, 10], degrees=True).as_matrix()
    w2c[:3, 3] = [1.0, -2.0, 0.5]
    line = " ".join(["0", "0.5", "0.8", "0.45", "0.55", "0", "0", *(repr(float(v)) for v in w2c[:3].ravel())])
    (tmp_path / "cam.txt").write_text(f"https://www.youtube.com/watch?v=abc\n{line}\n")
    traj = read_trajectory(tmp_path / "cam.txt", width=640, height=360)
    np.testing.assert_allclose(traj.c2w[0], np.linalg.inv(w2c), atol=1e-12)
    np.testing.assert_allclose(traj.intrinsics.values[0], [0.5 * 640, 0.8 * 360, 0.45 * 640, 0.55 * 360])
    assert traj.meta["url"] == "https://www.youtube.com/watch?v=abc"


def test_re10k_fps_from_median_interval_and_file_without_url(tmp_path):
    rows = []
    for ts in [0, 33333, 66667, 133333, 166667]:  # 30 fps with one dropped frame
        rows.append(" ".join([str(ts), "0.5", "0.9", "0.5", "0.5", "0", "0", "1 0 0 0 0 1 0 0 0 0 1 0"]))
    (tmp_path / "cam.txt").write_text("\n".join(rows) + "\n")
    traj = read_trajectory(tmp_path / "cam.txt", width=64, height=36)
    assert traj.num_frames == 5 and traj.meta["url"] is None
    assert traj.fps == pytest.approx(30.0, rel=1e-3)


def test_bench_npz_official_layout_without_image_size(tmp_path):
    traj = random_trajectory(4)
    np.savez(tmp_path / "scene.npz", c2w=traj.c2w.astype(np.float32), intrinsics=traj.intrinsics.matrices(),
             fps=np.array(16), num_frames=np.array(4))
    with pytest.raises(TrajectoryError, match="width and height"):
        read_trajectory(tmp_path / "scene.npz")
    back = read_trajectory(tmp_path / "scene.npz", width=W, height=H)
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=1e-6)  # float32 storage
    np.testing.assert_allclose(back.intrinsics.values, traj.intrinsics.values)
    assert back.fps == 16.0


def test_worldplay_and_lingbot_store_c2w_as_is(tmp_path):
    c2w = np.eye(4)
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    K = [[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]]
    doc = {"1": {"extrinsic": c2w.tolist(), "K": K}, "0": {"extrinsic": np.eye(4).tolist(), "K": K}}
    traj = read_trajectory(write_json(tmp_path / "pose.json", doc), width=640, height=480)
    np.testing.assert_allclose(traj.positions, [[0, 0, 0], [1, 2, 3]])  # ordered by index, not by file order
    np.testing.assert_allclose(traj.intrinsics.values, [[500, 400, 320, 240]] * 2)
    (tmp_path / "lb").mkdir()
    np.save(tmp_path / "lb" / "poses.npy", np.stack([np.eye(4), c2w]))
    np.save(tmp_path / "lb" / "intrinsics.npy", np.array([[500.0, 400.0, 320.0, 240.0]] * 2))
    traj = read_trajectory(tmp_path / "lb", width=640, height=480)
    np.testing.assert_allclose(traj.positions, [[0, 0, 0], [1, 2, 3]])
    assert traj.fps == DEFAULT_FPS and traj.meta["fps_source"] == "default"


def test_npy_accepts_3x4_poses_and_any_intrinsics_layout(tmp_path):
    traj = random_trajectory(4)
    np.save(tmp_path / "c2w.npy", traj.c2w[:, :3])
    np.save(tmp_path / "K.npy", traj.intrinsics.matrices()[0])  # one (3, 3) for all frames
    back = read_trajectory(tmp_path / "c2w.npy", intrinsics_path=tmp_path / "K.npy", width=W, height=H)
    np.testing.assert_allclose(back.c2w, traj.c2w)
    np.testing.assert_allclose(back.intrinsics.values, np.tile(traj.intrinsics.values[0], (4, 1)))
    np.save(tmp_path / "c2w_intrinsics.npy", traj.intrinsics.values)  # sibling picked up without a sidecar
    np.testing.assert_allclose(read_trajectory(tmp_path / "c2w.npy", width=W, height=H).intrinsics.values,
                               traj.intrinsics.values)


def test_colmap_frames_are_ordered_by_name(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 SIMPLE_PINHOLE 64 48 50 32 24\n")
    lines = [f"{i} 1 0 0 0 {x} 0 0 1 {name}\n1.0 2.0 -1\n"
             for i, (x, name) in enumerate([(10, "f_10.png"), (2, "f_2.png"), (1, "f_1.png")], 1)]
    (tmp_path / "images.txt").write_text("".join(lines))
    traj = read_trajectory(tmp_path / "images.txt")
    assert traj.meta["image_names"] == ["f_1.png", "f_2.png", "f_10.png"]
    np.testing.assert_allclose(traj.positions[:, 0], [-1, -2, -10])
    np.testing.assert_allclose(traj.intrinsics.values[0], [50, 50, 32, 24])


def test_nerf_sorts_by_file_path_only_when_every_frame_has_one(tmp_path):
    def frame(x, name=None):
        out = {"transform_matrix": [[1, 0, 0, x], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
        return out if name is None else {**out, "file_path": name}

    doc = {"fps": 12, "frames": [frame(10, "img_10.png"), frame(9, "img_9.png")]}
    traj = read_trajectory(write_json(tmp_path / "a.json", doc))
    np.testing.assert_allclose(traj.positions[:, 0], [9, 10])
    assert traj.fps == 12.0 and traj.intrinsics is None
    doc = {"frames": [frame(10, "img_10.png"), frame(9)]}
    np.testing.assert_allclose(read_trajectory(write_json(tmp_path / "b.json", doc)).positions[:, 0], [10, 9])


def test_nerf_writes_shared_intrinsics_once(tmp_path):
    traj = random_trajectory(3).with_intrinsics(Intrinsics([600.0, 600.0, 640.0, 352.0], W, H))
    write_trajectory(traj, tmp_path / "transforms.json")
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert (doc["fl_x"], doc["w"], doc["h"], doc["fps"]) == (600.0, W, H, FPS)
    assert "fl_x" not in doc["frames"][0]


def test_distortion_is_ignored_with_a_warning(tmp_path):
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    (tmp_path / "cameras.txt").write_text("1 SIMPLE_RADIAL 64 48 50 32 24 0.1\n")
    with pytest.warns(UserWarning, match="distortion"):
        traj = read_trajectory(tmp_path)
    np.testing.assert_allclose(traj.intrinsics.values[0], [50, 50, 32, 24])
    (tmp_path / "cameras.txt").write_text("1 OPENCV 64 48 50 51 32 24 0 0 0 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(read_trajectory(tmp_path).intrinsics.values[0], [50, 51, 32, 24])


# -- errors ---------------------------------------------------------------------------------------


def test_missing_image_size_is_a_clear_error(tmp_path):
    traj = random_trajectory(3)
    for fmt in ("re10k", "lingbot", "worldplay"):
        write_trajectory(traj, tmp_path / TARGETS[fmt], fmt)
        with pytest.raises(TrajectoryError, match="pass width and height"):
            read_trajectory(tmp_path / TARGETS[fmt])
    np.save(tmp_path / "c2w.npy", traj.c2w)
    np.save(tmp_path / "K.npy", traj.intrinsics.values)
    with pytest.raises(TrajectoryError, match=r"K\.npy.*pass width and height"):
        read_trajectory(tmp_path / "c2w.npy", intrinsics_path=tmp_path / "K.npy")
    with pytest.raises(TrajectoryError, match="both width and height"):
        read_trajectory(tmp_path / "c2w.npy", width=640)


def test_a_size_different_from_the_stored_one_is_refused(tmp_path):
    write_trajectory(random_trajectory(3), tmp_path / "t.npy")
    with pytest.raises(TrajectoryError, match="1280x704 image but width x height 640x360"):
        read_trajectory(tmp_path / "t.npy", width=640, height=360)


def test_re10k_malformed_lines_name_the_line(tmp_path):
    good = " ".join(["0", "0.5", "0.9", "0.5", "0.5", "0", "0", "1 0 0 0 0 1 0 0 0 0 1 0"])
    (tmp_path / "a.txt").write_text(f"url\n{good}\n{good.rsplit(' ', 1)[0]}\n")
    with pytest.raises(TrajectoryError, match=r"a\.txt, line 3: expected 19 numbers .* got 18"):
        read_trajectory(tmp_path / "a.txt", width=64, height=36)
    (tmp_path / "b.txt").write_text(f"url\n{good.replace('0.9', 'abc')}\n")
    with pytest.raises(TrajectoryError, match="line 2: 'abc' is not a number"):
        read_trajectory(tmp_path / "b.txt", width=64, height=36)
    (tmp_path / "c.txt").write_text(f"{good} 0\n{good}\n")  # no URL line: a line of numbers is a frame
    with pytest.raises(TrajectoryError, match=r"c\.txt, line 1: expected 19 numbers .* got 20"):
        read_trajectory(tmp_path / "c.txt", width=64, height=36)


def test_colmap_errors_name_the_line(tmp_path):
    (tmp_path / "cameras.txt").write_text("# c\n1 PINHOLE 64 48 50 32 24\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(TrajectoryError, match=r"cameras\.txt, line 2: model PINHOLE takes 4 parameters"):
        read_trajectory(tmp_path)
    (tmp_path / "cameras.txt").write_text("1 OPENCV_FISHEYE 64 48 50 50 32 24 0 0 0 0\n")
    with pytest.raises(TrajectoryError, match="OPENCV_FISHEYE.*not supported"):
        read_trajectory(tmp_path)
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 64 48 50 50 32 24\n2 PINHOLE 32 24 50 50 16 12\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 0 0 0 2 b.png\n\n")
    with pytest.raises(TrajectoryError, match="different sizes"):
        read_trajectory(tmp_path)
    # Image lines without their points line: the second image line is taken as points and refused.
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n2 1 0 0 0 0 0 0 1 b.png\n")
    with pytest.raises(TrajectoryError, match=r"images\.txt, line 2: expected the 2D points .* line 1"):
        read_trajectory(tmp_path)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 7 a.png\n\n")
    with pytest.raises(TrajectoryError, match="line 1: camera 7 is not in"):
        read_trajectory(tmp_path)


EYE = {"extrinsic": np.eye(4).tolist()}


@pytest.mark.parametrize("doc, message", [
    ({"0": EYE, "a": EYE}, "key 'a' is not a frame"),
    ({"0": EYE, "2": EYE}, "frame 1 is missing"),
    ({"0": EYE, "00": EYE}, "keys '0' and '00' name the same frame"),
    ({"0": {"K": np.eye(3).tolist()}}, "key '0' has no 'extrinsic'"),
    ({"0": {"extrinsic": np.eye(3).tolist()}}, r"key '0': 'extrinsic': expected a c2w matrix of shape"),
])
def test_worldplay_errors_name_the_key(tmp_path, doc, message):
    with pytest.raises(TrajectoryError, match=message):
        read_trajectory(write_json(tmp_path / "pose.json", doc), "worldplay", width=64, height=48)


def test_wrong_array_shapes(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((5, 3, 3)))
    with pytest.raises(TrajectoryError, match=r"bad\.npy: expected shape \(F, 4, 4\)"):
        read_trajectory(tmp_path / "bad.npy")
    (tmp_path / "lb").mkdir()
    np.save(tmp_path / "lb" / "poses.npy", np.tile(np.eye(4), (5, 1, 1)))
    np.save(tmp_path / "lb" / "intrinsics.npy", np.ones((5, 5)))
    with pytest.raises(TrajectoryError, match=r"intrinsics\.npy: expected intrinsics of shape"):
        read_trajectory(tmp_path / "lb", width=64, height=48)
    np.save(tmp_path / "lb" / "intrinsics.npy", np.ones((3, 4)))
    with pytest.raises(TrajectoryError, match="3 frames of intrinsics for 5 poses"):
        read_trajectory(tmp_path / "lb", width=64, height=48)
    np.savez(tmp_path / "x.npz", poses=np.zeros((2, 4, 4)))
    with pytest.raises(TrajectoryError, match="no 'c2w' array"):
        read_trajectory(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", c2w=np.tile(np.eye(4), (2, 1, 1)), num_frames=3)
    with pytest.raises(TrajectoryError, match="'num_frames' is 3 but 'c2w' has 2"):
        read_trajectory(tmp_path / "y.npz")
    doc = {"fl_x": 50, "w": 64, "h": 48, "frames": [{"file_path": "a", "transform_matrix": [[1, 0], [0, 1]]}]}
    with pytest.raises(TrajectoryError, match=r"frames\[0\]\.transform_matrix: expected a c2w matrix of"):
        read_trajectory(write_json(tmp_path / "transforms.json", doc))


def test_unknown_formats(tmp_path):
    (tmp_path / "t.csv").write_text("1,2,3\n")
    with pytest.raises(TrajectoryError, match="known formats: npy .* worldplay"):
        read_trajectory(tmp_path / "t.csv")
    with pytest.raises(TrajectoryError, match="unknown trajectory format 'blender'.*re10k"):
        read_trajectory(tmp_path / "t.csv", "blender")
    with pytest.raises(TrajectoryError, match="holds none of"):
        detect_format(tmp_path)
    write_json(tmp_path / "other.json", {"poses": []})
    with pytest.raises(TrajectoryError, match="neither"):
        detect_format(tmp_path / "other.json")
    with pytest.raises(TrajectoryError, match="nerf or worldplay; pass the format"):
        write_trajectory(random_trajectory(2), tmp_path / "pose.json")
    with pytest.raises(TrajectoryError, match="colmap, lingbot or nerf"):
        write_trajectory(random_trajectory(2), str(tmp_path / "new") + "/")
    with pytest.raises(TrajectoryError, match="only read for the npy and lingbot"):
        read_trajectory(tmp_path / "t.csv", "re10k", intrinsics_path=tmp_path / "t.csv")


def test_nerf_needs_a_size_for_camera_angle_only_files(tmp_path):
    doc = {"camera_angle_x": 0.69, "frames": [{"file_path": "r_0", "transform_matrix": np.eye(4).tolist()}]}
    path = write_json(tmp_path / "transforms.json", doc)
    with pytest.raises(TrajectoryError, match="pass width and height"):
        read_trajectory(path)
    traj = read_trajectory(path, width=800, height=800)
    np.testing.assert_allclose(traj.intrinsics.values[0], [400 / math.tan(0.345)] * 2 + [400, 400])
    doc["camera_model"] = "OPENCV_FISHEYE"
    with pytest.raises(TrajectoryError, match="not a pinhole camera"):
        read_trajectory(write_json(tmp_path / "transforms.json", doc), width=800, height=800)
