"""Quantizers of (batch, length, dim) tensors returning a typed QuantizerOutput: codebook VQ
(EMA, k-means init, dead-code restart, low-dim l2-normalised codes), residual VQ and FSQ.
Under torch.distributed, codebook statistics are summed over processes and random choices are
made on rank 0, so every process keeps the identical codebook.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerOutput:
    """quantized (batch, length, dim): straight-through quantized vectors, in the input space.
    codes (batch, length), or (batch, depth, length) for ResidualVQ. loss: weighted sum of the
    terms in ``losses`` (unweighted, e.g. "codebook", "commitment"). metrics: detached "usage"
    (fraction of codes used in the batch) and "perplexity" (exp entropy of the code histogram).
    """

    quantized: torch.Tensor
    codes: torch.LongTensor
    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _code_metrics(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Usage and perplexity of a (K,) histogram of code counts."""
    counts = counts.float()
    p = counts / counts.sum().clamp(min=1.0)
    entropy = -torch.special.xlogy(p, p).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


def _check_codes(codes: torch.Tensor, size: int) -> None:
    bad = (codes < 0) | (codes >= size)
    if bool(bad.any()):
        raise ValueError(f"code id {int(codes[bad][0])} is out of range [0, {size})")


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


def _sample_rows(x: torch.Tensor, n: int) -> torch.Tensor:
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
    centroids = _sample_rows(x, k).clone()
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


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantizer (VQ-VAE, van den Oord et al. 2017) of (B, N, dim).

    codebook_dim != dim looks codes up in a low-dimensional space reached by a linear projection
    (factorised codes, ViT-VQGAN, Yu et al. 2021; LlamaGen), and l2_normalize makes the lookup a
    cosine similarity there (ViT-VQGAN): both raise codebook usage. beta weights the commitment
    loss. ema_decay learns the codes by moving averages of cluster statistics instead of a loss
    (VQ-VAE-2, Razavi et al. 2019). kmeans_init runs kmeans_iters Lloyd steps on the first
    training batch. dead_code_steps > 0 re-seeds codes unused for that many training steps from
    current inputs (SoundStream, Zeghidour et al. 2021; Jukebox). eps smooths EMA counts.
    """

    def __init__(self, dim, codebook_size, codebook_dim=None, l2_normalize=False, beta=0.25,
                 ema_decay=None, kmeans_init=True, kmeans_iters=10, dead_code_steps=0,
                 eps=1e-5):
        super().__init__()
        codebook_dim = dim if codebook_dim is None else codebook_dim
        if min(dim, codebook_size, codebook_dim) < 1:
            raise ValueError(f"sizes must be >= 1, got {dim=} {codebook_size=} {codebook_dim=}")
        if not (ema_decay is None or 0.0 <= ema_decay < 1.0) or dead_code_steps < 0:
            raise ValueError(f"need 0 <= ema_decay < 1 and dead_code_steps >= 0, got {ema_decay=} "
                             f"{dead_code_steps=}")
        self.dim, self.codebook_size, self.codebook_dim = dim, codebook_size, codebook_dim
        self.l2_normalize, self.beta, self.ema_decay = l2_normalize, beta, ema_decay
        self.kmeans_iters, self.dead_code_steps, self.eps = kmeans_iters, dead_code_steps, eps
        project = codebook_dim != dim
        self.in_proj = nn.Linear(dim, codebook_dim) if project else nn.Identity()
        self.out_proj = nn.Linear(codebook_dim, dim) if project else nn.Identity()
        embed = torch.randn(codebook_size, codebook_dim)
        if ema_decay is None:
            self.embed = nn.Parameter(embed)
        else:
            # EMA codes are not learned by gradients: keep them as buffers. Starting from count 1
            # and sum = code keeps embed = sum / count consistent before any update.
            self.register_buffer("embed", embed)
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", embed.clone())
        # Buffers, so that a loaded checkpoint is not re-initialised and restarts resume exactly.
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))

    @property
    def codebook(self) -> torch.Tensor:
        """The (codebook_size, codebook_dim) codes used for lookup (unit-norm if l2_normalize)."""
        return F.normalize(self.embed, dim=-1) if self.l2_normalize else self.embed

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids. No side effects."""
        with torch.no_grad():
            z = self._project(x)
            return nearest_code(z.reshape(-1, self.codebook_dim), self.codebook).view(z.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim) vectors in the input space."""
        _check_codes(codes, self.codebook_size)
        return self.out_proj(F.embedding(codes, self.codebook))

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._project(x)  # (B, N, C)
        flat = z.reshape(-1, self.codebook_dim).to(self.embed.dtype)  # (B*N, C), fp32 codebook
        if self.training and not bool(self.initted):  # state only changes in training mode
            self._kmeans_init(flat.detach())
        embed = self.codebook
        idx = nearest_code(flat.detach(), embed.detach())  # (B*N,)
        # F.embedding keeps a gradient path to the codebook for the codebook loss; its backward
        # needs only the indices, so later in-place codebook updates are safe.
        q = F.embedding(idx, embed)  # (B*N, C)

        # VQ-VAE eq. 3: ||sg[z] - e||^2 moves codes, beta * ||z - sg[e]||^2 commits the encoder.
        # taming-transformers' default (legacy=True) puts beta on the codebook term instead; here
        # beta weights the commitment term as in the paper.
        losses = {"commitment": F.mse_loss(flat, q.detach())}
        if self.ema_decay is None:
            losses["codebook"] = F.mse_loss(q, flat.detach())
            loss = losses["codebook"] + self.beta * losses["commitment"]
        else:
            loss = self.beta * losses["commitment"]

        counts = torch.bincount(idx, minlength=self.codebook_size)
        metrics = _code_metrics(counts)
        if self.training:
            self._update_codebook(flat.detach(), idx, counts)

        # Straight-through estimator (VQ-VAE): value q, identity gradient w.r.t. z. Written as
        # q + (z - sg[z]) rather than z + sg[q - z]: same gradient, but the value is exactly q
        # (z - z == 0), so forward's output equals decode(encode(x)) bit for bit.
        if flat.requires_grad:
            q = q.detach() + (flat - flat.detach())
        quantized = self.out_proj(q.view(z.shape)).to(x.dtype)
        return QuantizerOutput(quantized, idx.view(z.shape[:-1]), loss, losses, metrics)

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        # Data-dependent init avoids codes that never win (SoundStream). Distributed: rank 0
        # clusters its batch and broadcasts, so all processes start from the same codebook.
        distributed = _world_size() > 1
        if not distributed or dist.get_rank() == 0:
            centroids, counts = kmeans(flat.float(), self.codebook_size, self.kmeans_iters,
                                       spherical=self.l2_normalize)
        else:
            centroids = flat.new_empty(self.codebook_size, self.codebook_dim, dtype=torch.float)
            counts = flat.new_empty(self.codebook_size, dtype=torch.float)
        if distributed:
            dist.broadcast(centroids, 0)
            dist.broadcast(counts, 0)
        self.embed.data.copy_(centroids)
        if self.ema_decay is not None:
            # Start the EMA statistics from the k-means clusters; empty ones count as 1 so their
            # code stays put instead of collapsing to sum / ~0.
            counts = counts.clamp(min=1.0)
            self.cluster_size.copy_(counts)
            self.embed_sum.copy_(centroids * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor):
        distributed = _world_size() > 1
        flat = flat.to(self.embed.dtype)
        counts = counts.to(self.embed.dtype)
        if self.ema_decay is not None:
            sums = torch.zeros_like(self.embed).index_add_(0, idx, flat)  # (K, C), no one-hot
            if distributed:  # one collective: sums and counts packed together, summed over ranks
                packed = torch.cat([sums, counts[:, None]], dim=1)
                dist.all_reduce(packed)
                sums, counts = packed[:, :-1], packed[:, -1]
            # VQ-VAE-2 / Sonnet EMA: N <- g N + (1-g) n, m <- g m + (1-g) sum z, e = m / N with
            # Laplace-smoothed N so a code with no recent hits does not divide by zero.
            self.cluster_size.lerp_(counts, 1.0 - self.ema_decay)
            self.embed_sum.lerp_(sums, 1.0 - self.ema_decay)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps)
            self.embed.copy_(self.embed_sum / (smoothed * total)[:, None])
        elif distributed and self.dead_code_steps > 0:
            dist.all_reduce(counts)
        if self.dead_code_steps > 0:
            self._restart_dead_codes(flat, counts)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        # SoundStream / Jukebox: re-seed codes that went unused for dead_code_steps steps with
        # random current encoder outputs, so they can compete again. Counts are global, so every
        # rank agrees on which codes are dead; rank 0 picks the replacements and broadcasts them.
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_steps >= self.dead_code_steps
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        new = _sample_rows(flat, n_dead).contiguous()  # cheap, so every rank samples ...
        if _world_size() > 1:
            dist.broadcast(new, 0)  # ... and rank 0's choice wins
        # .data: the dead rows had no gradient this step, and this must not bump the version of a
        # tensor that autograd saved for the codebook loss.
        self.embed.data[dead] = new
        if self.ema_decay is not None:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = new
        self.unused_steps[dead] = 0


class ResidualVQ(nn.Module):
    """Residual VQ (SoundStream, Zeghidour et al. 2021): stage i quantizes what stages < i missed.

    ``codebook_dim`` and ``l2_normalize`` (in ``vq_kwargs``) act once, on the input, through a
    projection shared by all stages, so residuals live in one space. Stages themselves quantize
    in Euclidean space: residuals shrink from stage to stage, and normalising them would throw
    their scale away.
    """

    def __init__(self, depth, dim, codebook_size, **vq_kwargs):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        codebook_dim = vq_kwargs.pop("codebook_dim", None) or dim
        self.l2_normalize = bool(vq_kwargs.pop("l2_normalize", False))
        self.depth, self.dim, self.codebook_size = depth, dim, codebook_size
        self.in_proj = nn.Linear(dim, codebook_dim) if codebook_dim != dim else nn.Identity()
        self.out_proj = nn.Linear(codebook_dim, dim) if codebook_dim != dim else nn.Identity()
        self.stages = nn.ModuleList(
            VectorQuantizer(codebook_dim, codebook_size, **vq_kwargs) for _ in range(depth)
        )

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, depth, length) code ids."""
        with torch.no_grad():
            residual, codes = self._project(x), []
            for stage in self.stages:
                c = stage.encode(residual)
                residual = residual - F.embedding(c, stage.codebook)
                codes.append(c)
            return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, depth, length) code ids -> (batch, length, dim)."""
        if codes.dim() != 3 or codes.shape[1] != self.depth:
            raise ValueError(f"codes must be (batch, {self.depth}, length), got {codes.shape}")
        total = sum(stage.decode(codes[:, i]) for i, stage in enumerate(self.stages))
        return self.out_proj(total)

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._project(x)  # (B, N, C)
        residual, total = z, torch.zeros_like(z)
        codes, loss, losses, metrics = [], z.new_zeros(()), {}, {}
        for i, stage in enumerate(self.stages):
            out = stage(residual)
            # Each stage's commitment loss still reaches the encoder through `residual`; only the
            # quantized value is detached, so later stages don't send gradient back through it.
            q = out.quantized.detach()
            residual = residual - q
            total = total + q
            codes.append(out.codes)
            loss = loss + out.loss
            for name, value in out.losses.items():
                losses[name] = losses.get(name, 0) + value
            if i == 0:
                metrics.update(out.metrics)
            metrics[f"usage_{i}"] = out.metrics["usage"]
        # One straight-through over the sum (audiocraft's fix of encodec issue #25): summing each
        # stage's own straight-through output would scale the encoder gradient by depth.
        if z.requires_grad:
            total = total + (z - z.detach())
        return QuantizerOutput(self.out_proj(total), torch.stack(codes, dim=1), loss, losses,
                               metrics)


class FSQ(nn.Module):
    """Finite Scalar Quantization (Mentzer et al. 2023): no codebook, no auxiliary loss.

    Each of ``len(levels)`` channels is bounded by tanh to ``levels[i]`` values and rounded with
    a straight-through gradient; the implicit codebook is the grid, ``prod(levels)`` codes.
    """

    def __init__(self, dim, levels: tuple[int, ...]):
        super().__init__()
        levels = tuple(int(level) for level in levels)
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty tuple of ints >= 2, got {levels}")
        self.dim, self.levels, self.codebook_size, n = dim, levels, math.prod(levels), len(levels)
        self.in_proj = nn.Linear(dim, n) if dim != n else nn.Identity()
        self.out_proj = nn.Linear(n, dim) if dim != n else nn.Identity()
        lv = torch.tensor(levels)
        self.register_buffer("_levels", lv.float(), persistent=False)
        self.register_buffer("_half_width", (lv // 2).float(), persistent=False)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1]), dim=0)
        self.register_buffer("_basis", basis, persistent=False)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        # Paper appendix A.1: even level counts are offset by 1/2 so rounding yields exactly L
        # values; the shift (atanh, where the paper's listing has tan) centres z = 0 at 0.
        half_l = (self._levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _codes_to_grid(self, codes: torch.Tensor) -> torch.Tensor:
        digits = (codes.unsqueeze(-1) // self._basis) % self._levels.long()
        return (digits.float() - self._half_width) / self._half_width

    @property
    def codebook(self) -> torch.Tensor:
        """All (codebook_size, len(levels)) grid points, in [-1, 1]."""
        return self._codes_to_grid(torch.arange(self.codebook_size, device=self._basis.device))

    def _to_codes(self, rounded: torch.Tensor) -> torch.LongTensor:
        return ((rounded + self._half_width).long() * self._basis).sum(-1)  # mixed-radix id

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._bound(self.in_proj(x).float())  # (B, N, L)
        rounded = z.round()
        codes = self._to_codes(rounded)  # (B, N)
        if z.requires_grad:  # straight-through rounding, exact value as in VectorQuantizer
            rounded = rounded + (z - z.detach())
        quantized = self.out_proj(rounded / self._half_width)
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size)
        return QuantizerOutput(quantized, codes, x.new_zeros(()), {}, _code_metrics(counts))

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids."""
        with torch.no_grad():
            return self._to_codes(self._bound(self.in_proj(x).float()).round())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim)."""
        _check_codes(codes, self.codebook_size)
        return self.out_proj(self._codes_to_grid(codes))


def build_quantizer(cfg) -> nn.Module:
    """The quantizer a tokenizer config asks for. `cfg` has the fields of the "Quantizer"
    block shared by SpeechTokenizerConfig and ImageTokenizerConfig: quantizer ("vq", "rvq" or
    "fsq"), latent_dim, codebook_size, codebook_dim, l2_normalize, commitment_weight,
    ema_decay, kmeans_init, dead_code_steps, rvq_depth, fsq_levels."""
    if cfg.quantizer == "fsq":
        return FSQ(cfg.latent_dim, cfg.fsq_levels)
    kwargs = dict(
        codebook_dim=cfg.codebook_dim, l2_normalize=cfg.l2_normalize, beta=cfg.commitment_weight,
        ema_decay=cfg.ema_decay, kmeans_init=cfg.kmeans_init,
        dead_code_steps=cfg.dead_code_steps,
    )
    if cfg.quantizer == "rvq":
        return ResidualVQ(cfg.rvq_depth, cfg.latent_dim, cfg.codebook_size, **kwargs)
    return VectorQuantizer(cfg.latent_dim, cfg.codebook_size, **kwargs)
