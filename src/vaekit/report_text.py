"""The text of a text run (the ``tokens`` entry of ``FIGURES``): what a reader of Bowman et al. (2016) looks
at, as UTF-8 files in ``run_dir/figures``:

- ``samples.txt``: sentences drawn from the model (``z ~ p(z)`` then ancestral sampling for a VAE; the
  language model's own samples otherwise), and for a latent model greedy decodings of prior draws
  (``samples_greedy.txt``: the paper's Table 4 reads the mean-like decoding);
- ``reconstructions.txt``: test sentences and the greedy decoding of their posterior means;
- ``homotopies.txt``: greedy decodings along ``(1 - t) z_a + t z_b`` between pairs of test sentences'
  posterior means (the paper's Table 3), five points each;
- ``training_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaekit.fileio import atomic_write_text
from vaekit.report import curves_figure
from vaekit.registry import FIGURES


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _as_text(model: Any, ids: torch.Tensor) -> list[str]:
    """Token ids ``[B, T]`` as lines: the model's own decoding where it has one, else the vocabulary's (words
    joined by spaces; characters, ``unit: character``, joined as they are, with line breaks shown as ``\\n``)."""
    if hasattr(model, "decode_text"):
        return model.decode_text(ids)
    from vaekit.data.text import Vocabulary

    spec = model.config.spec()
    vocab = Vocabulary.from_spec(spec)
    sep = "" if (spec.features or {}).get("unit") == "character" else " "
    return [sep.join(vocab.decode(row.tolist(), stop_at_eos=False)).replace("\n", "\\n") for row in ids]


@FIGURES.register("tokens", description="text samples, greedy reconstructions and homotopies as .txt files")
def text_figures(model: Any, data: Any, run_dir: str | Path, *, usage: dict[str, Any] | None = None, seed: int = 0,
                 num: int = 64, pairs: int = 4, steps: int = 5, shown: int = 10) -> list[Path]:
    out = Path(run_dir) / "figures"
    model.eval()
    paths: list[Path] = []
    with torch.no_grad():
        ids = model.sample(shown, seed=seed).cpu()
        paths.append(_write(out / "samples.txt", _as_text(model, ids)))
        if "latent_means" in model.capabilities and hasattr(model, "decode_greedy") and hasattr(model, "prior_dist"):
            torch.manual_seed(seed)
            z = model.prior_dist(shown).sample().to(model.device)
            paths.append(_write(out / "samples_greedy.txt", model.decode_text(*model.decode_greedy(z))))
            test = data.part("test")
            batch = data.dataset(test, train=False).__getitems__(list(range(min(len(test), max(shown, 2 * pairs)))))
            x, mask = batch["x"].to(model.device), batch["mask"].to(model.device)
            mean = model.encode(x, mask=mask).mean
            source = model.decode_text(batch["x"], mask.sum(-1).cpu())
            rebuilt = model.decode_text(*model.decode_greedy(mean))
            lines = [f"{kind}: {s}" for a, b in zip(source[:shown], rebuilt[:shown])
                     for kind, s in (("input ", a), ("output", b))]
            paths.append(_write(out / "reconstructions.txt", lines))
            t = torch.linspace(0, 1, steps, device=mean.device)[:, None]
            lines = []
            for p in range(min(pairs, len(source) // 2)):
                za, zb = mean[2 * p], mean[2 * p + 1]
                lines += [f"{v:.2f}  {s}" for v, s in zip(t[:, 0].tolist(),
                                                          model.decode_text(*model.decode_greedy((1 - t) * za + t * zb)))]
                lines.append("")
            paths.append(_write(out / "homotopies.txt", lines))
    paths += curves_figure(run_dir, out)
    return paths
