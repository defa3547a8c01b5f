"""What users call: `TextToImage` draws images from captions, `SpeechContinuation` continues
speech from a speech prompt. Both load a bundle written by `lm train` (the LM, its tokenizer,
and the speech / image tokenizers its codes came from) and sample through `lm.generate`.

    caption ─► text ids ─► <boi> + exactly h×w codes (CFG) ─► the image tokenizer's decode ─► images
    wav ─► first N s ─► units ─► dedup ─► <boa> units … <eoa> ─► run lengths ─► decode ─► wav

Sampling defaults come from the bundle's `multimodal_generation.json` (the demo writes the
setting it measured best there) and can be overridden per call.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from speechtok.speech.io import prepare_waveform
from speechtok.tokenizer import interleave, load_tokenizer

from .durations import DURATIONS_FILE, expand_durations, load_durations, mean_run_lengths
from .generate import Sampling, generate_ids, seeded
from .loading import load_lm, read_json
from .maskgit import maskgit_generate
from .vocab import LAYOUT_FILE, TEXT, MultimodalVocab

DECODINGS = ("causal", "maskgit")  # how TextToImage draws a grid

GENERATION_FILE = "multimodal_generation.json"
DEFAULTS = {
    "image": {"guidance_scale": 1.5, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
    "speech": {"temperature": 1.0, "top_k": 0, "top_p": 1.0},
}


def save_generation_defaults(bundle: str | Path, kind: str, settings: dict) -> None:
    """Record the sampling setting `generate` uses by default for `kind` ("image"/"speech")."""
    path = Path(bundle) / GENERATION_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[kind] = {**DEFAULTS[kind], **saved.get(kind, {}), **settings}
    path.write_text(json.dumps(saved, indent=1))


class Bundle:
    """A bundle folder's LM, vocab and tokenizers (the tokenizers load on first use)."""

    def __init__(self, path: str | Path, device: str | torch.device | None = None):

        path = Path(path)
        for name in ("config.json", LAYOUT_FILE):
            if not (path / name).exists():
                raise FileNotFoundError(f"{path} is not an LM bundle (no {name}); "
                                        "`lm train` writes one")
        self.path = path
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.vocab = MultimodalVocab.from_pretrained(path)
        self.model = load_lm(path, dtype)
        self.model.to(self.device).eval()
        saved = path / GENERATION_FILE
        saved = read_json(saved) if saved.exists() else {}
        self.defaults = {k: {**v, **saved.get(k, {})} for k, v in DEFAULTS.items()}
        self._tokenizers: dict[str, torch.nn.Module] = {}

    def tokenizer(self, kind: str):
        if kind not in self._tokenizers:
            folder = self.path / f"{kind}_tokenizer"
            if not (folder / "config.json").exists():
                raise FileNotFoundError(f"bundle {self.path} has no {kind}_tokenizer/: it was "
                                        f"trained without {kind} codes")
            self._tokenizers[kind] = load_tokenizer(folder, device=str(self.device))
        return self._tokenizers[kind]

    def sampling(self, kind: str, seed: int | None, **overrides) -> tuple[Sampling, dict]:
        """The bundle's defaults for `kind` with the non-None `overrides` applied."""
        settings = {**self.defaults[kind], **{k: v for k, v in overrides.items()
                                              if v is not None}}
        return Sampling(temperature=settings["temperature"], top_k=settings["top_k"],
                        top_p=settings["top_p"], seed=seed), settings

    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 10**9))


@dataclass
class ImageGenerationOutput:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]: num_images per caption, captions in order
    grids: torch.Tensor  # (N, h, w) image codes; (N, depth, h, w) for residual codes, (N,
    # coarse + fine) for a hierarchy
    captions: list[str]  # the caption of each image
    settings: dict  # the sampling setting used


