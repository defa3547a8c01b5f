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


class DecoderLogMel:
    """Our tokenizer: the vocoder turns its decoder's log-mel into the waveform."""

    def __init__(self, tok: SpeechTokenizer):
        self.tok = tok
        tok.attach_vocoder(None)  # a decoder trained before is not this one's input
        c = tok.config
        self.sample_rate, self.stride = c.sample_rate, c.total_stride

    def configure(self, voc_cfg: VocoderConfig) -> Vocoder:
        c = self.tok.config
        voc_cfg.sample_rate, voc_cfg.input_mels, voc_cfg.hop = (c.sample_rate, c.decoder_mels,
                                                                c.decoder_hop)
        return Vocoder(voc_cfg)

    def inputs(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the vocoder's input, the waveform it should give) for clips `wav` (B, T)."""
        wav = self.tok.pad_to_stride(wav)
        return tokenizer_log_mel(self.tok, wav), wav

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        return self.tok.target_log_mel(wav)


class UnitInputs:
    """Any other tokenizer of one code a frame (k-means units): the vocoder embeds the units."""

    def __init__(self, tok):
        import torchaudio

        self.tok, layout = tok, tok.layout
        if layout.modality != "speech" or layout.depth != 1:
            raise ValueError(f"a unit vocoder decodes speech units of one code a frame; this "
                             f"tokenizer gives {layout.modality} codes of depth {layout.depth}")
        self.sample_rate = layout.sample_rate
        self.stride = round(layout.sample_rate / layout.frame_rate)
        self.mel = torchaudio.transforms.MelSpectrogram(
            self.sample_rate, n_fft=4 * self.stride, hop_length=self.stride // 4, n_mels=80
        ).to(tok.device)

    def configure(self, voc_cfg: VocoderConfig) -> Vocoder:
        from dataclasses import asdict

        from .unit_vocoder import UnitVocoder, UnitVocoderConfig

        fields = {**asdict(voc_cfg), "kind": "unit_vocoder", "sample_rate": self.sample_rate,
                  "hop": self.stride, "units": self.tok.layout.codebook_size}
        if voc_cfg.n_fft == VocoderConfig.n_fft:  # the default: 4 × hop (75 % overlap)
            fields["n_fft"] = 4 * self.stride
        return UnitVocoder(UnitVocoderConfig(**fields))

    def inputs(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            units = self.tok.encode(wav).clone()  # (B, N): the frames the features give
        return units, wav[..., : units.shape[-1] * self.stride]

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav.float()).clamp_min(1e-4))


def vocoder_task(tok):
    """What a vocoder for `tok` learns to invert (DecoderLogMel or UnitInputs). Only a
    tokenizer whose folder keeps a vocoder (`attach_vocoder`: ours, k-means units) takes one;
    a pretrained codec has its own decoder."""
    if not hasattr(tok, "attach_vocoder"):
        raise ValueError(f"a {type(tok).__name__} decodes with its own decoder: vocoders are "
                         "trained for our speech tokenizers and k-means units")
    return DecoderLogMel(tok) if isinstance(tok, SpeechTokenizer) else UnitInputs(tok)


def vocoder_losses(task, pred: torch.Tensor, wav: torch.Tensor,
                   mel_weight: float) -> dict[str, torch.Tensor]:
    """The training terms of the vocoder's waveform `pred` against the clip `wav` (B, T)."""
    terms = {"stft": multi_resolution_stft_loss(pred, wav),
             "mel": log_mel_l1(task.log_mel(pred.float()), task.log_mel(wav))}
    terms["loss"] = terms["stft"] + mel_weight * terms["mel"]
    return terms


@torch.no_grad()
def evaluate_vocoder(task, vocoder, source: AudioSource, max_items: int,
                     mel_weight: float) -> dict[str, float]:
    """Losses and STOI on up to `max_items` held-out clips, each cut to 8 s."""
    was_training = vocoder.training
    vocoder.eval()
    sums: dict[str, float] = {}
    n = min(len(source), max_items)
    limit = 8 * task.sample_rate
    device = next(vocoder.parameters()).device
    for i in range(n):
        inputs, wav = task.inputs(source.load(i)[:limit][None].to(device))
        pred = vocoder(inputs)
        terms = vocoder_losses(task, pred, wav, mel_weight)
        terms["stoi"] = stoi(wav[0], pred[0], task.sample_rate)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    vocoder.train(was_training)
    return {k: v / n for k, v in sums.items()}


def train_vocoder(data: str | Path, out: str | Path | None, voc_cfg: VocoderConfig,
                  cfg: VocoderTrainConfig, resume: bool = False, *, tokenizer: str | Path
                  ) -> Vocoder:
    """Train a vocoder for the saved tokenizer at `tokenizer` on the audio of `data` (ours: a
    Vocoder of its decoder's log-mel; k-means units: a UnitVocoder); save it to `out` (default
    TOKENIZER/vocoder, where the tokenizer loads it from); return it."""
    from speechtok.tokenizer import HF_PREFIX, load_tokenizer

    if str(tokenizer).startswith(HF_PREFIX):
        raise ValueError(f"{tokenizer}: a pretrained codec decodes with its own decoder")
    out = Path(out) if out else Path(tokenizer) / VOCODER_FOLDER
    acc, mp = start_run(cfg.mixed_precision, cfg.seed)
    tok = load_tokenizer(str(tokenizer), str(acc.device))
    tok.requires_grad_(False)
    task = vocoder_task(tok)
    workers = auto_workers(cfg.num_workers)
    train_src, valid_src = open_splits(data, task.sample_rate, cfg.valid_fraction,
                                       seed=cfg.seed,
                                       cache_mb=per_process_mb(cfg.cache_mb, workers))
    # seeded here: loading the tokenizer drew from the global generator (more when it already
    # had a decoder), and the initial weights must not depend on that
    torch.manual_seed(cfg.seed)
    model = task.configure(voc_cfg)
    voc_cfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.8, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    loop = TrainLoop(acc, cfg, out, "vocoder", model, opt, sched)
    if resume:
        loop.resume(voc_cfg, cfg)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        dump_config(out / "train_config.yaml", voc_cfg, cfg)
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    segment = int(cfg.segment_seconds * task.sample_rate)
    segment -= segment % task.stride
    acc.print(f"vocoder: {sum(p.numel() for p in raw.parameters()) / 1e6:.2f}M parameters, "
              f"for the tokenizer {tokenizer}, {train_src.describe()} train / {len(valid_src)} "
              f"valid clips, device {acc.device}, precision {mp}")
    batches = step_batches(partial(train_src.batch, batch_size=cfg.batch_size, segment=segment,
                                   seed=cfg.seed, process_index=acc.process_index),
                           loop.start_step, cfg.steps, workers, cfg.seed)

    def train_step(step: int) -> dict[str, float]:
        inputs, wav = task.inputs(next_batch(batches, step).to(acc.device))
        with acc.autocast():
            terms = vocoder_losses(task, model(inputs), wav, cfg.mel_weight)
        opt.zero_grad(set_to_none=True)
        acc.backward(terms["loss"])
        apply_gradients(acc, model, opt, sched, cfg.max_grad_norm)
        return scalars(terms)

    model.train()
    loop.run(train_step, lambda done: evaluate_vocoder(task, raw, valid_src,
                                                       cfg.eval_max_items, cfg.mel_weight),
             shown=("train/loss",), loader=batches)
    loop.finish(raw.save_pretrained)
    return raw
