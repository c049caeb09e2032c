"""The sentence VAE of Bowman et al. (2016, "Generating sentences from a continuous space", CoNLL) and the
LSTM language model of the same size that every VAE row is measured against (issue 17; seeds 002 and 004
on posterior collapse).

``q(z | x) = N(mu(h_T), diag sigma^2(h_T))`` with ``h_T`` the encoder RNN's state after the sentence's last
token; ``p(z) = N(0, I)`` (``PRIORS``); the decoder RNN reads ``<bos> x_1 .. x_{T-1}`` and predicts
``x_1 .. x_T`` (``x_T = <eos>``):

    p(x | z) = prod_t softmax(W [h_t] + b)_{x_t},   h_t = RNN([e(x_{t-1}), z], h_{t-1}),  h_0 = tanh(A z)

Bowman feeds ``z`` only through the decoder's initial state; the issue asks for ``z`` at every step too
(as most later text VAEs do, e.g. He et al. 2019), which is ``model.z_every_step`` (default true); ``false``
is Bowman's exact decoder. **Word dropout** (Bowman sec. 3.2, ``model.word_dropout``): while training,
each decoder *input* token is replaced by ``<unk>`` with that probability (the targets are untouched), so
the decoder must lean on ``z``; ``0`` is off, ``1`` removes every input word (Bowman's "inputless decoder").
KL annealing and free bits are the objectives' (``elbo``'s ``warmup_steps`` and ``free_bits``).

The LM (``text_lm``) is the same decoder with ``z`` removed (no encoder, ``h_0 = 0``): its NLL is exact,
so it is evaluated without importance sampling, and ``text_vae`` with ``z`` fixed at 0 and no encoder in
the loss reduces to it (``tests/test_text_vae.py``).

Padding changes nothing: the encoder runs on packed sequences (its state is read at each sentence's own
last token), and the decoder is causal with padded steps masked out of the likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn.utils.rnn import pack_padded_sequence

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.dataspec import DataSpec
from vaekit.distributions import build_prior, diag_gaussian
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.errors import UsageError
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS

RNNS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass
class TextLMConfig(ModelConfig):
    embed_dim: int = 256  # Bowman: 353; He et al. 2019: 512 (sized here for a 2-core CPU)
    hidden: int = 256  # decoder RNN units (Bowman: 191; He et al.: 1024)
    rnn: str = "lstm"  # "lstm" or "gru"
    dropout: float = 0.0  # on the decoder's outputs while training
    max_length: int = 100  # generation cap in tokens (with <eos>)

    def validate(self) -> None:
        if self.rnn not in RNNS:
            raise ConfigError(f"model.rnn must be {' or '.join(RNNS)}, got {self.rnn!r}")
        bad = {k: v for k, v in (("embed_dim", self.embed_dim), ("hidden", self.hidden),
                                 ("max_length", self.max_length)) if v < 1}
        if bad:
            raise ConfigError(f"model sizes must be >= 1, got {bad}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.data is not None:
            check_tokens(self.data)


@dataclass
class TextVAEConfig(TextLMConfig):
    latent_dim: int = 32  # Bowman: 13; He et al.: 32
    encoder_hidden: int = 256  # encoder RNN units
    word_dropout: float = 0.0  # Bowman's word dropout on the decoder's inputs (0: off; 1: inputless decoder)
    z_every_step: bool = True  # z joins every decoder input (false: only the initial state, as Bowman)
    prior: Choice = choice_field("PRIORS", "standard", "p(z): N(0, I)")

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1 or self.encoder_hidden < 1:
            raise ConfigError(f"model.latent_dim and encoder_hidden must be >= 1, got {self.latent_dim}, "
                              f"{self.encoder_hidden}")
        if not 0 <= self.word_dropout <= 1:
            raise ConfigError(f"model.word_dropout must be in [0, 1], got {self.word_dropout}")


def check_tokens(spec: DataSpec) -> None:
    if spec.modality != "tokens" or spec.kind != "tokens":
        raise ConfigError(f"text models read token ids (data such as ptb or a folder of .txt files); this data is "
                          f"{spec.describe()}")
    missing = [k for k in ("pad", "bos", "eos", "unk") if k not in spec.special_tokens]
    if missing:
        raise ConfigError(f"the token data lacks the special tokens {missing}")


class TokenDecoder(nn.Module):
    """``p(x_t | x_<t, c)``: embedding, RNN over ``[e(x_{t-1}), c]``, a linear layer to the vocabulary."""

    def __init__(self, vocab: int, embed_dim: int, hidden: int, cond_dim: int, rnn: str, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed_dim)
        self.rnn = RNNS[rnn](embed_dim + cond_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        self.dropout, self.cond_dim, self.kind = dropout, cond_dim, rnn

    def forward(self, inputs: Tensor, cond: Tensor | None, state: Any = None) -> tuple[Tensor, Any]:
        """``inputs [B, T]`` ids, ``cond [B, C]`` (or None) -> logits ``[B, T, V]`` and the RNN state."""
        e = self.embed(inputs)  # [B, T, E]
        if cond is not None and self.cond_dim:
            e = torch.cat([e, cond[:, None].expand(-1, e.shape[1], -1)], -1)
        h, state = self.rnn(e, state)  # [B, T, H]
        return self.out(F.dropout(h, self.dropout, self.training)), state

    def log_prob(self, inputs: Tensor, targets: Tensor, cond: Tensor | None, state: Any = None,
                 mask: Tensor | None = None) -> Tensor:
        """``log p(targets_t | inputs_<=t, c)`` ``[B, T]``, 0 where ``mask`` is False.

        The vocabulary layer and its softmax are most of the cost (a 10k vocabulary against 256 units), so
        they run on the real tokens only: with PTB's random batches of 32 the longest sentence is twice the
        mean, and half the logits of a padded ``[B, T, V]`` would be thrown away.
        """
        e = self.embed(inputs)  # [B, T, E]
        if cond is not None and self.cond_dim:
            e = torch.cat([e, cond[:, None].expand(-1, e.shape[1], -1)], -1)
        h, _ = self.rnn(e, state)  # [B, T, H]
        h = F.dropout(h, self.dropout, self.training)
        if mask is None:
            return _token_log_prob(self.out(h), targets)
        out = h.new_zeros(targets.shape)
        out[mask] = -F.cross_entropy(self.out(h[mask]), targets[mask], reduction="none")  # [N] real tokens
        return out


def _shifted(x: Tensor, bos: int) -> Tensor:
    """The decoder's inputs ``<bos> x_1 .. x_{T-1}`` for targets ``x [B, T]``."""
    return torch.cat([torch.full_like(x[:, :1], bos), x[:, :-1]], 1)


