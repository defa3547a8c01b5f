"""`lm`: the multimodal LM command line: `lm tokenize` (pre-tokenisation), `lm train`,
`lm generate speech | image`, `lm benchmark` (pairwise likelihood tests of the unit LM),
`lm push`, `lm serve` (the web demo)."""

from __future__ import annotations

import argparse
import json
import sys

from speechtok.fields import bounded
from speechtok.tokenizer.registry import add_tokenizer_arguments
from speechtok.training.config import add_config_arguments, add_run_arguments

EPILOG = """examples:
  lm tokenize --kind speech --data runs/demo/data/speech --tokenizer runs/demo/speech_tokenizer \\
      --out runs/demo/codes/speech
  accelerate launch --multi_gpu --num_processes 4 -m lm.cli tokenize --kind image --data glyphs/ \\
      --tokenizer runs/demo/image_tokenizer --out runs/demo/codes/images   # one shard per process
  lm train --out runs/demo/bundle --speech_codes runs/demo/codes/speech \
      --image_codes runs/demo/codes/images --steps 2000 --hidden_size 256
  lm generate speech --model runs/demo/bundle --prompt in.wav --out out.wav --prompt-seconds 3
  lm generate image --model runs/demo/bundle --caption "Carlito, the uppercase letter G" \
      --out g.png --num 4 --guidance 3.0 --seed 0
  lm benchmark --model runs/demo/bundle --zerospeech zr2021/ --split dev
  lm benchmark --model runs/demo/bundle --pairs numbers=runs/demo/benchmark/numbers/pairs.jsonl
  lm push runs/demo/bundle user/speechtok-lm-demo --private --revision v1
  lm serve --model runs/demo/bundle          # then open http://localhost:7860/
  lm serve --model runs/demo/bundle --export-space space/   # the same app as a HF Space

Hub uploads take the token from HF_TOKEN or the saved login (`hf auth login`); there is no
--token flag, so the token stays out of shell history. HF_ENDPOINT selects another Hub.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lm", allow_abbrev=False,
        description="Multimodal token LM over text, speech units and image codes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenize", help="audio / images → tokenizer codes (datasets on disk)",
                       description="Encode every split (train/, valid/, test/, or the whole "
                       "folder) once with a tokenizer: a speechtok folder (ours, or k-means "
                       "units from `speechtok train kmeans`) or a pretrained codec / image VQ of "
                       "transformers as hf:NAME_OR_PATH (Mimi, EnCodec, DAC, X-codec, X-codec 2; "
                       "Chameleon, Emu3, Janus). Loader workers decode "
                       "ahead of the encoder, which runs on this process's device (images in "
                       "batches). Under `accelerate launch`, each process encodes and writes "
                       "its own contiguous shard on its own device. The output is written in "
                       "chunks: a killed run, started again with the same arguments, resumes "
                       "at the chunk it stopped in.")
    t.add_argument("--kind", choices=["speech", "image"], default=None,
                   help="the modality of --data; default: the tokenizer's")
    t.add_argument("--data", required=True, help="folder of media (with split subfolders and "
                   "metadata.jsonl captions/texts) or a saved `datasets` dataset")
    add_tokenizer_arguments(t)
    t.add_argument("--out", required=True, help="output folder of code datasets")
    t.add_argument("--num-workers", type=bounded(int, -1, 256), default=-1,
                   help="loader processes decoding media per launched process (default -1: "
                   "2 where the process has 4 or more cores, else 0)")
    t.add_argument("--batch-size", type=bounded(int, 1, 65_536), default=64,
                   help="images per encoder forward (speech: one utterance per forward, so "
                   "its codes equal encoding the file alone)")
    t.add_argument("--chunk-rows", type=int, default=2000,
                   help="rows per output chunk, the unit a killed run resumes from")
    t.add_argument("--device", default=None,
                   help="default: this process's device under accelerate (CUDA if present)")
    r = sub.add_parser("train",
                       help="train the LM on pre-tokenised codes; OUT becomes the bundle",
                       description="Train the multimodal LM. Every config field below is a "
                       "`--key value` (dicts in YAML syntax, e.g. --loss_weights '{text: 0.5, "
                       "image: 0.5}'); precedence: defaults < --config YAML < command line. "
                       "OUT gets the LM, its tokenizer and the speech/image tokenizers the "
                       "codes came from.", allow_abbrev=False,
                       usage="lm train --out OUT [--config YAML] [--resume] "
                       "[--push-to-hub REPO] [--key value ...]")
    r.add_argument("--out", required=True, help="run directory = the bundle")
    add_run_arguments(r, "bundle")
    add_config_arguments(r, train_configs())
    _generate_parser(sub)
    h = sub.add_parser("push", help="upload a bundle to the Hugging Face Hub",
                       description="Upload a bundle written by `lm train` (the LM, its "
                       "tokenizer, the speech/image tokenizers, README.md; a model card is "
                       "written first if there is none) without checkpoints or logs. The token "
                       "comes from HF_TOKEN or the saved login (`hf auth login`).")
    h.add_argument("model", metavar="DIR", help="bundle folder written by `lm train`")
    h.add_argument("repo", help="Hub repo id, e.g. user/name")
    h.add_argument("--private", action="store_true", help="create the repo as private")
    h.add_argument("--revision", metavar="BRANCH", default=None,
                   help="branch to push to (created from main if missing)")
    _serve_parser(sub)
    _benchmark_parser(sub)
    return p


def _benchmark_parser(sub) -> None:
    b = sub.add_parser("benchmark", help="pairwise likelihood tests of the unit LM (sWUGGY, "
                       "sBLIMP, StoryCloze)",
                       description="Score pairs of recordings (the right one and a wrong one: "
                       "word vs non-word, grammatical vs not, right vs wrong ending) with the "
                       "bundle's speech tokenizer and LM; a pair passes when the right one is "
                       "more likely. Prints accuracy, chance and a 95 percent interval per test. "
                       "Give at least one test.")
    b.add_argument("--model", metavar="BUNDLE", required=True,
                   help="bundle folder written by `lm train` (with a speech tokenizer)")
    b.add_argument("--zerospeech", metavar="ROOT", default=None,
                   help="a ZeroSpeech 2021 dataset root: its lexical (sWUGGY) and syntactic "
                   "(sBLIMP) pairs from gold.csv, whichever are present")
    b.add_argument("--split", default="dev", choices=["dev", "test"],
                   help="ZeroSpeech 2021 split (default: %(default)s; test's gold.csv is "
                   "not public)")
    b.add_argument("--slamkit", metavar="NAME=DIR[:SEP]", action="append", default=[],
                   help="a folder in slamkit's layout (<index><sep>*.wav, two per index; SEP "
                   "defaults to _, sBLIMP uses +); repeatable")
    b.add_argument("--pairs", metavar="NAME=FILE", action="append", default=[],
                   help="a pairs.jsonl ({\"id\", \"good\", \"bad\"} per line, paths relative "
                   "to it), e.g. the demo's flite analogs; repeatable")
    b.add_argument("--normalise", choices=["mean", "sum"], default="mean",
                   help="score a recording by its log-likelihood per unit (mean, slamkit's "
                   "default) or in total (sum, the ZeroSpeech baselines'); default %(default)s")
    b.add_argument("--json", metavar="FILE", default=None,
                   help="also write every result, per-pair scores included, to FILE")
    b.add_argument("--device", default=None, help="default: CUDA when present, else CPU")


def cmd_benchmark(args) -> None:
    from pathlib import Path

    from .pipelines import Bundle
    from .spoken_benchmark import (
        read_pairs_jsonl,
        read_slamkit,
        read_zerospeech,
        run_benchmark,
        summary_line,
        without_rows,
    )

    tests = {}
    if args.zerospeech:
        for task, name in (("lexical", "sWUGGY"), ("syntactic", "sBLIMP")):
            if (Path(args.zerospeech) / task / args.split / "gold.csv").exists():
                tests[name] = read_zerospeech(args.zerospeech, task, args.split)
        if not tests:
            raise FileNotFoundError(f"{args.zerospeech}: no lexical/{args.split}/gold.csv or "
                                    f"syntactic/{args.split}/gold.csv")
    for spec, read in [(s, "slamkit") for s in args.slamkit] + [(s, "pairs") for s in
                                                                args.pairs]:
        name, eq, where = spec.partition("=")
        if not eq or not name or not where:
            raise ValueError(f"expected NAME=PATH, got {spec!r}")
        if read == "pairs":
            tests[name] = read_pairs_jsonl(where)
        else:
            folder, _, sep = where.partition(":")
            tests[name] = read_slamkit(folder, sep or "_")
    if not tests:
        raise ValueError("no test given: use --zerospeech, --slamkit or --pairs")
    results = run_benchmark(Bundle(args.model, args.device), tests, args.normalise,
                            progress=True)
    for name, result in results.items():
        print(summary_line(name, result))
    if args.json:
        from speechtok.atomic import atomic_open

        with atomic_open(args.json) as f:
            f.write(json.dumps(results, indent=1))
    else:
        print(json.dumps(without_rows(results), indent=1))


def _serve_parser(sub) -> None:
    s = sub.add_parser("serve", help="a web demo of a bundle in the browser (offline)",
                       description="Serve a bundle as a web page with four tabs: text to "
                       "image, continue speech (upload or record), the speech tokenizer "
                       "(units, bitrate, resynthesis) and the image tokenizer (code grid, "
                       "reconstruction, PSNR). Nothing is fetched from the internet. The page "
                       "calls a JSON API (POST /api/text_to_image, /api/continue_speech, "
                       "/api/speech_tokenizer, /api/image_tokenizer; GET /api/info) that "
                       "scripts can call too; requests run one at a time, in order. With "
                       "--export-space DIR, write the same app as a Hugging Face Space "
                       "instead of serving it.")
    s.add_argument("--model", metavar="BUNDLE", required=True,
                   help="bundle folder written by `lm train`")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; "
                   "0.0.0.0: every interface, e.g. in a container)")
    s.add_argument("--port", type=bounded(int, 1, 65_535), default=7860,
                   help="port to listen on (default: %(default)s)")
    s.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    s.add_argument("--max-upload-seconds", metavar="N", type=bounded(float, 0.1, 3600),
                   default=60.0,
                   help="longer audio uploads are cut to their first N seconds, with a note "
                   "(default: %(default)g)")
    s.add_argument("--max-upload-mb", metavar="MB", type=bounded(float, 0.001, 65_536),
                   default=1024.0,
                   help="larger uploads are refused with a message; their bytes past the "
                   "limit are read and dropped, never kept (default: %(default)g)")
    s.add_argument("--export-space", metavar="DIR", default=None,
                   help="write a Hugging Face Space (Docker SDK: app.py, Dockerfile, "
                   "requirements.txt, README.md, the toolkit's source, the bundle) to DIR "
                   "and exit")
    s.add_argument("--space-bundle", metavar="REPO", default=None,
                   help="with --export-space: the Space downloads this Hub repo (a bundle "
                   "pushed with `lm push`) when it starts, instead of a copy in DIR")


def cmd_serve(args) -> None:
    if args.export_space:
        from .serve.space import export_space

        out = export_space(args.model, args.export_space, args.space_bundle)
        print(json.dumps({"space": str(out), "run": f"cd {out} && python app.py",
                          "push": f"hf upload --repo-type space USER/NAME {out}"}))
        return
    if args.space_bundle:
        raise ValueError("--space-bundle only goes with --export-space")
    check_port_free(args.host, args.port)
    from .serve import serve

    serve(args.model, args.host, args.port, args.device, args.max_upload_seconds,
          args.max_upload_mb)


def check_port_free(host: str, port: int) -> None:
    """A clear error before the models load, instead of uvicorn's after."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise RuntimeError(f"cannot listen on {host}:{port} ({err.strerror}): another "
                               "program uses that port; choose one with --port") from None


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="bundle folder written by `lm train`")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--temperature", type=bounded(float, 0, 100), default=None,
                   help="0 = greedy (default: the bundle's measured best setting)")
    p.add_argument("--top-k", type=bounded(int, 0, 10_000_000), default=None, help="0 = off")
    p.add_argument("--top-p", type=bounded(float, 0, 1), default=None, help="1 = off")
    p.add_argument("--seed", type=bounded(int, 0, 2**63 - 1), default=None,
                   help="same seed, same output")
    p.add_argument("--device", default=None, help="default: CUDA when present, else CPU")


