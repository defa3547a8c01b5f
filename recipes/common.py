"""What every dataset recipe (recipes/<name>/run.py) shares: its command line and its stages.

A recipe = a reader that writes the dataset in our layouts (layouts.py) + these stages, called
as the built-in demo calls them: train the tokenizer(s), evaluate them on the test split,
pre-tokenise, train the LM (the bundle), then a recipe-specific generation stage. The stage
helpers live here; the built-in demo (recipes/builtin/run_demo.py) uses them too. Every stage
is skipped when its output exists, and a killed training stage resumes from its last
checkpoint, so rerunning the same command finishes the job.

Import direction: recipes → lm → speechtok; nothing in lm or speechtok imports from here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from speechtok.training.config import build_configs, parse_overrides


def stage(name: str):
    print(f"\n=== {name} ===", flush=True)
    return time.time()


def split_overrides(tokens: list[str]) -> dict[str, dict[str, str]]:
    """`--speech.steps 10 --image.lr=1e-3` → {"speech": {"steps": "10"}, "image": {...}}."""
    out: dict[str, dict[str, str]] = {name: {} for name in CONFIG_FILES}
    for key, value in parse_overrides(tokens).items():
        prefix, _, name = key.partition(".")
        if prefix not in out or not name:
            raise SystemExit(f"override --{key}: say which model, e.g. --speech.{key}, "
                             f"--vocoder.{key}, --image.{key}, --kmeans.{key} or --lm.{key}")
        out[prefix][name] = value
    return out


def train_tokenizer(kind: str, data: Path, tok_dir: Path, config: Path,
                    overrides: dict[str, str]) -> Path:
    """Train the tokenizer `kind` (a name of speechtok.training.trainers: speech, image,
    kmeans) into `tok_dir`; skipped when it is saved, resumed when a run was killed."""
    from speechtok.training.trainers import trainer, trainer_configs

    if (tok_dir / "model.safetensors").exists():
        print(f"{kind} tokenizer exists: {tok_dir}")
        return tok_dir
    model_cfg, train_cfg = build_configs(trainer_configs(kind), config, overrides)
    trainer(kind)(data, tok_dir, model_cfg, train_cfg, resume=kind != "kmeans")
    return tok_dir


def train_vocoder_once(tok_dir: Path, data: Path, config: Path | None,
                       overrides: dict[str, str]) -> None:
    """Train the learned decoder of the tokenizer at `tok_dir` into tok_dir/vocoder (skipped
    when it exists; a killed run resumes)."""
    from speechtok.speech.vocoder import VOCODER_FOLDER, VocoderConfig
    from speechtok.speech.vocoder_train import VocoderTrainConfig, train_vocoder

    if (tok_dir / VOCODER_FOLDER / "model.safetensors").exists():
        print(f"learned decoder exists: {tok_dir / VOCODER_FOLDER}")
        return
    voc_cfg, train_cfg = build_configs([VocoderConfig, VocoderTrainConfig], config, overrides)
    train_vocoder(data, None, voc_cfg, train_cfg, resume=True, tokenizer=tok_dir)


def current_commit() -> str | None:
    """The git commit of this checkout (short), or None outside a git checkout: run records
    name the code that produced them."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cached_json(path: Path, compute) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def resynthesise(tok, split: Path, out_dir: Path, n: int) -> list[dict]:
    """Encode and decode the first `n` utterances of `split` with the speech tokenizer `tok`
    into `out_dir` (files that exist are kept); return their metadata rows."""
    from speechtok.speech.io import load_audio, save_audio

    rows = [json.loads(line) for line in (split / "metadata.jsonl").read_text().splitlines()][:n]
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in rows:
        target = out_dir / row["file"]
        if not target.exists():
            units = tok.encode(load_audio(split / row["file"], tok.sample_rate)[None])
            save_audio(target, tok.decode(units)[0], tok.sample_rate)
    return rows


