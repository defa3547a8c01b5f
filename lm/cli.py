"""`lm`: the multimodal LM command line. No subcommands exist yet (see lm/__init__.py)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lm", description="Multimodal token LM (text, speech units, image codes). "
        "Not implemented yet: this release ships the speech tokenizer only (`speechtok`).")
    parser.parse_args(argv)
    print("lm: no commands in this release yet; use `speechtok` for speech tokenizers.",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
