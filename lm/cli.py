"""`lm`: the multimodal LM command line: `lm tokenize` (pre-tokenisation), `lm train`."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """examples:
  lm tokenize --kind speech --data runs/demo/data/speech --tokenizer runs/demo/speech_tokenizer \\
      --out runs/demo/codes/speech
  accelerate launch --multi_gpu --num_processes 4 -m lm.cli tokenize --kind image --data glyphs/ \\
      --tokenizer runs/demo/image_tokenizer --out runs/demo/codes/images   # one shard per process
  lm train --out runs/demo/bundle --speech_codes runs/demo/codes/speech \
      --image_codes runs/demo/codes/images --steps 2000 --hidden_size 256
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lm", description="Multimodal token LM over text, speech units and image codes. "
        "Generation arrives with the next release.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenize", help="audio / images → tokenizer codes (datasets on disk)",
                       description="Encode every split (train/, valid/, test/, or the whole "
                       "folder) once with a trained speechtok tokenizer, via datasets.map. "
                       "Under `accelerate launch`, each process encodes and writes its own "
                       "contiguous shard on its own device.")
    t.add_argument("--kind", required=True, choices=["speech", "image"])
    t.add_argument("--data", required=True, help="folder of media (with split subfolders and "
                   "metadata.jsonl captions/texts) or a saved `datasets` dataset")
    t.add_argument("--tokenizer", required=True, help="saved speechtok tokenizer folder")
    t.add_argument("--out", required=True, help="output folder of code datasets")
    t.add_argument("--num-proc", type=int, default=None,
                   help="datasets.map worker processes per launched process")
    t.add_argument("--device", default=None,
                   help="default: this process's device under accelerate (CUDA if present)")
    r = sub.add_parser("train", help="train the LM on pre-tokenised codes; OUT becomes the bundle",
                       description="Train the multimodal LM. Any field of LMConfig (lm/model.py)"
                       " or LMTrainConfig (lm/train.py) is a `--key value`; precedence: defaults"
                       " < --config YAML < command line. OUT gets the LM, its tokenizer and the "
                       "speech/image tokenizers the codes came from.")
    r.add_argument("--out", required=True, help="run directory = the bundle")
    r.add_argument("--config", help="YAML file of config values")
    r.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoints/last if present")
    r.add_argument("--push-to-hub", metavar="REPO",
                   help="upload the bundle to this Hub repo when training ends (token from the "
                   "usual environment; checkpoints and logs are not uploaded)")
    r.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo")
    return p


def cmd_train(args, extra: list[str]) -> None:
    from speechtok.config_io import build_configs, parse_overrides

    from .model import LMConfig
    from .train import LMTrainConfig, train_lm

    model_cfg, train_cfg = build_configs([LMConfig, LMTrainConfig], args.config,
                                         parse_overrides(extra))
    train_lm(args.out, model_cfg, train_cfg, resume=args.resume)
    if args.push_to_hub:
        from speechtok.cli import push

        push(args.out, args.push_to_hub, private=args.private)


def cmd_tokenize(args) -> None:
    from accelerate import PartialState

    from speechtok.train import cpu_processes

    from .pretokenize import pretokenize

    state = PartialState(cpu=cpu_processes())
    device = args.device or str(state.device)
    counts = pretokenize(args.kind, args.data, args.tokenizer, args.out,
                         rank=state.process_index, world=state.num_processes,
                         num_proc=args.num_proc, device=device)
    print(json.dumps({"rank": state.process_index, "world": state.num_processes,
                      "rows": counts}))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "tokenize":
            cmd_tokenize(args)
        elif args.command == "train":
            cmd_train(args, extra)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
