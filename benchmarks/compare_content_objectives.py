#!/usr/bin/env python
"""The speech tokenizer with and without each content objective, at the demo's budget.

Trains the demo's speech tokenizer (recipes/builtin/speech_tokenizer.yaml: same steps, data,
seed, bf16 where the CPU has it) once per variant, two at a time on one thread each (as the
demo's branches run), then measures on the splits the demo uses:
  PNMI         on the training voices' held-out sentences (valid: what choices are made on)
               and on the held-out flite voice (test)
  agreement    share of frames whose unit survives 10 dB noise / reverb / the 8 kHz band, on
               the real voice's valid sentences (20) and held-out sentences (40)
  speaker      5-fold linear speaker-ID probe from unit histograms, on the valid voices
               (chance: the largest voice's share)
  WER          pocketsphinx's, of Griffin-Lim resynthesis (each utterance in its own voice) of
               30 held-out flite and 30 held-out real-voice utterances (the recordings' own
               WER beside them)
Variants already trained in OUT are reused. Prints a Markdown table; OUT/summary.json.

Usage: python benchmarks/compare_content_objectives.py --data runs/demo/data/speech \
           --out runs/content_objectives
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "recipes" / "builtin" / "speech_tokenizer.yaml"
OFF = {"phone_weight": 0, "ctc_weight": 0, "consistency_weight": 0, "noise_prob": 0,
       "reverb_prob": 0, "telephone_prob": 0}
AUGMENT = {"noise_prob": 0.3, "reverb_prob": 0.2, "telephone_prob": 0.2}
VARIANTS = {
    "none": OFF,
    "phone": {**OFF, "phone_weight": 1},
    "phone+ctc": {**OFF, "phone_weight": 1, "ctc_weight": 0.5},
    "consistency": {**OFF, "consistency_weight": 2, **AUGMENT},
    "all (demo)": {"phone_weight": 1, "ctc_weight": 0.5, "consistency_weight": 2, **AUGMENT},
}


def train(data: Path, out: Path, overrides: dict, extra: list[str]) -> None:
    if (out / "model.safetensors").exists():
        return
    args = [sys.executable, "-m", "speechtok.cli", "train", "speech", "--data", str(data),
            "--out", str(out), "--config", str(CONFIG)]
    for k, v in overrides.items():
        args += [f"--{k}", str(v)]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "w") as log:
        subprocess.run(args + extra, check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})


def measure(data: Path, folder: Path) -> dict:
    import torch

    from speechtok.speech import SpeechTokenizer
    from speechtok.speech.data import AudioSource, open_eval_source
    from speechtok.speech.evaluate import evaluate_speech, evaluate_unit_agreement
    from speechtok.speech.speaker_probe import speaker_probe

    torch.set_num_threads(1)
    tok = SpeechTokenizer.from_pretrained(str(folder)).eval()
    valid = open_eval_source(data, tok.sample_rate, "valid")
    flite_valid = AudioSource([i for i in valid.items if i.meta.get("phones")], tok.sample_rate)
    real_valid = AudioSource([i for i in valid.items if not i.meta.get("phones")],
                             tok.sample_rate)
    test = open_eval_source(data, tok.sample_rate, "test")
    real_test = open_eval_source(data, tok.sample_rate, "test_real")
    row = {"pnmi_valid": evaluate_speech(tok, flite_valid)["pnmi"]}
    test_eval = evaluate_speech(tok, test)
    row.update(pnmi_test=test_eval["pnmi"], codebook_usage=test_eval["codebook_usage"])
    for name, source, n in (("valid", real_valid, 20), ("test", real_test, 40)):
        for k, v in evaluate_unit_agreement(tok, source, n).items():
            row[f"{k.removeprefix('unit_agreement_')}_{name}"] = v
    probe = speaker_probe(tok, valid)
    row.update(speaker_probe=probe["speaker_probe_histogram"],
               speaker_chance=probe["speaker_probe_chance"])
    from recipes.common import resynthesis_scores

    for name, source in (("flite", test), ("real", real_test)):
        scores = resynthesis_scores(tok, source, 30, folder / "resynthesis" / name)
        row[f"wer_{name}"] = scores["griffin_lim"]["wer"]
        row[f"wer_{name}_original"] = scores["original"]["wer"]
    history = json.loads((folder / "train_history.json").read_text())
    row["train_seconds"] = history[-1]["seconds"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the demo's speech corpus (runs/demo/data/"
                   "speech)")
    p.add_argument("--out", default="runs/content_objectives", help="one folder per variant")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS),
                   help="which variants (default: all)")
    p.add_argument("--parallel", type=int, default=2, help="trainings at a time (one thread "
                   "each)")
    args, extra = p.parse_known_args(argv)
    from speechtok.training.accelerator import cpu_has_native_bf16

    if cpu_has_native_bf16() and "--mixed_precision" not in extra:
        extra += ["--mixed_precision", "bf16"]  # as the demo trains it on such a CPU
    data, out = Path(args.data), Path(args.out)
    folders = {v: out / v.split()[0] for v in args.variants}
    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(lambda v: train(data, folders[v], VARIANTS[v], extra), args.variants))
    import multiprocessing

    with ProcessPoolExecutor(args.parallel, mp_context=multiprocessing.get_context("spawn")
                             ) as pool:
        rows = dict(zip(args.variants, pool.map(measure, [data] * len(args.variants),
                                                [folders[v] for v in args.variants]),
                        strict=True))
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    cols = ["pnmi_valid", "pnmi_test", "noise_10db_valid", "reverb_valid", "band_8khz_valid",
            "noise_10db_test", "reverb_test", "band_8khz_test", "speaker_probe", "wer_flite",
            "wer_real", "codebook_usage", "train_seconds"]
    print("| variant | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for v, r in rows.items():
        print(f"| {v} | " + " | ".join(str(r[c]) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
