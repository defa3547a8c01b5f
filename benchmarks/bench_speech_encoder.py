"""Encoding speed of speechtok's SpeechTokenizer vs GSLM's speech2unit (HuBERT-base + k-means).

Compared, on the same random-noise batch (batch, seconds * 16000) at 16 kHz, on CPU:

* ours: ``SpeechTokenizer(SpeechTokenizerConfig())`` (default config, random weights, eval mode,
  after one training-mode forward so its k-means codebook init has run), timing
  ``tok.encode(wav, sample_rate=16000)``;
* HuBERT (12 layers) + k-means: GSLM's speech2unit path rebuilt with
  ``transformers.HubertModel(HubertConfig())`` (HuBERT-base: 12 layers, 768 hidden; random
  weights built from the config, nothing is downloaded) under ``torch.inference_mode``,
  features from layer 6 of ``output_hidden_states=True``, then nearest-centroid assignment to
  K=100 random centroids (one matmul + argmin, counted in its time);
* HuBERT stopped at L6 + k-means: the same weights cut after layer 6. GSLM's fairseq reader calls
  ``extract_features(output_layer=6)``, which stops after the 6th transformer layer, so this row
  is the cost GSLM actually pays; the full-model row runs all 12 layers for the same features.

Prints the median over --repeats timed runs (ours and theirs interleaved within each repeat, so
background load hits all alike) after --warmup untimed ones, as seconds of audio encoded per
wall-clock second (= the "× real time" figure), plus parameter counts and the torch threads.

    .venv/bin/python benchmarks/bench_speech_encoder.py             # 4 × 10 s, 5 repeats
    .venv/bin/python benchmarks/bench_speech_encoder.py --seconds 1 --batch 1 --repeats 1 \\
        --warmup 0                                                    # quick check
"""

from __future__ import annotations

import argparse
import os

import torch
from timing import median_seconds  # benchmarks/timing.py, beside this script

SAMPLE_RATE = 16000
GSLM_LAYER = 6  # GSLM's HuBERT-base units: layer-6 features
GSLM_K = 100  # ... clustered into K=100 (also 50 and 200 in the paper)


