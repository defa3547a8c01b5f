#!/usr/bin/env python
"""LibriSpeech: a speech tokenizer, a unit LM on its deduplicated units, speech continuation.

The GSLM recipe (Lakhotia et al. 2021, "Generative Spoken Language Modeling from Raw Audio"):
speech → discrete units → a causal LM over deduplicated units → continue a spoken prompt →
speech again. Here the units come from our own speech tokenizer instead of HuBERT + k-means.

Data:     LibriSpeech (Panayotov et al. 2015): 16 kHz read English audiobooks, from
          https://www.openslr.org/12 : train-clean-100.tar.gz (6.3 GB, 100 h), dev-clean.tar.gz
          and test-clean.tar.gz; extract them into one folder (they unpack to
          LibriSpeech/<subset>/<speaker>/<chapter>/*.flac + *.trans.txt). Or a `datasets` copy
          saved with save_to_disk (an "audio" column), or the Hub name openslr/librispeech_asr
          with --hub-config clean (needs internet; downloads every split of that config).
Stages:   1. LibriSpeech → an audio folder: train = --train-subsets, valid = dev-clean,
             test = test-clean, 16 kHz mono FLAC + metadata.jsonl (OUT/data)
          2. train the speech tokenizer (speech_tokenizer.yaml)      → OUT/speech_tokenizer
          3. evaluate it on test-clean: codebook use, perplexity, bitrate, spectral distance
          4. pre-tokenise every split into 50 Hz units (lm tokenize)   → OUT/codes/speech
          5. train the unit LM on deduplicated units (lm.yaml)         → OUT/bundle
          6. continue speech: the first --prompt-seconds of test-clean utterances → units → LM
             → speech (OUT/continuations/*.wav); the LM's NLL per unit on test-clean; what
             pocketsphinx hears in the continuations, when it is installed
Command:  python recipes/librispeech/run.py --data /data/LibriSpeech --out runs/librispeech
          quick look: add --max-samples 300 --speech.steps 300 --lm.steps 300
Result:   not measured here: there is no LibriSpeech on this machine (no internet). In
          OUT/results.json look for: codebook usage near 100 % and a perplexity that is a large
          share of K (256); the LM's test NLL per unit clearly below ln K = 5.55 nats (the
          uniform guess; the built-in demo's small LM reached 2.68 on its synthetic voices);
          continuations (OUT/continuations) that keep the prompt's voice and sound like speech.
Time:     not run here; the configs are sized for a GPU, not for this machine's 2 CPU cores.
          The two-step smoke run in tests/test_recipes.py (a fake LibriSpeech tree, tiny
          models) takes about 15 s here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent

MODELS = ("speech", "lm")


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, layouts.LIBRISPEECH_HELP)
    layouts.add_librispeech_args(p)
    p.add_argument("--eval-utterances", type=int, default=200,
                   help="test utterances for the tokenizer's figures (default 200)")
    common.add_continuation_args(p)
    run = common.RecipeRun(p, argv, MODELS, stages=6)
    args, out = run.args, run.out
    speech_cfg = common.model_configs("speech", args.speech_config, run.overrides["speech"])[0]
    common.model_configs("lm", args.lm_config, run.overrides["lm"])

    with run.stage("LibriSpeech → audio folder"):
        data = out / "data"
        run.results["data"] = layouts.write_librispeech_folder(args, data, speech_cfg.sample_rate)
    tok_dir = run.tokenizer("speech", data, "the test split", args.eval_utterances)
    codes = run.lm("speech", data, tok_dir, "unit LM")
    run.continuation(data, codes)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