def _generate_parser(sub) -> None:
    g = sub.add_parser("generate", help="continue speech, or draw images from captions")
    kinds = g.add_subparsers(dest="kind", required=True)
    s = kinds.add_parser("speech", help="continue a speech prompt (GSLM-style unit LM)",
                         description="prompt wav → units → LM continuation → wav (prompt + "
                         "continuation, resynthesised in the prompt's voice).")
    s.add_argument("--prompt", required=True, help="audio file (any rate, mono or stereo)")
    s.add_argument("--prompt-seconds", type=bounded(float, 0, 3600), default=3.0,
                   help="use the prompt's first N seconds (GSLM uses 3; 0 = all)")
    s.add_argument("--max-seconds", type=bounded(float, 0.01, 600), default=10.0,
                   help="longest continuation; it ends earlier when the LM emits <eoa>")
    s.add_argument("--min-seconds", type=bounded(float, 0, 600), default=0.0,
                   help="forbid <eoa> for about this long (a whole utterance as the prompt "
                   "ends in silence, and the LM then tends to end at once)")
    s.add_argument("--continuation-only", action="store_true",
                   help="write the continuation without the resynthesised prompt")
    _sampling_args(s)
    i = kinds.add_parser("image", help="draw images for captions, with classifier-free guidance",
                         description="caption → exactly h×w image codes → image tokenizer "
                         "decoder. One image is written as it is, at the tokenizer's "
                         "resolution; several go into one grid PNG (a row per caption), or "
                         "numbered files with --separate.")
    i.add_argument("--caption", required=True, action="append",
                   help="caption text; repeat for several captions")
    i.add_argument("--num", type=bounded(int, 1, 256), default=1, help="images per caption")
    i.add_argument("--guidance", type=bounded(float, 0, 100), default=None,
                   help="classifier-free guidance scale; 1 = none (default: the bundle's)")
    i.add_argument("--decoding", choices=["causal", "maskgit"], default="causal",
                   help="causal: one code per forward in raster order; maskgit: all codes in "
                   "--steps parallel forwards with confidence-based re-masking (needs an LM "
                   "trained with the maskgit_image task)")
    i.add_argument("--steps", type=bounded(int, 1, 1024), default=8,
                   help="maskgit: number of parallel decoding steps, T")
    layout = i.add_mutually_exclusive_group()
    layout.add_argument("--separate", action="store_true",
                        help="write OUT_0.png, OUT_1.png, ... instead of one grid")
    layout.add_argument("--grid", action="store_true",
                        help="a framed grid even for a single image")
    _sampling_args(i)