def _token_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    return -F.cross_entropy(logits.transpose(1, 2), x, reduction="none")  # [B, T]


#: Tokens decoded at once when a sentence is scored under many latent samples (importance sampling): the
#: vocabulary layer's logits and their log-softmax take ``2 x 4 V`` bytes per token (80 kB for PTB), so
#: 16,384 tokens hold 1.3 GB, where the image models' 4,096 latent rows would mean 4,096 sentences (~7 GB).
TOKEN_BUDGET = 16384


def sample_chunk(b: int, t: int) -> int:
    """Latent samples per decoding pass of ``b`` examples of up to ``t`` tokens (:data:`TOKEN_BUDGET`)."""
    return max(1, TOKEN_BUDGET // max(b * t, 1))


def _fits(mask: Tensor | None, x: Tensor) -> Tensor | None:
    """``mask`` if it is the mask of ``x`` (same shape), else None (all tokens scored)."""
    return mask if mask is not None and mask.shape == x.shape else None


class _TextModel(LatentVariableModel):
    """What the LM and the VAE share: the token spec, masks and the generation loop."""

    def _setup(self, config: TextLMConfig) -> DataSpec:
        spec = config.spec()
        check_tokens(spec)
        self.config = config
        self.vocab_size = spec.levels
        self.bos, self.eos, self.pad, self.unk = (spec.special_tokens[k] for k in ("bos", "eos", "pad", "unk"))
        return spec

    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def likelihood_name(self) -> str:
        return f"{self.vocab_size}-way softmax per token (nats per sentence; perplexity per token with <eos>)"

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            check_tokens(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None
        if spec.levels != self.vocab_size:
            raise ConfigError(f"{name}: a vocabulary of {spec.levels} tokens, but the model's has {self.vocab_size}")
        from vaekit.data.text import Vocabulary

        if (spec.features or {}).get("vocabulary", {}).get("tokens") is not None:  # the same words, in order
            Vocabulary.from_spec(self.config.spec()).check_same(Vocabulary.from_spec(spec), name)

    def _mask(self, batch: dict[str, Tensor]) -> Tensor:
        x = batch["x"]
        mask = batch.get("mask")
        return torch.ones_like(x, dtype=torch.bool) if mask is None else mask

    def _initial_state(self, h0: Tensor | None) -> Any:
        if h0 is None:
            return None
        h0 = h0[None].contiguous()  # [1, B, H]
        return (h0, torch.zeros_like(h0)) if self.decoder.kind == "lstm" else h0

    @property
    def sentences_per_example(self) -> int:
        """Sentences (``<eos>`` s) an example holds: 1 for sentences, the paragraph's lines for paragraphs (data
        descriptions written before this was recorded: the loader's default of 4)."""
        features = self.config.spec().features or {}
        if features.get("unit") != "paragraph":
            return 1
        return int(features.get("sentences", 4))

    @torch.no_grad()
    def generate(self, n: int, cond: Tensor | None = None, h0: Tensor | None = None, *, max_length: int | None = None,
                 temperature: float = 1.0, greedy: bool = False, seed: int | None = None,
                 sentences: int = 1) -> tuple[Tensor, Tensor]:
        """``(ids [n, T], lengths [n])``: ancestral sampling (or greedy: the argmax at every step) until the
        ``sentences``-th ``<eos>`` (included in the length) or ``max_length`` tokens."""
        cap = max_length or self.config.max_length
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        state = self._initial_state(h0)
        inp = torch.full((n, 1), self.bos, dtype=torch.long, device=self.device)
        out = []
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        ends = torch.zeros(n, dtype=torch.long, device=self.device)
        for _ in range(cap):
            logits, state = self.decoder(inp, cond, state)  # [n, 1, V]
            logits = logits[:, -1]
            logits[:, [self.pad, self.bos]] = -torch.inf  # never drawn
            if greedy or temperature == 0:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen)[:, 0]
            tok = torch.where(done, torch.full_like(tok, self.pad), tok)
            out.append(tok)
            ends = ends + (tok == self.eos).long()
            done = done | (ends >= sentences)
            inp = tok[:, None]
            if bool(done.all()):
                break
        ids = torch.stack(out, 1)
        last = (ids == self.eos).long().cumsum(1) >= sentences  # [n, T]: from the last sentence's <eos> on
        lengths = torch.where(last.any(1), last.float().argmax(1) + 1, torch.full((n,), ids.shape[1],
                                                                                device=ids.device))
        return ids, lengths

    def decode_text(self, ids: Tensor, lengths: Tensor | None = None) -> list[str]:
        """Token ids ``[B, T]`` as strings, through the vocabulary in the data description; the sentences of
        a paragraph are separated by ``<eos>``."""
        from vaekit.data.text import Vocabulary

        vocab = Vocabulary.from_spec(self.config.spec())
        rows = ids.tolist()
        if lengths is not None:
            rows = [r[:int(n)] for r, n in zip(rows, lengths.tolist())]
        out = []
        for r in rows:  # a paragraph's inner <eos> stay (its sentence ends); the last is dropped
            words = vocab.decode(r, stop_at_eos=False)
            out.append(" ".join(words[:-1] if words and words[-1] == "<eos>" else words))
        return out


@MODELS.register("text_lm", config=TextLMConfig, objective="exact_nll",
                 description="LSTM language model of sentences: the text VAE's decoder without z (the reference)")
class TextLM(_TextModel):
    """``p(x) = prod_t p(x_t | x_<t)``: exact NLL, no latent."""

    capabilities = frozenset({"exact_likelihood", "autoregressive"})

    def __init__(self, config: TextLMConfig):
        super().__init__()
        spec = self._setup(config)
        self.decoder = TokenDecoder(spec.levels, config.embed_dim, config.hidden, 0, config.rnn, config.dropout)

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = self._mask(batch)

        def log_prob(v: Tensor) -> Tensor:
            return self.decoder.log_prob(_shifted(v, self.bos), v, None, mask=_fits(mask, v))

        def sample() -> Tensor:
            return self.generate(x.shape[0], sentences=self.sentences_per_example)[0]

        return ModelOutput(AutoregressiveLikelihood(log_prob, sample, x.shape[0], mask=mask, exact=True), [])

    def encode(self, x: Tensor, **cond: Tensor):
        raise UsageError("the language model has no latent variable: there is nothing to encode (see text_vae)")

    def decode(self, z: Tensor, **cond: Tensor):
        raise UsageError("the language model has no latent variable: there is nothing to decode from")

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        raise UsageError("the language model's NLL is exact: evaluate it directly (vaekit evaluate)")

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               max_length: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` sentences ``[n, T]`` of token ids (``<pad>`` after each one's ``<eos>``), at most
        ``max_length`` tokens (default ``model.max_length``)."""
        return self.generate(n, temperature=temperature, greedy=use_mean, seed=seed, max_length=max_length,
                             sentences=self.sentences_per_example)[0]


@MODELS.register("text_vae", config=TextVAEConfig, objective="elbo",
                 description="sentence VAE: RNN encoder to a Gaussian z, RNN decoder given z (Bowman et al. 2016)")
class TextVAE(_TextModel):
    """Bowman's sentence VAE (module docstring)."""

    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: TextVAEConfig):
        super().__init__()
        spec = self._setup(config)
        self.embed = nn.Embedding(spec.levels, config.embed_dim)  # the encoder's own embedding
        self.encoder = RNNS[config.rnn](config.embed_dim, config.encoder_hidden, batch_first=True)
        self.posterior_head = nn.Linear(config.encoder_hidden, 2 * config.latent_dim)
        self.prior = build_prior(config.prior, config.latent_dim, None)
        cond = config.latent_dim if config.z_every_step else 0
        self.decoder = TokenDecoder(spec.levels, config.embed_dim, config.hidden, cond, config.rnn, config.dropout)
        self.init_state = nn.Linear(config.latent_dim, config.hidden)

    # -- inference ----------------------------------------------------------------------------------
    def encode(self, x: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``q(z | x)`` for token ids ``x [B, T]`` (``mask [B, T]`` True at real tokens; None: all)."""
        lengths = (mask.sum(1) if mask is not None else torch.full((x.shape[0],), x.shape[1])).clamp(min=1)
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.encoder(packed)
        h = state[0] if isinstance(state, tuple) else state  # [1, B, H]: the state after each own last token
        mean, log_var = self.posterior_head(h[-1]).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    def prior_dist(self, batch_size: int) -> Distribution:
        return self.prior(batch_size, None)

    # -- the decoder ----------------------------------------------------------------------------------
    def _decoder_inputs(self, x: Tensor) -> Tensor:
        inputs = _shifted(x, self.bos)
        p = self.config.word_dropout
        if self.training and p > 0:
            drop = torch.rand(inputs.shape, device=x.device) < p
            drop[:, 0] = False  # <bos> stays: it marks the start
            inputs = inputs.masked_fill(drop, self.unk)
        return inputs

    def _cond(self, z: Tensor) -> tuple[Tensor | None, Tensor]:
        return (z if self.config.z_every_step else None), torch.tanh(self.init_state(z))

    def _log_px(self, x: Tensor, z: Tensor, inputs: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        cond, h0 = self._cond(z)
        return self.decoder.log_prob(self._decoder_inputs(x) if inputs is None else inputs, x, cond,
                                     self._initial_state(h0), mask=mask)  # [B, T]

    @torch.no_grad()
    def decode_greedy(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(ids [B, T], lengths [B])``: the argmax decoding of ``z [B, D]`` (reconstructions, homotopies)."""
        cond, h0 = self._cond(z)
        return self.generate(z.shape[0], cond, h0, greedy=True, sentences=self.sentences_per_example)

    def decode(self, z: Tensor, *, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``p(x | z)`` for ``z [B, D]``: ``log_prob(ids [B, T])`` (``mask`` True at real tokens), ``sample()``."""
        def sample() -> Tensor:
            c, h0 = self._cond(z)
            return self.generate(z.shape[0], c, h0, sentences=self.sentences_per_example)[0]

        return AutoregressiveLikelihood(lambda v: self._log_px(v, z, mask=_fits(mask, v)), sample, z.shape[0],
                                        mask=mask, exact=False)

    # -- the contract -----------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, _ = self.check_batch(batch)
        mask = self._mask(batch)
        q = self.encode(x, mask=mask)
        z = q.rsample()  # [B, D]
        step = self._log_px(x, z, mask=mask)  # [B, T], word dropout applied once for this pass
        lik = AutoregressiveLikelihood(lambda v: step if v is x else self._log_px(v, z, mask=_fits(mask, v)),
                                       lambda: self.decode(z).sample(), x.shape[0], mask=mask, exact=False)
        return ModelOutput(lik, [LatentLayer(q, self.prior_dist(x.shape[0]), z)])

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(x | z_i) + log p(z_i) - log q(z_i | x)`` for ``z_i ~ q``, ``[k, B]``."""
        x, _ = self.check_batch(batch)
        mask = self._mask(batch)
        q = self.encode(x, mask=mask)
        z = q.rsample(torch.Size([k]))  # [k, B, D]
        b = x.shape[0]
        rep = lambda t, n: t.expand(n, *t.shape).reshape(n * b, *t.shape[1:])  # noqa: E731  sample-major like z
        log_px = torch.cat([self._log_px(rep(x, len(zc)), zc.reshape(len(zc) * b, -1), mask=rep(mask, len(zc)))
                            .sum(1).view(len(zc), b) for zc in z.split(sample_chunk(b, x.shape[1]))])  # [k, B]
        return log_px + self.prior_dist(b).log_prob(z) - q.log_prob(z)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, seed: int | None = None,
               max_length: int | None = None, **cond: Tensor) -> Tensor:
        """``n`` sentences ``[n, T]`` from ``z ~ p(z)``; ``use_mean`` decodes greedily."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
        p = self.prior_dist(n)
        z = p.mean + temperature * p.stddev * torch.randn(p.mean.shape, generator=gen, device=self.device)
        c, h0 = self._cond(z)
        return self.generate(n, c, h0, temperature=temperature, greedy=use_mean, max_length=max_length,
                             seed=None if seed is None else seed + 1, sentences=self.sentences_per_example)[0]