def n_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def nearest_centroid(feats: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(B, N, D) features → (B, N) ids of the nearest of centroids (K, D) in Euclidean distance:
    argmin_k ||c_k||² - 2 x·c_k (||x||² is the same for every k)."""
    flat = feats.reshape(-1, feats.shape[-1])
    dist = centroids.square().sum(-1) - 2.0 * (flat @ centroids.T)
    return dist.argmin(-1).view(feats.shape[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run: .venv/bin/python benchmarks/bench_speech_encoder.py",
    )
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="audio length per item in seconds (default 10)")
    parser.add_argument("--batch", type=int, default=4, help="items per batch (default 4)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per contender; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs per contender first (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("need --seconds > 0, --batch ≥ 1, --repeats ≥ 1, --warmup ≥ 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    # Benchmark this checkout's speechtok, installed or not (`make install` does `pip install -e`).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing below needs the Hub
    from transformers import HubertConfig, HubertModel

    from speechtok import SpeechTokenizer, SpeechTokenizerConfig

    torch.manual_seed(0)
    n_samples = round(args.seconds * SAMPLE_RATE)
    wav = torch.randn(args.batch, n_samples) * 0.1
    audio_seconds = args.batch * n_samples / SAMPLE_RATE

    # ---- ours --------------------------------------------------------------------------
    tok = SpeechTokenizer(SpeechTokenizerConfig())
    wav_short = torch.randn(4, 2 * SAMPLE_RATE) * 0.1  # 4 × 2 s: 400 frames for 256 codes
    assert wav_short.shape[-1] % tok.config.total_stride == 0
    tok.train()
    tok(wav_short)  # runs the quantizer's k-means codebook init
    tok.eval()

    def run_ours() -> torch.Tensor:
        return tok.encode(wav, sample_rate=SAMPLE_RATE)

    # ---- GSLM speech2unit: HuBERT-base layer 6 + k-means (K=100) ---------------------------
    hubert = HubertModel(HubertConfig()).eval()
    # The same weights stopped after layer 6, as fairseq's extract_features(output_layer=6).
    # HuBERT-base is post-LN (do_stable_layer_norm=False): no final norm after the last layer,
    # so the cut model's last_hidden_state is the full model's hidden_states[6].
    hubert_l6 = HubertModel(HubertConfig(num_hidden_layers=GSLM_LAYER)).eval()
    missing, unexpected = hubert_l6.load_state_dict(hubert.state_dict(), strict=False)
    assert not missing and all(k.startswith("encoder.layers.") for k in unexpected), missing
    centroids = torch.randn(GSLM_K, hubert.config.hidden_size)

    def run_hubert() -> torch.Tensor:
        with torch.inference_mode():
            out = hubert(wav, output_hidden_states=True)
            # hidden_states[0] is the encoder input; [i] is the output of layer i.
            return nearest_centroid(out.hidden_states[GSLM_LAYER], centroids)

    def run_hubert_l6() -> torch.Tensor:
        with torch.inference_mode():
            return nearest_centroid(hubert_l6(wav).last_hidden_state, centroids)

    # ---- sanity checks (one untimed pass each) ----------------------------------------------
    ours_codes = run_ours()
    with torch.inference_mode():
        out = hubert(wav, output_hidden_states=True)
        cut = hubert_l6(wav).last_hidden_state
    n_hidden = len(out.hidden_states)
    assert n_hidden == hubert.config.num_hidden_layers + 1, n_hidden
    layer6 = out.hidden_states[GSLM_LAYER]
    max_diff = (layer6 - cut).abs().max().item()
    assert torch.allclose(layer6, cut, atol=1e-4, rtol=1e-4), max_diff
    units = nearest_centroid(layer6, centroids)
    del out, cut, layer6

    names = ["ours: SpeechTokenizer.encode", "HuBERT-base (12 layers) L6 + k-means",
             "HuBERT-base stopped at L6 + k-means"]
    fns = [run_ours, run_hubert, run_hubert_l6]
    params = [n_params(tok.encoder, tok.quantizer), n_params(hubert), n_params(hubert_l6)]

    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()} intra-op, "
          f"{torch.get_num_interop_threads()} inter-op; CPU")
    print(f"input: batch {args.batch} × {n_samples / SAMPLE_RATE:g} s of noise at {SAMPLE_RATE} Hz "
          f"= {audio_seconds:g} s of audio per call; {args.warmup} warm-up, "
          f"median of {args.repeats} interleaved repeats")
    print(f"ours: {n_params(tok):,} parameters in total, {params[0]:,} used by encode() "
          f"(encoder + quantizer); codes {tuple(ours_codes.shape)}, "
          f"K={tok.config.codebook_size}, {tok.frame_rate:g} Hz")
    print(f"HuBERT-base: {params[1]:,} parameters ({params[2]:,} up to layer {GSLM_LAYER}) "
          f"+ {GSLM_K}×{hubert.config.hidden_size} centroids; units {tuple(units.shape)}, "
          f"K={GSLM_K}; cut model matches hidden_states[{GSLM_LAYER}] (max |diff| {max_diff:.1e})")
    print()

    medians = median_seconds(fns, args.repeats, args.warmup)
    speeds = [audio_seconds / t for t in medians]

    header = f"{'':36} {'params':>12} {'median s':>10} {'audio s / s':>12} {'× real time':>12}"
    print(header)
    print("-" * len(header))
    for name, p, t, s in zip(names, params, medians, speeds, strict=True):
        print(f"{name:36} {p:>12,} {t:>10.4f} {s:>12.1f} {f'{s:.1f}×':>12}")
    print()
    print(f"ratio ours / HuBERT+kmeans (speed):         {speeds[0] / speeds[1]:.2f}×")
    print(f"ratio ours / HuBERT stopped at L6 + kmeans: {speeds[0] / speeds[2]:.2f}× "
          f"(what GSLM's fairseq reader computes)")


if __name__ == "__main__":
    main()