def cmd_generate(args) -> None:
    from pathlib import Path

    from .pipelines import Bundle, SpeechContinuation, TextToImage

    bundle = Bundle(args.model, args.device)
    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                    seed=args.seed)
    out = Path(args.out)
    if args.kind == "speech":
        from speechtok.speech.io import load_audio, save_audio

        pipe = SpeechContinuation(bundle)
        sr = pipe.speech_tokenizer.sample_rate
        wav = load_audio(args.prompt, sr)
        result = pipe(wav, sr, prompt_seconds=args.prompt_seconds or None,
                      max_seconds=args.max_seconds, min_seconds=args.min_seconds,
                      include_prompt=not args.continuation_only,
                      **sampling)
        save_audio(out, result.waveforms[0], result.sample_rate)
        print(json.dumps({"out": str(out), "seconds": round(len(result.waveforms[0]) / sr, 2),
                          "prompt_units": len(result.prompt_units[0]),
                          "continuation_units": len(result.units[0]), **result.settings}))
        return
    from speechtok.image.io import image_grid, save_image, to_pil

    pipe = TextToImage(bundle)
    result = pipe(args.caption, num_images=args.num, guidance_scale=args.guidance,
                  decoding=args.decoding, steps=args.steps, **sampling)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.separate:
        files = [out.with_name(f"{out.stem}_{k}{out.suffix or '.png'}")
                 for k in range(len(result.images))]
        for f, img in zip(files, result.images, strict=True):
            save_image(to_pil(img), f)
    elif len(result.images) == 1 and not args.grid:  # the image itself: no frame, no padding
        files = [out]
        save_image(to_pil(result.images[0]), out)
    else:
        files = [out]
        save_image(image_grid(list(result.images.split(args.num))), out)
    print(json.dumps({"out": [str(f) for f in files], "images": len(result.images),
                      **result.settings}))


