#!/usr/bin/env python
"""The built-in demo (`make demo`): everything offline, on the CPU, from nothing.

Data:     flite's English voices synthesise the speech corpus (make_speech_corpus.py; the voice
          `rms` and 300 sentences are held out), mixed with 483 recorded prompts of a real
          voice shipped in data/real_speech_en_female (its sentences split into train, valid
          and test_real); the installed fonts render captioned letters and digits
          (make_image_corpus.py; whole font families are held out).
Stages:   speech branch: 1. speech corpus  2. train the speech tokenizer  3. evaluate it on the
            held-out flite voice and the real voice's held-out sentences, with unit agreement
            under noise, reverberation and the 8 kHz band, and a speaker-ID probe
            4. speech codes  5. (with --learned-decoder, as in make demo-full) train the
            learned decoder (Vocos) on the frozen tokenizer  6. resynthesise held-out
            utterances of both voices with Griffin-Lim (and the learned decoder):
            pocketsphinx WER, STOI, ESTOI, PESQ, MCD
          image branch: 7. glyph corpus  8. train the image tokenizer  9. evaluate it on the
            held-out fonts, reconstruction grid  10. image codes  11. the glyph classifier that
            judges generated images (trained on real training glyphs)
          The two branches share nothing, so they run side by side, one CPU thread each: these
          small convolutional models gain little from a second thread. The LM (12) needs only
          the two code sets: it starts as soon as stages 4 and 10 are done, in this process
          with every thread, while stages 5, 6 and 11 finish beside it at the lowest priority;
          the LM's steps decide whether the captions are followed, so it gets the time.
          12. train the LM on speech units and caption → image pairs; the bundle (LM +
              tokenizer + both tokenizers) goes to runs/demo/bundle
          13. generate: tune guidance × temperature on validation captions, make the best the
              bundle's default, score it on the test captions in each wording family (corpus
              templates, held-out templates, no face name), draw a grid; continue 20 counting
              prompts of the held-out voice (sampling chosen on validation prompts) and score
              whether the next number is heard; continue two held-out speech prompts and
              transcribe them; the LM's NLL on held-out speech beside a unigram baseline;
              the spoken-LM benchmark's flite analogs (right vs wrong next number, word vs
              non-word, sentence vs shuffled) in the held-out voice
          14. the upload round trip: the files `lm push` would upload, loaded from a fresh
              folder, generate the same images and speech for a fixed seed
          15. the report: runs/demo/report.md and report.html (loss curves, codebook use,
              reconstructions, spectrograms, generated images, every metric)
Command:  make demo        (or: python recipes/builtin/run_demo.py --out runs/demo)
          Overrides go to one model by prefix: --speech.steps 100 --vocoder.steps 100
          --image.steps 100 --lm.steps 50. On a CPU with native bf16 (AVX512-BF16, AMX) the
          tokenizers and the LM train in bf16 (--speech.mixed_precision no,
          --image.mixed_precision no and --lm.mixed_precision no keep fp32).
Result:   runs/demo/report.md (and .html) with every stage's figures, plots, audio and images;
          the figures and the time measured on a fresh clone are in docs/RESULTS.md.

Each stage is skipped when its output already exists, so a rerun is fast; a killed training
stage resumes from its last checkpoint. A failing stage is named, with its error and log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from recipes.common import (
    StageFailed,
    Timer,
    cached_json,
    current_commit,
    evaluate_image_tokenizer,
    pretokenize_once,
    resynthesis_scores,
    split_overrides,
    train_lm_once,
    train_tokenizer,
    train_vocoder_once,
)
from speechtok.hub.model_card import write_model_card
from speechtok.speech import SpeechTokenizer
from speechtok.speech.data import open_eval_source
from speechtok.speech.evaluate import evaluate_speech, evaluate_unit_agreement
from speechtok.speech.speaker_probe import speaker_probe
from speechtok.training.accelerator import cpu_has_native_bf16

HERE = Path(__file__).resolve().parent


def native_bf16_defaults(overrides: dict[str, dict]) -> dict[str, dict]:
    """On a CPU with native bf16 the speech and image tokenizers and the LM train in bf16
    unless told otherwise: bf16 autocast trains the speech tokenizer 1.34× faster there, the LM
    1.25× and the image tokenizer 1.38× (one thread), with figures within seed noise
    (docs/RESULTS.md, bf16 against fp32; docs/EXPERIMENTS.md)."""
    if cpu_has_native_bf16() and not torch.cuda.is_available():
        for model in ("speech", "image", "lm"):
            overrides.setdefault(model, {}).setdefault("mixed_precision", "bf16")
    return overrides


def make_corpus(out: Path, script: str, *args: str) -> Path:
    if (out / "corpus.json").exists():
        print(f"corpus exists: {out}")
        return out
    subprocess.run([sys.executable, str(HERE / script), "--out", str(out), *args], check=True)
    return out


CODES_FILE = "pretokenized.json"  # written last by `lm tokenize`: the code set is complete


def speech_branch(out: Path, args: argparse.Namespace, overrides: dict) -> dict:
    """Stages 1-6: speech corpus, tokenizer, its evaluation, speech codes (what the LM waits
    for), then the learned decoder and the resynthesis scores on both held-out voices, which
    run beside the LM. `overrides`: {"speech": ..., "vocoder": ...}."""
    timer = Timer(name_failures=True)
    with timer("1 speech corpus: flite voices with phone alignments + the real voice"):
        data = make_corpus(out / "data" / "speech", "make_speech_corpus.py",
                           "--num-utterances", str(args.num_utterances))
    with timer("2 training the speech tokenizer"):
        tok_dir = train_tokenizer("speech", data, out / "speech_tokenizer",
                                  Path(args.speech_config), overrides["speech"])
    with timer("3 evaluating the speech tokenizer on the held-out voices"):
        tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
        metrics = cached_json(tok_dir / "eval_test.json", lambda: evaluate_speech(
            tok, open_eval_source(data, tok.sample_rate, "test"), progress=True))
        real = open_eval_source(data, tok.sample_rate, "test_real")
        real_metrics = cached_json(tok_dir / "eval_test_real.json", lambda: {
            **evaluate_speech(tok, real, progress=True),
            **evaluate_unit_agreement(tok, real, args.agreement_utterances, progress=True)})
        # the training voices' held-out sentences: several voices, none of them trained on
        speaker = cached_json(tok_dir / "speaker_probe.json", lambda: speaker_probe(
            tok, open_eval_source(data, tok.sample_rate, "valid"), progress=True))
        print(json.dumps({"flite held-out voice": metrics, "real voice": real_metrics,
                          "speaker probe (valid voices)": speaker}, indent=2))
    with timer("4 speech codes (pre-tokenising the speech corpus)"):
        pretokenize_once("speech", data, tok_dir, out / "codes" / "speech")
    yield_to_the_lm()
    if args.learned_decoder:
        with timer("5 training the learned decoder (Vocos) on the frozen tokenizer"):
            train_vocoder_once(tok_dir, data, Path(args.vocoder_config), overrides["vocoder"])
    else:
        print("no learned decoder (--learned-decoder, or make demo-full, trains one): "
              "Griffin-Lim decodes")
    with timer("6 resynthesis: WER, STOI, PESQ, MCD with Griffin-Lim (and the learned "
               "decoder)"):
        tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()  # now with its decoder
        scores = {}
        for split, n in (("test", args.wer_utterances), ("test_real", args.wer_utterances_real)):
            scores[split] = cached_json(out / "resynthesis" / split / "scores.json", lambda
                                        split=split, n=n: resynthesis_scores(
                tok, open_eval_source(data, tok.sample_rate, split), n,
                out / "resynthesis" / split))
            print(split, json.dumps({k: v for k, v in scores[split].items()
                                     if k != "examples"}, indent=2))
        write_model_card(tok_dir, tok.config.to_dict(), {
            **metrics, **{f"real_voice_{k}": v for k, v in real_metrics.items()},
            **{f"{split}_{decoder}_{k}": v for split, r in scores.items()
               for decoder in ("original", "griffin_lim", "learned") if decoder in r
               for k, v in r[decoder].items() if k in ("wer", "stoi", "pesq_wb")}})
    return timer.seconds


def image_branch(out: Path, args: argparse.Namespace, overrides: dict) -> dict:
    """Stages 7-11: glyph corpus, image tokenizer, its evaluation, image codes (what the LM
    waits for), then the judge of generated images, which trains beside the LM."""
    from recipes.builtin.demo_generate import glyph_classifier

    timer = Timer(name_failures=True)
    with timer("7 glyph corpus: captioned letters and digits in every installed font"):
        data = make_corpus(out / "data" / "images", "make_image_corpus.py",
                           "--size", str(args.image_size))
    with timer("8 training the image tokenizer"):
        img_dir = train_tokenizer("image", data, out / "image_tokenizer",
                                  Path(args.image_config), overrides)
    with timer("9 evaluating the image tokenizer on the held-out fonts"):
        evaluate_image_tokenizer(img_dir, data, out / "image_reconstructions.png")
    with timer("10 image codes (pre-tokenising the glyph corpus)"):
        pretokenize_once("image", data, img_dir, out / "codes" / "image")
    yield_to_the_lm()
    with timer("11 the glyph classifier (judge of generated images)"):
        resolution = json.loads((img_dir / "config.json").read_text())["resolution"]
        glyph_classifier(data, out / "glyph_classifier", resolution, args.classifier_epochs)
    return timer.seconds


_IN_BRANCH_PROCESS = False


def yield_to_the_lm() -> None:
    """After its codes, a branch's stages are not what the LM waits for: in a branch process
    they drop to the lowest priority and take the cycles the LM's two threads leave (in a
    2-core test the LM kept 0.9× its speed beside such a process and 0.48× beside one at
    normal priority: OpenMP threads that share a core wait on each other)."""
    if _IN_BRANCH_PROCESS and hasattr(os, "nice"):
        os.nice(19)


def _branch_in_child(fn, log: str, *fn_args):
    """A branch in its own process: one torch thread, every line of output into its log."""
    import torch

    global _IN_BRANCH_PROCESS
    _IN_BRANCH_PROCESS = True
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)  # subprocesses (flite, pocketsphinx) inherit these
    os.dup2(fd, 2)
    sys.stdout.reconfigure(line_buffering=True)
    return fn(*fn_args)


def last_line(log: Path) -> str:
    if not log.exists():
        return ""
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - 4096))
        tail = f.read().decode("utf-8", "replace")
    lines = [ln.strip() for ln in re.split(r"[\r\n]", tail) if ln.strip()]
    return lines[-1][:120] if lines else ""


def codes_ready(out: Path) -> bool:
    return all((out / "codes" / kind / CODES_FILE).exists() for kind in ("speech", "image"))


def run_branches(out: Path, args: argparse.Namespace, overrides: dict, train_lm) -> dict:
    """The speech and image branches side by side in two processes (logs under OUT/logs, the
    latest line of each shown every 20 s), and `train_lm()` (stage 12) in this process as soon
    as both code sets exist: the branches' last stages (learned decoder, resynthesis scores,
    judge) need no LM, so they run beside it instead of before it. With --no-parallel: one
    after the other, then the LM."""
    branches = {"speech": (speech_branch, {k: overrides[k] for k in ("speech", "vocoder")}),
                "image": (image_branch, overrides["image"])}
    if not args.parallel:
        timings = {}
        for fn, over in branches.values():
            timings.update(fn(out, args, over))
        return {**timings, **train_lm()}
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, wait

    logs = {name: out / "logs" / f"{name}_branch.log" for name in branches}
    logs["speech"].parent.mkdir(parents=True, exist_ok=True)
    print(f"speech and image branches run side by side; logs: {logs['speech']}, "
          f"{logs['image']}", flush=True)
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        futures = {name: pool.submit(_branch_in_child, fn, str(logs[name]), out, args, over)
                   for name, (fn, over) in branches.items()}
        shown, last_shown = dict.fromkeys(branches, ""), 0.0

        def watch(until) -> None:
            """Show the branches' progress until `until()` or both branches end."""
            nonlocal last_shown
            pending = set(futures.values())
            while pending and not until():
                _, pending = wait(pending, timeout=2)
                if time.time() - last_shown < 20 and pending:
                    continue
                last_shown = time.time()
                for name in branches:
                    line = last_line(logs[name])
                    if line != shown[name]:
                        print(f"[{name}] {line}", flush=True)
                        shown[name] = line

        watch(lambda: codes_ready(out))
        lm_timings = train_lm() if codes_ready(out) else {}  # else a branch failed: below
        if any(not f.done() for f in futures.values()):
            print("waiting for the branches' last stages (logs above)", flush=True)
        watch(lambda: False)
        timings, failures = {}, []
        for name, future in futures.items():
            try:
                timings.update(future.result())
            except Exception as err:
                failures.append(f"{name} branch: {err} (log: {logs[name]})")
        if failures:
            raise StageFailed("; ".join(failures))
    return {**timings, **lm_timings}


