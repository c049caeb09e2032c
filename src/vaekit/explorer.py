"""The model side of the latent explorer (``vaekit serve RUN``): a run's model loaded once, its latent
layers with their dimensions ordered by activity, and decode / sample / interpolate / encode-an-upload
turned into what a browser shows (PNG images, WAV sounds, text), with no web code here
(:mod:`vaekit.serve` is the web app).

What a decoded latent becomes depends on the data's modality: the ``EXPLORERS`` registry holds one view per
modality (images, audio, text, piano rolls), each saying how to read examples and uploads, how to decode a
batch of latent vectors and how to render what comes out. The explorer needs a continuous latent (the
``latent_means`` capability): a VQ model's codes or a plain WaveNet have no sliders to move, and are
refused with a message that says so.

Activity order (seed 000's "the most active first"): the variance over test examples of each dimension's
posterior mean, ``Var_x E_q[z_d | x]`` (Burda et al. 2015's active-unit statistic), largest first; a
dimension under 0.01 is marked inactive.

Batching: :meth:`Explorer.decode_many` takes any number of decode requests and runs one decoder call per
group that shares a layer, a base example and a condition (the web app collects the requests that arrive
together, :class:`vaekit.serve.DecodeBatcher`).
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from vaekit.errors import UsageError
from vaekit.registry import EXPLORERS

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2015: a unit is active when Var_x E_q[z_d | x] exceeds this
MAX_STEPS = 64  # interpolation frames per request
MAX_SAMPLES = 64


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def png_uri(image: np.ndarray) -> str:
    """``image`` float ``[H, W]`` or ``[H, W, 3]`` in [0, 1] as a PNG data URI (PIL: no plotting on this path)."""
    from PIL import Image

    arr = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return _data_uri("image/png", buf.getvalue())


def wav_uri(wave: np.ndarray, rate: int) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wave, np.float32), -1, 1), int(rate), format="WAV", subtype="PCM_16")
    return _data_uri("audio/wav", buf.getvalue())


@dataclass
class Request:
    """One decode: ``z [D]`` of ``layer`` (0 = bottom), the other layers from ``base`` (an example's key,
    for hierarchical models), under ``cond`` (name -> label)."""

    z: Sequence[float]
    layer: int = 0
    base: str | None = None
    cond: tuple[tuple[str, int], ...] = ()


class Explorer:
    """A run's model, ready to answer the explorer's requests (on one thread at a time)."""

    def __init__(self, run_dir: str | os.PathLike, *, device: str | None = None, examples: int = 200,
                 max_upload: int = 5 * 1024 * 1024):
        from vaekit.api import load_run_data, resolve_device
        from vaekit.run import load, read_run_config

        self.run_dir = Path(run_dir)
        self.device = resolve_device(device)
        self.model = load(self.run_dir, device=str(self.device))
        self.model.eval()
        self.spec = self.model.config.spec()
        if "latent_means" not in self.model.capabilities:
            raise UsageError(f"{type(self.model).__name__} has no continuous latent to explore (capabilities: "
                             f"{', '.join(sorted(self.model.capabilities))}); the explorer needs a VAE-style model")
        if self.spec.modality not in EXPLORERS:
            raise UsageError(f"no explorer view for {self.spec.modality} data (views: {', '.join(EXPLORERS.names())})")
        self.view = EXPLORERS.get(self.spec.modality).obj(self)
        self.max_upload = max_upload
        cfg = read_run_config(self.run_dir)
        self.data = load_run_data(cfg, splits={"test": examples})
        self.test = self.data.part("test")
        self.examples: dict[str, dict[str, Tensor]] = {}  # key -> a batch of one (test:i or upload:n)
        self._uploads = 0
        self.conditions = self._conditions()
        with torch.no_grad():
            codes = self.layer_codes(self.view.batch(list(range(len(self.test)))))
        self.layers = []
        for i, c in enumerate(codes):
            var = c.var(0).cpu() if c.shape[0] > 1 else torch.zeros(c.shape[-1])
            order = torch.argsort(var, descending=True).tolist()
            self.layers.append({"layer": i, "dim": int(c.shape[-1]), "order": order,
                                "variance": [float(v) for v in var.tolist()],
                                "active": [bool(v > ACTIVE_THRESHOLD) for v in var.tolist()]})

    # -- what the model takes ---------------------------------------------------------------------------
    def _conditions(self) -> list[dict[str, Any]]:
        """The label conditions the model's decoder takes (class, digit, speaker), with their names."""
        keys = list(getattr(self.model, "cond_keys", ()) or (("y",) if getattr(self.model, "conditional", False) else ()))
        out = []
        for k in keys:
            c = self.spec.condition(k)
            if c is not None and c.kind == "label":
                names = list(c.names) if c.names else [str(i) for i in range(c.size)]
                out.append({"name": k, "size": int(c.size), "names": names})
        return out

    def cond_tensors(self, cond: dict[str, int] | Sequence[tuple[str, int]], n: int) -> dict[str, Tensor]:
        cond = dict(cond)
        out = {}
        for c in self.conditions:
            v = int(cond.get(c["name"], 0))
            if not 0 <= v < c["size"]:
                raise UsageError(f"condition {c['name']}={v} is out of range 0..{c['size'] - 1}")
            out[c["name"]] = torch.full((n,), v, dtype=torch.long, device=self.device)
        unknown = set(cond) - {c["name"] for c in self.conditions}
        if unknown:
            raise UsageError(f"the model takes no condition {', '.join(sorted(unknown))}")
        return out

    def layer_codes(self, batch: dict[str, Tensor]) -> list[Tensor]:
        return self.model.layer_codes(batch["x"], **self.view.encoder_inputs(batch))

    # -- examples ------------------------------------------------------------------------------------------
    def example(self, key: str) -> dict[str, Tensor]:
        if key.startswith("test:"):
            try:
                i = int(key[5:])
            except ValueError:
                raise UsageError(f"not an example: {key!r}") from None
            if not 0 <= i < len(self.test):
                raise UsageError(f"test example {i} is out of range 0..{len(self.test) - 1}")
            if key not in self.examples:
                self.examples[key] = self.view.batch([i])
            return self.examples[key]
        if key in self.examples:
            return self.examples[key]
        raise UsageError(f"no example {key!r} (test:<index> or an upload's id)")

    def describe_example(self, key: str) -> dict[str, Any]:
        batch = self.example(key)
        with torch.no_grad():
            codes = [c[0].tolist() for c in self.layer_codes(batch)]
        cond = {c["name"]: int(batch[c["name"]][0]) for c in self.conditions if c["name"] in batch}
        return {"key": key, "codes": codes, "cond": cond, "original": self.view.render_input(batch)[0]}

    def upload(self, data: bytes, filename: str) -> dict[str, Any]:
        """An uploaded file as an example (checked by the view: type, size, content); returns its codes."""
        if len(data) > self.max_upload:
            raise UsageError(f"the upload is {len(data)} bytes, over the limit of {self.max_upload} bytes")
        batch = self.view.read_upload(data, filename)
        self._uploads += 1
        key = f"upload:{self._uploads}"
        self.examples[key] = {k: v.to(self.device) for k, v in batch.items()}
        return self.describe_example(key)

    # -- decoding ----------------------------------------------------------------------------------------
    def decode_many(self, requests: Sequence[Request]) -> list[dict[str, Any]]:
        """Every request decoded, one decoder call per group that shares layer, base and condition."""
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            if not 0 <= r.layer < len(self.layers):
                raise UsageError(f"layer {r.layer} is out of range 0..{len(self.layers) - 1}")
            if len(r.z) != self.layers[r.layer]["dim"]:
                raise UsageError(f"layer {r.layer} has {self.layers[r.layer]['dim']} dimensions, got {len(r.z)} values")
            if not all(np.isfinite(r.z)):
                raise UsageError("the latent vector holds a NaN or an infinite value")
            groups.setdefault((r.layer, r.base if len(self.layers) > 1 else None, tuple(sorted(r.cond))), []).append(i)
        out: list[dict[str, Any]] = [{} for _ in requests]
        for (layer, base, cond), idx in groups.items():
            z = torch.tensor([list(requests[i].z) for i in idx], dtype=torch.float32, device=self.device)
            for i, item in zip(idx, self.decode(z, layer=layer, base=base, cond=dict(cond))):
                out[i] = item
        return out

    @torch.no_grad()
    def decode(self, z: Tensor, *, layer: int = 0, base: str | None = None, cond: dict[str, int] | None = None
               ) -> list[dict[str, Any]]:
        """``z [B, D_layer]`` decoded: layer ``layer`` set to ``z``, the other layers (hierarchical models)
        inferred from the example ``base`` (default: test example 0), as the per-layer traversals do."""
        if not 0 <= layer < len(self.layers):
            raise UsageError(f"layer {layer} is out of range 0..{len(self.layers) - 1}")
        if z.dim() != 2 or z.shape[-1] != self.layers[layer]["dim"]:
            raise UsageError(f"layer {layer} has {self.layers[layer]['dim']} dimensions, got {list(z.shape)}")
        if not torch.isfinite(z).all():
            raise UsageError("the latent vector holds a NaN or an infinite value")
        z = z.to(self.device)
        c = self.cond_tensors(cond or {}, z.shape[0])
        if len(self.layers) > 1:
            x = self.example(base or "test:0")
            xb = {k: v.expand(z.shape[0], *v.shape[1:]) for k, v in x.items()}
            return self.view.render_output(self.view.decode_layer(xb, layer, z, c))
        return self.view.render_output(self.view.decode(z, c))

    @torch.no_grad()
    def interpolate(self, a: str, b: str, steps: int, cond: dict[str, int] | None = None, layer: int = 0
                    ) -> list[dict[str, Any]]:
        """Decodings of ``(1 - t) z_a + t z_b`` for ``steps`` evenly spaced ``t`` in [0, 1] (posterior means of
        the two examples; for hierarchical models the chosen layer, the others from ``a``)."""
        if not 2 <= steps <= MAX_STEPS:
            raise UsageError(f"an interpolation takes 2 to {MAX_STEPS} steps, got {steps}")
        za = self.layer_codes(self.example(a))[layer][0]
        zb = self.layer_codes(self.example(b))[layer][0]
        t = torch.linspace(0, 1, steps, device=za.device)[:, None]
        if cond is None:
            cond = {c["name"]: int(self.example(a)[c["name"]][0]) for c in self.conditions
                    if c["name"] in self.example(a)}
        return self.decode((1 - t) * za + t * zb, layer=layer, base=a, cond=cond)

    @torch.no_grad()
    def sample(self, n: int, temperature: float, cond: dict[str, int] | None = None, seed: int = 0
               ) -> list[dict[str, Any]]:
        """``n`` draws from the model with ``z ~ p(z)`` spread by ``temperature``."""
        if not 1 <= n <= MAX_SAMPLES:
            raise UsageError(f"sampling takes 1 to {MAX_SAMPLES} draws, got {n}")
        if not 0 < temperature <= 10 or not np.isfinite(temperature):
            raise UsageError(f"the temperature must be in (0, 10], got {temperature}")
        torch.manual_seed(seed)
        return self.view.render_output(self.view.sample(n, temperature, self.cond_tensors(cond or {}, n), seed))

    def info(self) -> dict[str, Any]:
        return {"run": str(self.run_dir), "model": type(self.model).__name__, "modality": self.spec.modality,
                "data": self.spec.describe(), "layers": self.layers, "conditions": self.conditions,
                "examples": len(self.test), "output": self.view.output, "max_upload": self.max_upload,
                "upload_types": list(self.view.upload_types), "device": str(self.device)}


