"""`sana-wm encode-prompt`: a prompt's text-encoder states, computed once, for `generate --prompt-embeds`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sana_wm.cli import CLIError

DESCRIPTION = """\
Encode a prompt with a model's text encoders and save the states for `generate --prompt-embeds`.

The stage-1 Gemma-2 states of the prompt and of the negative prompt (used by text guidance) are
saved, and, when the model has a refiner (or --refiner is given), the refiner's Gemma-3 states too.
Only the text encoders are loaded, on --device (default: cuda if available, else cpu), and they
are freed before the command ends, so `generate --prompt-embeds` never needs them next to the
transformers. The file names the encoders by a fingerprint of their folders (configs, tokenizers,
weights sampled); `generate` refuses a file made by other encoders.
"""


def register(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("encode-prompt", help="encode a prompt once, for generate --prompt-embeds",
                          description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prompt", nargs="?", help="the scene description (or --prompt-file)")
    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a UTF-8 text file")
    p.add_argument("--negative-prompt", default="", metavar="TEXT", help="negative prompt (default: empty)")
    p.add_argument("--out", "-o", required=True, metavar="FILE.safetensors", help="where to write the states")
    p.add_argument("--model", metavar="DIR_OR_HF_ID", required=True,
                   help="the model folder or hub id the states are for (its text encoders are used)")
    p.add_argument("--variant", choices=("bidirectional", "chunk-causal", "streaming"),
                   help="which variant's folder layout (default: detected)")
    p.add_argument("--text-encoder", metavar="DIR_OR_HF_ID", help="Gemma-2 folder or hub id (default: the model's)")
    refiner = p.add_mutually_exclusive_group()
    refiner.add_argument("--no-refiner", action="store_true", help="stage-1 states only")
    refiner.add_argument("--refiner", metavar="DIR_OR_HF_ID", help="the refiner whose states to add "
                         "(default: the model's own, if it has one)")
    p.add_argument("--refiner-text-encoder", metavar="DIR", help="the refiner's Gemma-3 folder (default: its own)")
    p.add_argument("--device", help="torch device for the encoders (default: cuda if available, else cpu)")
    p.add_argument("--text-encoder-dtype", choices=("bf16", "fp32"),
                   help="precision the encoders run in, on any device (default: bf16, the released weights' own; "
                        "fp32 doubles their memory)")
    p.add_argument("--prompt-cache", metavar="DIR",
                   help="reuse earlier results kept in this folder (keyed by the prompts and the encoders' "
                        "fingerprints)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=cmd_encode_prompt)


def read_prompt(prompt: str | None, prompt_file: str | None) -> str | None:
    """The prompt from the positional/--prompt text or --prompt-file (not both)."""
    if prompt_file is None:
        return prompt
    if prompt is not None:
        raise CLIError("give the prompt or --prompt-file, not both")
    path = Path(prompt_file)
    if not path.is_file():
        raise CLIError(f"--prompt-file {path}: file not found")
    return path.read_text(encoding="utf-8").strip()


def cmd_encode_prompt(args: argparse.Namespace) -> int:
    from sana_wm.cli import check_output_folder
    from sana_wm.cli.generate import flag, show_option_warnings
    from sana_wm.pipeline import OptionError
    from sana_wm.pipeline.prompt_embeds import encode_prompt

    prompt = read_prompt(args.prompt, args.prompt_file)
    if prompt is None:
        raise CLIError('give a prompt: sana-wm encode-prompt "a quiet street at dusk" --model DIR --out p.safetensors')
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise CLIError(f"--out {out}: the states are written as safetensors, so the name must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out {out} exists; pass --overwrite to replace it")
    check_output_folder(out.parent, "--out")
    refiner = False if args.no_refiner else (args.refiner if args.refiner is not None else "auto")
    with show_option_warnings():
        try:
            embeds = encode_prompt(args.model, prompt, negative_prompt=args.negative_prompt, variant=args.variant,
                                   text_encoder=args.text_encoder, refiner=refiner,
                                   refiner_text_encoder=args.refiner_text_encoder, device=args.device,
                                   cache=args.prompt_cache, text_encoder_dtype=args.text_encoder_dtype)
        except OptionError as exc:
            raise CLIError(exc.render(flag)) from None
    embeds.save(out)
    parts = "stage 1 + refiner" if embeds.refiner is not None else "stage 1"
    print(f"wrote {out} ({parts} states; text encoder fingerprint {embeds.stage1_fingerprint})")
    return 0
