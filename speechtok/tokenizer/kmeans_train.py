"""`speechtok train kmeans`: fit k-means units on a self-supervised model's layer, GSLM's
speech2unit (Lakhotia et al. 2021), and save a tokenizer folder (speechtok.tokenizer.kmeans).

The fit is mini-batch k-means (Sculley 2010, the MiniBatchKMeans of scikit-learn that GSLM's
speech2unit uses): features are computed utterance by utterance on the accelerator when there
is one and gathered into batches of `batch_frames` frames; each batch moves every centroid
towards the mean of its frames with a per-centroid rate 1 / (frames it has seen), so memory
holds one batch, never the corpus. The centroids start from Lloyd's k-means on the first
`init_frames` frames; a centroid that no frame chose in a pass restarts at a random frame.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from speechtok.fields import option
from speechtok.hub.model_card import write_tokenizer_card
from speechtok.quantization.kmeans import kmeans, nearest_code
from speechtok.training.config import dump_config

from .kmeans import KMeansTokenizer
from .ssl_features import (
    check_layer,
    frame_hop,
    keep_layers,
    layer_features,
    load_ssl_model,
    normalizes_input,
)


@dataclass
class KMeansConfig:
    """The units: which model, which layer, how many clusters."""

    features: str = option("hf:facebook/hubert-base-ls960", "the SSL model: hf:NAME (in the "
                           "local Hugging Face cache) or a folder written by save_pretrained "
                           "(HuBERT, wav2vec 2.0, WavLM)")
    layer: int = option(6, "transformer layer whose output is clustered (GSLM: HuBERT base "
                        "layer 6; 1 = the first layer)")
    clusters: int = option(100, "number of units K (GSLM: 50, 100, 200; TWIST: 500)")
    sample_rate: int = option(16000, "rate the SSL model was trained at; audio is resampled")

    def __post_init__(self):
        if self.clusters < 2:
            raise ValueError(f"clusters must be ≥ 2, got {self.clusters}")
        if self.layer < 1:
            raise ValueError(f"layer must be ≥ 1, got {self.layer}")


@dataclass
class KMeansTrainConfig:
    """How the centroids are fitted."""

    epochs: int = option(2, "passes over the training split")
    batch_frames: int = option(10000, "frames per mini-batch update (memory: this × dim)")
    init_frames: int = option(20000, "frames of the initial Lloyd's k-means")
    max_items: int = option(0, "use at most this many training utterances (0 = all)")
    valid_fraction: float = option(0.05, "share held out when the data has no valid split")
    seed: int = option(0, "seed of the utterance order, the initial centroids and restarts")

    def __post_init__(self):
        if self.epochs < 1 or self.batch_frames < 1 or self.init_frames < 1:
            raise ValueError("epochs, batch_frames and init_frames must be ≥ 1")
        if self.max_items < 0:
            raise ValueError(f"max_items must be ≥ 0, got {self.max_items}")


def _batches(model, source, order, cfg: KMeansConfig, normalize: bool, batch_frames: int,
             desc: str):
    """Layer features of the utterances in `order`, as (≤ batch_frames, dim) batches."""
    held, count = [], 0
    for i in tqdm(order, desc=desc, unit="utt"):
        feats = layer_features(model, source.load(int(i))[None], cfg.layer, normalize)[0]
        held.append(feats.float())
        count += len(feats)
        if count >= batch_frames:
            yield torch.cat(held)
            held, count = [], 0
    if held:
        yield torch.cat(held)


def mini_batch_update(centroids: torch.Tensor, seen: torch.Tensor, x: torch.Tensor
                      ) -> torch.Tensor:
    """One mini-batch k-means step in place (Sculley 2010, with the batch's frames of each
    centroid taken at once): c ← c + (Σ x − n·c) / (seen + n). Returns the assignments."""
    assign = nearest_code(x, centroids)
    n = torch.bincount(assign, minlength=len(centroids)).to(x.dtype)
    sums = torch.zeros_like(centroids).index_add_(0, assign, x)
    seen += n
    chosen = n > 0
    centroids[chosen] += (sums[chosen] - n[chosen, None] * centroids[chosen]) \
        / seen[chosen, None]
    return assign


def inertia(model, source, centroids: torch.Tensor, cfg: KMeansConfig, normalize: bool,
            batch_frames: int) -> float:
    """Mean squared distance of held-out frames to their nearest centroid, a batch at a time."""
    total, frames = 0.0, 0
    for x in _batches(model, source, range(len(source)), cfg, normalize, batch_frames,
                      "valid"):
        total += float((x - centroids[nearest_code(x, centroids)]).pow(2).sum())
        frames += len(x)
    return total / max(frames, 1)


@torch.no_grad()
def train_kmeans(data: str | Path, out: str | Path, cfg: KMeansConfig,
                 train_cfg: KMeansTrainConfig, resume: bool = False, device: str | None = None
                 ) -> KMeansTokenizer:
    """Fit the centroids on `data`'s training split, save the tokenizer folder to `out`."""
    if resume:
        raise ValueError("k-means fits in one run: --resume does not apply")
    from speechtok.speech.data import open_splits

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_ssl_model(cfg.features).to(device)
    check_layer(model, cfg.layer)
    normalize = normalizes_input(cfg.features)
    train, valid = open_splits(data, cfg.sample_rate, train_cfg.valid_fraction,
                               seed=train_cfg.seed)
    g = torch.Generator().manual_seed(train_cfg.seed)
    n_train = len(train) if not train_cfg.max_items else min(len(train), train_cfg.max_items)
    first = torch.randperm(len(train), generator=g)[:n_train]
    # the first batch of init_frames frames: Lloyd's k-means starts the centroids on it
    init = next(_batches(model, train, first, cfg, normalize, train_cfg.init_frames, "init"),
                torch.empty(0))
    if len(init) < cfg.clusters:
        raise ValueError(f"{data}: {len(init)} frames for {cfg.clusters} clusters; give more "
                         "speech or fewer clusters")
    torch.manual_seed(train_cfg.seed)
    centroids, _ = kmeans(init, cfg.clusters, iters=20)
    seen = torch.zeros(cfg.clusters, device=centroids.device)
    history = []
    for epoch in range(train_cfg.epochs):
        used = torch.zeros(cfg.clusters, dtype=torch.bool, device=centroids.device)
        order = first[torch.randperm(n_train, generator=g)]
        last = init
        for x in _batches(model, train, order, cfg, normalize, train_cfg.batch_frames,
                          f"k-means pass {epoch + 1}/{train_cfg.epochs}"):
            used[mini_batch_update(centroids, seen, x)] = True
            last = x
        dead = (~used).nonzero().flatten()
        if len(dead):  # restart unused centroids at random frames of the last batch
            pick = torch.randint(0, len(last), (len(dead),), generator=g)
            centroids[dead], seen[dead] = last[pick.to(last.device)], 0
        history.append({"epoch": epoch + 1, "restarted": len(dead),
                        "valid_inertia": inertia(model, valid, centroids, cfg, normalize,
                                                 train_cfg.batch_frames)})
        print(json.dumps(history[-1]))
    config = {"kind": "kmeans", **asdict(cfg), "hop": frame_hop(model), "normalize": normalize}
    tok = KMeansTokenizer(config, keep_layers(model, cfg.layer).cpu(), centroids.cpu())
    out = Path(out)
    tok.save_pretrained(out)
    dump_config(out / "train_config.yaml", cfg, train_cfg)
    write_tokenizer_card(out)
    (out / "train_history.json").write_text(json.dumps(history, indent=1))
    return tok.eval()
