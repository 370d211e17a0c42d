"""Plots of one scored scene, drawn from its scene JSON alone (so a report can be rebuilt without re-estimating):
the estimated camera path over the requested one seen from above, and the camera error against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sana_wm.io import atomic_write

__all__ = ["error_plot", "path_plot"]


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, plt, path: Path) -> None:
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def path_plot(record: dict, path: Path) -> bool:
    """Top-down view (x right, z forward: OpenCV axes, so y is down and left out) of the requested path and the
    estimate after the similarity fit; False (nothing written) when the scene has no camera result."""
    cam = record.get("camera") or {}
    if cam.get("status") != "ok":
        return False
    req, est = np.asarray(cam["path"]["requested"], float), np.asarray(cam["path"]["estimated"], float)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(req[:, 0], req[:, 2], "-", color="black", label="requested")
    ax.plot(est[:, 0], est[:, 2], "-", color="tab:red", label="estimated (aligned)")
    ax.plot(req[0, 0], req[0, 2], "o", color="black")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (right)")
    ax.set_ylabel("z (forward)")
    ax.set_title(f"{record['scene']}: camera path from above", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, plt, path)
    return True


def error_plot(record: dict, path: Path) -> bool:
    """RotErr (degrees) and TransErr of each sampled frame against its time; False when there is no camera result."""
    cam = record.get("camera") or {}
    if cam.get("status") != "ok":
        return False
    per = cam["per_frame"]
    t = np.asarray(per["time_s"], float)
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(t, np.asarray(per["RotErr"], float), color="tab:blue", label="RotErr (deg)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("RotErr (deg)", color="tab:blue")
    if per.get("TransErr") is not None:
        ax2 = ax.twinx()
        ax2.plot(t, np.asarray(per["TransErr"], float), color="tab:red", label="TransErr")
        ax2.set_ylabel("TransErr (path units)", color="tab:red")
    ax.set_title(f"{record['scene']}: camera error against time", fontsize=9)
    fig.tight_layout()
    _save(fig, plt, path)
    return True
