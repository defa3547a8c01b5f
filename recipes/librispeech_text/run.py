#!/usr/bin/env python
"""LibriSpeech speech ↔ text: one LM that both transcribes (ASR-like) and speaks (TTS-like).

VoxtLM style (Maiti et al. 2024; SpeechGPT, Zhang et al. 2023, likewise puts discrete speech
units and text in one decoder-only LM): every utterance gives an ASR-like sample
`<bos> <boa> units <eoa> transcript <eos>` (task speech_text) and a TTS-like one
`<bos> transcript <boa> units <eoa> <eos>` (task text_speech), mixed with the plain unit LM
(speech) and the text LM (text) tasks, which VoxtLM found help the conditional ones.

Data:     LibriSpeech, as recipes/librispeech: https://www.openslr.org/12 train-clean-100,
          dev-clean and test-clean extracted into one folder (LibriSpeech/<subset>/...), or a
          save_to_disk copy, or the Hub name openslr/librispeech_asr --hub-config clean.
Stages:   1. LibriSpeech → an audio folder with transcripts (OUT/data)
          2. the speech tokenizer: trained here (../librispeech/speech_tokenizer.yaml), or
             reused with
             --speech-tokenizer runs/librispeech/speech_tokenizer
          3. pre-tokenise every split into units (the transcripts ride along)
          4. train the LM on speech_text + text_speech (+ speech, text) samples (lm.yaml)
          5. evaluate both directions on test-clean: ASR-like, greedy transcripts of the units
             and their word error rate against the reference; TTS-like, speech generated from
             the reference texts (OUT/tts/*.wav) and, when pocketsphinx is installed, the WER
             of what it hears in them
Command:  python recipes/librispeech_text/run.py --data /data/LibriSpeech
              [--speech-tokenizer runs/librispeech/speech_tokenizer]
Result:   not measured here: no LibriSpeech on this machine (no internet). In OUT/results.json
          look for: the LM's validation loss per modality (text and audio) still falling;
          asr.wer well below 1 (1 = nothing right; units carry less phonetic detail than
          HuBERT's, so expect far above a real ASR system's few per cent); tts.wer from
          pocketsphinx, beside its WER on the original recordings (LibriSpeech is hard for it).
Time:     not run here; the configs are sized for a GPU, not for this machine's 2 CPU cores.
          The two-step smoke run in tests/test_recipes.py takes about 10 s here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recipes import common, layouts

HERE = Path(__file__).resolve().parent

MODELS = ("speech", "lm")


def transcribe_units(bundle, utterances, max_tokens: int, batch_size: int = 16) -> list[str]:
    """ASR-like: `<bos> <boa> units <eoa>` → greedy text until <eos>."""
    import torch

    from lm.generate import Sampling, generate_ids

    v = bundle.vocab
    specials = set(v.special_ids.values())
    prompts = [[v.bos_id, v.boa_id, *v.audio_ids(torch.unique_consecutive(
        torch.as_tensor(u))).tolist(), v.eoa_id] for u in utterances]
    room = bundle.max_positions() - max(map(len, prompts))
    if room < 1:
        raise ValueError(f"a test utterance fills the LM's {bundle.max_positions()} positions")
    texts = []
    for i in range(0, len(prompts), batch_size):
        new = generate_ids(bundle.model, v, prompts[i: i + batch_size], stop_id=v.eos_id,
                           max_new_tokens=min(room, max_tokens), sampling=Sampling(0.0))
        texts += [v.decode(_until_special(ids.tolist(), specials)).strip() for ids in new]
    return texts


def _until_special(ids: list[int], specials: set[int]) -> list[int]:
    """The transcript: the text before the first special (<eos>, or a <boa> / <boi> the LM
    opened instead of ending; what follows is not text)."""
    end = next((i for i, t in enumerate(ids) if t in specials), len(ids))
    return ids[:end]


def speak_texts(bundle, texts: list[str], out: Path, max_seconds: float, seed: int = 0
                ) -> list[str]:
    """TTS-like: `<bos> text <boa>` → units until <eoa> → run lengths → the speech decoder.
    Returns the wav file names (units get the bundle's mean run length per unit, as in
    speech continuation: the LM predicts deduplicated units)."""
    from lm.durations import DURATIONS_FILE, expand_durations, load_durations
    from lm.generate import Sampling, generate_ids
    from speechtok.speech.io import save_audio

    v, tok = bundle.vocab, bundle.tokenizer("speech")
    means = load_durations(bundle.path / DURATIONS_FILE)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for k, text in enumerate(texts):
        prompt = [v.bos_id, *v.encode_text(text), v.boa_id]
        room = bundle.max_positions() - len(prompt)
        new = generate_ids(bundle.model, v, [prompt], stop_id=v.eoa_id,
                           max_new_tokens=max(1, min(room,
                                                     int(max_seconds * tok.layout.frame_rate))),
                           sampling=Sampling(1.0, seed=seed + k))[0]
        units = v.units_from_ids(new[new != v.eoa_id])
        name = f"tts_{k:03d}.wav"
        if len(units) and tok.layout.deduplicated:
            wav = tok.decode(units[None], expand_durations(units, means)[None])[0]
        elif len(units):  # codec frames: every frame kept, whole frames only
            depth = tok.layout.depth
            wav = tok.decode(tok.layout.unflatten(units[: len(units) // depth * depth])[None])[0]
        else:  # the LM closed the span at once: an empty file says so
            wav = units.new_zeros(0).float()
        save_audio(out / name, wav.cpu(), tok.layout.sample_rate)
        names.append(name)
    return names


def evaluate_both_ways(bundle_dir: Path, codes: Path, out: Path, n: int, max_seconds: float,
                       transcribe: bool) -> dict:
    from lm.pipelines import Bundle
    from lm.pretokenize import load_codes
    from speechtok.metrics.wer import word_error_rate

    bundle = Bundle(bundle_dir)
    test = load_codes(codes, "test")
    test = test.select(range(min(n, len(test))))
    refs = list(test["text"])
    hyps = transcribe_units(bundle, test["units"], max_tokens=256)
    result = {"asr": {"utterances": len(refs), "wer": round(word_error_rate(refs, hyps), 4),
                      "examples": [{"reference": r, "transcript": h}
                                   for r, h in list(zip(refs, hyps, strict=True))[:10]]}}
    files = speak_texts(bundle, refs, out, max_seconds)
    result["tts"] = {"utterances": len(files), "files": files}
    if transcribe:
        from speechtok.metrics.wer import transcribe as asr

        heard = asr([out / f for f in files], jobs=2)
        result["tts"].update(wer=round(word_error_rate(refs, heard), 4),
                             heard=heard[:10])
    return result


def main(argv: list[str] | None = None) -> int:
    p = common.recipe_parser(__doc__, HERE, MODELS, layouts.LIBRISPEECH_HELP)
    layouts.add_librispeech_args(p)
    # the same tokenizer settings as the librispeech recipe: one file, not a copy
    p.set_defaults(speech_config=str(HERE.parent / "librispeech" / "speech_tokenizer.yaml"))
    p.add_argument("--speech-tokenizer", default=None, metavar="PATH",
                   help="a trained speech tokenizer to reuse (e.g. the librispeech recipe's)")
    p.add_argument("--test-utterances", type=int, default=100,
                   help="test utterances to transcribe and to speak (default 100)")
    p.add_argument("--max-seconds", type=float, default=20.0, help="longest TTS output")
    p.add_argument("--transcribe", action=argparse.BooleanOptionalAction, default=True,
                   help="score the TTS output with pocketsphinx when installed")
    run = common.RecipeRun(p, argv, MODELS, stages=6)
    args, out = run.args, run.out
    sample_rate = common.model_configs("speech", args.speech_config,
                                       run.overrides["speech"])[0].sample_rate
    if args.speech_tokenizer:  # the data must be at the reused tokenizer's rate
        config = Path(args.speech_tokenizer) / "config.json"
        if not config.exists():
            p.error(f"--speech-tokenizer {args.speech_tokenizer}: no saved tokenizer there")
        sample_rate = json.loads(config.read_text())["sample_rate"]
    common.model_configs("lm", args.lm_config, run.overrides["lm"])

    with run.stage("LibriSpeech → audio folder with transcripts"):
        data = out / "data"
        run.results["data"] = layouts.write_librispeech_folder(args, data, sample_rate)
    if args.speech_tokenizer:
        run.stages -= 2  # no tokenizer to train or evaluate
        tok_dir = Path(args.speech_tokenizer)
    else:
        tok_dir = run.tokenizer("speech", data, "the test split", 200)
    codes = run.lm("speech", data, tok_dir, "speech ↔ text LM")
    with run.stage("ASR-like and TTS-like generation on the test split"):
        run.results["generation"] = common.cached_json(
            out / "tts" / "evaluation.json", lambda: evaluate_both_ways(
                out / "bundle", codes, out / "tts", args.test_utterances, args.max_seconds,
                common.pocketsphinx_available(args.transcribe)))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