class TextToImage:
    """`TextToImage.from_pretrained(bundle)(captions, num_images=4, guidance_scale=3.0)`."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.image_tokenizer = bundle.tokenizer("image")
        if not self.image_tokenizer.decodes:
            raise ValueError("the bundle's image tokenizer cannot draw images (transformers "
                             "ships no decoder for it): its codes can be modelled, not drawn")
        self.layout = layout = self.image_tokenizer.layout
        # LM tokens an image: depth-first per cell, or a hierarchy's grids one after the other
        self.image_tokens = layout.positions_per_item * layout.depth
        v = bundle.vocab
        segments = list(layout.segments) if layout.segments else None
        if layout.depth != v.image_depth or segments != v.image_segments:
            raise ValueError(f"the image tokenizer gives {layout.depth} codes a cell in grids "
                             f"of {segments or layout.positions_per_item} but the LM's "
                             f"vocabulary holds {v.image_depth} in {v.image_segments or 'one'}")

    @classmethod
    def from_pretrained(cls, path: str | Path, device=None) -> TextToImage:
        return cls(Bundle(path, device))

    def caption_ids(self, caption: str) -> list[int]:
        """Text ids of `caption`; an error names characters the text tokenizer cannot encode."""
        if not isinstance(caption, str):
            raise TypeError(f"a caption must be a string, got {type(caption).__name__}")
        try:
            caption.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate ("\ud800") from JSON
            raise ValueError(f"the caption holds {caption[err.start]!r} at character "
                             f"{err.start}, which is not text (a lone UTF-16 surrogate)") from None
        # <bos> caption <boi> image <eoi>: the caption gets what the image leaves of the context
        room = self.bundle.max_positions() - self.image_tokens - 3
        if room < 1:
            raise ValueError(f"the LM's context of {self.bundle.max_positions()} positions "
                             f"cannot hold a caption and an image of {self.image_tokens} codes")
        if len(caption) > 16 * room:  # no tokenizer run over a novel-length caption
            raise ValueError(f"the caption has {len(caption):,} characters; the LM's context "
                             f"leaves {room} tokens for it beside the image's "
                             f"{self.image_tokens} codes")
        v = self.bundle.vocab
        ids = v.encode_text(caption)
        if len(ids) > room:
            raise ValueError(f"the caption is {len(ids):,} tokens; the LM's context of "
                             f"{self.bundle.max_positions()} positions leaves {room} for it "
                             f"beside the image's {self.image_tokens} codes")
        tok = v.tokenizer
        specials = set(v.special_ids.values())
        bad = [i for i in ids if i == tok.unk_token_id or i in specials
               or int(v.modality([i])[0]) != TEXT]
        if bad or " ".join(v.decode(ids).split()) != " ".join(caption.split()):
            lost = sorted({c for c in caption
                           if " ".join(v.decode(v.encode_text(c)).split()) != c.strip()})
            named = ", ".join(repr(c) for c in lost) or \
                ", ".join(repr(tok.convert_ids_to_tokens(i)) for i in bad)
            raise ValueError(f"caption {caption!r}: the text tokenizer cannot encode {named} "
                             "(or it spells a special, unit or image token)")
        return ids

    def __call__(self, captions: str | list[str], num_images: int = 1,
                 guidance_scale: float | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 batch_size: int = 64, decoding: str = "causal", steps: int = 8
                 ) -> ImageGenerationOutput:
        """`decoding`: "causal" (one code per forward, raster order) or "maskgit" (`steps`
        parallel forwards, lm.maskgit; needs an LM trained with the maskgit_image task)."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions or num_images < 1:
            raise ValueError("give at least one caption and num_images ≥ 1")
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
        b, v = self.bundle, self.bundle.vocab
        sampling, settings = b.sampling("image", None, guidance_scale=guidance_scale,
                                        temperature=temperature, top_k=top_k, top_p=top_p)
        settings = {**settings, "decoding": decoding}
        if decoding == "maskgit":
            settings["steps"] = steps
        hw = self.image_tokens
        prompts = [[v.bos_id, *self.caption_ids(c), v.boi_id] for c in captions]
        rows = [p for p in prompts for _ in range(num_images)]
        grids = []
        with seeded(seed, b.device):
            for start in range(0, len(rows), batch_size):
                chunk = rows[start: start + batch_size]
                uncond = [[v.bos_id, v.boi_id]] * len(chunk)
                if decoding == "maskgit":
                    codes = maskgit_generate(b.model, v, chunk, hw, steps, sampling,
                                             settings["guidance_scale"], uncond)
                    grids += [self.layout.unflatten(c) for c in codes]
                    continue
                new = generate_ids(
                    b.model, v, chunk, stop_id=v.eoi_id, max_new_tokens=hw + 1,
                    sampling=sampling, image_tokens=hw,
                    guidance_scale=settings["guidance_scale"], uncond_prompts=uncond)
                grids += [self.layout.unflatten(v.codes_from_ids(t[:hw])) for t in new]
        grids = torch.stack(grids)
        with torch.inference_mode():
            images = torch.cat([self.image_tokenizer.decode(grids[i: i + batch_size]).cpu()
                                for i in range(0, len(grids), batch_size)])
        return ImageGenerationOutput(images, grids, [c for c in captions
                                                     for _ in range(num_images)], settings)


