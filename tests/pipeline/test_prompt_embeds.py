"""encode-prompt / generate --prompt-embeds on the tiny released-layout models with tiny Gemma encoders."""

import pytest
import torch

from sana_wm.cli import main
from sana_wm.pipeline.errors import OptionError
from sana_wm.pipeline.prompt_embeds import PromptEmbeds, encoder_fingerprint
from sana_wm.pipeline.sidecar import read_sidecar
from tiny_models import save_tiny_text_encoder

PROMPT = "a living room with a sofa a table and a window"


@pytest.fixture(scope="module")
def embeds_file(repos, tmp_path_factory):
    out = tmp_path_factory.mktemp("embeds") / "p.safetensors"
    assert main(["encode-prompt", PROMPT, "--model", str(repos["bidirectional"]), "--text-encoder",
                 str(repos["text_encoder"]), "--out", str(out)]) == 0
    return out


def test_encode_prompt_writes_both_stages_states_with_fingerprints(repos, embeds_file):
    embeds = PromptEmbeds.load(embeds_file)
    assert embeds.prompt == PROMPT and embeds.negative_prompt == ""
    assert embeds.stage1.embeds.shape == (1, 300, 64) and embeds.negative.embeds.shape == (1, 300, 64)
    assert embeds.refiner is not None and embeds.refiner.embeds.ndim == 3
    assert embeds.stage1_fingerprint == encoder_fingerprint(repos["text_encoder"])
    assert embeds.refiner_fingerprint is not None


def test_states_equal_those_the_pipeline_encodes_itself(repos, embeds_file):
    from sana_wm.pipeline import SanaWMPipeline

    pipe = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"], refiner=True)
    embeds = PromptEmbeds.load(embeds_file)
    own = pipe.text_encoder.encode(PROMPT)
    assert torch.equal(own.embeds, embeds.stage1.embeds) and torch.equal(own.mask, embeds.stage1.mask)
    assert torch.equal(pipe.refiner.encode_prompt(PROMPT).embeds, embeds.refiner.embeds)


def test_generate_with_prompt_embeds_and_the_sidecar_records_the_text(repos, image_path, embeds_file, tmp_path,
                                                                      capsys, monkeypatch):
    import sana_wm.pipeline.text as text

    def no_encoder(*args, **kwargs):
        raise AssertionError("--prompt-embeds must not load a text encoder")

    monkeypatch.setattr(text.TextEncoder, "from_pretrained", no_encoder)
    out = tmp_path / "v.mp4"
    rc = main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
               "--model", str(repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]),
               "--prompt-embeds", str(embeds_file), "--no-progress", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    record = read_sidecar(out)
    assert record["prompt"] == PROMPT
    assert record["settings"]["prompt_embeds"]["stage1_fingerprint"] == encoder_fingerprint(repos["text_encoder"])
    assert record["settings"]["text_encoder_dtype"] == "bf16"  # how the states were made, from the file


def test_generate_encodes_first_and_frees_the_encoders_before_the_transformers_load(repos, image_path, tmp_path,
                                                                                   monkeypatch):
    import sana_wm.model.loading as loading
    import sana_wm.pipeline.prompt_embeds as prompt_embeds
    import sana_wm.pipeline.text as text

    events = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            events.append(name)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(text.TextEncoder, "from_pretrained",
                        classmethod(spy("load encoder", text.TextEncoder.from_pretrained.__func__)))
    monkeypatch.setattr(prompt_embeds, "_free", spy("free encoder", prompt_embeds._free))
    monkeypatch.setattr(loading, "from_pretrained", spy("load transformer", loading.from_pretrained))
    rc = main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
               "--model", str(repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]), "--no-refiner",
               "--prompt", PROMPT, "--no-progress", "--out", str(tmp_path / "e.mp4")])
    assert rc == 0
    assert events == ["load encoder", "free encoder", "load transformer"]


