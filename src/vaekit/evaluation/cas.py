"""Classification Accuracy Score (Ravuri & Vinyals 2019; used by Razavi et al. 2019, sec. 5.2; seed 004).

Train a classifier only on class-conditional samples ``x ~ p(x | y)`` of a generative model, test it on
real test data, and report its accuracy beside the same classifier (same architecture, number of
training images, epochs and seed) trained on real training data. The gap measures how much of each
class's variation the samples cover, which sample quality scores such as FID do not see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.data import ImageData, iterate_batches


class SmallConvNet(nn.Module):
    """Two conv blocks and a linear head; any image size (adaptive pooling to 4x4)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * 16, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # [B, C, H, W] -> logits [B, K]


def train_classifier(x: Tensor, y: Tensor, num_classes: int, *, epochs: int = 5, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0) -> SmallConvNet:
    """Fit :class:`SmallConvNet` on images ``x [N, C, H, W]`` and labels ``y [N]`` (Adam, cross-entropy)."""
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need as many labels as images (> 0), got {x.shape[0]} images, {y.shape[0]} labels")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = SmallConvNet(x.shape[1], num_classes).to(x.device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    clf.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=g).to(x.device)
        for start in range(0, x.shape[0], batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.eval()


@torch.no_grad()
def accuracy(clf: nn.Module, batches: Iterable[dict[str, Tensor]]) -> float:
    """Fraction of ``batches`` (dicts with ``x`` and ``y``) that ``clf`` labels correctly."""
    right = total = 0
    for b in batches:
        right += int((clf(b["x"]).argmax(1) == b["y"]).sum())
        total += b["y"].shape[0]
    if total == 0:
        raise ValueError("no labelled test data")
    return right / total


@torch.no_grad()
def class_conditional_samples(model: Any, num_classes: int, per_class: int, *, chunk: int = 500,
                              temperature: float = 1.0, draw: bool = False) -> tuple[Tensor, Tensor]:
    """``per_class`` samples of every class from ``model.sample(n, y=...)``: images ``[N, C, H, W]`` (draws
    from the likelihood with ``draw``, else its mean) and labels ``[N]``."""
    labels = torch.arange(num_classes, device=model.device).repeat_interleave(per_class)
    xs = [model.sample(len(y), temperature, use_mean=not draw, y=y) for y in labels.split(chunk)]
    return torch.cat(xs), labels


def balanced_rows(y: Tensor, num_classes: int, per_class: int) -> Tensor:
    """Indices of the first ``per_class`` examples of each class in ``y`` (fewer where a class has fewer)."""
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in range(num_classes)])


def classification_accuracy_score(model: Any, data: ImageData, *, per_class: int = 1000, epochs: int = 5,
                                  seed: int = 0, temperature: float = 1.0) -> dict[str, Any]:
    """CAS of a class-conditional ``model`` on ``data``: accuracy on the real test set of a classifier
    trained on ``per_class`` samples per class, and of the same classifier trained on as many real
    training images (the first ``per_class * K``)."""
    k = data.num_classes
    if not k:
        raise ValueError(f"CAS needs labelled data; {data.name} has no labels")
    device = model.device
    start = time.perf_counter()
    torch.manual_seed(seed)
    # binary data: draw binary samples, as the test images are; otherwise the likelihood's mean
    draw = data.levels == 2
    xs, ys = class_conditional_samples(model, k, per_class, temperature=temperature, draw=draw)
    t_sample = time.perf_counter() - start
    rows = balanced_rows(data.train.y, k, per_class)  # as many real images per class as samples
    real_x = data.to_float(data.train.x[rows].to(device), data.levels_of(data.train))
    if data.binarization == "dynamic":  # one seeded binarisation, as the model saw them in training
        real_x = torch.bernoulli(real_x, generator=torch.Generator(device).manual_seed(seed))
    real = {"x": real_x, "y": data.train.y[rows].to(device)}
    test = list(iterate_batches(data.test, data, 1000, device=device, seed=seed))
    clf_gen = train_classifier(xs, ys, k, epochs=epochs, seed=seed)
    clf_real = train_classifier(real["x"], real["y"], k, epochs=epochs, seed=seed)
    return {
        "cas_accuracy": accuracy(clf_gen, test),
        "real_accuracy": accuracy(clf_real, test),
        "num_train_images": xs.shape[0], "num_real_images": len(rows), "per_class": per_class,
        "samples": "draws from p(x|z)" if draw else "means of p(x|z)", "epochs": epochs,
        "temperature": temperature,
        "classifier": "2 conv (32, 64) + 128 linear, Adam 1e-3, batch 128",
        "test_images": sum(b["y"].shape[0] for b in test), "seed": seed,
        "seconds_sampling": t_sample, "seconds_total": time.perf_counter() - start,
    }