def train_configs() -> list[type]:
    from .model import LMConfig
    from .train import LMTrainConfig

    return [LMConfig, LMTrainConfig]


def cmd_train(args, extra: list[str]) -> None:
    from speechtok.training.config import build_configs, given_overrides, parse_overrides

    from .train import train_lm

    # unknown `--key value` pairs go to build_configs, whose error names the nearest field
    model_cfg, train_cfg = build_configs(train_configs(), args.config,
                                         {**parse_overrides(extra), **given_overrides(args)})
    train_lm(args.out, model_cfg, train_cfg, resume=args.resume)
    if args.push_to_hub:
        push_bundle(args.out, args.push_to_hub, args.private, args.revision)


def push_bundle(folder: str, repo: str, private: bool = False, revision: str | None = None,
                **hub: str | None):
    """Upload an LM bundle with its model card; `hub`: `endpoint=` / `token=` for
    speechtok.hub.push (default: the environment's)."""
    from pathlib import Path

    from speechtok.hub import push

    from .model_card import write_bundle_card
    from .vocab import LAYOUT_FILE

    folder_ = Path(folder)
    if (folder_ / "model.safetensors").is_file() and not (folder_ / LAYOUT_FILE).exists():
        raise FileNotFoundError(f"{folder} is not an LM bundle (no {LAYOUT_FILE}); for a "
                                "tokenizer use `speechtok push`")
    for name in ("speech_tokenizer", "image_tokenizer"):  # pointers to pretrained weights
        config = folder_ / name / "config.json"
        source = json.loads(config.read_text()).get("source", "") if config.exists() else ""
        if Path(source).is_absolute():
            print(f"warning: {config} points at {source}, a folder on this machine: the "
                  "uploaded bundle cannot load that tokenizer elsewhere (tokenize with a Hub "
                  "name, hf:OWNER/NAME, to share it)", file=sys.stderr)
    return push(folder, repo, private, revision, write_card=write_bundle_card, **hub)


