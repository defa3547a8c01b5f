"""Stage 2: train the multimodal LM on pre-tokenised codes, under accelerate.

    codes (lm tokenize) ─► TaskSources × Mixture ─► packed blocks ─► causal LM ─► weighted loss

The tokenizers stay frozen (their codes were computed once). The run directory becomes the
bundle: the LM (`config.json`, `model.safetensors`, loadable by `AutoModelForCausalLM`), its
tokenizer (loadable by `AutoTokenizer`, plus `multimodal_vocab.json`), and copies of the speech
and image tokenizers the codes came from (`speech_tokenizer/`, `image_tokenizer/`), so one path
restores the whole system. The step is defined here; checkpoints (safetensors, atomic, with
optimiser, schedule and RNG in `checkpoints/last`) and exact resume are the shared loop's
(speechtok.training.loop).
"""

from __future__ import annotations

import json
import shutil
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from speechtok.fields import option, override
from speechtok.training.accelerator import make_accelerator, maybe_compile
from speechtok.training.batches import next_batch, step_batches
from speechtok.training.config import dump_config
from speechtok.training.loop import HISTORY_FILE, TrainLoop, apply_gradients
from speechtok.training.options import TrainLoopConfig
from speechtok.training.schedule import lr_lambda
from speechtok.training.sharding import fsdp_requested, full_state, shard

from .data import PackedBatches, TaskSources, corpus_texts
from .durations import DURATIONS_FILE, mean_run_lengths, save_durations
from .loss import merge_metrics, modality_weighted_loss, token_counts
from .model import LMConfig, extend_lm, new_lm
from .model_card import write_bundle_card
from .pretokenize import load_codes
from .vocab import MultimodalVocab, train_bpe