# -- the views, by modality ------------------------------------------------------------------------------
class View:
    output = "image"  # what the page shows: image, audio or text
    upload_types: tuple[str, ...] = ()

    def __init__(self, ex: Explorer):
        self.ex, self.model = ex, ex.model

    def batch(self, indices: list[int]) -> dict[str, Tensor]:
        b = self.ex.data.dataset(self.ex.test, train=False).__getitems__(indices)
        return {k: v.to(self.ex.device) for k, v in b.items() if isinstance(v, Tensor)}

    def encoder_inputs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {c["name"]: batch[c["name"]] for c in self.ex.conditions if c["name"] in batch}

    def decode(self, z: Tensor, cond: dict[str, Tensor]) -> Any:
        return self.model.decode(z, **cond).mean

    def decode_layer(self, x: dict[str, Tensor], layer: int, z: Tensor, cond: dict[str, Tensor]) -> Any:
        return self.model.decode_with_layer(x["x"], layer, z, **{**self.encoder_inputs(x), **cond}).mean

    def sample(self, n: int, temperature: float, cond: dict[str, Tensor], seed: int) -> Any:
        return self.model.sample(n, temperature, use_mean=True, **cond)

    def render_input(self, batch: dict[str, Tensor]) -> list[dict[str, Any]]:
        return self.render_output(batch["x"])

    def render_output(self, out: Any) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_upload(self, data: bytes, filename: str) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