def resynthesis_scores(tok, source, n: int, out_dir: Path, asr: bool = True) -> dict:
    """The first `n` items of `source` resynthesised (each in its own voice) by every decoder
    the tokenizer has (Griffin-Lim; the learned one when present) into out_dir/<decoder>/:
    STOI, ESTOI, PESQ, MCD and the decode speed of each; with `asr`, pocketsphinx's WER of
    the originals and of each resynthesis against the items' texts."""
    from speechtok.metrics.wer import transcribe, word_error_rate
    from speechtok.speech.evaluate import evaluate_resynthesis

    n = min(n, len(source))
    decoders = ["griffin_lim"] + (["learned"] if tok.vocoder is not None else [])
    results: dict = {"utterances": n}
    for name in decoders:
        results[name] = evaluate_resynthesis(tok, source, n, name, progress=True,
                                             save_to=out_dir / name)
    if asr:
        items = source.items[:n]
        refs = [item.meta["text"] for item in items]
        hyps = {"original": transcribe([item.path for item in items], jobs=2)}
        for name in decoders:
            hyps[name] = transcribe([out_dir / name / f"{Path(item.name).stem}.wav"
                                     for item in items], jobs=2)
        for name, hyp in hyps.items():
            results.setdefault(name, {})["wer"] = word_error_rate(refs, hyp)
        results["examples"] = [{"text": r, **{k: h[i] for k, h in hyps.items()}}
                               for i, r in enumerate(refs[:8])]
    return results


def pretokenize_once(kind: str, data: Path, tok_dir: Path, codes: Path) -> Path:
    """Encode every split once (`lm tokenize`); skipped when the codes exist."""
    from lm.pretokenize import pretokenize

    if (codes / "pretokenized.json").exists():
        print(f"{kind} codes exist: {codes}")
    else:
        print(json.dumps(pretokenize(kind, data, tok_dir, codes)))
    return codes



CONFIG_FILES = {"speech": "speech_tokenizer.yaml", "vocoder": "vocoder.yaml",
                "image": "image_tokenizer.yaml", "kmeans": "kmeans.yaml", "lm": "lm.yaml"}
OVERRIDES_HELP = ("Any field of a model's YAML config can be overridden by model prefix: "
                  "--{models}.steps 100 (speech: SpeechTokenizerConfig + SpeechTrainConfig, "
                  "vocoder: VocoderConfig + VocoderTrainConfig, image: ImageTokenizerConfig + "
                  "ImageTrainConfig, kmeans: KMeansConfig + KMeansTrainConfig, lm: LMConfig + "
                  "LMTrainConfig). Stages whose output exists "
                  "are skipped; delete a stage's folder under --out to redo it.")

__all__ = ["cached_json", "continue_prompts", "current_commit", "resynthesise", "stage",
           "train_tokenizer", "recipe_parser", "parse_args", "add_continuation_args",
           "model_configs", "pretokenize_once", "train_lm_once", "evaluate_speech_tokenizer",
           "evaluate_image_tokenizer", "evaluate_any_tokenizer", "StageFailed", "Timer",
           "write_results", "pocketsphinx_available", "flush_denormals", "resynthesis_scores",
           "train_vocoder_once"]


def recipe_parser(doc: str, here: Path, models: tuple[str, ...],
                  data_help: str, data_default: str | None = None) -> argparse.ArgumentParser:
    """The options every recipe has: --data, --out, --max-samples and a config per model."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=OVERRIDES_HELP.format(models="|".join(models)))
    p.add_argument("--data", required=data_default is None, default=data_default, help=data_help)
    p.add_argument("--out", default=f"runs/{here.name}", help=f"run directory (default: "
                   f"runs/{here.name})")
    p.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="use at most N items of each split (train, valid, test): a quick run")
    for kind in models:
        p.add_argument(f"--{kind}-config", default=str(here / CONFIG_FILES[kind]),
                       help=f"{kind} model config (YAML; default: {CONFIG_FILES[kind]} here)")
    return p


def add_continuation_args(p: argparse.ArgumentParser) -> None:
    """The options of GSLM's continuation stage (`RecipeRun.continuation`)."""
    p.add_argument("--prompts", type=int, default=8, help="test prompts to continue")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="GSLM uses 3 s")
    p.add_argument("--max-seconds", type=float, default=6.0, help="longest continuation")
    p.add_argument("--transcribe", action=argparse.BooleanOptionalAction, default=True,
                   help="transcribe the continuations with pocketsphinx when installed")


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None, models: tuple[str, ...]
               ) -> tuple[argparse.Namespace, dict[str, dict[str, str]]]:
    """(options, per-model overrides); an override for a model the recipe lacks is an error."""
    args, extra = p.parse_known_args(argv)
    overrides = split_overrides(extra)
    unused = [f"--{kind}.{key}" for kind, values in overrides.items() if kind not in models
              for key in values]
    if unused:
        p.error(f"this recipe trains no such model: {' '.join(unused)}")
    if args.max_samples is not None and args.max_samples < 1:
        p.error("--max-samples must be ≥ 1")
    return args, overrides


