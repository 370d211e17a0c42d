"""Camera paths from video frames with known intrinsics: monocular visual odometry on the CPU (OpenCV).

How a path is recovered (every choice is a knob of :class:`PoseEstimatorConfig`):

1. Features on every processed frame (every ``stride``-th frame and the last): SIFT when this OpenCV has
   it, else ORB; matched between two frames with Lowe's ratio test, one match per keypoint.
2. **Initialisation** from a reference frame ``r`` whose pose is known (frame 0 = identity at first):
   the essential matrix (5-point, USAC-MAGSAC when available, else RANSAC) filters the matches; a rotation
   fitted to the inlier bearings tells whether the camera translated: if the rotation-compensated
   displacement (parallax) is below ``min_parallax_px`` the frame gets the rotation only (a pan, or no
   motion), otherwise ``recoverPose`` gives the rotation and the direction of translation, the baseline
   length is fixed (1 unit for the first initialisation: this sets the path's global scale), and the
   inliers are triangulated into a map.
3. **Tracking**: later frames are registered against the current keyframe's map with ``solvePnPRansac``
   (+ Levenberg-Marquardt refinement): this keeps one scale along the chain. A new keyframe is made when
   the parallax to the current one exceeds ``keyframe_parallax_px`` or the tracked points thin out; it
   keeps the points it re-observed and adds points triangulated against the old keyframe.
4. **Losing track** (too few 3D-2D inliers, e.g. after turning away from every mapped point) restarts
   step 2 from the last registered frame. The scale of the new segment is then unknown; it is set from the
   speed of the previous segment and counted in ``scale_resets``.
5. A frame that cannot be matched at all is marked failed; failed and skipped (stride) frames get poses
   interpolated between their registered neighbours (slerp + linear), or held after the last one.

The output path is relative to the first frame (frame 0 is the identity) and known up to one global scale
(plus scale drift at resets), as every monocular estimate is: compare it with
:func:`sana_wm.eval.pose_metrics.camera_errors` or :func:`sana_wm.geometry.metrics.trajectory_errors`,
which align the scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sana_wm.camera.trajectory import Intrinsics, Trajectory, invert_se3, relative_poses

__all__ = ["PoseEstimate", "PoseEstimatorConfig", "available_features", "estimate_poses", "interpolate_poses"]


def available_features() -> tuple[str, ...]:
    """Feature types this OpenCV build offers (``"sift"`` needs OpenCV >= 4.4)."""
    return ("sift", "orb") if hasattr(cv2, "SIFT_create") else ("orb",)


@dataclass(frozen=True)
class PoseEstimatorConfig:
    feature: str = "auto"  # "sift", "orb", or "auto" (SIFT if available)
    max_features: int = 2000
    ratio: float = 0.8  # Lowe's ratio test
    ransac_threshold_px: float = 1.0  # essential-matrix inlier threshold
    pnp_threshold_px: float = 2.0  # PnP RANSAC reprojection threshold
    min_matches: int = 15  # fewer matches than this: the frame pair fails
    min_pnp_inliers: int = 12
    min_parallax_px: float = 1.5  # median rotation-compensated displacement needed to triangulate
    keyframe_parallax_px: float = 6.0
    min_triangulation_angle_deg: float = 1.0
    max_reprojection_px: float = 2.0  # triangulated points reprojecting worse are dropped
    stride: int = 1  # process every stride-th frame (and the last); the rest are interpolated
    max_gap: int = 8  # unmatched processed frames in a row before the reference frame is abandoned
    two_view_rotation: bool = True  # take rotations from essential matrices keyframe -> frame (see pnp)
    max_rotation_disagreement_deg: float = 5.0
    seed: int = 0  # RANSAC randomness (OpenCV's and ours)


@dataclass(frozen=True)
class PoseEstimate:
    """An estimated path and what happened on the way.

    ``method`` per frame: ``"origin"`` (frame 0), ``"pnp"`` (registered on the map), ``"init"``
    (essential matrix at an initialisation), ``"rotation"`` (no parallax: rotation only, position held),
    ``"failed"`` (unmatched, interpolated), ``"skipped"`` (not processed because of the stride,
    interpolated). ``inliers``: inlier count of the model that placed the frame (0 if none).
    """

    trajectory: Trajectory  # c2w relative to frame 0, up to one global scale
    method: tuple[str, ...]
    inliers: np.ndarray  # (F,) int
    num_keyframes: int
    scale_resets: int
    feature: str
    config: PoseEstimatorConfig = field(repr=False)

    @property
    def failed(self) -> np.ndarray:
        """``(F,)`` bool: frames that could not be matched."""
        return np.array([m == "failed" for m in self.method])

    @property
    def failure_rate(self) -> float:
        """Failed frames over processed frames (skipped frames do not count)."""
        processed = sum(m != "skipped" for m in self.method)
        return float(self.failed.sum() / max(processed, 1))

    def diagnostics(self) -> dict:
        """JSON-ready summary."""
        counts = {m: self.method.count(m) for m in sorted(set(self.method))}
        registered = self.inliers[[m in ("pnp", "init", "rotation") for m in self.method]]
        return {"feature": self.feature, "failure_rate": self.failure_rate, "method_counts": counts,
                "num_keyframes": self.num_keyframes, "scale_resets": self.scale_resets,
                "median_inliers": float(np.median(registered)) if registered.size else 0.0,
                "failed_frames": np.flatnonzero(self.failed).tolist()}


@dataclass
class _Features:
    points: np.ndarray  # (N, 2) float64 pixel coordinates
    descriptors: np.ndarray | None  # (N, D)


@dataclass
class _Keyframe:
    frame: int
    point_ids: np.ndarray  # (M,) keypoint indices in that frame that carry a 3D point
    points: np.ndarray  # (M, 3) world points


class _Odometry:
    def __init__(self, K: np.ndarray, cfg: PoseEstimatorConfig):
        self.K = K
        self.K_inv = np.linalg.inv(K)
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        name = cfg.feature
        if name == "auto":
            name = available_features()[0]
        if name not in available_features():
            raise ValueError(f"feature {cfg.feature!r} is not available in OpenCV {cv2.__version__}; "
                             f"choose one of {', '.join(available_features())} or 'auto'")
        self.feature = name
        if name == "sift":
            # A low contrast threshold: synthetic textures and small frames give few strong corners.
            self.detector = cv2.SIFT_create(nfeatures=cfg.max_features, contrastThreshold=0.01)
            self.norm = cv2.NORM_L2
        else:
            # Small patches so that frames of ~128 px keep keypoints near the border.
            self.detector = cv2.ORB_create(nfeatures=cfg.max_features, edgeThreshold=15, patchSize=15,
                                           fastThreshold=7)
            self.norm = cv2.NORM_HAMMING
        self.matcher = cv2.BFMatcher(self.norm)

    # -- features and two-view geometry ------------------------------------------------------------
    def features(self, frame: np.ndarray) -> _Features:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        kps, desc = self.detector.detectAndCompute(gray, None)
        pts = np.array([k.pt for k in kps], dtype=np.float64).reshape(-1, 2)
        return _Features(pts, desc)

    def match(self, a: _Features, b: _Features) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(ia, ib)`` of ratio-test matches, each keypoint of ``b`` used at most once."""
        if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
            return np.zeros(0, int), np.zeros(0, int)
        knn = self.matcher.knnMatch(a.descriptors, b.descriptors, k=2)
        best: dict[int, tuple[float, int]] = {}
        for pair in knn:
            if len(pair) == 2 and pair[0].distance < self.cfg.ratio * pair[1].distance:
                m = pair[0]
                if m.trainIdx not in best or m.distance < best[m.trainIdx][0]:
                    best[m.trainIdx] = (m.distance, m.queryIdx)
        ib = np.array(sorted(best), dtype=int)
        ia = np.array([best[j][1] for j in ib], dtype=int)
        return ia, ib

    def bearings(self, pts: np.ndarray) -> np.ndarray:
        h = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ self.K_inv.T
        return h / np.linalg.norm(h, axis=1, keepdims=True)

    def project(self, X_cam: np.ndarray) -> np.ndarray:
        p = X_cam @ self.K.T
        return p[:, :2] / p[:, 2:3]

    def rotation_residual_px(self, R_ab: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        """Pixel distance between ``pb`` and ``pa`` moved by the rotation ``R_ab`` alone (= parallax)."""
        rotated = self.bearings(pa) @ R_ab.T
        ok = rotated[:, 2] > 1e-6
        out = np.full(len(pa), np.inf)
        out[ok] = np.linalg.norm(self.project(rotated[ok]) - pb[ok], axis=1)
        return out

    @staticmethod
    def fit_rotation(ba: np.ndarray, bb: np.ndarray) -> np.ndarray:
        """Rotation ``R`` minimising ``sum ||bb - R ba||^2`` (Kabsch)."""
        U, _, Vt = np.linalg.svd(bb.T @ ba)
        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
        return U @ D @ Vt

    def two_view(self, pa: np.ndarray, pb: np.ndarray) -> dict | None:
        """Relative motion a -> b (``x_b = R x_a + t``) from matched pixels, or None if it cannot be found."""
        cfg = self.cfg
        if len(pa) < max(cfg.min_matches, 5):
            return None
        method = getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)
        cv2.setRNGSeed(int(self.rng.integers(2**31)))
        E, mask = cv2.findEssentialMat(pa, pb, self.K, method=method, prob=0.999,
                                       threshold=cfg.ransac_threshold_px)
        if E is None or mask is None or E.shape[0] < 3:
            return None
        E = E[:3]
        inl = mask.ravel().astype(bool)
        if inl.sum() < cfg.min_matches:
            return None
        # Under pure rotation every correct match satisfies any epipolar constraint, so the E inliers are a
        # clean set either way. The rotation of recoverPose is accurate with or without translation (a
        # rotation fitted to bearings alone is not: it absorbs translational flow, e.g. on an orbit), except
        # when cheirality picks the "twisted pair" under pure rotation, which is off by ~180 degrees.
        n_good, R, t, pose_mask = cv2.recoverPose(E, pa, pb, self.K, mask=mask.copy())
        R_rot = self.fit_rotation(self.bearings(pa[inl]), self.bearings(pb[inl]))
        if _angle_deg(R, R_rot) > 30.0:
            R, n_good = R_rot, 0
        parallax = float(np.median(self.rotation_residual_px(R, pa[inl], pb[inl])))
        out = {"inliers": inl, "R": R, "t": np.zeros(3), "parallax": parallax}
        if parallax >= cfg.min_parallax_px:
            if n_good >= cfg.min_matches:
                out.update(t=t.ravel() / max(np.linalg.norm(t), 1e-12), inliers=pose_mask.ravel().astype(bool))
            else:
                out["parallax"] = 0.0  # cheirality failed: treat as no usable translation
        return out

    def triangulate(self, w2c_a: np.ndarray, w2c_b: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        """World points from two views and a ``(N,)`` mask of those that pass the depth, angle and
        reprojection checks; returns ``(points (N, 3), ok (N,))``."""
        Pa, Pb = self.K @ w2c_a[:3], self.K @ w2c_b[:3]
        Xh = cv2.triangulatePoints(Pa, Pb, pa.T.astype(np.float64), pb.T.astype(np.float64)).T
        with np.errstate(divide="ignore", invalid="ignore"):
            X = Xh[:, :3] / Xh[:, 3:4]
        ok = np.isfinite(X).all(axis=1)
        Xa = X @ w2c_a[:3, :3].T + w2c_a[:3, 3]
        Xb = X @ w2c_b[:3, :3].T + w2c_b[:3, 3]
        ok &= (Xa[:, 2] > 1e-6) & (Xb[:, 2] > 1e-6)
        ca, cb = invert_se3(w2c_a)[:3, 3], invert_se3(w2c_b)[:3, 3]
        ra, rb = X - ca, X - cb
        cos = np.sum(ra * rb, axis=1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
        ok &= np.degrees(np.arccos(np.clip(cos, -1, 1))) >= self.cfg.min_triangulation_angle_deg
        err_a = np.full(len(X), np.inf)
        err_b = np.full(len(X), np.inf)
        err_a[ok] = np.linalg.norm(self.project(Xa[ok]) - pa[ok], axis=1)
        err_b[ok] = np.linalg.norm(self.project(Xb[ok]) - pb[ok], axis=1)
        ok &= (err_a < self.cfg.max_reprojection_px) & (err_b < self.cfg.max_reprojection_px)
        return X, ok

    def pnp(self, kf: _Keyframe, kf_feat: _Features, feat: _Features, w2c_guess: np.ndarray,
            w2c_kf: np.ndarray):
        """Register a frame on the keyframe's map: ``(w2c, inlier keypoint ids in the frame, inlier point
        rows of the map)`` or None.

        PnP on a sparse, noisy map gives a rotation off by up to a degree per frame; the two-view rotation
        keyframe -> frame (essential matrix on all matches, not only mapped ones) is several times more
        accurate, so it replaces PnP's when the two agree, and the translation is re-solved with it fixed.
        """
        ia, ib = self.match(kf_feat, feat)
        row_of = {int(k): r for r, k in enumerate(kf.point_ids)}
        sel = [(r, j) for i, j in zip(ia, ib, strict=True) if (r := row_of.get(int(i))) is not None]
        if len(sel) < self.cfg.min_pnp_inliers:
            return None
        rows = np.array([r for r, _ in sel])
        ids = np.array([j for _, j in sel])
        obj, img = kf.points[rows], feat.points[ids]
        rvec, _ = cv2.Rodrigues(w2c_guess[:3, :3])
        tvec = w2c_guess[:3, 3].reshape(3, 1).copy()
        cv2.setRNGSeed(int(self.rng.integers(2**31)))
        ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, self.K, None, rvec, tvec, useExtrinsicGuess=True,
                                                 iterationsCount=200, reprojectionError=self.cfg.pnp_threshold_px,
                                                 confidence=0.999, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok or inl is None or len(inl) < self.cfg.min_pnp_inliers:
            return None
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], self.K, None, rvec, tvec)
        w2c = np.eye(4)
        w2c[:3, :3] = cv2.Rodrigues(rvec)[0]
        w2c[:3, 3] = tvec.ravel()
        if self.cfg.two_view_rotation:
            tv = self.two_view(kf_feat.points[ia], feat.points[ib])
            if tv is not None:
                R = tv["R"] @ w2c_kf[:3, :3]
                if _angle_deg(R, w2c[:3, :3]) < self.cfg.max_rotation_disagreement_deg:
                    xy = (np.concatenate([img[inl], np.ones((len(inl), 1))], 1) @ self.K_inv.T)[:, :2]
                    w2c[:3, :3] = R
                    w2c[:3, 3] = _translation_given_rotation(R, obj[inl], xy)
        return w2c, ids[inl], rows[inl]


