#!/usr/bin/env python
"""How much does the demo's image faithfulness depend on the LM's seed? (`make seed-spread`)

Trains the demo LM (recipes/builtin/lm.yaml, overrides with --lm.KEY VALUE) once per seed on a
finished demo's codes, then for each: chooses guidance × temperature on the validation family
(training wordings), scores the test families per wording family (canonical, seen templates,
held-out templates, no face name) with the demo's glyph judge, and continues the counting
prompts. The seed sets the LM's initialisation and its data order (and caption dropout); the
tokenizers, the codes and the judge are the demo's, fixed.

Output: DEMO/seed_spread/seed_K/{bundle, images.json, counting.json, likelihood.json} and
DEMO/seed_spread/summary.json (per seed, lowest, highest, spread), which the demo's report shows
when present. A finished seed is skipped on a rerun.

Usage: python recipes/builtin/seed_spread.py --demo runs/demo [--seeds 0 1 2] [--lm.lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def summarise(rows: list[dict]) -> dict:
    """Lowest, highest, median and spread of every figure over the seeds."""
    keys = sorted({k for r in rows for k in r["figures"]})
    out = {}
    for k in keys:
        values = [r["figures"][k] for r in rows if k in r["figures"]]
        out[k] = {"lowest": min(values), "highest": max(values),
                  "median": round(statistics.median(values), 4),
                  "spread": round(max(values) - min(values), 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    from lm.pipelines import SpeechContinuation
    from recipes.builtin.demo_generate import (
        continue_counting,
        glyph_classifier,
        speech_likelihood,
        tune_and_score_images,
    )
    from recipes.builtin.run_demo import native_bf16_defaults
    from recipes.common import cached_json, current_commit, split_overrides, train_lm_once

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", type=Path, default=Path("runs/demo"),
                   help="a finished demo run (its codes, data and glyph judge are used)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="LM seeds")
    p.add_argument("--lm-config", type=Path, default=HERE / "lm.yaml", help="LM config (YAML)")
    p.add_argument("--name", default="seed_spread",
                   help="folder under --demo for this comparison (a lever under test gets its "
                   "own name)")
    p.add_argument("--no-counting", action="store_true",
                   help="skip the counting continuations (images only)")
    p.add_argument("--no-images", action="store_true",
                   help="skip the image scores (e.g. for a speech-only LM)")
    args, extra = p.parse_known_args(argv)
    overrides = native_bf16_defaults(split_overrides(extra))["lm"]  # as the demo's LM
    demo = args.demo
    for need in ("codes/speech", "codes/image", "data/images", "glyph_classifier"):
        if not (demo / need).exists():
            raise SystemExit(f"{demo / need} is missing: run the demo first (make demo)")
    root = demo / args.name
    rows, clf = [], None
    for seed in args.seeds:
        folder = root / f"seed_{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        t = time.time()
        bundle = folder / "bundle"
        train_lm_once(bundle, args.lm_config, {**overrides, "seed": seed},
                      demo / "codes" / "speech", demo / "codes" / "image")
        train_s = round(time.time() - t, 1)
        figures, default = {}, None
        if not args.no_images:
            if clf is None:  # one judge for every seed (the tokenizers are the demo's)
                resolution = json.loads((bundle / "image_tokenizer" / "config.json")
                                        .read_text())["resolution"]
                clf, _ = glyph_classifier(demo / "data" / "images", demo / "glyph_classifier",
                                          resolution)
            images = cached_json(folder / "images.json", lambda b=bundle, f=folder, c=clf:
                                 tune_and_score_images(b, c, demo / "data" / "images", f))
            figures = {f"faithfulness_{k}": v["accuracy"]
                       for k, v in images["test_accuracy_by_wording"].items()}
            default = images["default"]
        if not args.no_counting:
            counting = cached_json(folder / "counting.json", lambda b=bundle, f=folder:
                                   continue_counting(b, demo / "data" / "speech",
                                                     demo / "counting_prompts", f / "counting"))
            nll = cached_json(folder / "likelihood.json", lambda b=bundle: speech_likelihood(
                SpeechContinuation.from_pretrained(b), demo / "codes" / "speech"))
            figures["counting_next_number"] = counting["next_number_share"]
            figures["nll_per_unit"] = nll["heldout_speech"]["nll_per_unit"]
            figures["unigram_nll_per_unit"] = nll["unigram_baseline"]["nll_per_unit"]
        rows.append({"seed": seed, "figures": figures, "default": default,
                     "train_seconds_this_run": train_s})
        print(json.dumps(rows[-1]), flush=True)
    summary = {"seeds": rows, "summary": summarise(rows), "overrides": overrides,
               "commit": current_commit(),
               "lm_config": str(args.lm_config)}
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