@dataclass
class SpeechContinuationOutput:
    waveforms: list[torch.Tensor]  # one (samples,) per prompt × sample, at sample_rate
    sample_rate: int
    prompt_units: list[torch.Tensor]  # deduplicated units of each (cut) prompt (residual
    # codes: every frame's, depth-first)
    units: list[torch.Tensor]  # deduplicated continuation units (without <eoa>), likewise
    durations: list[torch.Tensor]  # run lengths given to the continuation units
    settings: dict


class SpeechContinuation:
    """`SpeechContinuation.from_pretrained(bundle)(wav, sr, prompt_seconds=3, max_seconds=10)`
    continues speech like GSLM's unit LM (Lakhotia et al. 2021)."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.speech_tokenizer = bundle.tokenizer("speech")
        # several codebooks a frame are acoustic codes: every frame kept, no durations
        self.layout = self.speech_tokenizer.layout
        self.depth, self.dedup = self.layout.depth, self.layout.deduplicated
        if self.dedup != bundle.vocab.audio_dedup:
            raise ValueError(f"the speech tokenizer's units are {'' if self.dedup else 'not '}"
                             "deduplicated but the LM was trained "
                             f"{'with' if bundle.vocab.audio_dedup else 'without'} runs collapsed")
        if self.depth != bundle.vocab.audio_depth:
            raise ValueError(f"the speech tokenizer gives {self.depth} codes a frame but the "
                             f"LM's vocabulary holds {bundle.vocab.audio_depth}")
        self.means = load_durations(bundle.path / DURATIONS_FILE)

    @classmethod
    def from_pretrained(cls, path: str | Path, device=None) -> SpeechContinuation:
        return cls(Bundle(path, device))

    def prompt_units(self, wav: torch.Tensor, sample_rate: int, prompt_seconds: float | None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One prompt `(samples,)` or `(channels, samples)` → (deduplicated units, run lengths,
        speaker embedding). Cut first, then downmixed and resampled once (with a warning).
        Residual codes: (every frame's codes, depth-first; ones; speaker embedding)."""
        wav = torch.as_tensor(wav, dtype=torch.float32)
        if wav.dim() not in (1, 2):
            raise ValueError(f"a prompt must be (samples,) or (channels, samples), got shape "
                             f"{tuple(wav.shape)}")
        if prompt_seconds is not None:
            wav = wav[..., : int(round(prompt_seconds * sample_rate))]
        tok, layout = self.speech_tokenizer, self.layout
        frame = sample_rate / layout.frame_rate
        if wav.shape[-1] < frame:
            raise ValueError(f"the prompt has {wav.shape[-1]} samples at {sample_rate} Hz, "
                             f"shorter than one frame ({1000 / layout.frame_rate:.0f} ms)")
        wav = prepare_waveform(wav.reshape(1, -1, wav.shape[-1]), sample_rate,
                               layout.sample_rate)
        units = tok.encode(wav)[0].cpu()
        if layout.deduplicated:
            values, runs = torch.unique_consecutive(units, return_counts=True)
        else:
            values, runs = interleave(units), torch.ones(units.shape[-1], dtype=torch.long)
        has_voice = getattr(tok, "speaker_encoder", None) is not None
        speaker = tok.speaker_embedding(wav) if has_voice else None
        return values, runs, speaker

    def __call__(self, wav, sample_rate: int, prompt_seconds: float | None = 3.0,
                 max_seconds: float = 10.0, include_prompt: bool = True, num_samples: int = 1,
                 temperature: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, min_seconds: float = 0.0
                 ) -> SpeechContinuationOutput:
        """Continue each prompt (a `(samples,)` tensor, a `(batch, samples)` tensor, or a list
        of 1-D tensors) for at most `max_seconds` of continuation, or until the LM ends the
        utterance with <eoa>. The waveforms hold prompt + continuation (resynthesised from the
        prompt's units, in its voice when the tokenizer has a speaker encoder), or the
        continuation alone with `include_prompt=False`.

        `min_seconds` forbids <eoa> for about that long (in units at the corpus' mean run
        length): a whole utterance given as the prompt ends in silence, after which the LM
        ends the utterance at once."""
        if max_seconds <= 0 or num_samples < 1:
            raise ValueError("max_seconds must be > 0 and num_samples ≥ 1")
        if not 0 <= min_seconds <= max_seconds:
            raise ValueError(f"min_seconds must be between 0 and max_seconds ({max_seconds}), "
                             f"got {min_seconds}")
        wavs = [wav] if torch.is_tensor(wav) and wav.dim() == 1 else list(wav)
        b, v, tok, layout = self.bundle, self.bundle.vocab, self.speech_tokenizer, self.layout
        sampling, settings = b.sampling("speech", seed, temperature=temperature, top_k=top_k,
                                        top_p=top_p)
        prompts = [self.prompt_units(w, sample_rate, prompt_seconds) for w in wavs]
        prompts = [p for p in prompts for _ in range(num_samples)]
        means = self.means if self.dedup else torch.ones(layout.codebook_size)
        if means is None:  # an older bundle: the prompts' own run lengths
            means = mean_run_lengths([p[0].repeat_interleave(p[1]) for p in prompts],
                                     layout.codebook_size)
        budget = int(max_seconds * layout.frame_rate)  # frames of continuation
        ids = [[v.bos_id, v.boa_id, *v.audio_ids(p[0]).tolist()] for p in prompts]
        room = b.max_positions() - max(len(i) for i in ids)
        if room < 1:
            raise ValueError(f"the prompt fills the LM's {b.max_positions()} positions: use a "
                             "shorter prompt_seconds")
        max_new = min(room, math.ceil(budget / float(means.min().clamp(min=1))) * self.depth
                      + 1)
        # <eoa> suppressed for the first min_new tokens (transformers' min_new_tokens)
        min_new = min(max_new - 1, math.ceil(min_seconds * layout.frame_rate
                                             / float(means.float().mean().clamp(min=1)))
                      * self.depth)
        new = generate_ids(b.model, v, ids, stop_id=v.eoa_id, max_new_tokens=max_new,
                           sampling=sampling, **({"min_new_tokens": min_new} if min_new > 0
                                                 else {}))
        out = SpeechContinuationOutput([], layout.sample_rate, [p[0] for p in prompts], [], [],
                                       settings)
        for (values, runs, speaker), tokens in zip(prompts, new, strict=True):
            units = v.units_from_ids(tokens[tokens != v.eoa_id])
            if not self.dedup:  # whole frames only, every frame kept
                keep = min(len(units) // self.depth, budget)
                units, dur = units[:keep * self.depth], torch.ones(keep, dtype=torch.long)
            else:
                dur = expand_durations(units, means)
                keep = int((dur.cumsum(0) <= budget).sum())
                units, dur = units[:keep], dur[:keep]
            out.units.append(units)
            out.durations.append(dur)
            all_units = torch.cat([values, units]) if include_prompt else units
            all_dur = torch.cat([runs, dur]) if include_prompt else dur
            if not len(all_units):
                warnings.warn("the LM ended the utterance at once: empty continuation",
                              stacklevel=2)
                out.waveforms.append(torch.zeros(0))
                continue
            if not self.dedup:
                wav = tok.decode(layout.unflatten(all_units)[None], None, speaker)
            else:
                wav = tok.decode(all_units[None], all_dur[None], speaker)
            out.waveforms.append(wav[0].cpu())
        return out
