"""Validation loss of several checkpoints under several channel weightings, on the same clips with the same noise.

The trainer reports its validation loss in its own weighting (``objective.channel_weights``), so runs with
different weightings cannot be compared from their logs. This script loads each checkpoint into the trainer of
one config and evaluates the validation set with no channel weights and with the codec's weights at each power
(power 1 is the pixel MSE of the linear patch codec). Used for the session-8 table of
docs/models/sana-wm-synth.md:

    python scripts/val_loss_weightings.py --config runs/bundled/chain/leg4/train.yaml \
        --codec src/sana_wm/assets/sana-wm-synth/ltx2_causal_vae \
        src/sana_wm/assets/sana-wm-synth/sana_dit/model.pt \
        runs/bundled/chain/leg4/checkpoints/step-00000800/model.safetensors
"""

from __future__ import annotations

import argparse
import json
import tempfile

import yaml

from sana_wm.train.distributed import init_distributed
from sana_wm.train.loop import Trainer
from sana_wm.train.objective import channel_loss_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="model weights (model.safetensors, model.pt or a model folder)")
    p.add_argument("--config", required=True, help="training config whose data and validation set are used")
    p.add_argument("--codec", required=True, help="where the channel weights come from (objective.channel_weights)")
    p.add_argument("--powers", default="0.5,1", help="channel_weight_power values besides no weighting")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    raw = yaml.safe_load(open(args.config))
    raw["objective"].pop("channel_weights", None)
    env = init_distributed()
    powers = [float(x) for x in args.powers.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for ck in args.checkpoints:
            trainer = Trainer.for_weights(raw, ck, scratch, env)
            channels = trainer.model_config.in_channels
            row = {"checkpoint": ck, "plain": trainer.validate()}
            for power in powers:  # the same validation set (clips and noise), other weights
                trainer.channel_weight = channel_loss_weights(args.codec, power, channels).to(trainer.device)
                row[f"power {power:g}"] = trainer.validate()
            print(json.dumps(row), flush=True)
            results.append(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
