"""Stage 2: train the multimodal LM on pre-tokenised codes, under accelerate.

    codes (lm tokenize) ─► TaskSources × Mixture ─► packed blocks ─► causal LM ─► weighted loss

The tokenizers stay frozen (their codes were computed once). The run directory becomes the
bundle: the LM (`config.json`, `model.safetensors`, loadable by `AutoModelForCausalLM`), its
tokenizer (loadable by `AutoTokenizer`, plus `multimodal_vocab.json`), and copies of the speech
and image tokenizers the codes came from (`speech_tokenizer/`, `image_tokenizer/`), so one path
restores the whole system. Checkpoints (safetensors, atomic, with optimiser, schedule and RNG)
live in `checkpoints/last`; batches are a function of the step, so `resume` is exact.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.training.accelerator import make_accelerator
from speechtok.training.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from speechtok.training.config import dump_config
from speechtok.training.loss_curve import LossCurve
from speechtok.training.schedule import lr_lambda

from .data import PackedBatches, TaskSources
from .durations import DURATIONS_FILE, mean_run_lengths, save_durations
from .loss import modality_weighted_loss, token_counts
from .model import LMConfig, extend_lm, new_lm
from .model_card import write_bundle_card
from .pretokenize import load_codes
from .vocab import MultimodalVocab, train_bpe


@dataclass
class LMTrainConfig:
    speech_codes: str | None = None  # folders written by `lm tokenize`
    image_codes: str | None = None
    text_tokenizer: str | None = None  # a local HF tokenizer; default: train a BPE on the texts
    text_vocab_size: int = 1000
    pretrained: str | None = None  # a local causal LM to extend instead of a new one
    freeze_text: bool = False
    task_weights: dict[str, float] = field(
        default_factory=lambda: {"speech": 1.0, "caption_image": 1.0})
    # DALL-E's text 1/8, image 7/8; speech units weigh 1.
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"text": 0.125, "image": 0.875, "audio": 1.0})
    caption_dropout: float = 0.1  # share of empty captions (classifier-free guidance)
    cm3_rate: float = 0.0  # share of samples in CM3 causal-masked form
    block_size: int = 256
    samples_per_step: int = 16  # the global batch, split over processes by packed block
    grad_accum_steps: int = 1  # micro-batches of samples_per_step each per optimiser step
    steps: int = 1000
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 200
    log_every: int = 25  # training terms averaged every N steps → train_curve.json
    eval_batches: int = 4
    save_every: int = 200
    seed: int = 0
    mixed_precision: str = "auto"
    stop_after_steps: int = 0
    tensorboard: bool = True  # TensorBoard logs in OUT/logs (tensorboard --logdir OUT/logs)

    def __post_init__(self):
        if not (self.speech_codes or self.image_codes):
            raise ValueError("give speech_codes and/or image_codes (folders from `lm tokenize`)")
        for name in ("steps", "block_size", "samples_per_step", "grad_accum_steps", "eval_every",
                     "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")


def _codes(folder: str | None, split: str):
    if not folder:
        return None, {}
    meta = json.loads((Path(folder) / "pretokenized.json").read_text())
    for name in (split, "all") if split == "train" else (split, "test"):
        try:
            return load_codes(folder, name), meta
        except FileNotFoundError:
            continue
    return None, meta


def build_vocab(cfg: LMTrainConfig, speech, images, speech_meta, image_meta) -> MultimodalVocab:
    texts = [t for ds in (speech, images) if ds is not None for t in ds["text"] if t]
    if cfg.text_tokenizer:
        text_tok = cfg.text_tokenizer
    else:
        if not texts:
            texts = [" "]  # speech-only data: a byte-level BPE still encodes any text
        text_tok = train_bpe(texts, cfg.text_vocab_size)
    return MultimodalVocab.build(text_tok, speech_meta.get("codebook_size", 0),
                                 image_meta.get("codebook_size", 0))


@torch.no_grad()
def evaluate(model, batches: PackedBatches | None, cfg: LMTrainConfig, device) -> dict:
    """Per-modality loss and bits/token on fixed held-out batches."""
    if batches is None:
        return {}
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    for k in range(cfg.eval_batches):
        b = {key: v.to(device) for key, v in batches(10**9 + k).items()}
        logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"],
                       attention_mask=b["attention_mask"]).logits
        _, metrics = modality_weighted_loss(logits, b["labels"], b["modality"], cfg.loss_weights)
        for key, v in metrics.items():
            sums[key] = sums.get(key, 0.0) + v / cfg.eval_batches
    model.train(was)
    return sums


def train_lm(out: str | Path, model_cfg: LMConfig, cfg: LMTrainConfig, resume: bool = False):
    """Train the LM; write the bundle into `out`; return (model, vocab)."""
    from accelerate.utils import set_seed

    out = Path(out)
    log = {"log_with": "tensorboard", "project_dir": str(out / "logs")} if cfg.tensorboard \
        else {}
    acc, mp = make_accelerator(cfg.mixed_precision, **log)
    set_seed(cfg.seed)
    speech, speech_meta = _codes(cfg.speech_codes, "train")
    images, image_meta = _codes(cfg.image_codes, "train")
    vocab_dir = out / "checkpoints" / "vocab"
    if resume and (vocab_dir / "multimodal_vocab.json").exists():
        vocab = MultimodalVocab.from_pretrained(vocab_dir)
    else:
        vocab = build_vocab(cfg, speech, images, speech_meta, image_meta)
        if acc.is_main_process:
            vocab.save_pretrained(vocab_dir)
    if cfg.pretrained:
        model, _ = extend_lm(cfg.pretrained, len(vocab),
                             vocab.layout["text_size"] if cfg.freeze_text else 0)
    else:
        model = new_lm(model_cfg, len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id)
    model.config._attn_implementation = "sdpa"  # the 4-D packing mask needs SDPA or eager
    sources = TaskSources(vocab, speech, images, cfg.caption_dropout, cfg.cm3_rate, cfg.seed)
    weights = {t: w for t, w in cfg.task_weights.items() if w > 0}
    batches = PackedBatches(sources, weights, cfg.block_size, cfg.samples_per_step, cfg.seed)
    v_speech, _ = _codes(cfg.speech_codes, "valid")
    v_images, _ = _codes(cfg.image_codes, "valid")
    valid_src = TaskSources(vocab, v_speech, v_images, 0.0, 0.0, cfg.seed)
    valid_weights = {t: w for t, w in weights.items() if t in valid_src.available()}
    valid = PackedBatches(valid_src, valid_weights, cfg.block_size, cfg.samples_per_step,
                          cfg.seed) if valid_weights else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    ckpt_dir = out / "checkpoints" / "last"
    start, history, curve = 0, [], LossCurve(cfg.log_every)
    found = find_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        state = load_checkpoint(found, model, opt, sched)
        start, history = state["step"], state.get("history", [])
        curve = LossCurve(cfg.log_every, state.get("curve"))
        acc.print(f"resuming from {found} at step {start}")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", model_cfg, cfg)
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"LM: {n_params / 1e6:.2f}M parameters, vocabulary {len(vocab)} (text "
              f"{vocab.layout['text_size']}, audio {vocab.audio_size}, image {vocab.image_size}),"
              f" tasks {weights}, {acc.num_processes} process(es), precision {mp}")
    if cfg.tensorboard:
        acc.init_trackers("lm")
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train lm",
               disable=not acc.is_local_main_process, dynamic_ncols=True)
    t0 = time.time()
    done = start
    model.train()
    for step in bar:
        # Gradient accumulation: `grad_accum_steps` micro-batches per optimiser step, their
        # per-modality token counts summed (over micro-batches and processes) before any loss,
        # so the update equals one batch holding all of them.
        micro = [{k: v.to(acc.device) for k, v in
                  batches(step * cfg.grad_accum_steps + j, acc.process_index,
                          acc.num_processes).items()} for j in range(cfg.grad_accum_steps)]
        counts = acc.reduce(sum(token_counts(b["labels"], b["modality"]) for b in micro), "sum")
        opt.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=acc.device)
        for j, b in enumerate(micro):
            sync = j == len(micro) - 1  # all-reduce gradients once, after the last micro-batch
            with (nullcontext() if sync else acc.no_sync(model)), acc.autocast():
                logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"],
                               attention_mask=b["attention_mask"]).logits
                part, metrics = modality_weighted_loss(logits, b["labels"], b["modality"],
                                                       cfg.loss_weights, counts,
                                                       acc.num_processes)
                acc.backward(part)
            loss = loss + part.detach()
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        global_loss = float(acc.reduce(loss.detach(), "mean"))  # = the one-process loss
        bar.set_postfix(loss=round(global_loss, 4))
        curve.add(step + 1, {"train/loss": global_loss,
                             **{f"train/{k}": v for k, v in metrics.items()}})
        if cfg.tensorboard:
            acc.log({"train/loss": global_loss, "train/lr": sched.get_last_lr()[0],
                     **{f"train/{k}": v for k, v in metrics.items()}}, step=step + 1)
        done = step + 1
        last = done == cfg.steps or done == cfg.stop_after_steps
        if done % cfg.eval_every == 0 or last:
            ev = evaluate(raw, valid, cfg, acc.device)
            if cfg.tensorboard:
                acc.log({f"eval/{k}": v for k, v in ev.items()}, step=done)
            history.append({"step": done, "train/loss": global_loss,
                            **{f"train/{k}": v for k, v in metrics.items()},
                            **{f"eval/{k}": v for k, v in ev.items()},
                            "seconds": time.time() - t0})
            acc.print(f"step {done}: " + json.dumps({k: round(v, 4) for k, v in ev.items()
                                                     if k.startswith("loss/")}))
        if acc.is_main_process and (done % cfg.save_every == 0 or last):
            save_checkpoint(ckpt_dir, raw, opt, sched, {"step": done, "history": history,
                                                        "curve": curve.points})
        if last:
            break
    acc.wait_for_everyone()
    if cfg.tensorboard:
        acc.end_training()
    if acc.is_main_process and (done == cfg.steps):
        write_bundle(out, raw, vocab, cfg, speech_meta, image_meta, history, speech)
        curve.save(out)
    return raw, vocab


def write_bundle(out: Path, model, vocab: MultimodalVocab, cfg: LMTrainConfig, speech_meta: dict,
                 image_meta: dict, history: list, speech=None) -> None:
    model.save_pretrained(out)
    vocab.save_pretrained(out)
    if speech is not None and vocab.audio_size:  # run lengths for generated units
        save_durations(out / DURATIONS_FILE, mean_run_lengths(speech["units"], vocab.audio_size))
    for name, meta in (("speech_tokenizer", speech_meta), ("image_tokenizer", image_meta)):
        src = meta.get("tokenizer")
        if src and Path(src).is_dir() and Path(src).resolve() != (out / name).resolve():
            shutil.rmtree(out / name, ignore_errors=True)
            shutil.copytree(src, out / name, ignore=shutil.ignore_patterns("checkpoints"))
        elif src and not (out / name).is_dir():
            warnings.warn(f"the {name} the codes came from ({src}) is gone: the bundle has no "
                          f"{name}/, so it cannot generate that modality", stacklevel=2)
    (out / "train_history.json").write_text(json.dumps(history, indent=1))
    write_bundle_card(out)  # hub-shaped from the start: README.md with metadata and metrics
