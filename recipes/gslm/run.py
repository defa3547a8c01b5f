#!/usr/bin/env python
"""GSLM on LibriSpeech with HuBERT + k-means units: speech2unit, a unit LM, unit2speech.

The pipeline of Lakhotia et al. 2021 ("Generative Spoken Language Modeling from Raw Audio") as
the field runs it: units are the k-means clusters of a self-supervised model's layer (HuBERT
base layer 6, 100 units), deduplicated; a causal LM models them; a unit vocoder speaks them.
recipes/librispeech is the same with our own speech tokenizer instead of HuBERT + k-means.

Data:     LibriSpeech, as for recipes/librispeech (train-clean-100, dev-clean, test-clean from
          https://www.openslr.org/12, extracted into one folder), or a `datasets` copy saved
          with save_to_disk. The SSL model must be in the local Hugging Face cache first
          (`hf download facebook/hubert-base-ls960`; any HuBERT / wav2vec 2.0 / WavLM with
          --kmeans.features hf:NAME --kmeans.layer L, e.g. hf:facebook/hubert-large-ll60k
          layer 22, or TWIST's hf:slprl/mhubert-base-25hz layer 11 with 500 clusters).
Stages:   1. LibriSpeech → an audio folder (16 kHz mono FLAC + metadata.jsonl, OUT/data)
          2. fit k-means units on the SSL layer (kmeans.yaml)          → OUT/kmeans_tokenizer
          3. their figures on test-clean: codebook use, perplexity, bitrate
          4. train the unit vocoder (vocoder.yaml)             → OUT/kmeans_tokenizer/vocoder
          5. pre-tokenise every split into 50 Hz units (lm tokenize)   → OUT/codes/speech
          6. train the unit LM on deduplicated units (lm.yaml)         → OUT/bundle
          7. continue speech: the first --prompt-seconds of test-clean utterances → units → LM
             → unit vocoder (OUT/continuations/*.wav); the LM's NLL per unit on test-clean
Command:  python recipes/gslm/run.py --data /data/LibriSpeech --out runs/gslm
          quick look: add --max-samples 300 --vocoder.steps 500 --lm.steps 300
Result:   not measured here: no LibriSpeech and no pretrained HuBERT on this machine (no
          internet). GSLM reports, for HuBERT-100 units: PNMI ≈ 0.6 against phones on LibriSpeech
          and continuations that keep words for a few seconds; in OUT/results.json look for
          codebook usage near 100 %, the LM's test NLL per unit well below ln 100 = 4.6 nats,
          and continuations (OUT/continuations) that sound like speech.
Time:     not run here; sized for a GPU (the k-means fit reads train-clean-100 twice through
          HuBERT: about 15 min on one GPU). The smoke run in tests/test_recipes.py (a fake
          LibriSpeech tree, a tiny random HuBERT, two steps of each training) takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent
MODELS = ("kmeans", "vocoder", "lm")


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, layouts.LIBRISPEECH_HELP)
    layouts.add_librispeech_args(p)
    p.add_argument("--eval-utterances", type=int, default=200,
                   help="test utterances for the units' figures (default 200)")
    common.add_continuation_args(p)
    run = common.RecipeRun(p, argv, MODELS, stages=7)
    args, out = run.args, run.out
    units_cfg = common.model_configs("kmeans", args.kmeans_config, run.overrides["kmeans"])[0]
    common.model_configs("vocoder", args.vocoder_config, run.overrides["vocoder"])
    common.model_configs("lm", args.lm_config, run.overrides["lm"])

    with run.stage("LibriSpeech → audio folder"):
        data = out / "data"
        run.results["data"] = layouts.write_librispeech_folder(args, data, units_cfg.sample_rate)
    tok_dir = run.tokenizer("kmeans", data, "the test split", args.eval_utterances)
    with run.stage("training the unit vocoder"):
        common.train_vocoder_once(tok_dir, data, Path(args.vocoder_config),
                                  run.overrides["vocoder"])
    codes = run.lm("speech", data, tok_dir, "unit LM")
    run.continuation(data, codes)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
