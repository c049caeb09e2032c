"""The multi-level VAE for paragraphs of Shen et al. (2019, "Towards generating long and coherent text with
multi-level latent variable models", ACL; ml-VAE-D): two levels of latents and a hierarchical decoder
(issue 17). The flat sentence VAE (:mod:`vaekit.models.text_vae`) on the same paragraphs is its baseline.

Generative model, top down (the paper's sec. 3.2)::

    p(z_2) = N(0, I),   p(z_1 | z_2) = N(mu(z_2), diag sigma^2(z_2)),   p(x | z_1)

and the hierarchical decoder of ``p(x | z_1)`` (sec. 3.1, after MusicVAE's conductor): a sentence-level RNN
reads ``z_1`` at each of the paragraph's ``S`` sentences and writes one *plan vector* ``h^s_i`` per sentence;
a word-level RNN, started from the plan vector and reading ``[e(x_{i,t-1}), h^s_i]`` at every step,
writes sentence ``i`` up to its ``<eos>``::

    p(x | z_1) = prod_i prod_t softmax(W g_{i,t} + b)_{x_{i,t}},
    g_{i,t} = RNN_w([e(x_{i,t-1}), h^s_i], g_{i,t-1}),  g_{i,0} = tanh(B h^s_i),  h^s_i = RNN_s(z_1, h^s_{i-1})

Inference, bottom up (the paper's ``q(z_1 | x) q(z_2 | z_1)``): a hierarchical encoder (a word-level RNN
per sentence, a sentence-level RNN over their final states; the paper uses CNNs at both levels, an RNN keeps
the encoder the flat VAE's) gives ``q(z_1 | x)``; an MLP of ``z_1`` gives ``q(z_2 | z_1)``. Because ``z_2`` is
drawn after ``z_1`` and from it, ``KL(q(z_1|x) || p(z_1|z_2))`` is not closed form under the joint draw:
layer 1's KL is the single-sample ``log q(z_1|x) - log p(z_1|z_2)`` (``LatentLayer.analytic_kl = False``)
and the ELBO stays unbiased; layer 2's ``KL(q(z_2|z_1) || p(z_2))`` is closed form at the drawn ``z_1``.

Sentences are read off the paragraph's ``<eos>`` tokens (:func:`split_sentences`), so the data are the flat
VAE's token batches and every token, each ``<eos>`` included, is scored once by both models: their NLLs per
paragraph and per token compare directly. The number of sentences ``S`` is given, not modelled (nor is it
by the flat model, which scores the tokens up to the last ``<eos>``); generation writes
``model.sentences`` of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn.utils.rnn import pack_padded_sequence

from vaekit.config import ConfigError
from vaekit.distributions import diag_gaussian
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.models.base import LatentLayer, ModelOutput
from vaekit.models.text_vae import RNNS, TextVAEConfig, TokenDecoder, _TextModel, sample_chunk
from vaekit.registry import MODELS


@dataclass
class MLTextVAEConfig(TextVAEConfig):
    top_latent_dim: int = 32  # z_2 (the paper: 32 for z_1 and z_2)
    sentence_hidden: int = 256  # the sentence-level RNNs (encoder and decoder)
    sentences: int = 4  # sentences per generated paragraph (PTB paragraphs: data.options.paragraph_lines)

    def validate(self) -> None:
        super().validate()
        bad = {k: v for k, v in (("top_latent_dim", self.top_latent_dim), ("sentence_hidden", self.sentence_hidden),
                                 ("sentences", self.sentences)) if v < 1}
        if bad:
            raise ConfigError(f"model sizes must be >= 1, got {bad}")
        if not self.z_every_step:
            raise ConfigError("ml_text_vae's word-level decoder reads its plan vector at every step "
                              "(model.z_every_step must stay true)")


def split_sentences(x: Tensor, mask: Tensor, eos: int, pad: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Paragraph tokens ``x [B, T]`` (``mask`` True at real tokens) as sentences ending at each ``<eos>``.

    Returns ``(sentences [B, S, L], lengths [B, S], sid [B, T], pos [B, T])``: sentence ``i`` of paragraph
    ``b`` is ``sentences[b, i, :lengths[b, i]]`` (its ``<eos>`` included; a paragraph cut by ``max_length``
    ends in a sentence without one), and token ``t`` of ``x`` sits at ``[b, sid[b, t], pos[b, t]]``.
    """
    b, t = x.shape
    is_eos = (x == eos) & mask
    sid = torch.cumsum(is_eos.long(), 1) - is_eos.long()  # the sentence of each token (its <eos> included)
    steps = torch.arange(t, device=x.device).expand(b, t)
    last_end = torch.where(is_eos, steps, torch.full_like(steps, -1)).cummax(1).values  # last <eos> at or before t
    start = torch.cat([torch.zeros_like(last_end[:, :1]), last_end[:, :-1] + 1], 1)  # first token of t's sentence
    pos = steps - start
    sid, pos = sid.masked_fill(~mask, 0), pos.masked_fill(~mask, 0)
    s = int(sid.max()) + 1 if t else 1
    length = int(pos.max()) + 1 if t else 1
    sentences = x.new_full((b, s, length), pad)
    rows = torch.arange(b, device=x.device)[:, None].expand(b, t)
    sentences[rows[mask], sid[mask], pos[mask]] = x[mask]
    lengths = torch.zeros(b, s, dtype=torch.long, device=x.device)
    lengths.index_put_((rows[mask], sid[mask]), torch.ones_like(x[mask]), accumulate=True)
    return sentences, lengths, sid, pos


