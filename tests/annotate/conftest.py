import shutil

import pytest
from PIL import Image

from sana_wm.synth.footage import FootageConfig, write_footage

# Small and quick, yet realistic: H.264, sensor noise, exposure drift and lens distortion; motion blur off
# (it triples the render time) except where a test needs it.
SMALL = FootageConfig(seconds=6.0, fps=10.0, size=(108, 192), style="orbit", blur_subframes=1, crf=18)


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



WORDS = [f"w{i}" for i in range(64)]  # the tiny tokenizer's vocabulary: w0 has id 0


def write_tiny_vlm(folder, *, constant_answer: bool = False):
    """A LLaVA-style vision-language model of random weights (CLIP vision tower, Llama text model, ~60 K
    parameters) with a word-level tokenizer, image processor and chat template, built from configs and saved
    with save_pretrained: the folder layout of a downloaded VLM, made without network. ``constant_answer``
    zeroes the language head, so every logit ties and greedy decoding answers token 0 ("w0") every step."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate([*WORDS, "<pad>", "<s>", "</s>", "<image>", "<unk>"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>", extra_special_tokens={"image_token": "<image>"})
    chat = ("{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
            "<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
            "{% if add_generation_prompt %}assistant: {% endif %}")
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 28},
                                                                  crop_size={"height": 28, "width": 28}),
                               tokenizer=tokenizer, chat_template=chat, patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=28, patch_size=14, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256),
        image_token_id=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    if constant_answer:
        with torch.no_grad():
            model.lm_head.weight.zero_()
    model.generation_config.eos_token_id = vocab["</s>"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    return write_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-llava")
