"""`lm`: the multimodal LM command line. So far: `lm tokenize` (pre-tokenisation)."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """examples:
  lm tokenize --kind speech --data runs/demo/data/speech --tokenizer runs/demo/speech_tokenizer \\
      --out runs/demo/codes/speech
  accelerate launch --multi_gpu --num_processes 4 -m lm.cli tokenize --kind image --data glyphs/ \\
      --tokenizer runs/demo/image_tokenizer --out runs/demo/codes/images   # one shard per process
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lm", description="Multimodal token LM over text, speech units and image codes. "
        "Training and generation arrive with the next releases.", epilog=EPILOG,
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
    return p


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
    args = _parser().parse_args(argv)
    try:
        if args.command == "tokenize":
            cmd_tokenize(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"lm {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