def test_states_of_another_encoder_are_refused_naming_both(repos, image_path, tmp_path, capsys):
    other = save_tiny_text_encoder(tmp_path / "other-gemma", seed=5)
    out = tmp_path / "o.safetensors"
    assert main(["encode-prompt", PROMPT, "--model", str(repos["bidirectional"]), "--text-encoder", str(other),
                 "--no-refiner", "--out", str(out)]) == 0
    capsys.readouterr()
    rc = main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
               "--model", str(repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]), "--no-refiner",
               "--prompt-embeds", str(out), "--no-progress", "--out", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--prompt-embeds were made by the text encoder {other} (fingerprint" in err
    assert f"but this model's is {repos['text_encoder']} (" in err
    assert not (tmp_path / "x.mp4").exists()


def test_a_file_without_refiner_states_is_refused_when_the_refiner_runs(repos, image_path, tmp_path):
    from sana_wm.camera.actions import action_to_trajectory
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.prompt_embeds import encode_prompt

    embeds = encode_prompt(repos["bidirectional"], PROMPT, text_encoder=repos["text_encoder"], refiner=False)
    assert embeds.refiner is None
    pipe = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"], refiner=True,
                                          text_encoders=False)
    with pytest.raises(OptionError, match="hold no refiner states"):
        pipe.generate(image_path, action_to_trajectory("w-30"), num_frames=17, steps=2, prompt_embeds=embeds)
    with pytest.raises(OptionError, match="drop prompt"):
        pipe.generate(image_path, action_to_trajectory("w-30"), prompt="x", prompt_embeds=embeds)


def test_encode_prompt_cli_refusals_and_cache(repos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p.safetensors"
    base = ["encode-prompt", PROMPT, "--model", str(repos["chunk-causal"]), "--text-encoder",
            str(repos["text_encoder"]), "--prompt-cache", str(tmp_path / "cache")]
    assert main([*base, "--out", str(out)]) == 0
    assert main([*base, "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "p.pt")]) == 2
    import sana_wm.pipeline.text as text

    monkeypatch.setattr(text.TextEncoder, "from_pretrained", lambda *a, **k: pytest.fail("the cache was not used"))
    assert main([*base, "--out", str(out), "--overwrite"]) == 0
    assert PromptEmbeds.load(out).prompt == PROMPT


def test_text_encoders_run_in_bf16_on_the_cpu_and_agree_with_fp32(repos, image_path, tmp_path, capsys,
                                                                   monkeypatch):
    """On the CPU both text encoders load in bf16 unless fp32 is asked for (Gemma-3-12B: 24 GB of host memory
    rather than 49 GB); the states agree with fp32's within bf16's rounding, and the pipeline's own encoders
    and the sidecar follow the same setting."""
    import sana_wm.pipeline.refiner as refiner
    import sana_wm.pipeline.text as text
    from sana_wm.pipeline import SanaWMPipeline
    from sana_wm.pipeline.prompt_embeds import encode_prompt

    loaded = []

    def spy(cls):
        original = cls.from_pretrained.__func__

        def wrapped(klass, *args, **kwargs):
            loaded.append(kwargs["dtype"])
            return original(klass, *args, **kwargs)
        monkeypatch.setattr(cls, "from_pretrained", classmethod(wrapped))

    spy(text.TextEncoder)
    spy(refiner.RefinerTextEncoder)
    kw = dict(text_encoder=repos["text_encoder"], device="cpu")
    half = encode_prompt(repos["bidirectional"], PROMPT, **kw)
    full = encode_prompt(repos["bidirectional"], PROMPT, text_encoder_dtype="fp32", **kw)
    assert loaded == [torch.bfloat16] * 2 + [torch.float32] * 2  # stage 1's Gemma-2, then the refiner's Gemma-3
    assert (half.text_encoder_dtype, full.text_encoder_dtype) == ("bf16", "fp32")
    for a, b in ((half.stage1, full.stage1), (half.negative, full.negative), (half.refiner, full.refiner)):
        assert a.embeds.dtype == b.embeds.dtype == torch.float32 and torch.equal(a.mask, b.mask)
        scale = b.embeds.abs().amax()
        # bf16 keeps 8 significant bits (a relative step of 2^-8 = 0.4%); two layers measured 0.7-0.8% at most
        torch.testing.assert_close(a.embeds, b.embeds, rtol=0, atol=0.02 * float(scale))
        assert (a.embeds - b.embeds).abs().amax() > 1e-4 * scale  # really run at another precision
    pipe = SanaWMPipeline.from_pretrained(repos["bidirectional"], text_encoder=repos["text_encoder"], refiner=True,
                                          device="cpu")
    assert pipe.text_encoder.model.dtype == torch.bfloat16 and pipe.transformer.dtype == torch.float32
    assert torch.equal(pipe.text_encoder.encode(PROMPT).embeds, half.stage1.embeds)
    capsys.readouterr()
    rc = main(["generate", "--image", str(image_path), "--action", "w-30", "--num-frames", "17", "--steps", "2",
               "--model", str(repos["bidirectional"]), "--text-encoder", str(repos["text_encoder"]),
               "--text-encoder-dtype", "fp32", "--prompt-embeds", str(tmp_path / "p.safetensors"), "--no-progress",
               "--out", str(tmp_path / "v.mp4")])
    assert rc == 2 and "so no text encoder runs: drop --text-encoder-dtype" in capsys.readouterr().err
