"""Procedural 3D worlds rendered by analytic ray casting on the CPU (pure PyTorch, no GPU or OpenGL).

Scenes (rooms, corridors, open ground) are deterministic functions of a seed; rendering a
:class:`~sana_wm.camera.Trajectory` gives RGB frames with exact metric depth and the exact cameras,
for training data and for checking camera conditioning and reprojection.

    scene = generate_scene(seed=3)                      # kind drawn from the seed, or kind="room"
    c2w = scene.spawn_pose(np.random.default_rng(0))    # a free, level pose at eye height
    result = render(scene, Trajectory(c2w[None]), 256, 256)
    result.rgb, result.depth                            # (F, H, W, 3) uint8, (F, H, W) float32 z-depth
"""

from sana_wm.synth.render import RenderResult, default_intrinsics, render
from sana_wm.synth.scene import (
    SCENE_KINDS,
    Box,
    Lighting,
    Material,
    OrientedBox,
    Pattern,
    Scene,
    SceneError,
    Sphere,
    Walls,
    generate_scene,
    look_along,
)

__all__ = [
    "SCENE_KINDS",
    "Box",
    "Lighting",
    "Material",
    "OrientedBox",
    "Pattern",
    "RenderResult",
    "Scene",
    "SceneError",
    "Sphere",
    "Walls",
    "default_intrinsics",
    "generate_scene",
    "look_along",
    "render",
]
