"""The demo report's section on what the speech units carry: the content objectives' training
curves, PNMI, unit agreement, the speaker probe and the spoken-LM benchmark (report.py places
it; the blocks are report.py's: ("h", level, text), ("p", text), ("img", alt, path),
("table", header, rows))."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from speechtok.training.loss_curve import load_curve  # noqa: E402

CONTENT_TERMS = ("train/phone", "train/ctc", "train/consistency", "train/phone_acc",
                 "train/agreement")
BENCHMARK_NAMES = {"numbers": "right vs wrong next number", "words": "word vs non-word",
                   "sentences": "sentence vs the same words shuffled"}


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def plot_content_curves(tokenizer: Path, target: Path) -> Path | None:
    """The content terms (left) and the training accuracies (right) over steps."""
    curve = load_curve(tokenizer)
    if not any(k in p for p in curve for k in CONTENT_TERMS):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, keys, title in ((axes[0], CONTENT_TERMS[:3], "content losses"),
                            (axes[1], CONTENT_TERMS[3:], "training accuracies")):
        for key in keys:
            pts = [(p["step"], p[key]) for p in curve if key in p]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=key.removeprefix("train/"))
        step_axis(ax, title)
    return save_figure(fig, target)


def step_axis(ax, title: str) -> None:
    """Title, step axis, grid and (when anything was drawn) a legend: every curve panel's."""
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)


def save_figure(fig, target: Path) -> Path:
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


def content_metric_rows(out: Path) -> list[tuple]:
    """Rows for the report's table of every metric."""
    probe = _json(out / "speech_tokenizer" / "speaker_probe.json") or {}
    bench = _json(out / "generation" / "spoken_benchmark.json") or {}
    rows = [("speaker probe (valid voices)", k.removeprefix("speaker_probe_"), v)
            for k, v in probe.items()]
    rows += [("spoken-LM benchmark", BENCHMARK_NAMES.get(k, k), r["accuracy"])
             for k, r in bench.items()]
    return rows


def content_blocks(out: Path, figures: Path, figures_name: str) -> list[tuple]:
    """The section's blocks; empty when the run has none of its results."""
    tok = out / "speech_tokenizer"
    test = _json(tok / "eval_test.json") or {}
    real = _json(tok / "eval_test_real.json") or {}
    probe = _json(tok / "speaker_probe.json") or {}
    bench = _json(out / "generation" / "spoken_benchmark.json") or {}
    if not (test or probe or bench):
        return []
    blocks: list[tuple] = [("h", 2, "What the speech units carry")]
    fig = plot_content_curves(tok, figures / "content_curves.png")
    if fig is not None:
        blocks += [("p", "The content objectives while the tokenizer trains: phone "
                    "classification of the quantized latents, CTC to characters, and the "
                    "commitment of a degraded copy's latents to the clean copy's units; right, "
                    "the phone head's accuracy and the share of training frames whose unit "
                    "survives the degradation."),
                   ("img", "content objectives", f"{figures_name}/{fig.name}")]
    rows = []
    if "pnmi" in test:
        rows += [("phones (held-out flite voice)", "PNMI", test["pnmi"]),
                 ("phones (held-out flite voice)", "phone purity", test["phone_purity"])]
    rows += [("unit agreement (real voice)", k.removeprefix("unit_agreement_"), v)
             for k, v in real.items() if k.startswith("unit_agreement_")]
    if probe:
        rows += [("speaker probe (5-fold, valid voices)", "from unit histograms",
                  probe["speaker_probe_histogram"]),
                 ("speaker probe (5-fold, valid voices)", "from mean code vectors",
                  probe["speaker_probe_embedding"]),
                 ("speaker probe (5-fold, valid voices)", "chance (largest voice)",
                  probe["speaker_probe_chance"])]
    if rows:
        blocks += [("p", "PNMI: the share of phone uncertainty the units remove (HuBERT's "
                    "measure). Unit agreement: the share of frames whose unit is unchanged "
                    "under 10 dB noise, a reverberant room and the 8 kHz band. Speaker probe: "
                    "how well a linear classifier names the voice from an utterance's units "
                    "(lower is better: the units should not say who speaks)."),
                   ("table", ["what", "measure", "value"], rows)]
    if bench:
        blocks += [("p", "Spoken-LM benchmark on flite analogs in the held-out voice (texts "
                    "in no training split): the LM passes a pair when it finds the right "
                    "member more likely (log-likelihood per unit); `lm benchmark` runs the "
                    "same on ZeroSpeech 2021 and slamkit data."),
                   ("table", ["test", "accuracy", "95 % interval", "pairs", "chance"],
                    [(BENCHMARK_NAMES.get(k, k), r["accuracy"],
                      f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}", r["pairs"], r["chance"])
                     for k, r in bench.items()])]
    return blocks