def _last_states(rnn: nn.Module, inputs: Tensor, lengths: Tensor) -> Tensor:
    """The RNN's state after each row's own last step: ``inputs [N, T, E]``, ``lengths [N] >= 1`` -> ``[N, H]``."""
    packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    _, state = rnn(packed)
    return (state[0] if isinstance(state, tuple) else state)[-1]


@MODELS.register("ml_text_vae", config=MLTextVAEConfig, objective="elbo",
                 description="multi-level VAE for paragraphs: z_2 -> z_1 -> sentence plans -> words (Shen et al. 2019)")
class MLTextVAE(_TextModel):
    """Shen et al.'s ml-VAE-D (module docstring)."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: MLTextVAEConfig):
        super().__init__()
        spec = self._setup(config)
        c, rnn = config, RNNS[config.rnn]
        self.embed = nn.Embedding(spec.levels, c.embed_dim)  # the encoder's own embedding
        self.word_encoder = rnn(c.embed_dim, c.encoder_hidden, batch_first=True)
        self.sentence_encoder = rnn(c.encoder_hidden, c.sentence_hidden, batch_first=True)
        self.posterior_head = nn.Linear(c.sentence_hidden, 2 * c.latent_dim)  # q(z_1 | x)
        self.top_posterior = nn.Sequential(nn.Linear(c.latent_dim, c.sentence_hidden), nn.Tanh(),
                                           nn.Linear(c.sentence_hidden, 2 * c.top_latent_dim))  # q(z_2 | z_1)
        self.conditional_prior = nn.Sequential(nn.Linear(c.top_latent_dim, c.sentence_hidden), nn.Tanh(),
                                               nn.Linear(c.sentence_hidden, 2 * c.latent_dim))  # p(z_1 | z_2)
        self.sentence_decoder = rnn(c.latent_dim, c.sentence_hidden, batch_first=True)
        self.sentence_init = nn.Linear(c.latent_dim, c.sentence_hidden)
        self.decoder = TokenDecoder(spec.levels, c.embed_dim, c.hidden, c.sentence_hidden, c.rnn, c.dropout)
        self.init_state = nn.Linear(c.sentence_hidden, c.hidden)

    # -- inference ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``q(z_1 | x)`` for paragraph ids ``x [B, T]`` (``mask`` True at real tokens; None: all)."""
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        sentences, lengths, _, _ = split_sentences(x, mask, self.eos, self.pad)  # [B, S, L], [B, S]
        b, s, length = sentences.shape
        real = lengths > 0  # [B, S]
        h = x.new_zeros((b, s, self.config.encoder_hidden), dtype=self.embed.weight.dtype)
        h[real] = _last_states(self.word_encoder, self.embed(sentences[real]), lengths[real])  # [N, H] sentences
        counts = real.sum(1).clamp(min=1)
        mean, log_var = self.posterior_head(_last_states(self.sentence_encoder, h, counts)).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    def top_posterior_dist(self, z1: Tensor) -> Distribution:
        """``q(z_2 | z_1)``."""
        mean, log_var = self.top_posterior(z1).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    def top_prior(self, batch_size: int) -> Distribution:
        """``p(z_2) = N(0, I)``."""
        zeros = self.posterior_head.weight.new_zeros(batch_size, self.config.top_latent_dim)
        return diag_gaussian(zeros, zeros)

    def conditional_prior_dist(self, z2: Tensor) -> Distribution:
        """``p(z_1 | z_2)``."""
        mean, log_var = self.conditional_prior(z2).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    # -- the hierarchical decoder -------------------------------------------------------------------------
    def plans(self, z1: Tensor, sentences: int) -> Tensor:
        """The sentence-level RNN: ``z_1 [B, D]`` read at each of ``sentences`` steps -> plan vectors ``[B, S, H_s]``."""
        h0 = torch.tanh(self.sentence_init(z1))[None].contiguous()  # [1, B, H_s]
        state = (h0, torch.zeros_like(h0)) if self.decoder.kind == "lstm" else h0
        plans, _ = self.sentence_decoder(z1[:, None].expand(-1, sentences, -1).contiguous(), state)
        return plans

    def _log_px(self, x: Tensor, z1: Tensor, mask: Tensor) -> Tensor:
        """``log p(x_t | x_<t in its sentence, plan of its sentence)`` ``[B, T]`` (0 at padding)."""
        sentences, lengths, sid, pos = split_sentences(x, mask, self.eos, self.pad)  # [B, S, L]
        b, s, length = sentences.shape
        real = lengths > 0  # [B, S]
        plan = self.plans(z1, s)[real]  # [N, H_s] one per real sentence
        targets = sentences[real]  # [N, L]
        inputs = torch.cat([torch.full_like(targets[:, :1], self.bos), targets[:, :-1]], 1)
        p = self.config.word_dropout
        if self.training and p > 0:
            drop = torch.rand(inputs.shape, device=x.device) < p
            drop[:, 0] = False  # each sentence's <bos> stays
            inputs = inputs.masked_fill(drop, self.unk)
        word_mask = torch.arange(length, device=x.device)[None] < lengths[real][:, None]  # [N, L]
        h0 = torch.tanh(self.init_state(plan))
        lp = self.decoder.log_prob(inputs, targets, plan, self._initial_state(h0), mask=word_mask)  # [N, L]
        per_sentence = lp.new_zeros((b, s, length))
        per_sentence[real] = lp
        rows = torch.arange(b, device=x.device)[:, None].expand_as(sid)
        return per_sentence[rows, sid, pos] * mask  # [B, T] back in the paragraph's layout

    def decode(self, z: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``p(x | z_1)`` for ``z_1 [B, D]``: ``log_prob(ids [B, T])`` (``mask`` True at real tokens), ``sample()``."""
        def log_prob(v: Tensor) -> Tensor:
            m = mask if mask is not None and mask.shape == v.shape else torch.ones_like(v, dtype=torch.bool)
            return self._log_px(v, z, m)

        return AutoregressiveLikelihood(log_prob, lambda: self._generate(z)[0], z.shape[0], mask=mask, exact=False)

    # -- the contract -----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = self._mask(batch)
        q1 = self.encode(x, mask=mask)
        z1 = q1.rsample()  # [B, D1]
        q2 = self.top_posterior_dist(z1)
        z2 = q2.rsample()  # [B, D2]
        step = self._log_px(x, z1, mask)  # [B, T], word dropout drawn once for this pass
        lik = AutoregressiveLikelihood(lambda v: step if v is x else self.decode(z1, mask=mask).log_prob(v),
                                       lambda: self._generate(z1)[0], x.shape[0], mask=mask, exact=False)
        return ModelOutput(lik, [
            LatentLayer(q1, self.conditional_prior_dist(z2), z1, name="z1", analytic_kl=False),
            LatentLayer(q2, self.top_prior(x.shape[0]), z2, name="z2"),
        ])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z_1) + log p(z_1 | z_2) + log p(z_2) - log q(z_1 | x) - log q(z_2 | z_1)``, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        mask = self._mask(batch)
        q1 = self.encode(x, mask=mask)
        z1 = q1.rsample(torch.Size([k]))  # [k, B, D1]
        b = x.shape[0]
        flat1 = z1.reshape(k * b, -1)
        q2 = self.top_posterior_dist(flat1)
        z2 = q2.rsample()  # [k B, D2]
        rep = lambda t, n: t.expand(n, *t.shape).reshape(n * b, *t.shape[1:])  # noqa: E731  sample-major like z
        log_px = torch.cat([self._log_px(rep(x, len(zc)), zc.reshape(len(zc) * b, -1), rep(mask, len(zc))).sum(1)
                            for zc in z1.split(sample_chunk(b, x.shape[1]))])  # [k B]
        log_w = (log_px + self.conditional_prior_dist(z2).log_prob(flat1) + self.top_prior(k * b).log_prob(z2)
                 - q2.log_prob(z2))
        return log_w.view(k, b) - q1.log_prob(z1)

    # -- generation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, z1: Tensor, *, sentences: int | None = None, temperature: float = 1.0,
                  greedy: bool = False, seed: int | None = None,
                  max_length: int | None = None) -> tuple[Tensor, Tensor]:
        """``(ids [n, T], lengths [n])``: ``sentences`` sentences from the plans of ``z_1``, each until its
        ``<eos>`` or ``model.max_length`` tokens, joined as one paragraph (``<pad>`` after its end) of at most
        ``max_length`` tokens (cut there, as the data's paragraphs are)."""
        n, s = z1.shape[0], sentences or self.config.sentences
        plans = self.plans(z1, s)  # [n, S, H_s]
        parts, lengths = [], []
        for i in range(s):
            plan = plans[:, i]
            ids, length = self.generate(n, plan, torch.tanh(self.init_state(plan)), temperature=temperature,
                                        greedy=greedy, seed=None if seed is None else seed + i)
            parts.append((ids, length))
            lengths.append(length)
        total = torch.stack(lengths, 1).sum(1)  # [n]
        out = z1.new_full((n, int(total.max())), self.pad, dtype=torch.long)
        at = torch.zeros(n, dtype=torch.long, device=z1.device)
        for ids, length in parts:
            for row in range(n):  # n rows of a few sentences: a Python loop is clear and cheap here
                m = int(length[row])
                out[row, at[row]:at[row] + m] = ids[row, :m]
            at += length
        if max_length is not None and out.shape[1] > max_length:
            out, total = out[:, :max_length], total.clamp(max=max_length)
        return out, total

    def decode_greedy(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(ids [B, T], lengths [B])``: the argmax decoding of ``z_1 [B, D]`` (reconstructions, homotopies)."""
        return self._generate(z, greedy=True)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               max_length: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` paragraphs ``[n, T]`` from ``z_2 ~ p(z_2)``, ``z_1 ~ p(z_1 | z_2)``; ``use_mean`` takes the
        prior means and decodes greedily."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        top = self.top_prior(n)
        draw = lambda d: d.mean + (0 if use_mean else temperature) * d.stddev * torch.randn(  # noqa: E731
            d.mean.shape, generator=gen, device=self.device)
        z1 = draw(self.conditional_prior_dist(draw(top)))
        return self._generate(z1, temperature=temperature, greedy=use_mean, max_length=max_length,
                              seed=None if seed is None else seed + 1)[0]

    def prior_dist(self, batch_size: int) -> Distribution:
        """``p(z_2)``: the top of the hierarchy (where sampling starts)."""
        return self.top_prior(batch_size)
