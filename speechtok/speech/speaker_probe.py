"""How much of the speaker the units still carry: a linear speaker-ID probe.

Units meant for an LM should say what was said, not who said it (the decoder has its own
speaker vector for that). The probe represents each held-out utterance by what an LM sees of
it, then asks how well a linear classifier names the voice from that alone:

- `histogram`: the utterance's unit histogram (a bag of units, normalised to sum 1);
- `embedding`: the mean of its units' code vectors (the quantized latents).

Accuracy is by k-fold cross-validation over utterances (each fold's classifier never saw the
utterance it names), beside chance (the largest voice's share). A probe near chance means the
units keep little speaker identity; near 1, the voice is written all over them. The linear
probe of representations follows Alain & Bengio 2016; on units, SUPERB's speaker-ID task
(Yang et al. 2021) probes the same question.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def utterance_features(model, source, max_items: int | None = None, progress: bool = False
                       ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """({"histogram": (N, K), "embedding": (N, D)}, voices) of the items of `source` that
    name their voice (`meta["voice"]`), up to `max_items`."""
    hist, emb, voices = [], [], []
    items = [i for i, item in enumerate(source.items) if item.meta.get("voice")]
    if max_items is not None:
        items = items[:max_items]
    K = model.config.codebook_size
    for i in tqdm(items, disable=not progress, desc="speaker probe"):
        units = model.encode(source.load(i)[None], model.sample_rate)
        first = units[:, 0] if units.dim() == 3 else units  # residual: the first codebook
        counts = torch.bincount(first.flatten().cpu(), minlength=K).float()
        hist.append(counts / counts.sum().clamp_min(1))
        with torch.no_grad():
            emb.append(model.quantizer.decode(units).mean(dim=(0, 1)).float().cpu())
        voices.append(str(source.items[i].meta["voice"]))
    return {"histogram": torch.stack(hist), "embedding": torch.stack(emb)}, voices


def linear_probe_accuracy(x: torch.Tensor, labels: list[str], folds: int = 5, seed: int = 0,
                          steps: int = 300, weight_decay: float = 1e-3) -> float:
    """k-fold cross-validated accuracy of a multinomial logistic regression on standardised
    `x` (N, F) predicting `labels` (N,)."""
    names = sorted(set(labels))
    y = torch.tensor([names.index(v) for v in labels])
    n = len(y)
    if len(names) < 2 or n < folds:
        raise ValueError(f"the probe needs 2+ voices and {folds}+ utterances, got "
                         f"{len(names)} voices in {n}")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = order[torch.isin(order, test, invert=True)]
        mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
        xs = (x - mean) / std
        w = torch.zeros(x.shape[1], len(names), requires_grad=True)
        b = torch.zeros(len(names), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def closure(train=train, xs=xs, w=w, b=b, opt=opt):
            opt.zero_grad()
            loss = F.cross_entropy(xs[train] @ w + b, y[train]) + weight_decay * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            correct += int(((xs[test] @ w + b).argmax(-1) == y[test]).sum())
    return correct / n


def speaker_probe(model, source, max_items: int | None = None, folds: int = 5,
                  progress: bool = False) -> dict[str, float]:
    """Cross-validated speaker-ID accuracy from unit histograms and from mean code vectors,
    beside chance, over the voiced items of `source` (e.g. the training voices' held-out
    sentences)."""
    feats, voices = utterance_features(model, source, max_items, progress)
    shares = np.unique(voices, return_counts=True)[1] / len(voices)
    return {"speaker_probe_histogram": linear_probe_accuracy(feats["histogram"], voices, folds),
            "speaker_probe_embedding": linear_probe_accuracy(feats["embedding"], voices, folds),
            "speaker_probe_chance": float(shares.max()),
            "speaker_probe_voices": len(shares), "speaker_probe_utterances": len(voices)}
