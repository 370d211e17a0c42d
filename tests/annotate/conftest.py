import shutil

import pytest
from annotate_helpers import write_tiny_vlm
from PIL import Image

from sana_wm.synth.footage import FootageConfig, write_footage

# Small and quick, yet realistic: sensor noise, exposure drift and lens distortion, in an MP4; motion blur off
# (it triples the render time) except where a test needs it. Lossless H.264 (crf 0): x264 does not give the
# same bytes twice, and at 192 x 108 COLMAP's mapper started a model on one lossy encoding of this clip and
# not on another (4 of 24 keyframes); decoded lossless frames are the same on every run.
SMALL = FootageConfig(seconds=6.0, fps=10.0, size=(108, 192), style="orbit", blur_subframes=1, crf=0)


@pytest.fixture(scope="session")
def footage(tmp_path_factory):
    """A 6 s orbit at 10 fps, 192 x 108, as an MP4 with its ground truth and depth sidecar beside it."""
    root = tmp_path_factory.mktemp("footage")
    return write_footage(root / "orbit.mp4", 3, SMALL)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, footage):
    """The same footage's frames as a folder of PNG images, with the depth sidecar beside the folder."""
    from sana_wm.annotate.decode import read_input

    folder = tmp_path_factory.mktemp("images") / "orbit_frames"
    folder.mkdir()
    for i, frame in enumerate(read_input(footage, fps=10.0).frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    shutil.copyfile(footage.with_suffix(".depth.npz"), folder.with_name(folder.name + ".depth.npz"))
    return folder




@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava")
