"""Generation speed: our constrained `generate` against plain `model.generate`, and one image
with classifier-free guidance against without.

Model: the demo bundle (runs/demo/bundle, or --bundle DIR) when it exists, else a random LM of
the demo's size (recipes/builtin/lm.yaml) over the demo's vocabulary sizes; random weights
generate at the same speed.

  plain    model.generate(do_sample=True) from <bos> <boa> + 20 units with its attention mask
           (as batched prompts need), stop token <eoa> held off by min_new_tokens =
           max_new_tokens, so it always makes max_new_tokens tokens; no other processor
  ours     lm.generate.generate_ids on the same prompt with the same stop and length settings:
           the difference is the modality mask (audio units and <eoa> only)
  image    TextToImage-style generation of one 8×8 grid (+ <eoi>) from a caption, guidance
           scale 3 (cond + uncond rows in one batch) against scale 1 (cond rows only)

Tokens/s count generated tokens of all rows. Medians of --repeats interleaved runs.

    .venv/bin/python benchmarks/bench_generate.py [--bundle runs/demo/bundle] [--repeats 5]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import torch
from timing import median_seconds

from lm.generate import Sampling, generate_ids
from lm.model import LMConfig, new_lm
from lm.vocab import MultimodalVocab, train_bpe
from speechtok.training.config import build_configs

ROOT = Path(__file__).resolve().parents[1]


def load(bundle: Path):
    if (bundle / "multimodal_vocab.json").exists():
        from transformers import AutoModelForCausalLM

        return (AutoModelForCausalLM.from_pretrained(str(bundle)).eval(),
                MultimodalVocab.from_pretrained(bundle), f"bundle {bundle}")
    from lm.train import LMTrainConfig

    model_cfg, _ = build_configs([LMConfig, LMTrainConfig],
                                 ROOT / "recipes/builtin/lm.yaml", {"LMTrainConfig": {
                                     "image_codes": "-"}})
    vocab = MultimodalVocab.build(train_bpe([f"the letter {c}" for c in "abcdefgh"] * 20,
                                            1000), 256, 240)
    model = new_lm(model_cfg, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id).eval()
    return model, vocab, "random LM of the demo's size (no bundle found)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(ROOT / "runs/demo/bundle"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, v, what = load(Path(args.bundle))
    print(f"model: {what}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"threads {torch.get_num_threads()}\n")
    n = args.new_tokens
    prompt = [v.bos_id, v.boa_id, *v.audio_ids(torch.arange(20) % v.audio_size).tolist()]
    print("| batch | plain generate tok/s | ours (modality mask) tok/s | ratio |")
    print("|---|---|---|---|")
    for batch in (1, 16):
        t_plain, t_ours = median_seconds([partial(plain, model, v, prompt, batch, n),
                                          partial(ours, model, v, prompt, batch, n)],
                                         args.repeats, warmup=1)
        print(f"| {batch} | {batch * n / t_plain:.0f} | {batch * n / t_ours:.0f} | "
              f"**{t_plain / t_ours:.2f}×** |")
    caption = [v.bos_id, *v.encode_text("Carlito, the uppercase letter G"), v.boi_id]
    print("\n| images | no guidance (s) | guidance 3 (s) | time ratio |")
    print("|---|---|---|---|")
    for batch in (1, 16):
        t1, t3 = median_seconds([partial(image, model, v, caption, batch, 1.0),
                                 partial(image, model, v, caption, batch, 3.0)],
                                args.repeats, warmup=1)
        print(f"| {batch} | {t1:.3f} | {t3:.3f} | **{t3 / t1:.2f}×** |")


def plain(model, v, prompt, batch, n):
    with torch.inference_mode():
        ids = torch.tensor([prompt] * batch)
        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                       max_new_tokens=n, min_new_tokens=n, pad_token_id=v.pad_id,
                       eos_token_id=v.eoa_id, top_k=0)


def ours(model, v, prompt, batch, n):
    generate_ids(model, v, [prompt] * batch, stop_id=v.eoa_id, max_new_tokens=n,
                 sampling=Sampling(temperature=1.0), min_new_tokens=n)


def image(model, v, caption, batch, scale, grid=64):
    generate_ids(model, v, [caption] * batch, stop_id=v.eoi_id, max_new_tokens=grid + 1,
                 sampling=Sampling(temperature=1.0), image_tokens=grid, guidance_scale=scale,
                 uncond_prompts=[[v.bos_id, v.boi_id]] * batch)


if __name__ == "__main__":
    main()