@dataclass
class LMTrainConfig(TrainLoopConfig):
    """How the LM is trained: its data, vocabulary, losses and batches (after the shared loop
    fields)."""

    speech_codes: str | None = option(None, "speech codes: a folder written by `lm tokenize`")
    image_codes: str | None = option(None, "image codes: a folder written by `lm tokenize`")
    text_tokenizer: str | None = option(None, "a local Hugging Face tokenizer for text; none = "
                                        "train a byte-level BPE on the corpus' texts")
    text_vocab_size: int = option(1000, "size of the BPE trained when text_tokenizer is none")
    pretrained: str | None = option(None, "a local causal LM to extend to the vocabulary "
                                    "instead of a new one")
    freeze_text: bool = option(False, "with pretrained: keep the text token rows frozen")
    task_weights: dict[str, float] = option({"speech": 1.0, "caption_image": 1.0},
                                            "sampling weight of each task in the mixture (speech, "
                                            "caption_image, maskgit_image, image_caption, "
                                            "speech_text, text_speech, text; lm.data)")
    loss_weights: dict[str, float] = option(
        {"text": 0.125, "image": 0.875, "audio": 1.0},
        "weight of each modality's mean cross-entropy (DALL-E: text 1/8, image 7/8)")
    caption_dropout: float = option(0.1, "share of empty captions (for classifier-free "
                                    "guidance)")
    caption_noise: float = option(0.0, "share of caption tokens replaced by random text tokens "
                                  "(robustness to words the captions never had)")
    cm3_rate: float = option(0.0, "share of samples in CM3 causal-masked form")
    block_size: int = option(256, "tokens per packed training block")
    samples_per_step: int = option(16, "samples per micro-batch, the global batch (split over "
                                   "processes by packed block)")
    grad_accum_steps: int = option(1, "micro-batches per optimiser step")
    steps: int = override(TrainLoopConfig, "steps", 1000)
    warmup_steps: int = override(TrainLoopConfig, "warmup_steps", 50)
    min_lr_ratio: float = override(TrainLoopConfig, "min_lr_ratio", 0.1)
    weight_decay: float = override(TrainLoopConfig, "weight_decay", 0.01)
    eval_every: int = override(TrainLoopConfig, "eval_every", 200)
    save_every: int = override(TrainLoopConfig, "save_every", 200)
    eval_batches: int = option(4, "held-out batches per evaluation")
    fsdp: bool = option(False, "shard parameters, gradients and optimiser state across the "
                        "processes (FSDP2: each decoder layer, then the whole model); also on "
                        "with an accelerate config of distributed_type FSDP "
                        "(recipes/accelerate/fsdp.yaml)")
    tensorboard: bool = option(True, "TensorBoard logs in OUT/logs (tensorboard --logdir "
                               "OUT/logs)")

    def __post_init__(self):
        super().__post_init__()
        if not (self.speech_codes or self.image_codes):
            raise ValueError("give speech_codes and/or image_codes (folders from `lm tokenize`)")
        for name in ("block_size", "samples_per_step", "grad_accum_steps", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")


def load_split_codes(folder: str | None, split: str):
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
    texts = corpus_texts(speech, images)  # alt_texts too: the BPE must know every wording
    if cfg.text_tokenizer:
        text_tok = cfg.text_tokenizer
    else:
        if not texts:
            texts = [" "]  # speech-only data: a byte-level BPE still encodes any text
        text_tok = train_bpe(texts, cfg.text_vocab_size)
    return MultimodalVocab.build(text_tok, speech_meta.get("codebook_size", 0),
                                 image_meta.get("codebook_size", 0),
                                 speech_meta.get("code_depth", 1), image_meta.get("code_depth", 1),
                                 image_meta.get("code_segments"),
                                 speech_meta.get("deduplicated"))


@torch.no_grad()
def evaluate(model, batches: PackedBatches | None, cfg: LMTrainConfig, device) -> dict:
    """Per-modality loss and bits/token on fixed held-out batches, each modality averaged over
    all its target tokens in them."""
    if batches is None:
        return {}
    was = model.training
    model.eval()
    parts = []
    for k in range(cfg.eval_batches):
        b = {key: v.to(device) for key, v in batches(10**9 + k).items()}
        logits = model(input_ids=b["input_ids"], position_ids=b["position_ids"],
                       attention_mask=b["attention_mask"]).logits
        parts.append(modality_weighted_loss(logits, b["labels"], b["modality"],
                                            cfg.loss_weights)[1])
    model.train(was)
    return merge_metrics(parts)


def micro_batches(batches: PackedBatches, accum: int, rank: int, world: int, step: int
                  ) -> list[dict[str, torch.Tensor]]:
    """The `accum` micro-batches of optimiser step `step` on process `rank` of `world`."""
    return [batches(step * accum + j, rank, world) for j in range(accum)]


def train_lm(out: str | Path, model_cfg: LMConfig, cfg: LMTrainConfig, resume: bool = False):
    """Train the LM; write the bundle into `out`; return (model, vocab)."""
    from accelerate.utils import set_seed

    out = Path(out)
    log = {"log_with": "tensorboard", "project_dir": str(out / "logs")} if cfg.tensorboard \
        else {}
    acc, mp = make_accelerator(cfg.mixed_precision, **log)
    set_seed(cfg.seed)
    speech, speech_meta = load_split_codes(cfg.speech_codes, "train")
    images, image_meta = load_split_codes(cfg.image_codes, "train")
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
    sources = TaskSources(vocab, speech, images, cfg.caption_dropout, cfg.cm3_rate, cfg.seed,
                          cfg.caption_noise)
    weights = {t: w for t, w in cfg.task_weights.items() if w > 0}
    batches = PackedBatches(sources, weights, cfg.block_size, cfg.samples_per_step, cfg.seed)
    v_speech, _ = load_split_codes(cfg.speech_codes, "valid")
    v_images, _ = load_split_codes(cfg.image_codes, "valid")
    valid_src = TaskSources(vocab, v_speech, v_images, 0.0, 0.0, cfg.seed)
    valid_weights = {t: w for t, w in weights.items() if t in valid_src.available()}
    valid = PackedBatches(valid_src, valid_weights, cfg.block_size, cfg.samples_per_step,
                          cfg.seed) if valid_weights else None
    sharded = fsdp_requested(cfg.fsdp) and acc.num_processes > 1
    if sharded:  # before the optimiser: its parameters become the shards
        shard(model, list(model.model.layers), acc.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    loop = TrainLoop(acc, cfg, out, "lm", model, opt, sched, sharded=sharded)
    if resume:
        loop.resume(model_cfg, cfg)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", model_cfg, cfg)
    if not sharded:  # a sharded model is already distributed; accelerate would wrap it in DDP
        model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    n_params = sum(p.numel() for p in raw.parameters())
    acc.print(f"LM: {n_params / 1e6:.2f}M parameters, vocabulary {len(vocab)} (text "
              f"{vocab.layout['text_size']}, audio {vocab.audio_size}, image {vocab.image_size}),"
              f" tasks {weights}, {acc.num_processes} process(es)"
              f"{' (FSDP)' if sharded else ''}, precision {mp}")
    if cfg.tensorboard:
        acc.init_trackers("lm")

    loader = step_batches(partial(micro_batches, batches, cfg.grad_accum_steps,
                                  acc.process_index, acc.num_processes),
                          loop.start_step, cfg.steps, cfg.num_workers, cfg.seed)

    forward = maybe_compile(model, cfg.compile)

    def train_step(step: int) -> dict[str, float]:
        # Gradient accumulation: `grad_accum_steps` micro-batches per optimiser step, their
        # per-modality token counts summed (over micro-batches and processes) before any loss,
        # so the update equals one batch holding all of them.
        micro = [{k: v.to(acc.device) for k, v in b.items()}
                 for b in next_batch(loader, step)]
        counts = acc.reduce(sum(token_counts(b["labels"], b["modality"]) for b in micro), "sum")
        opt.zero_grad(set_to_none=True)
        loss, parts = torch.zeros((), device=acc.device), []
        for j, b in enumerate(micro):
            sync = j == len(micro) - 1  # all-reduce gradients once, after the last micro-batch
            # (FSDP reduce-scatters every micro-batch's gradients; it has no no_sync)
            with (nullcontext() if sync or sharded else acc.no_sync(model)), acc.autocast():
                logits = forward(input_ids=b["input_ids"], position_ids=b["position_ids"],
                               attention_mask=b["attention_mask"]).logits
                part, metrics = modality_weighted_loss(logits, b["labels"], b["modality"],
                                                       cfg.loss_weights, counts,
                                                       acc.num_processes)
                acc.backward(part)
            loss = loss + part.detach()
            parts.append(metrics)
        apply_gradients(acc, model, opt, sched, cfg.max_grad_norm)
        # The logged figures are those of the whole global batch: the loss is the one-process
        # loss, and each modality is averaged over its tokens in every micro-batch and process.
        logs = {"train/loss": float(acc.reduce(loss.detach(), "mean")),
                **{f"train/{k}": v for k, v in
                   merge_metrics(parts, lambda t: acc.reduce(t.to(acc.device), "sum")).items()}}
        if cfg.tensorboard:
            acc.log({**logs, "train/lr": sched.get_last_lr()[0]}, step=step + 1)
        return logs

    def evaluate_now(done: int) -> dict[str, float]:
        ev = evaluate(raw, valid, cfg, acc.device)
        if cfg.tensorboard:
            acc.log({f"eval/{k}": v for k, v in ev.items()}, step=done)
        return ev

    model.train()
    loop.run(train_step, evaluate_now, printed="loss/", loader=loader)
    # gathered before end_training, which takes the process group down
    final = unsharded_copy(raw) if sharded and loop.complete else raw
    loop.finish(lambda folder: write_bundle(folder, final, vocab, cfg, speech_meta, image_meta,
                                            loop.history, speech), only_if_complete=True)
    if cfg.tensorboard:
        acc.end_training()
    return final, vocab


def unsharded_copy(model):
    """The whole model on the CPU of the main process (None on the others), gathered from its
    shards (a collective), for saving and returning."""
    from transformers import AutoModelForCausalLM

    state, _ = full_state(model)
    if not state:
        return None
    copy = AutoModelForCausalLM.from_config(model.config)
    copy.load_state_dict(state)  # tied names both present: the one tensor is set twice
    return copy


def write_bundle(out: Path, model, vocab: MultimodalVocab, cfg: LMTrainConfig, speech_meta: dict,
                 image_meta: dict, history: list, speech=None) -> None:
    model.save_pretrained(out)
    vocab.save_pretrained(out)
    # run lengths for generated units (deduplicated ones only: residual codes keep every frame)
    if speech is not None and vocab.audio_size and vocab.audio_dedup:
        save_durations(out / DURATIONS_FILE, mean_run_lengths(speech["units"], vocab.audio_size))
    for name, meta in (("speech_tokenizer", speech_meta), ("image_tokenizer", image_meta)):
        src = meta.get("tokenizer")
        if src and Path(src).is_dir() and Path(src).resolve() != (out / name).resolve():
            shutil.rmtree(out / name, ignore_errors=True)
            shutil.copytree(src, out / name, ignore=shutil.ignore_patterns("checkpoints",
                                                                            ".run.lock"))
        elif src and not (out / name).is_dir():
            warnings.warn(f"the {name} the codes came from ({src}) is gone: the bundle has no "
                          f"{name}/, so it cannot generate that modality", stacklevel=2)
    (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    write_bundle_card(out)  # hub-shaped from the start: README.md with metadata and metrics
