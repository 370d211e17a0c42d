import io

import numpy as np
import pytest
from PIL import Image

from sana_wm.errors import LimitError
from sana_wm.pipeline.image import ImageError, load_image, to_rgb8


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    grey = np.full((8, 8), 32768, np.uint16)  # mid-grey in 16 bits; PIL's convert("RGB") gives white
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = np.asarray(load_image(tmp_path / "g16.png"))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert abs(int(rgb[0, 0, 0]) - 128) <= 1


def test_float_grey_in_0_1_is_scaled(tmp_path):
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    assert abs(int(np.asarray(load_image(tmp_path / "f.tif"))[0, 0, 0]) - 128) <= 1


def test_float_outside_0_1_is_refused_with_the_reason(tmp_path):
    Image.fromarray(np.full((8, 8), 300.0, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match=r"f.tif: float pixels span 300..300, not 0..1"):
        load_image(tmp_path / "f.tif")


def test_palette_image_keeps_its_colours(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = (200, 30, 40)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    out = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(out[0, 0]) == (200, 30, 40) and tuple(out[0, 7]) == (0, 0, 0)


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    with Image.open(buf) as reopened:
        assert to_rgb8(reopened).size == (2, 4)


def test_pixel_limit_is_read_from_the_header(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setenv("SANA_WM_MAX_IMAGE_PIXELS", "5000")
    with pytest.raises(LimitError, match="big.png.*SANA_WM_MAX_IMAGE_PIXELS"):
        load_image(tmp_path / "big.png")
