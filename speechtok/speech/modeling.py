"""SpeechTokenizer: 16 kHz speech ↔ discrete pseudo-text units (about 50 Hz), GSLM style.

    wav (B, T) ─► log-mel ─► conv encoder ─► (B, N, D) ─► VectorQuantizer ─► units (B, N)
    units ─► codebook vectors ─► conv decoder ─► log-mel (20 ms) ─► linear |STFT| (5 ms hop)
          ─► Griffin-Lim ─► wav

A VQ-VAE (van den Oord et al. 2017) whose decoder predicts a mel spectrogram; the mel is mapped
back to a linear magnitude by the filterbank's pseudo-inverse and phase comes from Griffin-Lim
(Griffin & Lim 1984) with momentum (Perraudin et al. 2013), chosen over a waveform decoder
because it is intelligible after minutes of CPU training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..hub.loading import QuietLocalLoading
from ..quantization import QuantizerOutput, build_quantizer
from ..tokenizer.interface import MediaTokenizer
from ..tokenizer.layout import CodeLayout
from .configuration import SpeechTokenizerConfig
from .io import prepare_waveform
from .modules import SpeakerEncoder, SpectrogramDecoder, SpeechEncoder
from .units import undedup


@dataclass
class SpeechTokenizerOutput:
    """What one training forward returns."""

    log_mel: torch.Tensor  # (B, decoder_mels, T') predicted
    target_log_mel: torch.Tensor  # (B, decoder_mels, T') of the input
    quantizer: QuantizerOutput
    latents: torch.Tensor | None = None  # (B, N, D) the encoder's output, before quantizing
    clean_codes: torch.Tensor | None = None  # (B, N) units of the clean input, when asked


class SpeechTokenizer(
    MediaTokenizer,
    QuietLocalLoading,
    nn.Module,
    PyTorchModelHubMixin,
    library_name="speechtok-lm",
    tags=["speech-tokenizer", "audio", "vq-vae", "speechtok-lm"],
):
    """Speech ↔ units. `encode(wav, sample_rate)` → `(batch, frames)` units; `decode(units)` →
    `(batch, samples)` waveform at `sample_rate`. Save/load with `save_pretrained` /
    `from_pretrained` (config.json + model.safetensors) and share with `push_to_hub`."""

    def __init__(self, config: SpeechTokenizerConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = SpeechTokenizerConfig()
        elif isinstance(config, dict):
            config = SpeechTokenizerConfig(**config)
        self.config = config
        self.encoder = SpeechEncoder(config)
        self.quantizer = build_quantizer(config, config.latent_dim)
        self.decoder = SpectrogramDecoder(config)
        self.speaker_encoder = SpeakerEncoder(config) if config.speaker_dim else None
        # The average training voice (EMA of speaker vectors): the voice of decode(units).
        self.register_buffer("default_speaker", torch.zeros(max(config.speaker_dim, 1)))
        self.stft_window: torch.Tensor
        self.register_buffer("stft_window", torch.hann_window(config.out_n_fft), persistent=False)
        # The decoder's mel filterbank (F, M) and its pseudo-inverse (F, M), which maps a mel
        # spectrum back to the least-squares linear one. Griffin-Lim of that at a 5 ms hop,
        # from a true mel at 20 ms frames, was as intelligible as Griffin-Lim of the true
        # linear spectrogram: pocketsphinx WER 0.13 vs 0.17 on 40 held-out utterances.
        fb = torchaudio.functional.melscale_fbanks(config.out_n_fft // 2 + 1, 0.0,
                                                   config.sample_rate / 2, config.decoder_mels,
                                                   config.sample_rate)
        self.register_buffer("synth_fb", fb, persistent=False)
        self.register_buffer("synth_fb_pinv", torch.linalg.pinv(fb.T), persistent=False)
        # The learned decoder (speechtok.speech.vocoder), when one was trained for this
        # tokenizer. Kept outside the module tree on purpose: its weights live in their own
        # folder (vocoder/), so the tokenizer's model.safetensors is the same with or without.
        self.__dict__["vocoder"] = None

    # ---- the learned decoder --------------------------------------------------------------
    def attach_vocoder(self, vocoder) -> None:
        """Use `vocoder` (a speechtok.speech.vocoder.Vocoder) in `decode`; None detaches."""
        if vocoder is not None:
            c = vocoder.config
            if (c.sample_rate, c.input_mels, c.hop) != (self.config.sample_rate,
                                                        self.config.decoder_mels,
                                                        self.config.decoder_hop):
                raise ValueError(f"vocoder (rate {c.sample_rate}, {c.input_mels} mels, hop "
                                 f"{c.hop}) does not fit this tokenizer (rate "
                                 f"{self.config.sample_rate}, {self.config.decoder_mels} mels, "
                                 f"hop {self.config.decoder_hop})")
            vocoder.eval()
        self.__dict__["vocoder"] = vocoder

    def _save_pretrained(self, save_directory) -> None:
        super()._save_pretrained(save_directory)
        if self.vocoder is not None:
            from .vocoder import VOCODER_FOLDER

            self.vocoder.save_pretrained(Path(save_directory) / VOCODER_FOLDER)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs):
        from .vocoder import VOCODER_FOLDER, Vocoder

        model = super()._from_pretrained(model_id=model_id, **kwargs)
        folder = Path(model_id) / VOCODER_FOLDER
        if folder.is_dir() and (folder / "model.safetensors").exists():
            model.attach_vocoder(Vocoder.from_pretrained(str(folder)))
        return model

    # ---- properties -------------------------------------------------------------------
    modality = "speech"

    @property
    def layout(self) -> CodeLayout:
        c = self.config
        return CodeLayout("speech", c.codebook_size, c.code_depth, sample_rate=c.sample_rate,
                          frame_rate=c.frame_rate)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- training -----------------------------------------------------------------------
    def target_log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """What the decoder learns to predict: the log-mel (of magnitudes) of `wav` (B, T), T a
        multiple of total_stride → (B, decoder_mels, T / decoder_hop)."""
        cfg = self.config
        spec = torch.stft(wav, cfg.out_n_fft, cfg.decoder_hop, window=self.stft_window,
                          center=True, return_complex=True)
        # center=True yields T/hop + 1 frames; the decoder makes T/hop: drop the last.
        mel = torch.einsum("bft,fm->bmt", spec.abs()[..., :-1], self.synth_fb)
        return torch.log(mel.clamp_min(1e-4))

    def mel_to_log_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, M, N) at decoder_hop → log |STFT| (B, F, N · decoder_hop / out_hop) for
        Griffin-Lim: interpolated in time to the 5 ms hop (frame t of hop H is centred on
        sample t·H, so fine frame j sits at j / factor) and mapped to a linear magnitude by
        the filterbank's pseudo-inverse (negative least-squares values floored)."""
        factor, n = self.config.decoder_hop // self.config.out_hop, log_mel.shape[-1]
        if factor > 1:
            fine = F.interpolate(log_mel, size=factor * (n - 1) + 1, mode="linear",
                                 align_corners=True) if n > 1 else log_mel
            log_mel = F.pad(fine, (0, factor * n - fine.shape[-1]), mode="replicate")
        mag = torch.einsum("fm,bmt->bft", self.synth_fb_pinv, log_mel.float().exp())
        return torch.log(mag.clamp_min(1e-4))

    def forward(self, wav: torch.Tensor, input_wav: torch.Tensor | None = None,
                warp: torch.Tensor | None = None, clean_codes: bool = False
                ) -> SpeechTokenizerOutput:
        """Training pass on `wav` (B, T) with T a multiple of `config.total_stride`.

        The encoder sees `input_wav` (an augmented copy, e.g. gain-changed) when given, with its
        spectrum warped by `warp` (B,) factors (VTLP); the speaker encoder and the
        reconstruction target always use the clean `wav`. `clean_codes` also returns the units
        of the clean `wav` (no gradient): the targets of the consistency objective.
        """
        clean = self.encoder.front(wav)  # (B, M, T/hop), shared when nothing is augmented
        augmented = input_wav is not None or warp is not None
        if not augmented:
            z = self.encoder.from_features(clean)  # (B, D, N)
        else:
            z = self.encoder(wav if input_wav is None else input_wav, warp)
        targets = None
        if clean_codes:
            with torch.no_grad():
                clean_z = self.encoder.from_features(clean) if augmented else z
                targets = self.quantizer.encode(clean_z.transpose(1, 2))
                if targets.dim() == 3:  # residual: the first codebook
                    targets = targets[:, 0]
        q = self.quantizer(z.transpose(1, 2))  # (B, N, D)
        speaker = None
        if self.speaker_encoder is not None:
            speaker = self.speaker_encoder(clean)
            if self.training:  # track the mean voice for reference-free decoding
                self.default_speaker.lerp_(speaker.detach().mean(0).float(), 0.01)
        log_mel = self.decoder(q.quantized.transpose(1, 2), speaker)  # (B, M, N * up)
        return SpeechTokenizerOutput(log_mel, self.target_log_mel(wav), q, z.transpose(1, 2),
                                     targets)

    # ---- encoding ---------------------------------------------------------------------
    def pad_to_stride(self, wav: torch.Tensor) -> torch.Tensor:
        rem = wav.shape[-1] % self.config.total_stride
        return F.pad(wav, (0, self.config.total_stride - rem)) if rem else wav

    def _encode_frames(self, wav: torch.Tensor) -> torch.Tensor:
        z = self.encoder(wav).transpose(1, 2)  # (B, N, D)
        return self.quantizer.encode(z)

    @torch.inference_mode()
    def encode(self, wav: torch.Tensor, sample_rate: int | None = None,
               chunk_seconds: float | None = None) -> torch.Tensor:
        """Waveform `(batch, samples)` (or `(samples,)`, or `(batch, channels, samples)`) →
        units `(batch, frames)` (`(batch, depth, frames)` for RVQ), frames = ceil(samples / 320).

        Other sample rates are resampled and channels downmixed, with a warning. Audio longer
        than `chunk_seconds` is encoded in overlapping chunks whose overlap covers the
        encoder's receptive field, so memory stays bounded and the codes equal a single pass.
        """
        sr = self.sample_rate if sample_rate is None else sample_rate
        wav = prepare_waveform(wav, sr, self.sample_rate).to(self.device)
        wav = self.pad_to_stride(wav)
        stride = self.config.total_stride
        n_frames = wav.shape[-1] // stride
        chunk = int((chunk_seconds or self.config.chunk_seconds) * self.frame_rate)
        margin = self.config.chunk_margin_frames
        if n_frames <= chunk + 2 * margin:
            return self._encode_frames(wav)
        pieces = []
        for start in range(0, n_frames, chunk):
            end = min(start + chunk, n_frames)
            lo, hi = max(0, start - margin), min(n_frames, end + margin)
            codes = self._encode_frames(wav[..., lo * stride: hi * stride])
            pieces.append(codes[..., start - lo: end - lo])
        return torch.cat(pieces, dim=-1)

    # ---- decoding ---------------------------------------------------------------------
    def _check_units(self, units: torch.Tensor) -> torch.Tensor:
        units = torch.as_tensor(units)
        if units.dtype.is_floating_point:
            raise ValueError(f"units must be integer ids, got dtype {units.dtype}")
        if units.dim() == 1:
            units = units[None]
        if units.numel() == 0:
            raise ValueError("no units to decode")
        bad = (units < 0) | (units >= self.config.codebook_size)
        if bad.any():
            raise ValueError(
                f"unit id {int(units[bad][0])} is out of range [0, {self.config.codebook_size})"
            )
        return units.long().to(self.device)

    @torch.inference_mode()
    def speaker_embedding(self, wav: torch.Tensor, sample_rate: int | None = None
                          ) -> torch.Tensor:
        """The voice of `wav` `(batch, samples)` as `(batch, speaker_dim)`, for `decode`."""
        if self.speaker_encoder is None:
            raise ValueError("this tokenizer has no speaker encoder (speaker_dim=0)")
        sr = self.sample_rate if sample_rate is None else sample_rate
        wav = self.pad_to_stride(prepare_waveform(wav, sr, self.sample_rate).to(self.device))
        return self.speaker_encoder(self.encoder.front(wav))

    @torch.inference_mode()
    def decode_log_magnitude(self, units: torch.Tensor, speaker: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """Units `(batch, frames)` → predicted log |STFT| `(batch, freq_bins, frames * 4)`."""
        return self.mel_to_log_magnitude(self.decode_log_mel(units, speaker))

    @torch.inference_mode()
    def decode_log_mel(self, units: torch.Tensor, speaker: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """Units `(batch, frames)` → the decoder's log-mel `(batch, decoder_mels, frames ·
        upsample)`: what a vocoder turns into a waveform."""
        units = self._check_units(units)
        z = self.quantizer.decode(units)  # (B, N, D)
        if self.speaker_encoder is not None and speaker is None:
            speaker = self.default_speaker.expand(units.shape[0], -1)
        return self.decoder(z.transpose(1, 2), speaker)

    @torch.inference_mode()
    def decode(self, units: torch.Tensor, durations: torch.Tensor | None = None,
               speaker: torch.Tensor | None = None, vocoder: str = "auto") -> torch.Tensor:
        """Units `(batch, frames)` → waveform `(batch, frames * total_stride)`.

        The voice is the training data's average voice, or `speaker` `(batch, speaker_dim)`
        from `speaker_embedding(reference_wav)`. `vocoder`: "auto" uses the learned decoder
        when this tokenizer has one (`speechtok train vocoder`), else Griffin-Lim;
        "griffin_lim" or "learned" choose.

        `durations` (same shape, ≥ 1) are the run lengths from `dedup`: each unit is repeated
        that many frames first (GSLM's deduplicated units). Rows of different total length are
        right-padded with silence.
        """
        units = self._check_units(units)
        lengths = None
        if durations is not None:
            durations = torch.as_tensor(durations).reshape(units.shape)
            lengths = durations.sum(-1) * self.config.total_stride
            units = undedup(units, durations)
        if vocoder not in ("auto", "griffin_lim", "learned"):
            raise ValueError(f"vocoder must be auto, griffin_lim or learned, got {vocoder!r}")
        if vocoder == "learned" and self.vocoder is None:
            raise ValueError("this tokenizer has no learned decoder (train one with "
                             "`speechtok train vocoder --tokenizer T`)")
        if self.vocoder is not None and vocoder != "griffin_lim":
            wav = self.vocoder.to(self.device)(self.decode_log_mel(units, speaker))
        else:
            wav = self._griffin_lim(self.decode_log_magnitude(units, speaker),
                                    units.shape[-1] * self.config.total_stride)
        if lengths is not None:  # silence where a shorter row was padded
            keep = torch.arange(wav.shape[-1], device=wav.device)[None] < lengths.to(
                wav.device)[:, None]
            wav = wav * keep
        return wav

    def _griffin_lim(self, log_mag: torch.Tensor, length: int) -> torch.Tensor:
        """Log |STFT| (B, F, N) at out_hop → waveform (B, length)."""
        # Griffin-Lim's istft (center=True) needs T/hop + 1 frames: repeat the last one.
        mag = torch.exp(torch.cat([log_mag, log_mag[..., -1:]], dim=-1)).float()
        # rand_init=False: zero initial phase, so decoding is deterministic.
        return torchaudio.functional.griffinlim(
            mag, self.stft_window, self.config.out_n_fft, self.config.out_hop,
            self.config.out_n_fft, power=1.0, n_iter=self.config.griffin_lim_iters,
            momentum=0.99, length=length, rand_init=False)
