"""The pycolmap backend: COLMAP's incremental mapper on keyframes, then every frame registered.

Per window of a shot (:func:`~sana_wm.geometry.windows.plan_windows`):

1. keyframes by parallax (:func:`~sana_wm.geometry.keyframes.select_keyframes`);
2. the keyframes are written as PNGs to a temporary folder (COLMAP reads images from files), SIFT
   features extracted, matched sequentially (each keyframe against the next ``overlap`` ones) and
   mapped incrementally with the given pinhole intrinsics held fixed (a video keeps one lens);
3. every other frame is registered against the model: the 2D observations of the two nearest registered
   keyframes that carry a 3D point are tracked into the frame (Lucas-Kanade, checked both ways) and the
   pose solved by PnP RANSAC with Levenberg-Marquardt refinement, with the lens's refined radial
   distortion, starting from the nearest keyframe's pose;
4. the windows are joined by similarity fits on their shared frames
   (:func:`~sana_wm.geometry.windows.join_windows`).

The path is returned relative to the first registered frame of the first window.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sana_wm.camera.trajectory import Intrinsics, invert_se3
from sana_wm.geometry.backends import PoseResult
from sana_wm.geometry.keyframes import KeyframeConfig, _gray, select_keyframes, track_points
from sana_wm.geometry.odometry import interpolate_poses
from sana_wm.geometry.triangulation import AnchorPoints
from sana_wm.geometry.windows import join_windows, plan_windows

__all__ = ["ColmapBackend", "ColmapConfig", "solve_pnp"]


@dataclass(frozen=True)
class ColmapConfig:
    keyframes: KeyframeConfig = KeyframeConfig()
    window: int = 300  # frames per window
    window_overlap: int = 30
    max_features: int = 2048  # SIFT features per keyframe
    match_overlap: int = 8  # each keyframe is matched against the next this many
    min_pnp_inliers: int = 15
    pnp_threshold_px: float = 2.0
    # One thread: COLMAP's multi-threaded extraction, matching and bundle adjustment do not give the same
    # poses twice, and a dataset should not depend on the run; parallelism comes from inputs run at once.
    num_threads: int = 1
    init_min_tri_angles_deg: tuple[float, ...] = (6.0, 3.0, 12.0)  # initial-pair angles tried in turn
    refine_focal_length: bool = False  # for a lens that was only guessed: bundle adjustment refines it
    radial_distortion: bool = True  # model and refine one radial distortion coefficient (real lenses have it)
    seed: int = 0


def _quiet_pycolmap():
    """pycolmap with COLMAP's glog output off. COLMAP logs every image, match and bundle adjustment at INFO
    and its thread and memory advice at WARNING, straight to the process's stderr (hundreds of lines per
    shot, through any progress bar); a failure it logs at ERROR is one this backend reports itself
    (registered fraction, mapping attempts, the report), so only a FATAL message is let through."""
    import pycolmap

    pycolmap.logging.minloglevel = 3  # glog levels: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
    return pycolmap


def solve_pnp(points: np.ndarray, pixels: np.ndarray, K: np.ndarray, dist: np.ndarray | None, guess_c2w: np.ndarray,
              *, threshold_px: float = 2.0, min_inliers: int = 15) -> np.ndarray | None:
    """The c2w that sees ``(N, 3)`` world ``points`` at ``(N, 2)`` observed ``pixels`` through ``K`` and the radial
    ``dist`` (OpenCV's coefficients; None: a pinhole), by RANSAC from ``guess_c2w`` then Levenberg-Marquardt on
    the inliers; None when fewer than ``min_inliers`` agree."""
    w2c0 = invert_se3(guess_c2w)
    rvec, _ = cv2.Rodrigues(w2c0[:3, :3])
    tvec = w2c0[:3, 3].reshape(3, 1).copy()
    good, rvec, tvec, inl = cv2.solvePnPRansac(points, pixels, K, dist, rvec, tvec, useExtrinsicGuess=True,
                                               iterationsCount=200, reprojectionError=threshold_px,
                                               confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
    if not good or inl is None or len(inl) < min_inliers:
        return None
    inl = inl.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(points[inl], pixels[inl], K, dist, rvec, tvec)
    w2c = np.eye(4)
    w2c[:3, :3] = cv2.Rodrigues(rvec)[0]
    w2c[:3, 3] = tvec.ravel()
    return invert_se3(w2c)


class ColmapBackend:
    name = "pycolmap"

    def __init__(self, config: ColmapConfig | None = None):
        self.config = config or ColmapConfig()

    def estimate(self, frames: np.ndarray, intrinsics: Intrinsics, fps: float) -> PoseResult:
        cfg = self.config
        frames = np.asarray(frames)
        F, H, W = frames.shape[:3]
        intr = intrinsics if (intrinsics.width, intrinsics.height) == (W, H) else intrinsics.rescaled(W, H)
        K = intr.matrices()[0]
        windows = plan_windows(F, cfg.window, cfg.window_overlap) if F > 1 else [range(F)]
        poses, oks, infos, Ks, points = [], [], [], [], []
        for win in windows:
            c2w, ok, info, K_win, obs = self._window(frames[win.start:win.stop], K)
            poses.append(c2w)
            oks.append(ok)
            infos.append(info)
            points.append(obs)
            if ok.any():
                Ks.append(K_win)
        joined = join_windows(F, windows, poses, oks)
        registered = joined.registered
        if not registered.any():
            return PoseResult(np.tile(np.eye(4), (F, 1, 1)), registered, self.name, math.nan,
                              {"windows": infos, "reason": "COLMAP reconstructed nothing"})
        c2w = interpolate_poses(joined.c2w, registered)
        c2w = invert_se3(c2w[np.argmax(registered)])[None] @ c2w
        # COLMAP's own points, as depths in the keyframes that see them, moved into the joined world (a
        # similarity scales depths by its s; rigid motions leave them alone).
        anchors = [AnchorPoints(win.start + k, xy, depth * sim.s, np.full(len(depth), np.nan))
                   for win, sim, obs in zip(windows, joined.similarities, points, strict=True) if sim.s > 0
                   for k, (xy, depth) in sorted(obs.items()) if len(depth)]
        errors = [i["reprojection_error_px"] for i in infos if math.isfinite(i["reprojection_error_px"])]
        return PoseResult(c2w, registered, self.name, float(np.mean(errors)) if errors else math.nan,
                          {"windows": infos, "window_overlap_rmse": list(joined.overlap_rmse)},
                          K=np.mean(Ks, axis=0) if cfg.refine_focal_length and Ks else None, points=anchors)

    # -- one window -------------------------------------------------------------------------------
    def _window(self, frames: np.ndarray, K: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
        """Poses ``(F, 4, 4)``, registered ``(F,)``, facts, the (refined) ``K`` and, per registered keyframe,
        the pixels and depths of its observations of the model's 3D points."""
        pycolmap = _quiet_pycolmap()
        cfg = self.config
        pycolmap.set_random_seed(cfg.seed)
        F = len(frames)
        keys = select_keyframes(frames, cfg.keyframes)
        c2w = np.tile(np.eye(4), (F, 1, 1))
        ok = np.zeros(F, bool)
        info = {"frames": F, "keyframes": len(keys), "keyframes_registered": 0, "points": 0,
                "reprojection_error_px": math.nan}
        with tempfile.TemporaryDirectory(prefix="sana-wm-colmap-") as tmp:
            tmp = Path(tmp)
            images, out = tmp / "images", tmp / "sparse"
            images.mkdir()
            out.mkdir()
            names = {}
            for k in keys:
                names[k] = f"{k:06d}.png"
                cv2.imwrite(str(images / names[k]), cv2.cvtColor(frames[k], cv2.COLOR_RGB2BGR))
            db = tmp / "database.db"
            reader = pycolmap.ImageReaderOptions()
            if cfg.radial_distortion:  # one focal length (square pixels) and one radial coefficient k1
                reader.camera_model = "SIMPLE_RADIAL"
                reader.camera_params = ",".join(f"{v:.9g}" for v in (K[0, 0], K[0, 2], K[1, 2], 0.0))
            elif cfg.refine_focal_length:  # one focal length to refine (square pixels), not two
                reader.camera_model = "SIMPLE_PINHOLE"
                reader.camera_params = ",".join(f"{v:.9g}" for v in (K[0, 0], K[0, 2], K[1, 2]))
            else:
                reader.camera_model = "PINHOLE"
                reader.camera_params = ",".join(f"{v:.9g}" for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
            extraction = pycolmap.FeatureExtractionOptions()
            extraction.num_threads = cfg.num_threads
            extraction.sift.max_num_features = cfg.max_features
            pycolmap.extract_features(db, images, image_names=[names[k] for k in keys],
                                      camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                      extraction_options=extraction, device=pycolmap.Device.cpu)
            matching = pycolmap.FeatureMatchingOptions()
            matching.num_threads = cfg.num_threads
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = cfg.match_overlap
            pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing,
                                      device=pycolmap.Device.cpu)
            # The model grows from its initial pair, and a pair taken from a near-pure rotation (a video
            # has many) can leave most keyframes unregistrable: mapping is retried from pairs of other
            # triangulation angles until every keyframe is placed, keeping the model that placed most.
            rec, attempts = None, 0
            for angle in cfg.init_min_tri_angles_deg:
                attempts += 1
                options = pycolmap.IncrementalPipelineOptions()
                options.ba_refine_focal_length = cfg.refine_focal_length
                options.ba_refine_principal_point = False
                options.ba_refine_extra_params = cfg.radial_distortion
                options.multiple_models = False
                options.num_threads = cfg.num_threads
                options.random_seed = cfg.seed
                # Video keyframes are close together: COLMAP's photo-collection default (16 degrees of
                # triangulation angle to start a model) would refuse most walks.
                options.mapper.init_min_tri_angle = angle
                options.mapper.init_max_forward_motion = 1.0
                options.mapper.abs_pose_min_num_inliers = cfg.min_pnp_inliers
                attempt_out = out / str(attempts)
                attempt_out.mkdir()
                models = pycolmap.incremental_mapping(db, images, attempt_out, options=options)
                for model in models.values():
                    if rec is None or model.num_reg_images() > rec.num_reg_images():
                        rec = model
                if rec is not None and rec.num_reg_images() == len(keys):
                    break
            info["mapping_attempts"] = attempts
            if rec is None:
                return c2w, ok, info, K, {}
            camera = next(iter(rec.cameras.values()))
            K = np.asarray(camera.calibration_matrix(), np.float64)
            # SIMPLE_RADIAL's k1 is OpenCV's k1 (x_d = x (1 + k1 r^2), normalised coordinates): the frames
            # registered by PnP below see the same lens, and ignoring it biases their poses (7 px at the
            # corners of a 640x360 frame for k1 = -0.03).
            dist = np.array([camera.params[3], 0.0, 0.0, 0.0]) if cfg.radial_distortion else None
            info["k1"] = float(dist[0]) if dist is not None else 0.0
            frame_of = {names[k]: k for k in keys}
            observations: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for image in rec.images.values():
                if not image.has_pose:
                    continue
                k = frame_of[image.name]
                w2c = np.eye(4)
                w2c[:3] = image.cam_from_world().matrix()
                c2w[k] = invert_se3(w2c)
                ok[k] = True
                xy, xyz = [], []
                for p in image.points2D:
                    if p.has_point3D():
                        xy.append(p.xy)
                        xyz.append(rec.points3D[p.point3D_id].xyz)
                observations[k] = (np.asarray(xy, np.float64).reshape(-1, 2),
                                   np.asarray(xyz, np.float64).reshape(-1, 3))
            info.update(keyframes_registered=int(ok.sum()), points=int(rec.num_points3D()),
                        reprojection_error_px=float(rec.compute_mean_reprojection_error()))
            info["focal_px"] = float(K[0, 0])
        self._register_rest(frames, K, dist, c2w, ok, observations)
        depths = {}
        for k, (xy, xyz) in observations.items():
            w2c = invert_se3(c2w[k])
            depths[k] = (xy, xyz @ w2c[2, :3] + w2c[2, 3])
        return c2w, ok, info, K, depths

    def _register_rest(self, frames: np.ndarray, K: np.ndarray, dist: np.ndarray | None, c2w: np.ndarray,
                       ok: np.ndarray, observations: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        cfg = self.config
        keys = np.array(sorted(observations))
        if len(keys) == 0:
            return
        grays: dict[int, np.ndarray] = {}

        def gray(i: int) -> np.ndarray:
            if i not in grays:
                grays[i] = _gray(frames[i])
            return grays[i]

        for f in range(len(frames)):
            if ok[f]:
                continue
            # The 3D points seen by the two nearest keyframes (mostly one on each side), tracked into the frame
            # and solved together: one keyframe's few points can leave the camera centre ill-determined (a
            # 40 cm error on a frame between two keyframes of a camera turning on the spot).
            nearest = keys[np.argsort(np.abs(keys - f), kind="stable")][:2]
            obj, img = [], []
            for k in nearest:
                xy, xyz = observations[int(k)]
                if len(xy):
                    moved, tracked = track_points(gray(int(k)), gray(f), xy.astype(np.float32))
                    obj.append(xyz[tracked])
                    img.append(moved[tracked].astype(np.float64))
            if sum(len(o) for o in obj) < cfg.min_pnp_inliers:
                continue
            obj, img = np.concatenate(obj), np.concatenate(img)
            cv2.setRNGSeed(cfg.seed + f)
            pose = solve_pnp(obj, img, K, dist, c2w[int(nearest[0])], threshold_px=cfg.pnp_threshold_px,
                             min_inliers=cfg.min_pnp_inliers)
            if pose is not None:
                c2w[f] = pose
                ok[f] = True
