"""Vector quantisation (van den Oord et al. 2017, "Neural Discrete Representation Learning"; seeds 000, 004).

A codebook ``e in R^{K x D}``; every D-dimensional encoder output ``z_e`` is replaced by its nearest code
``z_q = e_k, k = argmin_j ||z_e - e_j||^2`` (eq. 1-2). The lookup has no gradient, so the encoder is
trained with the straight-through estimator (``z_e + sg[z_q - z_e]``: the decoder's gradient at ``z_q``
is copied to ``z_e``) and the codebook with its own loss (eq. 3):

    L = log p(x | z_q) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2
                         codebook loss       commitment loss

The two penalties keep separate weights (seed 004 asks "shouldn't we have separate parameters for these
two roles?"). Instead of the codebook loss the codes may follow an exponential moving average of the
vectors assigned to them (the paper's appendix A.1): the online form of a k-means step, seed 004's view
of the codebook as cluster centres. Codes that no vector has chosen for a while are restarted at random
encoder outputs of the current batch (Dhariwal et al. 2020's Jukebox trick), so the codebook stays in use.

Soft EM (Roy et al. 2018, "Theory and experiments on vector quantized autoencoders", section 3) replaces
the hard assignment of the EMA step by the posterior of a Gaussian mixture with unit variance whose means
are the codes, ``tau_ij = softmax_j(-||z_e(x_i) - e_j||^2)`` (their eq. 7), estimated by drawing ``m``
codes per vector from it (Monte Carlo EM): the counts and sums of the EMA step take the ``m`` draws with
weight ``1/m`` each (eq. 8-9) and the decoder reads the mean of the drawn codes in training. EMA is the
limit of hard EM (k-means) of that mixture; soft EM is its EM. Outside training the lookup stays the
nearest code, the mode of ``tau``.

The module is usable alone: ``VectorQuantizer(K, D)(z_e)`` with ``z_e`` channel-first ``[B, D, *S]``
(``S`` any spatial shape, possibly empty) returns a :class:`Quantized` named tuple.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn


class Quantized(NamedTuple):
    """What :class:`VectorQuantizer` returns.

    Attributes:
        quantized: ``[B, D, *S]`` the straight-through output ``z_e + sg[z_q - z_e]`` (equal to ``z_q``
            in value, with the gradient of ``z_e``).
        indices: ``[B, *S]`` int64 code indices.
        codebook_loss: ``[B]`` ``||sg[z_e] - z_q||^2`` summed over positions and channels (unweighted).
        commitment_loss: ``[B]`` ``||z_e - sg[z_q]||^2`` summed likewise (unweighted).
        counts: ``[K]`` how many vectors of this batch chose each code.
    """

    quantized: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    counts: Tensor


def perplexity(counts: Tensor) -> Tensor:
    """``exp(H(p))`` of the code frequencies ``p = counts / sum(counts)``: the effective number of codes."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


