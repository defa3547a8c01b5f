"""`speechtok train | encode | decode | eval | push`: the tokenizer command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speechtok.atomic import atomic_open
from speechtok.fields import bounded
from speechtok.hub import push
from speechtok.jsonl import jsonl_rows
from speechtok.tokenizer.registry import add_tokenizer_arguments, tokenizer_options
from speechtok.training.trainers import TRAINERS, trainer, trainer_configs

EPILOG = """examples:
  speechtok train speech --data corpus/ --out runs/tok --steps 2000 --codebook_size 256
  speechtok encode --tokenizer runs/tok a.wav b.flac --out units.jsonl --dedup
  speechtok decode --tokenizer runs/tok units.jsonl --out out.wav
  speechtok eval --tokenizer runs/tok --data corpus/ --split test
  speechtok train vocoder --tokenizer runs/tok --data corpus/ --steps 1000
  speechtok train image --data glyphs/ --out runs/img --downsample_factor 4 --steps 3000
  speechtok encode --tokenizer runs/img a.png b.jpg --out codes.jsonl
  speechtok decode --tokenizer runs/img codes.jsonl --out out.png
  speechtok push --tokenizer runs/tok user/my-speech-tokenizer --private --revision v1

Hub uploads take the token from HF_TOKEN or the saved login (`hf auth login`); there is no
--token flag, so the token stays out of shell history.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="speechtok", allow_abbrev=False,
        description="Train and use tokenizers: speech ↔ discrete units, images ↔ code grids. "
        "encode/decode/eval work out from the saved config whether a tokenizer is for speech "
        "or images.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tokenizer (stage 1: reconstruction)",
                       description="Train a speech or an image tokenizer. `speechtok train "
                       "speech --help` lists every config field.", allow_abbrev=False)
    kinds = t.add_subparsers(dest="modality", required=True)
    for kind in TRAINERS:
        _train_parser(kinds, kind, trainer_configs(kind))
    e = sub.add_parser("encode", help="audio files → units, or images → code grids (JSON "
                       "lines)")
    add_tokenizer_arguments(e)
    e.add_argument("files", nargs="+", help="audio files (speech tokenizer) or image files "
                   "(image tokenizer)")
    e.add_argument("--out", help="write JSON lines here instead of stdout")
    e.add_argument("--dedup", action="store_true",
                   help="speech: collapse repeated units and add run lengths (GSLM)")
    e.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")

    d = sub.add_parser("decode", help="units → wav, or code grids → png (JSON lines from "
                       "`encode`)")
    add_tokenizer_arguments(d)
    d.add_argument("units", help="JSON lines file from `speechtok encode`, or '-' for stdin")
    d.add_argument("--out", required=True,
                   help="output wav (speech) or png (image); with several lines, "
                   "OUT_STEM-<n>.EXT per line")
    d.add_argument("--voice", metavar="AUDIO",
                   help="speech: speak in the voice of this recording (e.g. the file the units "
                   "came from); default: the training data's average voice")
    d.add_argument("--device", default=None)

    v = sub.add_parser("eval", help="print held-out metrics as JSON")
    add_tokenizer_arguments(v)
    v.add_argument("--data", required=True, help="folder of audio / images, or saved dataset")
    v.add_argument("--split", default=None,
                   help="subfolder to evaluate (default: test/ if present, else the folder)")
    v.add_argument("--max-items", type=bounded(int, 1, 10**9), default=None,
                   help="evaluate at most N files")
    v.add_argument("--resynthesis", type=bounded(int, 0, 10**6), default=20, metavar="N",
                   help="our speech tokenizers: encode, decode (in each file's own voice) and "
                   "score STOI, "
                   "ESTOI, wide-band PESQ and MCD on the first N files, with Griffin-Lim and, "
                   "when the tokenizer has one, the learned decoder (0 = skip; default 20)")
    v.add_argument("--agreement", type=bounded(int, 0, 10**6), default=20, metavar="N",
                   help="our speech tokenizers: share of frames whose unit survives 10 dB "
                   "noise, reverberation "
                   "and the 8 kHz band, on the first N files (0 = skip; default 20)")
    v.add_argument("--save-resynthesis", metavar="DIR",
                   help="speech: also write the resynthesised files here")
    v.add_argument("--device", default=None)

    h = sub.add_parser("push", help="upload a saved tokenizer to the Hugging Face Hub",
                       description="Upload a saved tokenizer folder (config.json, "
                       "model.safetensors, README.md; a model card is written first if there "
                       "is none) without its checkpoints. The token comes from HF_TOKEN or the "
                       "saved login (`hf auth login`); HF_ENDPOINT selects another Hub.")
    h.add_argument("--tokenizer", required=True, help="saved tokenizer folder")
    h.add_argument("repo", help="Hub repo id, e.g. user/name")
    h.add_argument("--private", action="store_true", help="create the repo as private")
    h.add_argument("--revision", metavar="BRANCH", default=None,
                   help="branch to push to (created from main if missing)")
    return p


