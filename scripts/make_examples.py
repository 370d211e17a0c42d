"""Render the bundled examples (src/sana_wm/assets/examples): for a few held-out scene seeds, the first
frame of an exploration path (128x128 PNG) and the path itself relative to that frame, 10.5 s at 16 fps
(169 frames: whole 3-latent-frame chunks for the streaming sampler), with
intrinsics in pixels of the PNG (bench .npz). Scene seeds 7000+ are never used for training.

    python scripts/make_examples.py [--out src/sana_wm/assets/examples]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from sana_wm.camera.formats import write_trajectory
from sana_wm.camera.trajectory import Trajectory, relative_poses
from sana_wm.synth import generate_scene
from sana_wm.synth.paths import exploration_path
from sana_wm.synth.render import render

EXAMPLES = {  # name: (scene seed, scene kind, path style)
    "room_walk": (7001, "room", "walk"),
    "corridor_walk": (7002, "corridor", "walk"),
    "open_orbit": (7003, "open", "orbit"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/sana_wm/assets/examples"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (seed, kind, style) in EXAMPLES.items():
        scene = generate_scene(seed, kind)
        path = exploration_path(scene, seconds=10.5, fps=16.0, style=style, seed=seed)
        first = render(scene, Trajectory(path.c2w[:1], None, 16.0), 128, 128, fov_deg=70.0)
        Image.fromarray(first.rgb[0]).save(out / f"{name}.png")
        relative = relative_poses(path.c2w)
        intr = first.intrinsics.values[0]
        traj = Trajectory(relative, None, 16.0).with_intrinsics(
            type(first.intrinsics)(np.repeat(intr[None], len(relative), 0), 128, 128))
        write_trajectory(traj, out / f"{name}.npz")
        print(f"{name}: scene {seed} ({kind}), {style} path, {len(relative)} frames")


if __name__ == "__main__":
    main()