@EXPLORERS.register("image", description="decoded images (the likelihood's mean) as PNG")
class ImageView(View):
    output = "image"
    upload_types = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")

    def batch(self, indices: list[int]) -> dict[str, Tensor]:
        d, part = self.ex.data, self.ex.test
        b = {"x": d.to_float(part.x[indices].to(self.ex.device), d.levels_of(part))}
        if part.y is not None:
            b["y"] = part.y[indices].to(self.ex.device)
        return b

    def render_input(self, batch: dict[str, Tensor]) -> list[dict[str, Any]]:
        return self.render_output(batch["x"])

    def render_output(self, x: Tensor) -> list[dict[str, Any]]:
        imgs = x.detach().float().cpu().numpy()  # [B, C, H, W]
        return [{"image": png_uri(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0))} for im in imgs]

    def read_upload(self, data: bytes, filename: str) -> dict[str, Tensor]:
        """An image file as the model's input: decoded by PIL (refused if it is not an image), converted to
        the data's channels, resized to its height and width, and put in the data's form (levels, binary)."""
        from PIL import Image, UnidentifiedImageError

        if Path(filename).suffix.lower() not in self.upload_types:
            raise UsageError(f"{filename!r} is not an image upload ({', '.join(self.upload_types)})")
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
        except (UnidentifiedImageError, OSError) as e:
            raise UsageError(f"{filename!r} cannot be read as an image (PIL: {type(e).__name__})") from None
        c, h, w = self.ex.spec.shape
        im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
        arr = np.asarray(im, np.float32) / 255.0
        x = torch.from_numpy(arr[None] if c == 1 else arr.transpose(2, 0, 1))[None]
        if self.ex.spec.kind == "binary":
            x = (x > 0.5).float()
        elif self.ex.spec.levels:
            k = int(self.ex.spec.levels)
            x = torch.round(x * (k - 1)) / (k - 1)
        b = {"x": x}
        for cnd in self.ex.conditions:
            b[cnd["name"]] = torch.zeros(1, dtype=torch.long)
        return b