def refresh_bundle_tokenizers(out: Path) -> None:
    """The LM copied the tokenizers into the bundle when it finished, which may be before the
    speech branch added the learned decoder and the model card's resynthesis figures: copy
    them again now that every branch is done."""
    bundle = out / "bundle"
    for name in ("speech_tokenizer", "image_tokenizer"):
        if (bundle / name).is_dir():
            shutil.copytree(out / name, bundle / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("checkpoints", ".run.lock"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--speech-config", default=str(HERE / "speech_tokenizer.yaml"),
                   help="speech tokenizer + training config (YAML)")
    p.add_argument("--image-config", default=str(HERE / "image_tokenizer.yaml"),
                   help="image tokenizer + training config (YAML)")
    p.add_argument("--num-utterances", type=int, default=2500, help="speech corpus size")
    p.add_argument("--vocoder-config", default=str(HERE / "vocoder.yaml"),
                   help="learned decoder + training config (YAML)")
    p.add_argument("--learned-decoder", action=argparse.BooleanOptionalAction, default=False,
                   help="train the learned decoder (Vocos) on the speech units and score it "
                   "beside Griffin-Lim (make demo-full does). Off by default: in the demo's "
                   "budget it transcribed worse than Griffin-Lim (WER 0.58 vs 0.41 on the "
                   "held-out flite voice) and its 2 minutes go to the LM")
    p.add_argument("--wer-utterances", type=int, default=30,
                   help="utterances of the held-out flite voice to resynthesise and score")
    p.add_argument("--wer-utterances-real", type=int, default=60,
                   help="utterances of the real voice's held-out sentences to resynthesise and "
                   "score (of about 80)")
    p.add_argument("--agreement-utterances", type=int, default=40,
                   help="utterances of the real voice on which unit agreement under noise, "
                   "reverberation and the 8 kHz band is measured")
    p.add_argument("--image-size", type=int, default=32, help="glyph image side in pixels")
    p.add_argument("--classifier-epochs", type=int, default=2,
                   help="epochs of the glyph classifier that judges generated images")
    p.add_argument("--lm-config", default=str(HERE / "lm.yaml"), help="LM config (YAML)")
    p.add_argument("--parallel", action=argparse.BooleanOptionalAction,
                   default=(os.cpu_count() or 1) >= 2,
                   help="run the speech and image branches side by side (default: when there "
                   "are 2+ CPUs); --no-parallel runs them one after the other")
    args, extra = p.parse_known_args(argv)
    overrides = split_overrides(extra)
    native_bf16_defaults(overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    try:
        timings = run_branches(out, args, overrides,
                               lambda: train_demo_lm(out, args, overrides["lm"]))
        refresh_bundle_tokenizers(out)
        timings.update(generation(out, args))
    except StageFailed as err:
        print(f"\ndemo failed: {err}\nFix the cause and rerun the same command: finished "
              "stages are skipped.", file=sys.stderr)
        return 1
    timings["total"] = round(time.time() - t_all, 1)
    (out / "run_info.json").write_text(json.dumps({"commit": current_commit()}))
    # every run's stage times, oldest first: a rerun skips finished stages, so its times alone
    # would hide what the first run cost
    runs = json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() \
        else []
    (out / "timings.json").write_text(json.dumps(runs + [timings], indent=1))
    from recipes.builtin.report import write_report

    try:
        with Timer(name_failures=True)("15 the report: report.md and report.html with their "
                                       "figures"):
            md, html = write_report(out)
    except StageFailed as err:
        print(f"\ndemo failed: {err}", file=sys.stderr)
        return 1
    print(f"\ndemo finished in {timings['total']:.0f} s; report: {md} ({html.name} beside it)")
    print(f"try it in the browser: lm serve --model {out / 'bundle'}  (then open "
          "http://localhost:7860/)")
    return 0


def train_demo_lm(out: Path, args: argparse.Namespace, overrides: dict) -> dict:
    """Stage 12: the LM on both code sets; the bundle goes to OUT/bundle."""
    timer = Timer(name_failures=True)
    with timer("12 training the LM on speech units and caption → image pairs"):
        train_lm_once(out / "bundle", Path(args.lm_config), overrides, out / "codes" / "speech",
                      out / "codes" / "image")
    return timer.seconds


def generation(out: Path, args: argparse.Namespace) -> dict:
    """Stages 13-14: generation and its scores, the upload round trip."""
    from lm.spoken_benchmark import without_rows
    from recipes.builtin.demo_generate import (
        continue_counting,
        continue_speech,
        glyph_classifier,
        spoken_benchmark,
        tune_and_score_images,
        upload_round_trip,
    )

    timer = Timer(name_failures=True)
    codes, bundle = out / "codes", out / "bundle"
    speech_data, image_data = out / "data" / "speech", out / "data" / "images"
    with timer("13 generation: images for held-out captions in every wording, continued "
               "counting prompts and held-out speech"):
        gen_dir = out / "generation"
        gen_dir.mkdir(exist_ok=True)
        resolution = json.loads((bundle / "image_tokenizer" / "config.json").read_text())[
            "resolution"]
        clf, clf_metrics = glyph_classifier(image_data, out / "glyph_classifier", resolution,
                                            args.classifier_epochs)
        (gen_dir / "classifier.json").write_text(json.dumps(clf_metrics, indent=1))
        images = cached_json(gen_dir / "images.json", lambda: tune_and_score_images(
            bundle, clf, image_data, gen_dir))
        print(json.dumps({k: v for k, v in images.items()
                          if k not in ("sweep_on_valid", "grid_captions")}, indent=2))
        # before continue_speech: it chooses the speech sampling default that one then uses
        counting = cached_json(gen_dir / "counting.json", lambda: continue_counting(
            bundle, speech_data, out / "counting_prompts", gen_dir / "counting"))
        print(json.dumps({k: v for k, v in counting.items() if k != "rows"}, indent=2))
        speech = cached_json(gen_dir / "speech.json", lambda: continue_speech(
            bundle, speech_data, codes / "speech", gen_dir))
        print(json.dumps(speech, indent=2))
        spoken = cached_json(gen_dir / "spoken_benchmark.json", lambda: spoken_benchmark(
            bundle, speech_data, out / "spoken_benchmark"))
        print(json.dumps(without_rows(spoken), indent=2))
    with timer("14 upload round trip: load what `lm push` would upload, generate the same"):
        first = json.loads((speech_data / "test" / "metadata.jsonl").read_text().split("\n")[0])
        prompt = speech_data / "test" / first["file"]
        trip = cached_json(out / "upload_round_trip.json", lambda: upload_round_trip(
            bundle, out / "uploaded_bundle", images["grid_captions"][:4], prompt))
        print(json.dumps(trip, indent=2))
        if not all(trip["identical_generations"].values()):
            raise RuntimeError(f"the uploaded bundle generates differently: {trip}")
    return timer.seconds


if __name__ == "__main__":
    sys.exit(main())
