"""Nearest-code search and k-means over (rows, dim) tensors: the inner loops of every
codebook quantizer (and of k-means baselines in the benchmarks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rows per block of the (rows, K) score matrix: bounds memory and keeps blocks cache-friendly.
_SEARCH_CHUNK = 8192


@torch.no_grad()
def nearest_code(x: torch.Tensor, embed: torch.Tensor) -> torch.LongTensor:
    """Index of the nearest row of ``embed`` (K, D) for each row of ``x`` (M, D).

    argmin ||x - e||^2 = argmax (x.e - ||e||^2 / 2): one matmul per block, no sqrt, no (M, K, D)
    intermediate (unlike cdist).
    """
    x, bias, et = x.to(embed.dtype), embed.pow(2).sum(1).mul_(-0.5), embed.t()  # bias (K,)
    with torch.autocast(x.device.type, enabled=False):  # low precision would flip near-ties
        if x.shape[0] <= _SEARCH_CHUNK:
            return torch.addmm(bias, x, et).argmax(1)
        buf = x.new_empty(_SEARCH_CHUNK, embed.shape[0])  # reused: no fresh pages per block
        return torch.cat([torch.addmm(bias, c, et, out=buf[: len(c)]).argmax(1)
                          for c in x.split(_SEARCH_CHUNK)])


def sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """n random rows of x, without replacement unless x has fewer than n rows."""
    m = x.shape[0]
    pick = (torch.randperm(m, device=x.device)[:n] if m >= n
            else torch.randint(0, m, (n,), device=x.device))
    return x[pick]


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int, spherical: bool = False):
    """Lloyd's k-means on x (M, D) -> centroids (K, D), cluster counts (K,). Seeds are random
    rows; empty clusters keep their centroid; ``spherical`` renormalises (l2-normalised codes).
    """
    centroids = sample_rows(x, k).clone()
    for step in range(iters + 1):
        assign = nearest_code(x, centroids)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        if step == iters:  # last pass only refreshes the counts for the final centroids
            break
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        new = sums / counts.clamp(min=1.0)[:, None]
        if spherical:
            new = F.normalize(new, dim=-1)
        centroids = torch.where(counts[:, None] > 0, new, centroids)
    return centroids, counts
