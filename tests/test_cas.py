"""Classification Accuracy Score on known answers: a sampler whose class-conditional samples are real images
of the class scores what real data scores, and one whose labels are shuffled scores chance."""

from __future__ import annotations

import pytest
import torch

from vaekit.evaluation.cas import classification_accuracy_score

PER_CLASS, EPOCHS = 100, 5  # 1,000 8x8 images, 5 epochs: about a second per classifier on 2 cores


class RealImageSampler:
    """A stand-in for a class-conditional model: ``sample(n, y=...)`` returns real training images of the
    classes ``y`` asks for.

    mode ``"same"``: the first images of each class in order, which are exactly the images CAS trains its
    real-data classifier on; ``"held_out"``: random images of the class from outside those; ``"shuffled"``:
    random training images of a random class (the labels carry no information about the images)."""

    device = torch.device("cpu")

    def __init__(self, data, mode: str):
        self.x = data.to_float(data.train.x, data.levels_of(data.train))
        self.y, self.k, self.mode = data.train.y, data.num_classes, mode
        self.g = torch.Generator().manual_seed(1)
        self.next = [0] * self.k
        self.calls: list[tuple[int, float, bool]] = []

    def _pick(self, pool: torch.Tensor, start: int = 0) -> int:
        return int(pool[start + int(torch.randint(len(pool) - start, (1,), generator=self.g))])

    def sample(self, n, temperature=1.0, use_mean=False, *, y):
        self.calls.append((n, temperature, use_mean))
        assert y.shape == (n,)
        rows = []
        for c in y.tolist():
            if self.mode == "shuffled":
                rows.append(self._pick(torch.arange(len(self.y))))
                continue
            pool = torch.nonzero(self.y == c).flatten()
            if self.mode == "same":
                rows.append(int(pool[self.next[c]]))
                self.next[c] += 1
            else:  # held out: none of the first PER_CLASS of the class, which the real classifier sees
                rows.append(self._pick(pool, start=PER_CLASS))
        return self.x[rows]


def _cas(data, mode):
    sampler = RealImageSampler(data, mode)
    res = classification_accuracy_score(sampler, data, per_class=PER_CLASS, epochs=EPOCHS, seed=0, temperature=0.7)
    return res, sampler


def test_cas_of_the_real_training_images_equals_the_real_data_accuracy(digits):
    """Samples that are the very images the real-data classifier trains on, in the same (class) order, give the
    same classifier: CAS must equal the real accuracy exactly, and that accuracy is high on digits."""
    res, sampler = _cas(digits, "same")
    assert res["num_train_images"] == res["num_real_images"] == 10 * PER_CLASS
    assert res["real_accuracy"] > 0.75  # 0.85-0.89 over seeds 0-3
    assert res["cas_accuracy"] == res["real_accuracy"]
    # 17 grey levels: CAS asks for the likelihood's mean (not draws) at the temperature given
    assert all(use_mean and t == 0.7 for _, t, use_mean in sampler.calls)
    assert sum(n for n, _, _ in sampler.calls) == 10 * PER_CLASS
    assert res["test_images"] == len(digits.test)


def test_cas_of_other_real_images_of_each_class_is_close_to_the_real_accuracy(digits):
    res, _ = _cas(digits, "held_out")
    assert res["real_accuracy"] > 0.75
    assert res["cas_accuracy"] > 0.75
    assert abs(res["cas_accuracy"] - res["real_accuracy"]) < 0.1  # 0.00-0.03 over seeds 0-3


def test_cas_of_samples_with_shuffled_labels_is_chance(digits):
    """Images that do not depend on the label asked for: a classifier trained on them learns nothing about the
    test labels, so CAS is about 1/10 (0.03-0.11 over seeds 0-3) while the real accuracy stays high."""
    res, _ = _cas(digits, "shuffled")
    assert res["real_accuracy"] > 0.75
    assert res["cas_accuracy"] < 0.25


def test_cas_refuses_unlabelled_data(digits):
    import dataclasses

    unlabelled = dataclasses.replace(digits, num_classes=None)
    with pytest.raises(ValueError, match="labelled"):
        classification_accuracy_score(RealImageSampler(digits, "same"), unlabelled, per_class=2, epochs=1)
