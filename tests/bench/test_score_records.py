"""Which stored scene records `bench score` reuses on a rerun (sana_wm.bench.score._done)."""

from __future__ import annotations

import json

import pytest

from sana_wm.bench.score import _done


@pytest.mark.parametrize(("stored", "reused"), [
    ({"settings_fingerprint": "f", "video": {"sha1": "v"}}, True),
    ({"settings_fingerprint": "g", "video": {"sha1": "v"}}, False),  # other settings
    ({"settings_fingerprint": "f", "video": {"sha1": "w"}}, False),  # another video
    ({"settings_fingerprint": "f", "video": None}, False),  # valid JSON of the wrong shape: scored again
    ({"settings_fingerprint": "f", "video": ["v"]}, False),
    ({"settings_fingerprint": "f"}, False),
    (["f", "v"], False),
])
def test_only_a_record_of_these_settings_and_this_video_is_reused(tmp_path, stored, reused):
    path = tmp_path / "scene.json"
    path.write_text(json.dumps(stored))
    assert (_done(path, "f", "v") == stored) is reused
    assert _done(tmp_path / "missing.json", "f", "v") is None