def _angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R_a.T @ R_b) - 1) / 2, -1.0, 1.0))))


def _translation_given_rotation(R: np.ndarray, X: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Least-squares ``t`` of ``w2c = [R | t]`` from world points ``X`` and their normalised image
    coordinates ``xy`` (``(x, y) = K^-1 (u, v)``): the projection equations are linear in ``t``."""
    RX = X @ R.T
    x, y = xy[:, 0], xy[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    A = np.concatenate([np.stack([ones, zeros, -x], 1), np.stack([zeros, ones, -y], 1)])
    b = np.concatenate([x * RX[:, 2] - RX[:, 0], y * RX[:, 2] - RX[:, 1]])
    return np.linalg.lstsq(A, b, rcond=None)[0]


def interpolate_poses(c2w: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill poses of frames where ``known`` is False: slerp/linear between known neighbours, held outside."""
    idx = np.flatnonzero(known)
    out = c2w.copy()
    frames = np.arange(len(c2w))
    if len(idx) == 1:
        out[:] = c2w[idx[0]]
        return out
    inside = (frames >= idx[0]) & (frames <= idx[-1])
    slerp = Slerp(idx, Rotation.from_matrix(c2w[idx, :3, :3]))
    out[inside, :3, :3] = slerp(frames[inside]).as_matrix()
    for k in range(3):
        out[:, k, 3] = np.interp(frames, idx, c2w[idx, k, 3])
    out[frames > idx[-1]] = c2w[idx[-1]]
    out[known] = c2w[known]
    return out


def estimate_poses(frames, intrinsics, *, fps: float = 16.0,
                   config: PoseEstimatorConfig | None = None) -> PoseEstimate:
    """Estimate the camera path of ``frames`` ``(F, H, W, 3)`` uint8 (or ``(F, H, W)`` grey).

    ``intrinsics``: an :class:`Intrinsics` (frame 0's camera is used for all frames; it is rescaled if it
    is given for another image size) or a ``(3, 3)`` pinhole matrix in pixels of these frames.
    Returns a :class:`PoseEstimate` whose trajectory starts at the identity and is known up to scale.
    """
    cfg = config or PoseEstimatorConfig()
    video = np.asarray(frames)
    if video.ndim not in (3, 4) or len(video) < 2:
        raise ValueError(f"estimate_poses: expected (F, H, W[, 3]) frames with F >= 2, got shape {video.shape}")
    if video.dtype != np.uint8:
        raise ValueError(f"estimate_poses: frames must be uint8, got {video.dtype}; convert with "
                         "(np.clip(x, 0, 1) * 255).round().astype(np.uint8)")
    H, W = video.shape[1:3]
    if isinstance(intrinsics, Intrinsics):
        intr = intrinsics if (intrinsics.width, intrinsics.height) == (W, H) else intrinsics.rescaled(W, H)
        K = intr.matrices()[0]
    else:
        K = np.asarray(intrinsics, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"estimate_poses: intrinsics must be an Intrinsics or a (3, 3) matrix, got {K.shape}")
        intr = Intrinsics.from_matrices(K, W, H)
    if cfg.stride < 1:
        raise ValueError(f"stride must be >= 1, got {cfg.stride}")
    F = len(video)
    odo = _Odometry(K, cfg)
    processed = sorted(set(range(0, F, cfg.stride)) | {F - 1})
    feats = {f: odo.features(video[f]) for f in processed}

    w2c = np.tile(np.eye(4), (F, 1, 1))
    method = ["skipped"] * F
    inliers = np.zeros(F, dtype=int)
    method[0] = "origin"
    inliers[0] = len(feats[0].points)

    state = "init"
    ref = 0  # reference frame of an initialisation (pose known)
    ref_matches0: int | None = None
    gap = 0
    kf: _Keyframe | None = None
    last_good = 0
    scale_resets = 0
    num_keyframes = 0
    speed: float | None = None  # baseline units per frame of the last tracked segment
    segment_start = 0
    pending: list[int] = []  # frames placed by rotation only since `ref`, re-registered after an init

    def register_with_pnp(f: int):
        res = odo.pnp(kf, feats[kf.frame], feats[f], w2c[last_good], w2c[kf.frame])
        if res is not None:
            w2c[f] = res[0]
            method[f] = "pnp"
            inliers[f] = len(res[1])
        return res

    def make_keyframe(f: int, carried_ids: np.ndarray, carried_rows: np.ndarray) -> None:
        nonlocal kf, num_keyframes
        src = kf.frame
        ids, pts = [carried_ids], [kf.points[carried_rows]]
        ia, ib = odo.match(feats[src], feats[f])
        new = ~np.isin(ib, carried_ids)
        if new.any():
            X, ok = odo.triangulate(w2c[src], w2c[f], feats[src].points[ia[new]], feats[f].points[ib[new]])
            ids.append(ib[new][ok])
            pts.append(X[ok])
        kf = _Keyframe(f, np.concatenate(ids).astype(int), np.concatenate(pts))
        num_keyframes += 1

    for f in processed[1:]:
        if state == "track":
            res = register_with_pnp(f)
            if res is not None:
                last_good = f
                R_rel = w2c[f, :3, :3] @ w2c[kf.frame, :3, :3].T
                ia, ib = odo.match(feats[kf.frame], feats[f])
                par = odo.rotation_residual_px(R_rel, feats[kf.frame].points[ia], feats[f].points[ib])
                parallax = float(np.median(par)) if len(par) else 0.0
                if parallax > cfg.keyframe_parallax_px or inliers[f] < max(2 * cfg.min_pnp_inliers,
                                                                          0.5 * len(kf.point_ids)):
                    make_keyframe(f, res[1], res[2])
                    if len(kf.point_ids) < cfg.min_pnp_inliers:
                        state, ref, ref_matches0, kf, gap = "init", f, None, None, 0
                        speed = _segment_speed(w2c, segment_start, f, speed)
                continue
            # Lost: restart from the last registered frame.
            speed = _segment_speed(w2c, segment_start, last_good, speed)
            state, ref, ref_matches0, kf, gap = "init", last_good, None, None, 0
        # -- initialisation mode --------------------------------------------------------------------
        ia, ib = odo.match(feats[ref], feats[f])
        tv = odo.two_view(feats[ref].points[ia], feats[f].points[ib]) if len(ia) else None
        if tv is None:
            method[f] = "failed"
            gap += 1
            if gap > cfg.max_gap:  # the reference is hopeless: hold its pose and start over from here
                w2c[f] = w2c[ref]
                ref, ref_matches0, gap, pending = f, None, 0, []
            continue
        gap = 0
        if ref_matches0 is None:
            ref_matches0 = len(ia)
        rel = np.eye(4)
        rel[:3, :3] = tv["R"]
        if tv["parallax"] < cfg.min_parallax_px:
            w2c[f] = rel @ w2c[ref]
            method[f] = "rotation"
            inliers[f] = int(tv["inliers"].sum())
            last_good = f
            pending.append(f)
            if len(ia) < max(2 * cfg.min_matches, 0.5 * ref_matches0):  # overlap thinning: move the reference
                ref, ref_matches0, pending = f, None, []
            continue
        if speed is None and num_keyframes == 0:
            baseline = 1.0  # the first initialisation defines the unit of the whole path
        else:
            baseline = (speed if speed is not None else 0.0) * (f - ref)
            scale_resets += 1
            if baseline <= 0:
                baseline = 1.0
        rel[:3, 3] = tv["t"] * baseline
        w2c[f] = rel @ w2c[ref]
        method[f] = "init"
        inliers[f] = int(tv["inliers"].sum())
        inl = tv["inliers"]
        X, ok = odo.triangulate(w2c[ref], w2c[f], feats[ref].points[ia[inl]], feats[f].points[ib[inl]])
        if ok.sum() < cfg.min_pnp_inliers:
            # Not enough structure to track: keep the pose, try again from this frame.
            last_good = f
            ref, ref_matches0, pending = f, None, []
            continue
        kf = _Keyframe(f, ib[inl][ok], X[ok])
        num_keyframes += 1
        state, last_good, segment_start = "track", f, ref
        # Frames placed by rotation alone since the reference now see the map: register them properly.
        for g in pending:
            res = odo.pnp(kf, feats[f], feats[g], w2c[g], w2c[f])
            if res is not None:
                w2c[g] = res[0]
                method[g] = "pnp"
                inliers[g] = len(res[1])
        pending = []

    c2w = invert_se3(w2c)
    known = np.array([m not in ("failed", "skipped") for m in method])
    c2w = interpolate_poses(c2w, known)
    c2w = relative_poses(c2w)
    traj = Trajectory(c2w, intr.take([0]), fps,
                      {"source": "estimate_poses", "feature": odo.feature})
    return PoseEstimate(traj, tuple(method), inliers, num_keyframes, scale_resets, odo.feature, cfg)


def _segment_speed(w2c: np.ndarray, start: int, end: int, previous: float | None) -> float | None:
    """Mean distance per frame travelled from ``start`` to ``end`` (the scale of the segment just lost)."""
    if end <= start:
        return previous
    centres = invert_se3(w2c[start:end + 1])[:, :3, 3]
    length = float(np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
    return length / (end - start) if length > 0 else previous