DATA_HELP = {
    "speech": "folder of audio files (wav/flac/ogg, any rate, mono or stereo; a metadata.jsonl "
    "keyed by 'file_name' adds texts and phone alignments) or a saved `datasets` dataset with an "
    "'audio' column",
    "image": "folder of images (png/jpg/..., any size or mode; resized and centre-cropped; a "
    "metadata.jsonl keyed by 'file_name' adds captions) or a saved `datasets` dataset with an "
    "image column",
    "vocoder": "speech to train the learned decoder on: a folder of audio files or a saved "
    "`datasets` dataset, as for `train speech` (usually the tokenizer's own training data)",
}


DATA_HELP["kmeans"] = DATA_HELP["speech"] + " (the units are fitted on it)"


def _train_parser(kinds, kind: str, classes: list[type]) -> None:
    from speechtok.training.config import add_config_arguments, add_run_arguments

    vocoder = kind == "vocoder"
    what = {"vocoder": "learned decoder (Vocos) for a speech tokenizer, or the unit vocoder of "
            "a k-means one", "kmeans": "k-means speech tokenizer on a self-supervised model's "
            "layer (GSLM's speech2unit)"}.get(kind, f"{kind} tokenizer")
    t = kinds.add_parser(
        kind, help=f"train a {what}", allow_abbrev=False,
        usage=f"speechtok train {kind} {'--tokenizer T ' if vocoder else ''}--data DATA "
        f"{'[--out OUT]' if vocoder else '--out OUT'} [--config YAML] [--resume] "
        "[--push-to-hub REPO] [--key value ...]",
        description=f"Train a {what}. Every config field below is a `--key value` "
        "(lists and dicts in YAML syntax, e.g. --strides '[2, 2]'); precedence: defaults < "
        "--config YAML < command line. The resolved config is written to "
        "OUT/train_config.yaml; an unknown key is an error." + (
            " The tokenizer stays frozen; the decoder is saved in TOKENIZER/vocoder/, where "
            "`decode` finds it (--out elsewhere keeps it apart)." if vocoder else ""))
    if vocoder:
        t.add_argument("--tokenizer", required=True,
                       help="saved speech tokenizer folder (ours, or a k-means one)")
    t.add_argument("--data", required=True, help=DATA_HELP[kind] + "; train/ and valid/ "
                   "subfolders (or splits) are used when present" + (
                       "" if vocoder else "; or hub:NAME[:CONFIG], a Hub dataset streamed "
                       "where the Hub is reachable (see --streaming)"))
    t.add_argument("--out", required=not vocoder,
                   help="output folder (default TOKENIZER/vocoder)" if vocoder
                   else "output folder (hub-shaped tokenizer)")
    add_run_arguments(t, "tokenizer")
    if kind == "kmeans":
        t.add_argument("--device", default=None,
                       help="where features and centroids are computed (default: cuda if "
                       "available)")
    add_config_arguments(t, classes)


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def cmd_train(args, extra: list[str]) -> None:
    from speechtok.training.config import build_configs, given_overrides, parse_overrides

    # unknown `--key value` pairs go to build_configs, whose error names the nearest field
    model_cfg, train_cfg = build_configs(trainer_configs(args.modality), args.config,
                                         {**parse_overrides(extra), **given_overrides(args)})
    # the options a trainer's own subcommand defines: the vocoder's tokenizer, k-means' device
    options = {k: getattr(args, k) for k in ("tokenizer", "device") if hasattr(args, k)}
    trainer(args.modality)(args.data, args.out, model_cfg, train_cfg, resume=args.resume,
                           **options)
    if args.modality == "vocoder":
        from speechtok.speech.vocoder import VOCODER_FOLDER

        # the tokenizer's folder holds the decoder (unless --out put it elsewhere): upload both
        inside = not args.out or Path(args.out) == Path(args.tokenizer) / VOCODER_FOLDER
        args.out = args.tokenizer if inside else args.out
    if args.push_to_hub:
        push(args.out, args.push_to_hub, args.private, args.revision)


