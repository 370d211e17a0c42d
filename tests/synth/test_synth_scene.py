"""Scene generation, validation and camera collision helpers."""

import numpy as np
import pytest

from sana_wm.synth import (
    SCENE_KINDS,
    Box,
    Material,
    OrientedBox,
    Scene,
    SceneError,
    Sphere,
    Walls,
    generate_scene,
    look_along,
)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_generated_scenes_are_deterministic_and_sized(kind):
    for seed in range(4):
        scene = generate_scene(seed, kind)
        assert scene == generate_scene(seed, kind)
        assert scene.kind == kind and scene.seed == seed
        assert 15 <= scene.num_primitives <= 50
    assert generate_scene(0, kind) != generate_scene(1, kind)


def test_kind_drawn_from_seed_matches_explicit_kind():
    kinds = set()
    for seed in range(12):
        scene = generate_scene(seed)
        kinds.add(scene.kind)
        assert scene == generate_scene(seed, scene.kind)
    assert kinds == set(SCENE_KINDS)
    with pytest.raises(SceneError, match="unknown kind"):
        generate_scene(0, "cave")


def test_scene_validation_messages():
    with pytest.raises(SceneError, match="box 0 uses material 3"):
        Scene(boxes=(Box((0, 0, 0), (1, 1, 1), material=3),))
    with pytest.raises(SceneError, match="lo < hi"):
        Scene(boxes=(Box((0, 0, 0), (1, -1, 1)),))
    with pytest.raises(SceneError, match="ceiling_y"):
        Scene(ceiling_y=1.0)
    with pytest.raises(SceneError, match="rotation"):
        Scene(oriented_boxes=(OrientedBox((0, 0, 0), (1, 1, 1), ((1, 0, 0), (0, 1, 0), (0, 0, -1))),))
    with pytest.raises(SceneError, match="radius"):
        Scene(spheres=(Sphere((0, 0, 0), 0.0),))


def toy_scene() -> Scene:
    turned = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))
    return Scene(
        materials=(Material(),), ceiling_y=-3.0, walls=Walls(-5, 5, -5, 5),
        boxes=(Box((1, -1, 1), (2, 0, 2)),),
        oriented_boxes=(OrientedBox((-3, -0.5, -3), (0.2, 0.5, 1.0), turned),),
        spheres=(Sphere((3, -0.5, -3), 0.5),),
    )


def test_is_free_rejects_inside_objects_walls_ground_and_ceiling():
    scene = toy_scene()
    inside = np.array([
        [1.5, -0.5, 1.5],  # in the box
        [-3.9, -0.5, -3.0],  # in the oriented box (its long local z axis lies along world x)
        [3.0, -0.5, -3.0],  # in the sphere
        [5.5, -1.5, 0.0],  # beyond a wall
        [0.0, 0.5, 0.0],  # under the ground
        [0.0, -3.5, 0.0],  # above the ceiling
    ])
    assert not scene.is_free(inside, 0.0).any()
    near = np.array([[0.8, -0.5, 1.5], [0.0, -1.5, 4.8], [0.0, -0.2, 0.0]])  # 0.2 m from box, wall, floor
    assert scene.is_free(near, 0.1).all()
    assert not scene.is_free(near, 0.3).any()
    assert scene.is_free(np.array([[-3.0, -0.5, -3.9], [0.0, -1.5, 0.0]]), 0.2).all()
    assert scene.is_free(np.zeros((2, 4, 3)) + [0, -1.5, 0], 0.2).shape == (2, 4)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_spawn_pose_is_free_level_and_at_eye_height(kind):
    for seed in range(3):
        scene = generate_scene(seed, kind)
        c2w = scene.spawn_pose(np.random.default_rng(seed))
        np.testing.assert_array_equal(c2w, scene.spawn_pose(np.random.default_rng(seed)))
        eye = c2w[:3, 3]
        assert scene.is_free(eye, 0.3)
        assert eye[1] == pytest.approx(scene.ground_y - scene.eye_height)
        np.testing.assert_allclose(c2w[:3, 1], [0, 1, 0], atol=1e-12)  # image down = world down
        np.testing.assert_allclose(c2w[:3, :3].T @ c2w[:3, :3], np.eye(3), atol=1e-12)
        assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)
        assert scene.free_distance(eye, c2w[:3, 2]) >= 1.5


def test_free_distance_reaches_walls_and_objects():
    scene = toy_scene()
    eye = np.array([0.0, -1.5, 0.0])
    dist = scene.free_distance(np.broadcast_to(eye, (3, 3)), np.array([[1, 0, 0], [0, 0, -2], [0, 1, 0]]))
    np.testing.assert_allclose(dist, [5.0, 5.0, 1.5], rtol=1e-6)
    assert scene.free_distance([1.5, -0.5, -1.0], [0, 0, 1]) == pytest.approx(2.0, rel=1e-6)  # box at z = 1


def test_look_along_builds_an_opencv_camera():
    c2w = look_along([1, 2, 3], [1, 0, 0])
    np.testing.assert_allclose(c2w[:3, 2], [1, 0, 0])  # optical axis
    np.testing.assert_allclose(c2w[:3, 1], [0, 1, 0])  # image down is world down (up is -Y)
    np.testing.assert_allclose(c2w[:3, 0], [0, 0, -1])  # right = down x forward
    with pytest.raises(SceneError, match="parallel"):
        look_along([0, 0, 0], [0, 1, 0])