def flush_denormals() -> None:
    """Flush denormal floats to zero on the CPU. Silence in audio and the blank backgrounds of
    digits and glyphs drive activations into denormals, which made CPU convolutions several
    times slower here (the two-step MNIST smoke run: 27 s → 16 s); speechtok.train does the same
    for speech, and nothing measurable changes in the results."""
    import torch

    torch.set_flush_denormal(True)


def model_configs(kind: str, config: str | Path, overrides: dict[str, str]) -> list:
    """The resolved dataclasses of `kind` (validated now, so a bad override fails before any
    data is converted)."""
    from speechtok.training.trainers import trainer_configs

    if kind != "lm":
        return build_configs(trainer_configs(kind), config, overrides)
    from lm.model import LMConfig
    from lm.train import LMTrainConfig

    overrides = {"speech_codes": "(set by the recipe)", **overrides}
    return build_configs([LMConfig, LMTrainConfig], config, overrides)


def continue_prompts(bundle: Path, data: Path, codes: Path, out: Path, n: int,
                     prompt_seconds: float, max_seconds: float, transcribe: bool) -> dict:
    """GSLM's conditional generation: continue the first `prompt_seconds` of `n` utterances of
    `data`/test (an audio folder with "duration" and "text" in its metadata), save prompt and
    continuation as wav files in `out`, and the LM's NLL per unit on the test codes."""
    from lm.evaluate import speech_unit_nll
    from lm.pipelines import SpeechContinuation
    from lm.pretokenize import load_codes
    from speechtok.speech.io import load_audio, save_audio

    pipe = SpeechContinuation.from_pretrained(bundle)
    sr = pipe.speech_tokenizer.sample_rate
    rows = [json.loads(line) for line in (data / "test" / "metadata.jsonl").read_text()
            .splitlines()]
    # prompts from utterances long enough that the prompt is a real cut, like GSLM's 3 s
    rows = ([r for r in rows if r["duration"] > prompt_seconds] or rows)[:n]
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, row in enumerate(rows):
        wav = load_audio(data / "test" / row["file"], sr)
        result = pipe(wav, sr, prompt_seconds=prompt_seconds, max_seconds=max_seconds, seed=k)
        stem = Path(row["file"]).stem
        save_audio(out / f"{stem}_prompt.wav", wav[: int(prompt_seconds * sr)], sr)
        save_audio(out / f"{stem}.wav", result.waveforms[0], sr)
        files.append({"source": row["file"], "source_text": row["text"],
                      "prompt": f"{stem}_prompt.wav", "output": f"{stem}.wav",
                      "continuation_units": len(result.units[0])})
    if transcribe:
        from speechtok.metrics.wer import transcribe as asr

        heard = asr([out / f[key] for f in files for key in ("prompt", "output")], jobs=2)
        for i, f in enumerate(files):
            f["heard_prompt"], f["heard_output"] = heard[2 * i], heard[2 * i + 1]
    nll = speech_unit_nll(pipe.bundle.model, pipe.bundle.vocab,
                          load_codes(codes, "test")["units"])
    return {"prompt_seconds": prompt_seconds, "max_seconds": max_seconds, "prompts": files,
            "test_nll": nll}


