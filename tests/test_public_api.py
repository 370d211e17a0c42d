import subprocess
import sys

import sana_wm


def test_public_names_resolve():
    for name in sana_wm.__all__:
        assert getattr(sana_wm, name) is not None, name


def test_camera_import_does_not_load_torch():
    code = "import sys, sana_wm, sana_wm.camera.actions, sana_wm.camera.formats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
