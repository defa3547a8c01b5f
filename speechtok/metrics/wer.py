"""Intelligibility by speech recognition: word error rate and an offline pocketsphinx recogniser.

As in GSLM (Lakhotia et al. 2021), resynthesised or generated speech is scored by transcribing
it with an ASR system and computing the WER against the intended text. Here the recogniser is
CMU pocketsphinx (Debian package, no network, no weights to download), run as one
``pocketsphinx_batch`` process over a control file, so the acoustic and language models load
once instead of once per file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

DEFAULT_MODEL_DIR = "/usr/share/pocketsphinx/model/en-us"
INSTALL_HINT = "apt-get install pocketsphinx pocketsphinx-en-us"
SAMPLE_RATE = 16000  # the en-us acoustic model is trained on 16 kHz speech

_PUNCT = re.compile(r"[^\w\s']")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
# pocketsphinx_batch -hyp lines look like "one two three (utt00001 -6222)".
_HYP_LINE = re.compile(r"^(.*?)\s*\((\S+)\s+-?\d+\)\s*$")


def number_words(n: int) -> str:
    """English cardinal words for 0 <= n < 10**9, hyphen-free ("forty two"), as a recogniser
    writes them."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_words(head)} {name}" + ("" if rest == 0 else
                                                      " " + number_words(rest))
    raise ValueError(f"number out of range: {n}")


def _spell_number(match: re.Match) -> str:
    whole, _, frac = match.group(0).partition(".")
    if len(whole) > 9:  # a digit string, not a quantity: read digit by digit
        words = " ".join(_ONES[int(d)] for d in whole)
    else:
        words = number_words(int(whole))
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return f" {words} "


def normalize(text: str) -> list[str]:
    """Lower-case, spell out numbers ("28.8" → "twenty eight point eight": references are
    written with digits, recognisers write words), drop punctuation (keeping apostrophes
    inside words), split on whitespace."""
    words = _PUNCT.sub(" ", _NUMBER.sub(_spell_number, text.lower())).split()
    return [w.strip("'") for w in words if w.strip("'")]


def word_error_rate(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> float:
    """Corpus WER: total word edits over all pairs / total reference words, by `jiwer`.

    Pooling edits over the corpus (rather than averaging per-utterance WERs) is the standard
    definition (NIST sclite), so short utterances don't dominate. Text is normalised with
    :func:`normalize` first. A single string pair is accepted too. Can exceed 1 (insertions).
    A reference with no words counts its hypothesis' words as insertions.
    """
    import jiwer

    if isinstance(refs, str):
        refs = [refs]
    if isinstance(hyps, str):
        hyps = [hyps]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(" ".join(normalize(r)), " ".join(normalize(h))) for r, h in zip(refs, hyps,
                                                                           strict=True)]
    words = sum(len(r.split()) for r, _ in pairs)
    if words == 0:
        raise ValueError("the references contain no words; WER is undefined")
    scored = [(r, h) for r, h in pairs if r]  # jiwer refuses empty references
    out = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
    edits = out.substitutions + out.deletions + out.insertions
    edits += sum(len(h.split()) for r, h in pairs if not r)
    return edits / words


def _require_pocketsphinx(model_dir: str) -> Path:
    if shutil.which("pocketsphinx_batch") is None:
        raise RuntimeError(f"pocketsphinx_batch not found on PATH; install it with: {INSTALL_HINT}")
    model = Path(model_dir)
    for needed in ("en-us", "en-us.lm.bin", "cmudict-en-us.dict"):
        if not (model / needed).exists():
            raise RuntimeError(
                f"pocketsphinx model file {model / needed} is missing; install it with: "
                f"{INSTALL_HINT}"
            )
    return model


def recogniser_available(model_dir: str = DEFAULT_MODEL_DIR) -> bool:
    """Whether `transcribe` can run: pocketsphinx_batch and its English model are installed."""
    try:
        _require_pocketsphinx(model_dir)
    except RuntimeError:
        return False
    return True


def _write_raw(src: str | os.PathLike, dst: Path) -> None:
    """Write ``src`` as headerless 16 kHz mono 16-bit PCM, the only input the model accepts."""
    import soundfile as sf

    audio, sr = sf.read(str(src), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)  # (T,) downmix
    if sr != SAMPLE_RATE:
        import torch

        from speechtok.speech.io import resample

        audio = resample(torch.from_numpy(audio), sr, SAMPLE_RATE).numpy()
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    pcm.tofile(dst)


def _run_batch(ids: list[str], workdir: Path, model: Path, tag: str) -> dict[str, str]:
    ctl, hyp, log = workdir / f"{tag}.ctl", workdir / f"{tag}.hyp", workdir / f"{tag}.log"
    ctl.write_text("".join(f"{i}\n" for i in ids))
    cmd = [
        "pocketsphinx_batch",
        "-adcin", "yes",  # raw audio in, not precomputed cepstra
        "-cepdir", str(workdir),
        "-cepext", ".raw",
        "-ctl", str(ctl),
        "-hyp", str(hyp),
        "-hmm", str(model / "en-us"),
        "-lm", str(model / "en-us.lm.bin"),
        "-dict", str(model / "cmudict-en-us.dict"),
        "-logfn", str(log),
    ]  # fmt: skip
    # The model's feat.params sets -cmn batch (cepstral mean over the whole utterance), so each
    # utterance decodes independently of the others in the batch: sharding can't change results.
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not hyp.exists():
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else proc.stderr[-2000:]
        raise RuntimeError(f"pocketsphinx_batch failed (exit {proc.returncode}):\n{tail}")
    out: dict[str, str] = {}
    for line in hyp.read_text(errors="replace").splitlines():
        m = _HYP_LINE.match(line)
        if m:
            out[m.group(2)] = m.group(1).strip()
    return out


def transcribe(
    paths: Sequence[str | os.PathLike],
    model_dir: str = DEFAULT_MODEL_DIR,
    jobs: int = 1,
) -> list[str]:
    """Transcribe audio files with pocketsphinx, returning one lower-case string per file.

    Every file is converted (downmix, resample with torchaudio if needed) to raw 16 kHz 16-bit
    PCM in a temporary directory, then decoded by ``jobs`` pocketsphinx_batch processes, each
    taking every ``jobs``-th file. A file in which the recogniser finds nothing gives "".

    Raises:
        RuntimeError: pocketsphinx or its English model is not installed, or decoding failed.
    """
    model = _require_pocketsphinx(model_dir)
    paths = list(paths)
    if not paths:
        return []
    jobs = max(1, min(jobs, len(paths)))
    ids = [f"utt{i:06d}" for i in range(len(paths))]
    with tempfile.TemporaryDirectory(prefix="speechtok_asr_") as tmp:
        workdir = Path(tmp)
        for uid, path in zip(ids, paths, strict=True):
            _write_raw(path, workdir / f"{uid}.raw")
        shards = [ids[k::jobs] for k in range(jobs)]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(
                pool.map(
                    lambda kv: _run_batch(kv[1], workdir, model, f"shard{kv[0]}"), enumerate(shards)
                )
            )
    merged = {k: v for r in results for k, v in r.items()}
    return [merged.get(uid, "").lower() for uid in ids]