class StageFailed(RuntimeError):
    """A stage's error, with the stage's name in front (it crosses process boundaries)."""


class Timer:
    """Seconds per stage: `with timer("train lm"): ...`; `timer.seconds` maps each finished
    stage to its time. By default errors pass through unchanged (the stage header printed
    before them says which stage), so a recipe's caller sees FileNotFoundError and ValueError
    as they are; with `name_failures` (the demo, whose stages run in worker processes) an error
    is printed with its traceback and raised again as StageFailed naming the stage."""

    def __init__(self, name_failures: bool = False):
        self.seconds: dict[str, float] = {}
        self.name_failures = name_failures

    @contextmanager
    def __call__(self, name: str):
        t = stage(name)
        try:
            yield
        except StageFailed:
            raise
        except Exception as err:
            if not self.name_failures:
                raise
            traceback.print_exc()
            raise StageFailed(f"stage '{name}' failed: {type(err).__name__}: {err}") from None
        self.seconds[name] = round(time.time() - t, 1)


def evaluate_speech_tokenizer(tok_dir: Path, data: Path, max_items: int | None) -> dict:
    """Codebook use, bitrate and spectral distances on the test split (cached), and the model
    card with them."""
    from speechtok.hub.model_card import write_model_card
    from speechtok.speech import SpeechTokenizer
    from speechtok.speech.data import open_eval_source
    from speechtok.speech.evaluate import evaluate_speech

    tok = SpeechTokenizer.from_pretrained(str(tok_dir)).eval()
    metrics = cached_json(tok_dir / "eval_test.json", lambda: evaluate_speech(
        tok, open_eval_source(data, tok.sample_rate, "test"), max_items, progress=True))
    write_model_card(tok_dir, tok.config.to_dict(), metrics)
    print(json.dumps(metrics, indent=1))
    return metrics


def evaluate_any_tokenizer(tok_dir: Path, data: Path, max_items: int | None) -> dict:
    """The figures `speechtok eval` gives any tokenizer (k-means units: usage, perplexity,
    PNMI where the test split has phones) on the test split (cached), and its model card."""
    import torch

    from speechtok.hub.model_card import write_model_card
    from speechtok.tokenizer import load_tokenizer, media_for

    tok = load_tokenizer(tok_dir, "cuda" if torch.cuda.is_available() else "cpu")
    metrics = cached_json(tok_dir / "eval_test.json", lambda: media_for(tok.modality).evaluate(
        tok, data, "test", max_items))
    write_model_card(tok_dir, json.loads((tok_dir / "config.json").read_text()), metrics)
    print(json.dumps(metrics, indent=1))
    return metrics


def evaluate_image_tokenizer(tok_dir: Path, data: Path, grid: Path) -> dict:
    """PSNR, SSIM and codebook use on the test split (cached), a reconstruction grid, and the
    model card."""
    from speechtok.hub.model_card import write_model_card
    from speechtok.image import ImageTokenizer
    from speechtok.image.data import open_image_eval_source
    from speechtok.image.evaluate import evaluate_image, save_reconstruction_grid

    tok = ImageTokenizer.from_pretrained(str(tok_dir)).eval()
    test = open_image_eval_source(data, tok.config.resolution, "test")
    metrics = cached_json(tok_dir / "eval_test.json", lambda: evaluate_image(
        tok, test, progress=True))
    save_reconstruction_grid(tok, test, grid)
    write_model_card(tok_dir, tok.config.to_dict(), metrics)
    print(json.dumps(metrics, indent=1))
    return metrics


def train_lm_once(bundle: Path, config: str | Path, overrides: dict[str, str],
                  speech_codes: Path | None = None, image_codes: Path | None = None) -> dict:
    """Train the LM into `bundle` (skipped when it exists; resumes a killed run); return its
    last validation losses per modality."""
    from lm.model import LMConfig
    from lm.train import LMTrainConfig, train_lm

    if not (bundle / "model.safetensors").exists():
        codes = {k: str(v) for k, v in (("speech_codes", speech_codes),
                                        ("image_codes", image_codes)) if v is not None}
        model_cfg, train_cfg = build_configs([LMConfig, LMTrainConfig], config,
                                             {**codes, **overrides})
        train_lm(bundle, model_cfg, train_cfg, resume=True)
    history = json.loads((bundle / "train_history.json").read_text())
    last = {k[len("eval/"):]: v for k, v in history[-1].items() if k.startswith("eval/")}
    print("LM validation:", json.dumps(last, indent=1))
    return last


