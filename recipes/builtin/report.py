"""The demo's report: runs/demo/report.md and the same as report.html, with its figures.

Everything here reads what the stages left on disk (JSON metrics, `train_curve.json`, the codes,
the audio and image files), so the report can be rewritten at any time without retraining:
`python recipes/builtin/report.py runs/demo`. The text is built once as a list of blocks and
rendered twice (Markdown, HTML), so the two never disagree.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt

from recipes.builtin.report_content import (
    content_blocks,
    content_metric_rows,
    save_figure,
    step_axis,
)
from speechtok.speech.io import load_audio
from speechtok.speech.spectrogram import log_spectrogram
from speechtok.training.loss_curve import load_curve

HERE = Path(__file__).resolve().parent

FIGURES = "figures"


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


# ---- figures -------------------------------------------------------------------------------

def plot_loss_curves(out: Path, target: Path) -> Path:
    """Training terms (means over windows of steps) and held-out evaluations of the 3 models."""
    panels = [("speech tokenizer", out / "speech_tokenizer", ["train/loss", "train/quantizer",
                                                              "train/mel", "train/phone",
                                                              "train/ctc"], []),
              ("image tokenizer", out / "image_tokenizer", ["train/loss", "train/l1", "train/l2"],
               []),
              ("LM (nats per token)", out / "bundle", ["train/loss", "train/loss/image",
                                                       "train/loss/audio", "train/loss/text"],
               ["eval/loss/image", "eval/loss/audio"])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for ax, (title, folder, keys, evals) in zip(axes, panels, strict=True):
        curve = load_curve(folder)
        for key in keys:
            pts = [(p["step"], p[key]) for p in curve if key in p]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key.removeprefix("train/"))
        history = _json(folder / "train_history.json") or []
        for key in evals:
            pts = [(h["step"], h[key]) for h in history if key in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o--", label=f"held-out {key[10:]}")
        ax.set_yscale("log")
        step_axis(ax, title)
    return save_figure(fig, target)


def _code_counts(codes_dir: Path, column: str) -> Counter:
    from lm.pretokenize import load_codes

    counts: Counter = Counter()
    for row in load_codes(codes_dir, "test")[column]:
        counts.update(row)
    return counts


def plot_codebook_usage(out: Path, target: Path) -> tuple[Path, dict]:
    """How often each code occurs on the held-out split, codes sorted by frequency: a flat
    profile is a codebook in full use; a long tail of zeros is dead codes."""
    panels = [("speech units, held-out voice", out / "codes" / "speech", "units",
               out / "speech_tokenizer"),
              ("image codes, held-out fonts", out / "codes" / "image", "codes",
               out / "image_tokenizer")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    used = {}
    for ax, (title, codes_dir, column, tok_dir) in zip(axes, panels, strict=True):
        size = _json(codes_dir / "pretokenized.json")["codebook_size"]
        counts = _code_counts(codes_dir, column)
        freq = sorted((counts.get(k, 0) for k in range(size)), reverse=True)
        total = sum(freq)
        ax.bar(range(size), [f / total for f in freq], width=1.0)
        n_used = sum(f > 0 for f in freq)
        used[tok_dir.name] = {"codes_used": n_used, "codebook_size": size}
        ax.set_title(f"{title}: {n_used}/{size} codes used")
        ax.set_xlabel("code rank (most frequent first)")
        ax.set_ylabel("share of tokens")
        ax.axhline(1 / size, color="k", lw=0.8, ls="--", label="uniform")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target, used


def plot_spectrograms(rows: list[tuple[str, Path, float | None]], target: Path,
                      sr: int = 16000) -> Path:
    """One spectrogram per (title, wav file, seconds at which to draw a line) row."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.3 * len(rows)), squeeze=False)
    for ax, (title, path, mark) in zip(axes[:, 0], rows, strict=True):
        wav = load_audio(path, sr)
        spec = log_spectrogram(wav, sr)
        seconds = len(wav) / sr
        ax.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, seconds, 0, sr / 2000), vmin=float(spec.max()) - 80)
        if mark is not None:
            ax.axvline(mark, color="cyan", lw=2, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target


# ---- blocks → Markdown / HTML --------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, *rest in blocks:
        if kind == "h":
            lines += [f"{'#' * rest[0]} {rest[1]}", ""]
        elif kind == "p":
            lines += [rest[0], ""]
        elif kind == "list":
            lines += [f"- {item}" for item in rest[0]] + [""]
        elif kind == "table":
            header, rows = rest
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows] + [""]
        elif kind == "img":
            lines += [f"![{rest[0]}]({rest[1]})", ""]
        elif kind == "audio":
            lines += [" · ".join(f"[{label}]({path})" for label, path in rest[0]), ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def to_html(blocks: list[tuple], title: str) -> str:
    body: list[str] = []
    for kind, *rest in blocks:
        if kind == "h":
            body.append(f"<h{rest[0]}>{_inline(rest[1])}</h{rest[0]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(rest[0])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in rest[0]) + "</ul>")
        elif kind == "table":
            header, rows = rest
            body.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header)
                        + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(_fmt(c))}</td>"
                                                             for c in row) + "</tr>"
                                            for row in rows) + "</table>")
        elif kind == "img":
            body.append(f'<p><img src="{html.escape(rest[1])}" alt="{html.escape(rest[0])}">'
                        "</p>")
        elif kind == "audio":  # [(label, path), ...]: one player each
            body.append("<p>" + " ".join(
                f'<span>{_inline(label)} <audio controls preload="none" '
                f'src="{html.escape(path)}"></audio></span>' for label, path in rest[0])
                + "</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;"
             "padding:3px 8px;text-align:left}img{max-width:100%}code{background:#f2f2f2}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


# ---- the report ----------------------------------------------------------------------------

def _metric_rows(section: str, metrics: dict) -> list[tuple]:
    return [(section, k, v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


VOICE_NAMES = {"test": "held-out flite voice", "test_real": "real voice"}
WORDING_NAMES = {"canonical": "canonical wording", "seen": "training templates",
                 "heldout": "held-out templates", "no_face": "no face name"}


def plot_resynthesis(out: Path, target: Path) -> Path:
    """Spectrograms of the first held-out real utterance: the original and its resyntheses."""
    split = out / "data" / "speech" / "test_real"
    first = json.loads((split / "metadata.jsonl").read_text().splitlines()[0])
    stem = Path(first["file"]).stem
    rows = [(f"original (real voice, held-out sentence): \"{first['text']}\"",
             split / first["file"], None)]
    for decoder in ("griffin_lim", "learned"):
        path = out / "resynthesis" / "test_real" / decoder / f"{stem}.wav"
        if path.exists():
            rows.append((f"resynthesised from its units: {decoder.replace('_', '-')}", path,
                         None))
    return plot_spectrograms(rows, target)


def build_blocks(out: Path, runs: list[dict]) -> list[tuple]:
    """`runs`: the stage times of every run of the demo in this folder, oldest first."""
    fig_dir = out / FIGURES
    fig_dir.mkdir(exist_ok=True)
    speech_eval = _json(out / "speech_tokenizer" / "eval_test.json") or {}
    real_eval = _json(out / "speech_tokenizer" / "eval_test_real.json") or {}
    resyn_scores = {split: _json(out / "resynthesis" / split / "scores.json") or {}
                    for split in ("test", "test_real")}
    image_eval = _json(out / "image_tokenizer" / "eval_test.json") or {}
    history = _json(out / "bundle" / "train_history.json") or [{}]
    lm_eval = {k[len("eval/"):]: v for k, v in history[-1].items() if k.startswith("eval/")}
    clf = _json(out / "generation" / "classifier.json") or {}
    images = _json(out / "generation" / "images.json") or {}
    speech = _json(out / "generation" / "speech.json") or {}
    counting = _json(out / "generation" / "counting.json") or {}
    spread = _json(out / "seed_spread" / "summary.json") or {}
    trip = _json(out / "upload_round_trip.json") or {}
    faces = (_json(out / "data" / "images" / "corpus.json") or {}).get("faces", {})

    curves = plot_loss_curves(out, fig_dir / "loss_curves.png")
    usage_png, usage = plot_codebook_usage(out, fig_dir / "codebook_usage.png")
    resyn = plot_resynthesis(out, fig_dir / "speech_reconstruction.png")
    cont_rows = [(f"prompt ({speech['prompt_seconds']} s of \"{p['source_text']}\") + "
                  "continuation; the line marks where the LM takes over",
                  out / "generation" / p["output"], speech["prompt_seconds"])
                 for p in speech.get("prompts", [])]
    cont = plot_spectrograms(cont_rows, fig_dir / "continuation_spectrograms.png") \
        if cont_rows else None

    b: list[tuple] = [("h", 1, "Demo report"), ("p", (
        "Everything below was made offline by `make demo` on this machine: a speech tokenizer "
        "and an image tokenizer trained from nothing, one causal LM over their codes and text, "
        f"generation and its scores. Time of the first run: "
        f"**{(runs[0] if runs else {}).get('total', 0) / 60:.1f} min** on "
        f"{os.cpu_count()} CPU cores.")),
        ("h", 2, "All metrics")]
    rows = _metric_rows("speech tokenizer (held-out flite voice)", speech_eval)
    rows += _metric_rows("speech tokenizer (real voice, held-out sentences)", real_eval)
    for split, scores in resyn_scores.items():
        for decoder in ("original", "griffin_lim", "learned"):
            rows += _metric_rows(f"resynthesis, {VOICE_NAMES[split]}: {decoder}",
                                 scores.get(decoder, {}))
    rows += _metric_rows("image tokenizer (held-out fonts)", image_eval)
    rows += _metric_rows("LM validation", lm_eval)
    rows += _metric_rows("glyph classifier (real test glyphs)", clf)
    if images:
        rows += [("generated images", f"test accuracy, {WORDING_NAMES.get(k, k)}",
                  v["accuracy"]) for k, v in images.get("test_accuracy_by_wording", {}).items()]
        rows += [("generated images", "test accuracy at the default",
                  images["test_accuracy_at_default"]),
                 ("generated images", "default guidance", images["default"]["guidance_scale"]),
                 ("generated images", "default temperature", images["default"]["temperature"])]
    if speech:
        rows += _metric_rows("LM on held-out speech", speech["heldout_speech"])
        rows += _metric_rows("unigram baseline on held-out speech",
                             speech.get("unigram_baseline", {}))
    if counting:
        rows += [("counting continuation", k, counting[k]) for k in (
            "next_number_share", "originals_rest_share", "with_any_number_word")]
    for k, v in spread.get("summary", {}).items():
        rows += [(f"over LM seeds {[r['seed'] for r in spread['seeds']]}", f"{k} {stat}",
                  v[stat]) for stat in ("lowest", "highest", "spread")]
    rows += content_metric_rows(out)
    if trip:
        rows += [("upload round trip", f"identical {k}", v)
                 for k, v in trip["identical_generations"].items()]
    b.append(("table", ["part", "metric", "value"], rows))

    b += [("h", 2, "Training"), ("p", "Training terms averaged over windows of steps (log "
                                 "scale); the LM panel adds the held-out loss per modality."),
          ("img", "loss curves", f"{FIGURES}/{curves.name}"),
          ("h", 2, "Codebook use"),
          ("p", "Share of each code among the held-out split's tokens, codes sorted by "
           "frequency; dashed: a uniform codebook. " + "; ".join(
               f"{k}: {v['codes_used']} of {v['codebook_size']} codes used"
               for k, v in usage.items()) + "."),
          ("img", "codebook usage", f"{FIGURES}/{usage_png.name}")]

    b += [("h", 2, "Speech tokenizer"),
          ("p", "Held-out utterances resynthesised from their units (each in its own voice: the "
           "speaker vector of the original) with Griffin-Lim and, where the run trained one "
           "(`--learned-decoder`, `make demo-full`), the learned decoder (Vocos). WER is "
           "pocketsphinx's against the text; STOI/ESTOI (0-1) and wide-band "
           "PESQ (1-4.64) compare with the original; MCD in dB (lower is better); the real-time "
           "factor is decode time over audio time."),
          ("table", ["voice", "decoder", "utterances", "WER", "STOI", "ESTOI", "PESQ",
                     "MCD dB", "decode RTF"],
           [(VOICE_NAMES[split], decoder, scores.get("utterances"),
             *("—" if r.get(k) is None else r[k] for k in (
                 "wer", "stoi", "estoi", "pesq_wb", "mcd_db", "decode_real_time_factor")))
            for split, scores in resyn_scores.items()
            for decoder in ("original", "griffin_lim", "learned")
            for r in [scores.get(decoder)] if r]),
          ("p", "Unit agreement on the real voice (share of frames whose unit is unchanged): "
           + ", ".join(f"{k[len('unit_agreement_'):]} {v:.3f}" for k, v in real_eval.items()
                       if k.startswith("unit_agreement_")) + "."),
          ("img", "speech reconstruction", f"{FIGURES}/{resyn.name}"),
          ("p", "Reference / recognised from the original / from Griffin-Lim / from the "
           "learned decoder (real voice):"),
          ("list", [" / ".join(e.get(k, "") for k in ("text", "original", "griffin_lim",
                                                      "learned"))
                    for e in resyn_scores["test_real"].get("examples", [])]),
          *content_blocks(out, fig_dir, FIGURES),
          ("h", 2, "Image tokenizer"),
          ("p", f"On {image_eval.get('items')} glyphs of font faces never trained on "
           f"({', '.join(faces.get('test', []))}): PSNR **{image_eval.get('psnr', 0):.2f} dB**"
           f", SSIM {image_eval.get('ssim', 0):.3f}. Originals (odd rows) and reconstructions "
           "(even rows):"),
          ("img", "reconstructions", "image_reconstructions.png")]

    if images:
        b += [("h", 2, "Generated images"),
              ("p", "Judged by a glyph classifier trained on real training glyphs (on the "
               f"{clf.get('real_test_images')} real test glyphs it is right "
               f"{clf.get('real_test_accuracy', 0):.3f} of the time). Sweep on the "
               f"{images['valid_captions']} validation captions (one image each, seed 0):"),
              ("table", ["guidance", "temperature", "valid accuracy", "seconds"],
               [(r["guidance_scale"], r["temperature"] or "greedy", r["valid_accuracy"],
                 r["seconds"]) for r in images["sweep_on_valid"]]),
              ("p", f"Bundle default (best on valid): guidance "
               f"{images['default']['guidance_scale']}, temperature "
               f"{images['default']['temperature'] or 'greedy'}. **Accuracy on the "
               f"{images['test_captions']} test captions (held-out font families): "
               f"{images['test_accuracy_at_default']:.3f}**. A row per character, one held-out "
               "face per column:"),
              ("img", "generated images", f"generation/{images['grid']}")]
        by_wording = images.get("test_accuracy_by_wording", {})
        if by_wording:
            b += [("p", "Faithfulness per wording family (one caption per test glyph each; the "
                   "held-out templates never occur in training; recipes/builtin/captions.py):"),
                  ("table", ["wording", "accuracy", "examples"],
                   [(WORDING_NAMES.get(k, k), v["accuracy"], " · ".join(v["examples"][:2]))
                    for k, v in by_wording.items()])]
    if speech:
        nll = speech["heldout_speech"]
        b += [("h", 2, "Speech continuation"),
              ("p", f"Prompts cut to {speech['prompt_seconds']} s from held-out utterances (a "
               f"voice never trained on), continued for at most {speech['max_seconds']} s."),
              *([("img", "prompt and continuation spectrograms", f"{FIGURES}/{cont.name}")]
                if cont else []),
              ("p", "What pocketsphinx recognises:"),
              ("table", ["source text", "prompt", "prompt + continuation", "continuation alone"],
               [(p["source_text"], p["recognised"]["prompt"], p["recognised"]["output"],
                 p["recognised"]["continuation"]) for p in speech["prompts"]]),
              ("audio", [(f"{kind} {i}", f"generation/{p[kind]}")
                         for i, p in enumerate(speech["prompts"])
                         for kind in ("prompt", "output", "continuation")]),
              ("p", f"The LM's NLL on {nll['utterances']} held-out utterances "
               f"({nll['units']} deduplicated units): {nll['nll_per_unit']:.3f} nats per unit "
               f"({nll['bits_per_unit']:.3f} bits)" + (
                   f"; the unigram baseline (training units' frequencies): "
                   f"{speech['unigram_baseline']['nll_per_unit']:.3f} nats."
                   if "unigram_baseline" in speech else "."))]
    if counting:
        rows = counting["rows"]
        b += [("h", 2, "Counting continuation"),
              ("p", f"{counting['prompts']} counting prompts of the held-out voice, each cut "
               "at the end of a number between 1.5 and 2 s, continued for "
               f"{counting['continuation_seconds']} s at the sampling setting chosen on "
               f"validation prompts ({json.dumps(counting['default'])}). The continuation alone "
               "passes when pocketsphinx hears the next number in it: **"
               f"{counting['next_number_share']:.2f}** of the prompts (the originals' own rest "
               f"after the cut: {counting['originals_rest_share']:.2f}; continuations with any "
               f"number word: {counting['with_any_number_word']:.2f})."),
              ("table", ["sequence", "next", "heard in the continuation", "passes"],
               [(r["text"], r["next_words"], r["heard"], r["continues"]) for r in rows]),
              ("audio", [(f"{r['text']} → continuation", f"generation/counting/test/"
                          f"{r['continuation']}") for r in rows[:6]])]
    if spread:
        b += seed_spread_blocks(spread, images, _json(out / "run_info.json") or {})
    if trip:
        same = trip["identical_generations"]
        b += [("h", 2, "Upload round trip"),
              ("p", f"The files `lm push` would upload ({trip['files_uploaded']}; "
               f"{trip['files_left_out']} left out, checkpoints uploaded: "
               f"{_fmt(trip['checkpoints_uploaded'])}), copied to a fresh folder and loaded "
               f"from there, with sampling at a fixed seed ({json.dumps(trip['sampling'])}): "
               f"identical images: **{_fmt(same['images'])}**, identical speech: "
               f"**{_fmt(same['speech'])}**.")]
    shown = runs[:1] + runs[1:][-2:]  # the first run and the last two reruns
    stages = list(dict.fromkeys(k for r in shown for k in r))
    b += [("h", 2, "Stage times"),
          ("p", "Seconds per stage. Stages 1-6 (speech) and 7-11 (images) run side by side, one "
           "thread each; the LM (12) starts as soon as both code sets exist (stages 4 and 10), "
           "beside the stages left (5, 6, 11), so the times overlap; `total` is the wall-clock "
           "time of the run (the install before it not included). A rerun skips the stages "
           "whose output exists."),
          ("table", ["stage"] + [f"run {runs.index(r) + 1}" for r in shown],
           [(k, *(r.get(k, "") for r in shown)) for k in stages])]
    return b


def seed_spread_blocks(spread: dict, images: dict, run_info: dict) -> list[tuple]:
    """The seeds' figures, their lowest / highest / spread, and this run's own faithfulness
    beside them, with the commit each was measured at: one run's figure is one draw."""
    seeds, keys = spread["seeds"], list(spread["summary"])
    own = {f"faithfulness_{k}": v["accuracy"]
           for k, v in images.get("test_accuracy_by_wording", {}).items()}
    same = spread.get("commit") and spread.get("commit") == run_info.get("commit")
    where = (f"at this run's commit ({spread['commit']})" if same else
             f"at commit {spread.get('commit') or 'unknown'} (this run: "
             f"{run_info.get('commit') or 'unknown'})")
    rows = [(r["seed"], *(r["figures"].get(k, "—") for k in keys)) for r in seeds]
    rows += [(stat, *(spread["summary"][k][stat] for k in keys))
             for stat in ("lowest", "highest", "spread")]
    if own:
        rows.append(("this run", *(own.get(k, "—") for k in keys)))
    return [("h", 2, "Spread over LM seeds"),
            ("p", f"The demo LM trained {len(seeds)} times with seeds "
             f"{', '.join(str(r['seed']) for r in seeds)} (initialisation and data order) on "
             f"the same codes, each scored as above (`make seed-spread`), {where}; the last "
             "row is this run's own LM:"),
            ("table", ["seed", *keys], rows)]


def write_report(out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    blocks = build_blocks(out, _json(out / "timings.json") or [])
    md, page = out / "report.md", out / "report.html"
    md.write_text(to_markdown(blocks))
    page.write_text(to_html(blocks, "speechtok-lm demo report"))
    return md, page


if __name__ == "__main__":
    print(*write_report(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