def nearest_codes(flat: Tensor, codebook: Tensor, chunk_size: int = 16384) -> Tensor:
    """Index of the nearest code for every row of ``flat [N, D]`` under ``codebook [K, D]``, ``[N]``.

    Uses ``||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2``; ``||z||^2`` is the same for every code and drops out
    of the argmin, so each chunk is one fused ``addmm`` (``[n, K]``) and an argmin. Chunks of rows bound
    the memory of the distance matrix.
    """
    out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    # fp32 even under mixed precision: bf16 distances pick another code for ~1% of the vectors
    with torch.autocast(flat.device.type, enabled=False):
        codebook = codebook.float()
        e_sq = codebook.pow(2).sum(1)  # [K]
        for start in range(0, flat.shape[0], chunk_size):
            rows = flat[start:start + chunk_size].float()
            dist_ = torch.addmm(e_sq, rows, codebook.t(), alpha=-2.0)  # [n, K], ||z||^2 omitted
            out[start:start + chunk_size] = dist_.argmin(1)
    return out


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with a straight-through gradient.

    Args:
        num_codes: K, the codebook size.
        dim: D, the size of each code vector (the encoder's output channels).
        ema: update the codebook by exponential moving averages (appendix A.1) instead of its loss.
        decay: the EMA decay gamma (0.99 in the paper).
        restart_threshold: restart a code whose moving-average use per batch falls below this many
            vectors (0 = never restart). Uses the same moving average as EMA, with ``decay``.
        eps: Laplace smoothing of the EMA cluster sizes, so no code divides by zero.
        chunk_size: rows per distance computation.
        soft_em_samples: ``m`` > 0 trains the EMA codebook by soft EM with ``m`` codes drawn per vector
            from ``tau`` (Roy et al. 2018); 0 is the hard (k-means-like) EMA step. Needs ``ema``.
    """

    def __init__(self, num_codes: int, dim: int, *, ema: bool = False, decay: float = 0.99,
                 restart_threshold: float = 0.0, eps: float = 1e-5, chunk_size: int = 16384,
                 soft_em_samples: int = 0):
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"num_codes and dim must be >= 1, got K={num_codes}, D={dim}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if restart_threshold < 0:
            raise ValueError(f"restart_threshold must be >= 0, got {restart_threshold}")
        if soft_em_samples < 0:
            raise ValueError(f"soft_em_samples must be >= 0, got {soft_em_samples}")
        if soft_em_samples and not ema:
            raise ValueError("soft EM is an update of the EMA codebook: soft_em_samples > 0 needs ema=True")
        self.soft_em_samples = soft_em_samples
        self.num_codes, self.dim = num_codes, dim
        self.ema, self.decay, self.eps = ema, decay, eps
        self.restart_threshold = restart_threshold
        self.chunk_size = chunk_size
        # uniform(-1/K, 1/K) as in the reference implementation (sonnet's VectorQuantizer)
        codebook = torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes)
        if ema:  # the EMA codes are buffers: no gradient, no optimiser state
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_sum", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        # moving average of how many vectors chose each code per batch (EMA's N_i; restarts read it)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"K={self.num_codes}, D={self.dim}, ema={self.ema}, decay={self.decay}, "
                f"restart_threshold={self.restart_threshold}, soft_em_samples={self.soft_em_samples}")

    # -- lookups --------------------------------------------------------------------------------
    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors of ``indices [B, *S]`` as a channel-first map ``[B, D, *S]``."""
        if indices.dtype != torch.long:
            raise ValueError(f"code indices must be int64, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(f"code indices must lie in [0, {self.num_codes}), got "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        z = self.codebook[indices]  # [B, *S, D]
        return z.movedim(-1, 1)

    def codes(self, z_e: Tensor) -> Tensor:
        """Nearest-code indices ``[B, *S]`` of a channel-first ``z_e [B, D, *S]`` (no gradient)."""
        flat = self._flatten(z_e)
        return nearest_codes(flat.detach(), self.codebook.detach(), self.chunk_size).view(
            z_e.shape[0], *z_e.shape[2:])

    def _flatten(self, z_e: Tensor) -> Tensor:
        if z_e.dim() < 2 or z_e.shape[1] != self.dim:
            raise ValueError(f"expected channel-first input [B, {self.dim}, ...], got {list(z_e.shape)}")
        return z_e.movedim(1, -1).reshape(-1, self.dim)  # [B * prod(S), D]

    # -- forward --------------------------------------------------------------------------------
    def forward(self, z_e: Tensor, mask: Tensor | None = None) -> Quantized:
        """Quantise ``z_e [B, D, *S]``. In a training step (training mode, autograd on) this also updates the
        EMA codebook and restarts dead codes; evaluation and ``torch.no_grad`` passes change nothing.

        ``mask [B, *S]`` (bool, True for real positions) leaves padded positions out of every codebook
        statistic: the counts, the moving averages, the candidates for restarts and both losses. Their
        indices are still the nearest codes (a decoder may read them), but nothing is learnt from them."""
        flat = self._flatten(z_e)  # [N, D]
        if mask is not None and tuple(mask.shape) != (z_e.shape[0], *z_e.shape[2:]):
            raise ValueError(f"mask must be [B, *S] = {[z_e.shape[0], *z_e.shape[2:]]}, got {list(mask.shape)}")
        valid = None if mask is None else mask.reshape(-1)  # [N]
        indices = nearest_codes(flat.detach(), self.codebook.detach(), self.chunk_size)  # [N]
        counted = indices if valid is None else indices[valid]
        counts = torch.bincount(counted, minlength=self.num_codes)  # [K]
        training_step = self.training and torch.is_grad_enabled()
        if training_step and self.soft_em_samples:
            draws = self._draw(flat.detach())  # [N, m] codes drawn from tau
            # the decoder's input is the mean of the drawn codes (copied before the update moves them)
            z_q = self.codebook[draws].mean(1)  # [N, D]
            z_q = z_q.view(z_e.shape[0], *z_e.shape[2:], self.dim).movedim(-1, 1)  # [B, D, *S]
        else:
            # the codes this step chose, before the update below moves or restarts any of them (indexing copies)
            z_q = self.codebook[indices].view(z_e.shape[0], *z_e.shape[2:], self.dim).movedim(-1, 1)  # [B, D, *S]
        if training_step and (self.ema or self.restart_threshold > 0):
            with torch.autocast(z_e.device.type, enabled=False):  # moving averages in the codebook's fp32
                real = flat.detach().to(self.codebook.dtype)
                real = real if valid is None else real[valid]
                if self.soft_em_samples:  # the E-step's expected counts and sums, by the m draws
                    drawn = draws if valid is None else draws[valid]
                    self._update(real, counted, counts, drawn=drawn)
                else:
                    self._update(real, counted, counts)
        per_example = (1, *range(2, z_e.dim()))
        weight = 1.0 if mask is None else mask.unsqueeze(1).to(z_e.dtype)  # [B, 1, *S]
        codebook_loss = ((z_q - z_e.detach()).pow(2) * weight).sum(per_example)  # trains e (unless EMA)
        commitment_loss = ((z_e - z_q.detach()).pow(2) * weight).sum(per_example)  # keeps z_e near its code
        quantized = z_e + (z_q - z_e).detach()  # straight-through: value z_q, gradient of z_e
        return Quantized(quantized, indices.view(z_e.shape[0], *z_e.shape[2:]), codebook_loss, commitment_loss,
                         counts)

    @torch.no_grad()
    def responsibilities(self, flat: Tensor) -> Tensor:
        """``tau [N, K]``: the posterior over codes of a unit-variance Gaussian mixture with means ``e``
        and equal weights (Roy et al. 2018, eq. 7), for rows ``flat [N, D]``."""
        with torch.autocast(flat.device.type, enabled=False):
            codebook = self.codebook.float()
            # -||z - e||^2 up to the row's ||z||^2, which the softmax over codes cancels
            logits = torch.addmm(-codebook.pow(2).sum(1), flat.float(), codebook.t(), alpha=2.0)  # [N, K]
            return torch.softmax(logits, dim=1)

    @torch.no_grad()
    def _draw(self, flat: Tensor) -> Tensor:
        """``[N, m]`` codes drawn from ``tau`` (with replacement), in chunks of rows."""
        out = []
        for start in range(0, flat.shape[0], self.chunk_size):
            tau = self.responsibilities(flat[start:start + self.chunk_size])
            out.append(torch.multinomial(tau, self.soft_em_samples, replacement=True))
        return torch.cat(out) if out else torch.empty(0, self.soft_em_samples, dtype=torch.long,
                                                      device=flat.device)

    @torch.no_grad()
    def _update(self, flat: Tensor, indices: Tensor, counts: Tensor, drawn: Tensor | None = None) -> None:
        """EMA step (appendix A.1): ``N_i <- g N_i + (1-g) n_i``, ``m_i <- g m_i + (1-g) sum z_e``,
        ``e_i = m_i / N_i``; then restart codes whose ``N_i`` fell below the threshold. With ``drawn
        [N, m]`` (soft EM) ``n_i`` and the sums count every draw with weight ``1/m`` (Roy et al. eq. 8-9)."""
        if drawn is not None:
            m = drawn.shape[1]
            counts = torch.bincount(drawn.reshape(-1), minlength=self.num_codes).to(self.codebook.dtype) / m
            repeated = flat.repeat_interleave(m, dim=0)  # [N * m, D], row i's copies next to each other
            sums = torch.zeros_like(self.codebook).index_add_(0, drawn.reshape(-1), repeated) / m  # [K, D]
        else:
            counts = counts.to(self.codebook.dtype)  # fp32: bf16 would round counts above 256
            sums = torch.zeros_like(self.codebook).index_add_(0, indices, flat)  # [K, D]
        if dist.is_available() and dist.is_initialized():  # every process keeps the same codebook
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        g = self.decay
        self.ema_count.mul_(g).add_(counts, alpha=1 - g)
        if self.ema:
            self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n  # Laplace smoothing
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if self.restart_threshold > 0:
            self._restart(flat, indices)

    @torch.no_grad()
    def _restart(self, flat: Tensor, indices: Tensor) -> None:
        dead = self.ema_count < self.restart_threshold  # [K]
        num_dead = int(dead.sum())
        if num_dead == 0 or flat.shape[0] == 0:
            return
        # encoder outputs of this batch, drawn with probability proportional to their squared distance
        # from their code (k-means++ seeding): the vectors the codebook serves worst. Uniform draws mostly
        # pick copies of the commonest vector (an image's background) and restart codes onto one point.
        err = (flat - self.codebook[indices]).pow(2).sum(1)  # [N]
        weights = err + 1e-12 if float(err.sum()) > 0 else torch.ones_like(err)
        pick = torch.multinomial(weights, num_dead, replacement=num_dead > flat.shape[0])
        new = flat[pick]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(new, src=0)
        self.codebook.data[dead] = new
        # at the threshold: a restarted code that no vector chooses next step is restarted again
        self.ema_count[dead] = self.restart_threshold
        if self.ema:
            self.ema_sum[dead] = new * self.ema_count[dead].unsqueeze(1)
        self.restarts += num_dead