def cmd_tokenize(args) -> None:
    from accelerate import PartialState

    from speechtok.tokenizer.registry import tokenizer_options
    from speechtok.training.accelerator import cpu_processes
    from speechtok.training.batches import auto_workers

    from .pretokenize import pretokenize

    state = PartialState(cpu=cpu_processes())
    device = args.device or str(state.device)
    counts = pretokenize(args.kind, args.data, args.tokenizer, args.out,
                         tokenizer_options=tokenizer_options(args),
                         rank=state.process_index, world=state.num_processes,
                         num_workers=auto_workers(args.num_workers), device=device,
                         batch_size=args.batch_size, chunk_rows=args.chunk_rows)
    print(json.dumps({"rank": state.process_index, "world": state.num_processes,
                      "rows": counts}))


def main(argv: list[str] | None = None) -> int:
    from speechtok.training.config import normalise_config_flags

    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        argv = normalise_config_flags(argv, train_configs())
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "tokenize":
            cmd_tokenize(args)
        elif args.command == "train":
            cmd_train(args, extra)
        elif args.command == "generate":
            cmd_generate(args)
        elif args.command == "push":
            push_bundle(args.model, args.repo, args.private, args.revision)
        elif args.command == "serve":
            cmd_serve(args)
        elif args.command == "benchmark":
            cmd_benchmark(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        what = f"{args.command} {args.kind}" if args.command == "generate" else args.command
        print(f"lm {what}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