def pocketsphinx_available(wanted: bool) -> bool:
    """Whether to score speech with the offline recogniser: asked for and installed."""
    if wanted and shutil.which("pocketsphinx_batch") is None:
        print("note: pocketsphinx is not installed (apt-get install pocketsphinx "
              "pocketsphinx-en-us): no transcripts")
        return False
    return wanted


def write_results(out: Path, results: dict) -> Path:
    """OUT/results.json: every stage's figures and times, the recipe's one summary."""
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"results: {path}")
    return path


class RecipeRun:
    """One run of a recipe: its options and per-model overrides (`parse_args`), the run folder,
    the numbered stages with their times, and the results that `finish` writes. The stages
    every recipe shares are methods: `tokenizer` (train + evaluate) and `lm` (pre-tokenise +
    train the LM)."""

    def __init__(self, parser: argparse.ArgumentParser, argv: list[str] | None,
                 models: tuple[str, ...], stages: int):
        self.args, self.overrides = parse_args(parser, argv, models)
        flush_denormals()
        self.out, self.stages, self.done = Path(self.args.out), stages, 0
        self.timer, self.results = Timer(), {}

    def stage(self, name: str):
        """The next numbered stage ("3/6 name"), timed."""
        self.done += 1
        return self.timer(f"{self.done}/{self.stages} {name}")

    def tokenizer(self, kind: str, data: Path, evaluated_on: str,
                  max_items: int | None = None) -> Path:
        """Two stages: train the `kind` tokenizer (skipped when saved), then its figures on the
        test split (`results[f"{kind}_tokenizer"]`; `max_items` speech clips at most)."""
        with self.stage(f"training the {kind} tokenizer"):
            tok_dir = train_tokenizer(kind, data, self.out / f"{kind}_tokenizer",
                                      Path(getattr(self.args, f"{kind}_config")),
                                      self.overrides[kind])
        with self.stage(f"evaluating the {kind} tokenizer on {evaluated_on}"):
            evaluate = {"speech": lambda: evaluate_speech_tokenizer(tok_dir, data, max_items),
                        "image": lambda: evaluate_image_tokenizer(
                            tok_dir, data, self.out / "image_reconstructions.png")}.get(
                kind, lambda: evaluate_any_tokenizer(tok_dir, data, max_items))
            self.results[f"{kind}_tokenizer"] = evaluate()
        return tok_dir

    def lm(self, kind: str, data: Path, tok_dir: Path, what: str) -> Path:
        """Two stages: pre-tokenise `data` with the tokenizer, then train the LM on the codes
        (`results["lm_valid"]`); returns the codes folder."""
        with self.stage("pre-tokenising"):
            codes = pretokenize_once(kind, data, tok_dir, self.out / "codes" / kind)
        with self.stage(f"training the {what}"):
            self.results["lm_valid"] = train_lm_once(
                self.out / "bundle", self.args.lm_config, self.overrides["lm"],
                **{f"{kind}_codes": codes})
        return codes

    def continuation(self, data: Path, codes: Path) -> None:
        """One stage: continue test prompts with the bundle (`continue_prompts`, options from
        `add_continuation_args`) into OUT/continuations."""
        a, out = self.args, self.out
        with self.stage("continuing test prompts"):
            self.results["continuation"] = cached_json(
                out / "continuations" / "continuations.json", lambda: continue_prompts(
                    out / "bundle", data, codes, out / "continuations", a.prompts,
                    a.prompt_seconds, a.max_seconds, pocketsphinx_available(a.transcribe)))

    def finish(self) -> int:
        """results.json with every stage's time; the exit status."""
        self.results["seconds"] = self.timer.seconds
        write_results(self.out, self.results)
        return 0
