"""Training the learned decoder (speechtok.speech.vocoder) on a frozen speech tokenizer.

Each step crops clips, encodes them to units with the frozen tokenizer, lets its decoder
predict the log-mel (in the clip's own voice), and trains the vocoder to turn that log-mel into
the clip's waveform under the multi-resolution STFT loss plus a log-mel L1 (Vocos's
reconstruction terms, without its GAN: the discriminators pay off on GPU budgets, not in CPU
minutes). The result goes to TOKENIZER/vocoder/, where `SpeechTokenizer.from_pretrained` finds
it; the shared loop gives checkpoints and exact resume (speechtok.training.loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from speechtok.fields import option, override
from speechtok.memory_cache import per_process_mb
from speechtok.metrics.speech_quality import stoi
from speechtok.speech import SpeechTokenizer
from speechtok.speech.data import AudioSource, open_splits
from speechtok.speech.losses import log_mel_l1, multi_resolution_stft_loss
from speechtok.speech.train import SpeechClipsConfig
from speechtok.speech.vocoder import VOCODER_FOLDER, Vocoder, VocoderConfig
from speechtok.training.accelerator import start_run
from speechtok.training.batches import auto_workers, next_batch, step_batches
from speechtok.training.config import dump_config
from speechtok.training.loop import TrainLoop, apply_gradients, scalars
from speechtok.training.options import TrainLoopConfig
from speechtok.training.schedule import lr_lambda


@dataclass
class VocoderTrainConfig(SpeechClipsConfig):
    """How the learned decoder is trained (the shared clip fields, then the decoder's). Each
    held-out clip of an evaluation is cut to 8 s."""

    steps: int = override(TrainLoopConfig, "steps", 1000)
    lr: float = override(TrainLoopConfig, "lr", 2e-3)
    eval_max_items: int = override(SpeechClipsConfig, "eval_max_items", 16)
    mel_weight: float = option(1.0, "weight of the log-mel L1 next to the multi-resolution "
                               "STFT loss")


def tokenizer_log_mel(tok: SpeechTokenizer, wav: torch.Tensor) -> torch.Tensor:
    """What the frozen tokenizer's decoder predicts for `wav` (B, T), in its own voice: the
    vocoder's input, as a normal (not inference-mode) tensor."""
    with torch.no_grad():
        units = tok.quantizer.encode(tok.encoder(wav).transpose(1, 2))
        speaker = None
        if tok.speaker_encoder is not None:
            speaker = tok.speaker_encoder(tok.encoder.front(wav))
        z = tok.quantizer.decode(units)
        return tok.decoder(z.transpose(1, 2), speaker).clone()


def vocoder_losses(tok: SpeechTokenizer, pred: torch.Tensor, wav: torch.Tensor,
                   mel_weight: float) -> dict[str, torch.Tensor]:
    """The training terms of the vocoder's waveform `pred` against the clip `wav` (B, T)."""
    terms = {"stft": multi_resolution_stft_loss(pred, wav),
             "mel": log_mel_l1(tok.target_log_mel(pred.float()), tok.target_log_mel(wav))}
    terms["loss"] = terms["stft"] + mel_weight * terms["mel"]
    return terms


@torch.no_grad()
def evaluate_vocoder(tok: SpeechTokenizer, vocoder, source: AudioSource, max_items: int,
                     mel_weight: float) -> dict[str, float]:
    """Losses and STOI on up to `max_items` held-out clips, each cut to 8 s."""
    was_training = vocoder.training
    vocoder.eval()
    sums: dict[str, float] = {}
    n = min(len(source), max_items)
    limit = 8 * tok.sample_rate
    for i in range(n):
        wav = tok.pad_to_stride(source.load(i)[:limit][None].to(tok.device))
        pred = vocoder(tokenizer_log_mel(tok, wav))
        terms = vocoder_losses(tok, pred, wav, mel_weight)
        terms["stoi"] = stoi(wav[0], pred[0], tok.sample_rate)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    vocoder.train(was_training)
    return {k: v / n for k, v in sums.items()}


def train_vocoder(tokenizer: str | Path, data: str | Path, out: str | Path | None,
                  voc_cfg: VocoderConfig, cfg: VocoderTrainConfig, resume: bool = False
                  ) -> Vocoder:
    """Train a Vocoder for the saved tokenizer at `tokenizer` on the audio of `data`; save it
    to `out` (default TOKENIZER/vocoder, where the tokenizer loads it from); return it."""
    out = Path(out) if out else Path(tokenizer) / VOCODER_FOLDER
    acc, mp = start_run(cfg.mixed_precision, cfg.seed)
    tok = SpeechTokenizer.from_pretrained(str(tokenizer)).eval().to(acc.device)
    tok.requires_grad_(False)
    tok.attach_vocoder(None)  # a decoder trained before is not this one's input
    tc = tok.config
    voc_cfg.sample_rate, voc_cfg.input_mels, voc_cfg.hop = (tc.sample_rate, tc.decoder_mels,
                                                            tc.decoder_hop)
    workers = auto_workers(cfg.num_workers)
    train_src, valid_src = open_splits(data, tc.sample_rate, cfg.valid_fraction, seed=cfg.seed,
                                       cache_mb=per_process_mb(cfg.cache_mb, workers))
    # seeded here: loading the tokenizer drew from the global generator (more when it already
    # had a decoder), and the initial weights must not depend on that
    torch.manual_seed(cfg.seed)
    model = Vocoder(voc_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.8, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    loop = TrainLoop(acc, cfg, out, "vocoder", model, opt, sched)
    if resume:
        loop.resume()
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", voc_cfg, cfg)
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    segment = int(cfg.segment_seconds * tc.sample_rate)
    segment -= segment % tc.total_stride
    acc.print(f"vocoder: {sum(p.numel() for p in raw.parameters()) / 1e6:.2f}M parameters, "
              f"for the tokenizer {tokenizer}, {train_src.describe()} train / {len(valid_src)} "
              f"valid clips, device {acc.device}, precision {mp}")
    batches = step_batches(partial(train_src.batch, batch_size=cfg.batch_size, segment=segment,
                                   seed=cfg.seed, process_index=acc.process_index),
                           loop.start_step, cfg.steps, workers, cfg.seed)

    def train_step(step: int) -> dict[str, float]:
        wav = next_batch(batches, step).to(acc.device)
        with acc.autocast():
            terms = vocoder_losses(tok, model(tokenizer_log_mel(tok, wav)), wav,
                                   cfg.mel_weight)
        opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        apply_gradients(acc, model, opt, sched, cfg.max_grad_norm)
        return scalars(terms)

    model.train()
    loop.run(train_step, lambda done: evaluate_vocoder(tok, raw, valid_src, cfg.eval_max_items,
                                                       cfg.mel_weight),
             shown=("train/loss",), loader=batches)
    loop.finish(raw.save_pretrained)
    return raw
