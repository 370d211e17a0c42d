"""Model folders the annotation tests build: a tiny vision-language model for the caption stage."""

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
