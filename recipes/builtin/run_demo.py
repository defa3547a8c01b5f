#!/usr/bin/env python
"""The built-in demo (`make demo`): everything offline, on the CPU, from nothing.

Data:     flite's English voices synthesise the speech corpus (make_speech_corpus.py; the voice
          `rms` and 300 sentences are held out); the installed fonts render captioned letters
          and digits (make_image_corpus.py; whole font families are held out).
Stages:   1. corpora  2. train the speech tokenizer  3. evaluate it on the held-out voice
          4. resynthesise held-out utterances and score their intelligibility with pocketsphinx
          5. train the image tokenizer  6. evaluate it on the held-out fonts, reconstruction grid
          7. pre-tokenise both corpora and train the LM on speech units and caption → image
             pairs; the bundle (LM + tokenizer + both tokenizers) goes to runs/demo/bundle
          8. generate: tune guidance × temperature on validation captions (scored by a glyph
             classifier trained on real images), make the best the bundle's default, score it
             on the test captions, draw a grid; continue two held-out speech prompts and
             transcribe them; the LM's per-unit NLL on held-out speech
Command:  make demo        (or: python recipes/builtin/run_demo.py --out runs/demo)
          Overrides go to one model by prefix: --speech.steps 100 --image.steps 100 --lm.steps 50
Result:   see README.md ("Measured") for the figures and times on 2 CPU cores.

Each stage is skipped when its output already exists, so a rerun is fast; a killed training
stage resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from a checkout without installing

from speechtok.audio_data import open_eval_source  # noqa: E402
from speechtok.audio_io import load_audio, save_audio  # noqa: E402
from speechtok.config_io import build_configs, parse_overrides  # noqa: E402
from speechtok.evaluate import evaluate_speech  # noqa: E402
from speechtok.image import ImageTokenizer, ImageTokenizerConfig  # noqa: E402
from speechtok.image_data import open_image_eval_source  # noqa: E402
from speechtok.image_evaluate import evaluate_image, save_reconstruction_grid  # noqa: E402
from speechtok.model_card import write_model_card  # noqa: E402
from speechtok.speech import SpeechTokenizer, SpeechTokenizerConfig  # noqa: E402
from speechtok.train import SpeechTrainConfig, train_speech  # noqa: E402
from speechtok.train_image import ImageTrainConfig, train_image  # noqa: E402


def stage(name: str):
    print(f"\n=== {name} ===", flush=True)
    return time.time()


def make_corpus(out: Path, script: str, *args: str) -> Path:
    if (out / "corpus.json").exists():
        print(f"corpus exists: {out}")
        return out
    subprocess.run([sys.executable, str(HERE / script), "--out", str(out), *args], check=True)
    return out


def split_overrides(tokens: list[str]) -> dict[str, dict[str, str]]:
    """`--speech.steps 10 --image.lr=1e-3` → {"speech": {"steps": "10"}, "image": {...}}."""
    out: dict[str, dict[str, str]] = {"speech": {}, "image": {}, "lm": {}}
    for key, value in parse_overrides(tokens).items():
        prefix, _, name = key.partition(".")
        if prefix not in out or not name:
            raise SystemExit(f"override --{key}: say which model, e.g. --speech.{key}, "
                             f"--image.{key} or --lm.{key}")
        out[prefix][name] = value
    return out


def train_tokenizer(kind: str, data: Path, tok_dir: Path, config: Path,
                    overrides: dict[str, str]) -> Path:
    if (tok_dir / "model.safetensors").exists():
        print(f"{kind} tokenizer exists: {tok_dir}")
        return tok_dir
    if kind == "speech":
        classes, train = [SpeechTokenizerConfig, SpeechTrainConfig], train_speech
    else:
        classes, train = [ImageTokenizerConfig, ImageTrainConfig], train_image
    model_cfg, train_cfg = build_configs(classes, config, overrides)
    train(data, tok_dir, model_cfg, train_cfg, resume=True)
    return tok_dir


def cached_json(path: Path, compute) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def resynthesise(tok: SpeechTokenizer, split: Path, out_dir: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in (split / "metadata.jsonl").read_text().splitlines()][:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:
        target = out_dir / row["file"]
        if not target.exists():
            units = tok.encode(load_audio(split / row["file"], tok.sample_rate)[None])
            save_audio(target, tok.decode(units)[0], tok.sample_rate)
    return rows


def generation_report(images: dict, clf: dict, speech: dict, folder: str) -> list[str]:
    lines = ["", "## Generation", "",
             "Images for held-out captions, judged by a glyph classifier trained on real "
             f"training glyphs (its accuracy on the {clf['real_test_images']} real test glyphs: "
             f"**{clf['real_test_accuracy']:.3f}**). Sweep on the "
             f"{images['valid_captions']} validation captions (one image each, seed 0):", "",
             "| guidance | temperature | valid accuracy | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['guidance_scale']} | {r['temperature'] or 'greedy'} | "
              f"{r['valid_accuracy']:.3f} | {r['seconds']} |" for r in images["sweep_on_valid"]]
    d = images["default"]
    lines += ["", f"Bundle default (best on valid): guidance {d['guidance_scale']}, temperature "
              f"{d['temperature'] or 'greedy'}. **Accuracy on the {images['test_captions']} test "
              f"captions (held-out font families): {images['test_accuracy_at_default']:.3f}**.",
              "", f"A row per character, one held-out face per column: "
              f"![generated]({folder}/{images['grid']})", "",
              f"Speech: prompts cut to {speech['prompt_seconds']} s from held-out utterances "
              f"(voice never trained on), continued for at most {speech['max_seconds']} s. "
              "What pocketsphinx recognises:", "",
              "| source text | prompt | prompt + continuation | continuation alone |",
              "|---|---|---|---|"]
    for p in speech["prompts"]:
        r = p["recognised"]
        lines.append(f"| {p['source_text']} | {r['prompt']} | {r['output']} | "
                     f"{r['continuation']} |")
    nll = speech["heldout_speech"]
    lines += ["", f"Files: {', '.join(p['output'] for p in speech['prompts'])} in `{folder}/`. "
              f"LM per-unit NLL on {nll['utterances']} held-out utterances ({nll['units']} "
              f"deduplicated units): {nll['nll_per_unit']:.3f} nats "
              f"({nll['bits_per_unit']:.3f} bits)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--speech-config", default=str(HERE / "speech_tokenizer.yaml"),
                   help="speech tokenizer + training config (YAML)")
    p.add_argument("--image-config", default=str(HERE / "image_tokenizer.yaml"),
                   help="image tokenizer + training config (YAML)")
    p.add_argument("--num-utterances", type=int, default=3000, help="speech corpus size")
    p.add_argument("--wer-utterances", type=int, default=100,
                   help="held-out utterances to resynthesise and score")
    p.add_argument("--image-size", type=int, default=32, help="glyph image side in pixels")
    p.add_argument("--lm-config", default=str(HERE / "lm.yaml"), help="LM config (YAML)")
    args, extra = p.parse_known_args(argv)
    overrides = split_overrides(extra)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    timings = {}

    t = stage("1/8 corpora: speech from flite voices, captioned glyph images from fonts")
    speech_data = make_corpus(out / "data" / "speech", "make_speech_corpus.py",
                              "--num-utterances", str(args.num_utterances))
    image_data = make_corpus(out / "data" / "images", "make_image_corpus.py",
                             "--size", str(args.image_size))
    timings["corpora"] = time.time() - t

    t = stage("2/8 training the speech tokenizer")
    tok_dir = train_tokenizer("speech", speech_data, out / "speech_tokenizer",
                              Path(args.speech_config), overrides["speech"])
    timings["train speech"] = time.time() - t

    t = stage("3/8 evaluating the speech tokenizer on the held-out voice")
    tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
    metrics = cached_json(tok_dir / "eval_test.json", lambda: evaluate_speech(
        tok, open_eval_source(speech_data, tok.sample_rate, "test"), progress=True))
    print(json.dumps(metrics, indent=2))
    timings["eval speech"] = time.time() - t

    t = stage("4/8 resynthesis and intelligibility (pocketsphinx WER)")
    from speechtok.wer import transcribe, word_error_rate

    def score_resynthesis() -> dict:
        rows = resynthesise(tok, speech_data / "test", out / "resynthesis", args.wer_utterances)
        refs = [r["text"] for r in rows]
        hyp_resyn = transcribe([out / "resynthesis" / r["file"] for r in rows], jobs=2)
        hyp_orig = transcribe([speech_data / "test" / r["file"] for r in rows], jobs=2)
        return {
            "utterances": len(rows),
            "wer_resynthesised": word_error_rate(refs, hyp_resyn),
            "wer_original": word_error_rate(refs, hyp_orig),
            "examples": [{"text": r, "original": o, "resynthesised": h}
                         for r, o, h in list(zip(refs, hyp_orig, hyp_resyn, strict=True))[:10]],
        }

    wer = cached_json(out / "resynthesis" / "wer.json", score_resynthesis)
    print(json.dumps({k: v for k, v in wer.items() if k != "examples"}, indent=2))
    timings["wer"] = time.time() - t
    speech_summary = {**metrics, "wer_resynthesised": wer["wer_resynthesised"],
                      "wer_original": wer["wer_original"]}
    write_model_card(tok_dir, tok.config.to_dict(), speech_summary)

    t = stage("5/8 training the image tokenizer")
    img_dir = train_tokenizer("image", image_data, out / "image_tokenizer",
                              Path(args.image_config), overrides["image"])
    timings["train image"] = time.time() - t

    t = stage("6/8 evaluating the image tokenizer on the held-out fonts")
    img_tok = ImageTokenizer.from_pretrained(str(img_dir)).eval()
    test_images = open_image_eval_source(image_data, img_tok.config.resolution, "test")
    image_metrics = cached_json(img_dir / "eval_test.json", lambda: evaluate_image(
        img_tok, test_images, progress=True))
    grid = save_reconstruction_grid(img_tok, test_images, out / "image_reconstructions.png")
    print(json.dumps(image_metrics, indent=2))
    write_model_card(img_dir, img_tok.config.to_dict(), image_metrics)
    timings["eval image"] = time.time() - t

    t = stage("7/8 pre-tokenising the corpora and training the LM")
    from lm.model import LMConfig
    from lm.pretokenize import pretokenize
    from lm.train import LMTrainConfig, train_lm

    codes = out / "codes"
    for kind, data, tok_path in (("speech", speech_data, tok_dir), ("image", image_data, img_dir)):
        if not (codes / kind / "pretokenized.json").exists():
            print(json.dumps(pretokenize(kind, data, tok_path, codes / kind)))
    bundle = out / "bundle"
    if not (bundle / "model.safetensors").exists():
        lm_cfg, lm_train_cfg = build_configs(
            [LMConfig, LMTrainConfig], Path(args.lm_config),
            {"speech_codes": str(codes / "speech"), "image_codes": str(codes / "image"),
             **overrides["lm"]})
        train_lm(bundle, lm_cfg, lm_train_cfg, resume=True)
    lm_eval = {k[len("eval/"):]: v for k, v in
               json.loads((bundle / "train_history.json").read_text())[-1].items()
               if k.startswith("eval/")}
    print("LM validation, per modality:", json.dumps(lm_eval, indent=2))
    timings["lm"] = time.time() - t

    t = stage("8/8 generation: images for held-out captions, continuations of held-out speech")
    from demo_generate import continue_speech, glyph_classifier, tune_and_score_images

    gen_dir = out / "generation"
    gen_dir.mkdir(exist_ok=True)
    clf, clf_metrics = glyph_classifier(image_data, out / "glyph_classifier",
                                        img_tok.config.resolution)
    print(json.dumps(clf_metrics))
    images_gen = cached_json(gen_dir / "images.json", lambda: tune_and_score_images(
        bundle, clf, image_data, gen_dir))
    print(json.dumps({k: v for k, v in images_gen.items()
                      if k not in ("sweep_on_valid", "grid_captions")}, indent=2))
    speech_gen = cached_json(gen_dir / "speech.json", lambda: continue_speech(
        bundle, speech_data, codes / "speech", gen_dir))
    print(json.dumps(speech_gen, indent=2))
    timings["generate"] = time.time() - t

    corpus = json.loads((image_data / "corpus.json").read_text())
    report = out / "report.md"
    lines = ["# Demo report", "", "## Speech tokenizer", "",
             "On the held-out voice (`rms`, unseen sentences).", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in speech_summary.items()
              if isinstance(v, (int, float))]
    lines += ["", "Resynthesised examples (reference / recognised from original / from "
              "resynthesis):", ""]
    lines += [f"- {e['text']} / {e['original']} / {e['resynthesised']}" for e in wer["examples"]]
    lines += ["", "## Image tokenizer", "",
              f"On {image_metrics['items']} glyphs of held-out font faces never trained on "
              f"({', '.join(corpus['faces']['test'])}).", "",
              "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in image_metrics.items()
              if isinstance(v, (int, float))]
    lines += ["", f"Originals (odd rows) and reconstructions (even rows): "
              f"![reconstructions]({grid.name})", ""]
    lines += ["", "## Multimodal LM", "",
              f"Bundle: `{bundle.name}/` (LM + tokenizer + both tokenizers). Validation loss per "
              "modality (nats per token; bits = nats / ln 2):", "",
              "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in lm_eval.items()]
    lines += generation_report(images_gen, clf_metrics, speech_gen, gen_dir.name)
    lines += ["", "Stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    report.write_text("\n".join(lines) + "\n")
    print(f"\ndemo finished in {time.time() - t_all:.0f} s; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
