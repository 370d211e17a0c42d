import numpy as np
import pytest

from sana_wm.synth import generate_scene, render
from sana_wm.synth.paths import exploration_path


@pytest.fixture(scope="session")
def small_walk():
    """A rendered 8 s walk at 10 fps, 192 x 108, with its exact cameras and depth."""
    scene = generate_scene(3, "room")
    path = exploration_path(scene, seconds=8, fps=10, style="walk", seed=3)
    return render(scene, path, 192, 108)


@pytest.fixture(scope="session")
def small_pan():
    """A pure rotation (no translation) in the same room: 21 frames, 192 x 108."""
    scene = generate_scene(3, "room")
    spawn = scene.spawn_pose(np.random.default_rng(3))
    from scipy.spatial.transform import Rotation

    from sana_wm.camera.trajectory import Trajectory

    c2w = np.tile(spawn, (21, 1, 1))
    c2w[:, :3, :3] = spawn[:3, :3] @ Rotation.from_euler("y", np.linspace(0, 30, 21)[:, None], degrees=True).as_matrix()
    return render(scene, Trajectory(c2w, None, 10.0), 192, 108)


@pytest.fixture(scope="session")
def small_orbit():
    """A rendered 6 s orbit at 10 fps, 192 x 108: the camera translates all the time."""
    scene = generate_scene(3, "room")
    path = exploration_path(scene, seconds=6, fps=10, style="orbit", seed=3)
    return render(scene, path, 192, 108)
