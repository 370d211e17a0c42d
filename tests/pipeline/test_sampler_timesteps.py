"""A model folder's config.yaml may give the sampler an explicit timestep list (a distilled student's own)."""

import pytest
import yaml

from sana_wm.pipeline.pipeline import _read_settings


@pytest.mark.parametrize("timesteps, ok", [([1000, 700, 0], True), ([1000, 700], False), ([700, 1000, 0], False),
                                           ("fast", False)])
def test_sampler_timesteps_are_checked_when_the_folder_is_read(tmp_path, timesteps, ok):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"sana_wm": {"sampler": {"timesteps": timesteps}}}))
    if ok:
        assert _read_settings(tmp_path)["sampler"]["timesteps"] == timesteps
    else:
        with pytest.raises(ValueError, match="sana_wm.sampler.timesteps"):
            _read_settings(tmp_path)