def cmd_encode(args) -> None:
    from speechtok.speech import dedup
    from speechtok.tokenizer import load_tokenizer, media_for

    tok = load_tokenizer(args.tokenizer, _device(args.device), **tokenizer_options(args))
    layout, media = tok.layout, media_for(tok.modality)
    if args.dedup and not layout.deduplicated:
        raise ValueError("--dedup applies to speech units with one code a frame; this "
                         f"tokenizer gives {tok.modality} codes of depth {layout.depth}")
    rows = []  # every file first: a bad one stops the command before --out is touched
    for f in args.files:
        codes = media.encode(tok, [media.read(f, layout)])[0]
        row = {"file": f, media.codes_key: codes.tolist()}
        if args.dedup:
            u, runs = dedup(codes[None])
            row.update(units=u[0].tolist(), durations=runs[0].tolist())
        rows.append(json.dumps(row) + "\n")
    if not args.out:
        sys.stdout.writelines(rows)
        return
    with atomic_open(args.out) as out:
        out.writelines(rows)


MAX_DECODE_SECONDS = 3600.0  # one hour of speech a line: decode more in several lines


def row_codes(row, where: str, key: str, layout):
    """(codes, durations or None) of one JSON line of `speechtok encode`'s output, checked: whole
    numbers in [0, codebook_size), run lengths ≥ 1 (one per unit), at most MAX_DECODE_SECONDS
    of speech. Anything else is a ValueError naming `where` and the field."""
    import numpy as np
    import torch

    codes = row.get(key) if isinstance(row, dict) else row
    if codes is None:
        raise ValueError(f"{where} has no {key!r} (is it from another kind of tokenizer than "
                         f"this {layout.modality} one?)")

    def whole_numbers(value, name: str) -> np.ndarray:
        try:
            array = np.asarray(value)
        except ValueError:  # ragged nesting
            array = np.asarray([], dtype=object)
        if array.dtype.kind not in "iu" or array.ndim == 0 or array.size == 0:
            raise ValueError(f"{where}: {name!r} must be a non-empty list of whole numbers, got "
                             f"{str(value)[:60]}")
        return array

    array = whole_numbers(codes, key)
    if array.min() < 0 or array.max() >= layout.codebook_size:
        bad = array[(array < 0) | (array >= layout.codebook_size)].flat[0]
        raise ValueError(f"{where}: {key.rstrip('s')} id {bad} is out of range "
                         f"[0, {layout.codebook_size})")
    durations = row.get("durations") if isinstance(row, dict) else None
    if durations is not None:
        durations = whole_numbers(durations, "durations")
        if durations.shape != array.shape[-1:] or durations.min() < 1:
            raise ValueError(f"{where}: 'durations' must hold one run length ≥ 1 per unit "
                             f"({array.shape[-1]})")
    if layout.frame_rate:
        frames = int(durations.sum()) if durations is not None else array.shape[-1]
        if frames / layout.frame_rate > MAX_DECODE_SECONDS:
            raise ValueError(f"{where}: {frames / layout.frame_rate:,.0f} s of speech, over the "
                             f"limit of {MAX_DECODE_SECONDS:,.0f} s a line")
    return torch.from_numpy(array.astype(np.int64)), (
        None if durations is None else torch.from_numpy(durations.astype(np.int64)))