@EXPLORERS.register("audio", description="decoded log-mel frames heard through Griffin-Lim (WAV) with the frames as an image")
class AudioView(View):
    """Audio models with a global latent (the speech VAE): frames from ``generate(y, z)`` (the mean of each
    step: a slider move gives the same sound twice), audio by ``to_audio``."""

    output = "audio"
    upload_types = (".wav", ".flac", ".ogg")

    def __init__(self, ex: Explorer):
        super().__init__(ex)
        if not hasattr(self.model, "generate") or not hasattr(self.model, "to_audio"):
            raise UsageError(f"{type(self.model).__name__} cannot be explored: the audio view decodes a latent "
                             f"through generate() and to_audio() (the speech VAE)")
        self.rate = int(ex.spec.sample_rate)

    def encoder_inputs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: batch[k] for k in ("mel", "mask") if k in batch}

    def decode(self, z: Tensor, cond: dict[str, Tensor]) -> Any:
        y = cond.get("y", torch.zeros(z.shape[0], dtype=torch.long, device=z.device))
        mel, lengths = self.model.generate(y, z, use_mean=True)
        return self.model.to_audio(mel, lengths), mel, lengths

    def decode_layer(self, x, layer, z, cond):  # one global latent
        return self.decode(z, cond)

    def sample(self, n: int, temperature: float, cond: dict[str, Tensor], seed: int) -> Any:
        y = cond.get("y", torch.zeros(n, dtype=torch.long, device=self.ex.device))
        p = self.model.prior_dist(n, y)
        z = p.mean + temperature * p.stddev * torch.randn(p.mean.shape, device=p.mean.device)
        return self.decode(z, cond)

    def render_input(self, batch: dict[str, Tensor]) -> list[dict[str, Any]]:
        n = int(batch["mask"][0].sum()) if "mask" in batch else batch["x"].shape[-1]
        item = {"audio": wav_uri(batch["x"][0, 0, :n].cpu().numpy(), self.rate)}
        if "mel" in batch:
            item["image"] = _mel_png(batch["mel"][0].cpu().numpy())
        return [item]

    def render_output(self, out: Any) -> list[dict[str, Any]]:
        wave, mel, lengths = out
        items = []
        for i in range(wave.shape[0]):
            f = int(lengths[i])
            n = min(wave.shape[-1], f * self.model.hop)
            items.append({"audio": wav_uri(wave[i, 0, :n].cpu().numpy(), self.rate),
                          "image": _mel_png(mel[i, :, :f].cpu().numpy())})
        return items

    def read_upload(self, data: bytes, filename: str) -> dict[str, Tensor]:
        """A sound file (WAV, FLAC, OGG; read by libsndfile, refused if it is not one), mixed to mono,
        resampled to the data's rate (librosa), at most 4 s, with its log-mel frames as the data's batches."""
        import soundfile as sf

        from vaekit.data.audio import log_mel

        if Path(filename).suffix.lower() not in self.upload_types:
            raise UsageError(f"{filename!r} is not a sound upload ({', '.join(self.upload_types)})")
        try:
            wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise UsageError(f"{filename!r} cannot be read as sound ({e})") from None
        wave = wave.mean(1)
        if rate != self.rate:
            import librosa

            wave = librosa.resample(wave, orig_sr=rate, target_sr=self.rate)
        wave = wave[: 4 * self.rate].astype(np.float32)
        hop = self.model.hop
        if len(wave) < 4 * hop:
            raise UsageError(f"{filename!r} is too short ({len(wave)} samples at {self.rate} Hz)")
        wave = wave[: len(wave) // hop * hop]
        from vaekit.models.speech_vae import mel_settings_of

        mel = log_mel(wave, mel_settings_of(self.ex.spec), self.rate)
        b = {"x": torch.from_numpy(wave)[None, None], "mel": torch.from_numpy(mel)[None],
             "mask": torch.ones(1, len(wave), dtype=torch.bool), "lengths": torch.tensor([len(wave)])}
        for c in self.ex.conditions:
            b[c["name"]] = torch.zeros(1, dtype=torch.long)
        return b


def _mel_png(mel: np.ndarray) -> str:
    """Log-mel frames ``[n_mels, F]`` as a grey image, low bands at the bottom, scaled to their own range."""
    m = mel[::-1]
    lo, hi = float(m.min(initial=0)), float(m.max(initial=1))
    img = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return png_uri(np.repeat(np.repeat(img, 2, 0), 3, 1))


@EXPLORERS.register("tokens", description="greedy decodings as text")
class TextView(View):
    output = "text"

    def encoder_inputs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"mask": batch["mask"]}

    def decode(self, z: Tensor, cond: dict[str, Tensor]) -> Any:
        return self.model.decode_text(*self.model.decode_greedy(z))

    def decode_layer(self, x, layer, z, cond):
        return self.decode(z, cond)

    def sample(self, n: int, temperature: float, cond: dict[str, Tensor], seed: int) -> Any:
        z = self.model.prior_dist(n).sample() * temperature
        return self.decode(z.to(self.ex.device), cond)

    def render_input(self, batch: dict[str, Tensor]) -> list[dict[str, Any]]:
        return self.render_output(self.model.decode_text(batch["x"].cpu(), batch["mask"].sum(-1).cpu()))

    def render_output(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        return [{"text": t} for t in texts]

    def read_upload(self, data: bytes, filename: str) -> dict[str, Tensor]:
        from vaekit.data.text import TextBatches, Vocabulary, encode_examples

        if Path(filename).suffix.lower() != ".txt":
            raise UsageError(f"{filename!r} is not a text upload (.txt)")
        try:
            words = data.decode("utf-8").lower().split()
        except UnicodeDecodeError:
            raise UsageError(f"{filename!r} is not UTF-8 text") from None
        if not words:
            raise UsageError("an empty text has nothing to encode")
        vocab = Vocabulary.from_spec(self.ex.spec)
        return TextBatches(encode_examples([[words[:200]]], vocab, None)).__getitems__([0])

    upload_types = (".txt",)


@EXPLORERS.register("note_events", description="decoded note events as a piano roll (PNG) and their MIDI rendered to "
                                               "audio (pretty_midi's sine synthesis, WAV)")
class NoteEventView(View):
    """Music models with a global latent over note-event windows (MusicVAE on chorales): events by greedy
    decoding (the argmax at every step: a slider move gives the same music twice), a piano roll to look at
    and the MIDI file rendered to sound, as the report's players do."""

    output = "audio"
    upload_types = (".mid", ".midi")
    RATE = 8000  # Hz of the sine rendering: enough for the chorales' range (up to ~1 kHz), fast to synthesise

    def encoder_inputs(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}

    def decode(self, z: Tensor, cond: dict[str, Tensor]) -> Any:
        return self.model.generate(z, greedy=True, seed=0)

    def decode_layer(self, x, layer, z, cond):
        return self.decode(z, cond)

    def sample(self, n: int, temperature: float, cond: dict[str, Tensor], seed: int) -> Any:
        return self.model.sample(n, temperature, use_mean=True, seed=seed)

    def render_output(self, events: Tensor) -> list[dict[str, Any]]:
        from vaekit.data.chorales import events_to_midi, events_to_roll

        items = []
        for ev in events.cpu().numpy():
            roll = events_to_roll(ev)  # [T, 88]
            keys = np.flatnonzero(roll.any(0))
            lo, hi = (int(keys.min()) - 2, int(keys.max()) + 3) if keys.size else (30, 60)
            img = roll[:, max(lo, 0):hi].T[::-1]  # pitch up, time to the right
            wave = events_to_midi(ev).synthesize(fs=self.RATE)
            peak = float(np.abs(wave).max()) if wave.size else 0.0
            items.append({"image": png_uri(np.repeat(np.repeat(img, 4, 0), 4, 1)),
                          "audio": wav_uri(wave / peak * 0.8 if peak > 0 else wave, self.RATE)})
        return items

    def read_upload(self, data: bytes, filename: str) -> dict[str, Tensor]:
        raise UsageError("uploading MIDI files is not supported yet: pick test windows (test:<index>)")
