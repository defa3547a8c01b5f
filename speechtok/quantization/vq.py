"""Codebook vector quantization (VQ-VAE) with EMA updates, k-means init, dead-code restart and
low-dimensional l2-normalised codes. Under torch.distributed, codebook statistics are summed
over processes and random choices are made on rank 0, so every process keeps the identical
codebook."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .base import BaseQuantizer
from .kmeans import kmeans, nearest_code, sample_rows
from .output import QuantizerOutput, check_codes, code_metrics, world_size


class VectorQuantizer(BaseQuantizer):
    """Nearest-neighbour vector quantizer (VQ-VAE, van den Oord et al. 2017) of (B, N, dim).

    codebook_dim != dim looks codes up in a low-dimensional space reached by a linear projection
    (factorised codes, ViT-VQGAN, Yu et al. 2021; LlamaGen), and l2_normalize makes the lookup a
    cosine similarity there (ViT-VQGAN): both raise codebook usage. beta weights the commitment
    loss. ema_decay learns the codes by moving averages of cluster statistics instead of a loss
    (VQ-VAE-2, Razavi et al. 2019). kmeans_init runs kmeans_iters Lloyd steps on the first
    training batch. dead_code_steps > 0 re-seeds codes unused for that many training steps from
    current inputs (SoundStream, Zeghidour et al. 2021; Jukebox). eps smooths EMA counts.

    simvq (SimVQ, Zhu et al. 2024) freezes the codebook and learns a linear map of it, so the
    codebook loss moves every code at once instead of the winners only; it needs the
    gradient-learned codebook (ema_decay None). rotation_trick (Fifty et al. 2024) replaces the
    straight-through estimator: the gradient reaching the encoder is the code's gradient
    rotated and rescaled by the fixed map taking the latent onto its code, so it carries the
    angle and norm of the quantization error.
    """

    def __init__(self, dim, codebook_size, codebook_dim=None, l2_normalize=False, beta=0.25,
                 ema_decay=None, kmeans_init=True, kmeans_iters=10, dead_code_steps=0,
                 eps=1e-5, simvq=False, rotation_trick=False):
        super().__init__()
        codebook_dim = dim if codebook_dim is None else codebook_dim
        if min(dim, codebook_size, codebook_dim) < 1:
            raise ValueError(f"sizes must be >= 1, got {dim=} {codebook_size=} {codebook_dim=}")
        if not (ema_decay is None or 0.0 <= ema_decay < 1.0) or dead_code_steps < 0:
            raise ValueError(f"need 0 <= ema_decay < 1 and dead_code_steps >= 0, got {ema_decay=} "
                             f"{dead_code_steps=}")
        if simvq and ema_decay is not None:
            raise ValueError("simvq learns a map of a frozen codebook by gradient: it needs "
                             "ema_decay=None")
        self.dim, self.codebook_size, self.codebook_dim = dim, codebook_size, codebook_dim
        self.l2_normalize, self.beta, self.ema_decay = l2_normalize, beta, ema_decay
        self.kmeans_iters, self.dead_code_steps, self.eps = kmeans_iters, dead_code_steps, eps
        self.simvq, self.rotation_trick = simvq, rotation_trick
        project = codebook_dim != dim
        self.in_proj = nn.Linear(dim, codebook_dim) if project else nn.Identity()
        self.out_proj = nn.Linear(codebook_dim, dim) if project else nn.Identity()
        embed = torch.randn(codebook_size, codebook_dim)
        if simvq:
            # SimVQ: codes = embed W^T with embed frozen; W starts at the identity so that the
            # k-means initialisation (written into embed) holds as it is.
            self.register_buffer("embed", embed)
            self.code_map = nn.Linear(codebook_dim, codebook_dim, bias=False)
            nn.init.eye_(self.code_map.weight)
        elif ema_decay is None:
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
        codes = self.code_map(self.embed) if self.simvq else self.embed
        return F.normalize(codes, dim=-1) if self.l2_normalize else codes

    @torch.no_grad()
    def _set_codes(self, rows, values: torch.Tensor) -> None:
        """Make codes `rows` (an index or mask) equal `values` before normalisation; under
        SimVQ the frozen rows are solved for through the map (values = rows W^T)."""
        if self.simvq:
            values = torch.linalg.solve(self.code_map.weight.float(), values.float().T).T
        # .data: this must not bump the version of a tensor autograd saved for the codebook loss
        self.embed.data[rows] = values.to(self.embed.dtype)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        z = self.in_proj(x)
        return F.normalize(z, dim=-1) if self.l2_normalize else z

    def encode(self, x: torch.Tensor) -> torch.LongTensor:
        """(batch, length, dim) -> (batch, length) code ids. No side effects."""
        with torch.no_grad():
            z = self._project(x)
            return nearest_code(z.reshape(-1, self.codebook_dim), self.codebook).view(z.shape[:-1])

    def commitment_to(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Squared distance, in the lookup space, between each latent of `x` (batch, length,
        dim) and its (detached) code in `codes` (batch, length), averaged over positions:
        VQ-VAE's commitment towards given codes rather than the nearest ones (e.g. a clean
        copy's units). With l2-normalised codes it is 2 - 2 cos, in [0, 4]."""
        z = self._project(x).float()
        target = F.embedding(codes, self.codebook.detach()).float()
        return (z - target).pow(2).sum(-1).mean()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(batch, length) code ids -> (batch, length, dim) vectors in the input space."""
        check_codes(codes, self.codebook_size)
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
        metrics = code_metrics(counts)
        if self.training:
            self._update_codebook(flat.detach(), idx, counts)

        # Straight-through estimator (VQ-VAE): value q, identity gradient w.r.t. z. Written as
        # q + (z - sg[z]) rather than z + sg[q - z]: same gradient, but the value is exactly q
        # (z - z == 0), so forward's output equals decode(encode(x)) bit for bit.
        if flat.requires_grad:
            moved = rotate_onto(flat, q.detach()) if self.rotation_trick else flat
            q = q.detach() + (moved - moved.detach())
        quantized = self.out_proj(q.view(z.shape)).to(x.dtype)
        return QuantizerOutput(quantized, idx.view(z.shape[:-1]), loss, losses, metrics)

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        # Data-dependent init avoids codes that never win (SoundStream). Distributed: rank 0
        # clusters its batch and broadcasts, so all processes start from the same codebook.
        distributed = world_size() > 1
        if not distributed or dist.get_rank() == 0:
            centroids, counts = kmeans(flat.float(), self.codebook_size, self.kmeans_iters,
                                       spherical=self.l2_normalize)
        else:
            centroids = flat.new_empty(self.codebook_size, self.codebook_dim, dtype=torch.float)
            counts = flat.new_empty(self.codebook_size, dtype=torch.float)
        if distributed:
            dist.broadcast(centroids, 0)
            dist.broadcast(counts, 0)
        self._set_codes(slice(None), centroids)
        if self.ema_decay is not None:
            # Start the EMA statistics from the k-means clusters; empty ones count as 1 so their
            # code stays put instead of collapsing to sum / ~0.
            counts = counts.clamp(min=1.0)
            self.cluster_size.copy_(counts)
            self.embed_sum.copy_(centroids * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor):
        distributed = world_size() > 1
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
        new = sample_rows(flat, n_dead).contiguous()  # cheap, so every rank samples ...
        if world_size() > 1:
            dist.broadcast(new, 0)  # ... and rank 0's choice wins
        self._set_codes(dead, new)  # the dead rows had no gradient this step
        if self.ema_decay is not None:
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = new
        self.unused_steps[dead] = 0


def rotate_onto(e: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """The rotation trick (Fifty et al. 2024, eq. 4): λ R e with R the rotation taking the
    direction of e onto that of q and λ = ‖q‖ / ‖e‖, both treated as constants, so the value
    is q (up to rounding) and the gradient reaching e is the code's gradient rotated back and
    rescaled. R e = e - 2 r (r·e) + 2 q̂ ‖e‖ with r = (ê + q̂) / ‖ê + q̂‖ (Householder form)."""
    with torch.no_grad():
        e_norm = e.norm(dim=-1, keepdim=True).clamp(min=eps)
        q_norm = q.norm(dim=-1, keepdim=True)
        e_hat, q_hat = e / e_norm, q / q_norm.clamp(min=eps)
        r = F.normalize(e_hat + q_hat, dim=-1, eps=eps)
        scale = q_norm / e_norm
    rotated = (e - 2 * r * (r * e).sum(-1, keepdim=True)
               + 2 * q_hat * (e_hat * e).sum(-1, keepdim=True))
    return scale * rotated
