"""Causal vs MaskGIT decoding of glyph grids from one LM: faithfulness and speed.

The LM must have learned both image tasks (task_weights caption_image and maskgit_image), so
both decodings run on the same weights. For each decoding (causal; MaskGIT at each of --steps)
the guidance scale × temperature is chosen on the validation captions and the glyph classifier
(the demo's judge, recipes/builtin/demo_generate.py) then scores the test captions once at that
setting: the share of generated glyphs that show the requested character. Speed: seconds to
draw --speed-batch grids in one batch and a single grid, median of --repeats, both decodings
timed in turn in one run.

    python benchmarks/bench_maskgit.py --bundle runs/maskgit --image-data runs/demo2/data/images \
        --classifier runs/demo2/glyph_classifier --json runs/maskgit/decoding.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from timing import median_seconds  # benchmarks/timing.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lm.classifier_score import ImageClassifier  # noqa: E402
from lm.pipelines import TextToImage  # noqa: E402
from recipes.builtin.demo_generate import labelled_glyphs  # noqa: E402

GUIDANCE_SCALES = (1.0, 1.5, 2.0)
TEMPERATURES = (0.0, 0.7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="LM bundle trained with both image tasks")
    parser.add_argument("--image-data", required=True, help="glyph corpus (valid/ and test/)")
    parser.add_argument("--classifier", required=True, help="glyph classifier folder")
    parser.add_argument("--steps", default="4,8,12", help="MaskGIT step counts T to compare")
    parser.add_argument("--speed-batch", type=int, default=64, help="grids per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--reuse", default=None, help="take the settings and accuracies from "
                        "this earlier --json and only time the decodings")
    args = parser.parse_args()

    pipe = TextToImage.from_pretrained(args.bundle)
    clf = ImageClassifier.from_pretrained(args.classifier)
    res = pipe.image_tokenizer.config.resolution
    _, valid_labels, valid_captions, _ = labelled_glyphs(Path(args.image_data), "valid", res)
    _, test_labels, test_captions, _ = labelled_glyphs(Path(args.image_data), "test", res)
    decodings = [("causal", 0)] + [("maskgit", int(t)) for t in args.steps.split(",")]

    rows = []
    if args.reuse:
        rows = json.loads(Path(args.reuse).read_text())["rows"]
        for row in rows:
            row["settings"] = {"decoding": row["decoding"],
                               **({"steps": row["steps"]} if row["decoding"] == "maskgit"
                                  else {})}
        decodings = []
    for decoding, steps in decodings:
        kw = {"decoding": decoding, **({"steps": steps} if steps else {})}
        sweep = []
        for scale in GUIDANCE_SCALES:
            for temperature in TEMPERATURES:
                images = pipe(valid_captions, guidance_scale=scale, temperature=temperature,
                              seed=0, **kw).images
                sweep.append((clf.accuracy(images, valid_labels), scale, temperature))
        valid_acc, scale, temperature = max(sweep, key=lambda r: r[0])
        images = pipe(test_captions, guidance_scale=scale, temperature=temperature, seed=0,
                      **kw).images
        rows.append({"decoding": decoding, "steps": steps or pipe.grid ** 2,
                     "guidance_scale": scale, "temperature": temperature,
                     "valid_accuracy": round(valid_acc, 4),
                     "test_accuracy": round(clf.accuracy(images, test_labels), 4),
                     "settings": kw})
        print(json.dumps(rows[-1]), flush=True)

    batch = (test_captions * (args.speed_batch // len(test_captions) + 1))[:args.speed_batch]
    for row in rows:
        kw = dict(guidance_scale=row["guidance_scale"], temperature=row["temperature"],
                  seed=0, **row.pop("settings"))
        many, one = median_seconds([lambda kw=kw: pipe(batch, **kw),
                                    lambda kw=kw: pipe(batch[:1], **kw)], args.repeats, 1)
        row.update(seconds_batch=round(many, 3), seconds_one=round(one, 3))
    causal = rows[0]
    for row in rows:
        row["speedup_batch"] = round(causal["seconds_batch"] / row["seconds_batch"], 2)
        row["speedup_one"] = round(causal["seconds_one"] / row["seconds_one"], 2)

    print(f"\nbundle {args.bundle}: {pipe.grid}×{pipe.grid} grids, {len(valid_labels)} valid / "
          f"{len(test_labels)} test captions, threads={torch.get_num_threads()}")
    print(f"{'decoding':<12}{'forwards':>9}{'setting':>12}{'valid acc':>10}{'test acc':>9}"
          f"{f'{args.speed_batch} grids s':>13}{'×':>7}{'1 grid s':>10}{'×':>7}")
    for r in rows:
        name = r["decoding"] if r["decoding"] == "causal" else f"maskgit T={r['steps']}"
        setting = f"g{r['guidance_scale']} t{r['temperature']}"
        print(f"{name:<12}{r['steps']:>9}{setting:>12}{r['valid_accuracy']:>10.3f}"
              f"{r['test_accuracy']:>9.3f}{r['seconds_batch']:>13.2f}{r['speedup_batch']:>7.2f}"
              f"{r['seconds_one']:>10.3f}{r['speedup_one']:>7.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"bundle": args.bundle, "rows": rows,
                                               "time": time.strftime("%Y-%m-%d %H:%M")},
                                              indent=1))


if __name__ == "__main__":
    main()