def cmd_decode(args) -> None:

    from speechtok.tokenizer import load_tokenizer, media_for

    text = sys.stdin.read() if args.units == "-" else Path(args.units).read_text()
    rows = [row for _, row in jsonl_rows(args.units, text)]
    if not rows:
        raise ValueError(f"{args.units}: no units to decode")
    tok = load_tokenizer(args.tokenizer, _device(args.device), **tokenizer_options(args))
    layout, media = tok.layout, media_for(tok.modality)
    extra = {}
    if args.voice:
        if getattr(tok, "speaker_encoder", None) is None:
            raise ValueError("--voice needs a speech tokenizer with a speaker encoder; this "
                             f"{tok.modality} tokenizer has none")
        extra["speaker"] = tok.speaker_embedding(media.read(args.voice, layout)[None])
    out = Path(args.out)
    checked = [row_codes(row, f"{args.units}: line {i + 1}", media.codes_key, layout)
               for i, row in enumerate(rows)]  # every line first: nothing written for bad input
    for i, (codes, durations) in enumerate(checked):
        runs = {} if durations is None else {"durations": durations[None]}
        decoded = tok.decode(codes[None], **extra, **runs)
        path = out if len(rows) == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")
        media.save(path, decoded[0], layout)
        print(path)


def cmd_eval(args) -> None:
    from speechtok.tokenizer import load_tokenizer, media_for

    tok = load_tokenizer(args.tokenizer, _device(args.device), **tokenizer_options(args))
    media = media_for(tok.modality)
    metrics = media.evaluate(tok, args.data, args.split, args.max_items)
    from speechtok.speech import SpeechTokenizer

    if isinstance(tok, SpeechTokenizer):  # ours: robustness, resynthesis with each decoder
        metrics.update(speech_robustness_and_quality(tok, args))
    print(json.dumps(metrics, indent=2))


def speech_robustness_and_quality(tok, args) -> dict:
    """`speechtok eval`'s unit agreement under degradation and resynthesis quality."""
    from speechtok.speech.data import open_eval_source
    from speechtok.speech.evaluate import evaluate_resynthesis, evaluate_unit_agreement

    source = open_eval_source(args.data, tok.sample_rate, args.split)
    out: dict = {}
    if args.agreement:
        out.update(evaluate_unit_agreement(tok, source, args.agreement, progress=True))
    if args.resynthesis:
        decoders = ["griffin_lim"] + (["learned"] if tok.vocoder is not None else [])
        for name in decoders:
            save = Path(args.save_resynthesis) / name if args.save_resynthesis else None
            scores = evaluate_resynthesis(tok, source, args.resynthesis, name, True, save)
            out.update({f"resynthesis_{name}_{k}": v for k, v in scores.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    from speechtok.training.config import normalise_config_flags

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"] and argv[1:2] and argv[1] in TRAINERS:
        argv = normalise_config_flags(argv, trainer_configs(argv[1]))
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            cmd_train(args, extra)
        elif args.command == "encode":
            cmd_encode(args)
        elif args.command == "decode":
            cmd_decode(args)
        elif args.command == "eval":
            cmd_eval(args)
        elif args.command == "push":
            push(args.tokenizer, args.repo, args.private, args.revision)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"speechtok {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
