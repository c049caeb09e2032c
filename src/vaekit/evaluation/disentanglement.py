"""Disentanglement metrics: how well a representation separates known generative factors.

Each metric is a pure function over numpy arrays. The observational ones take ``codes [N, D]`` (a
representation, e.g. posterior means) and ``factors [N, K]`` (integer factor class indices):

- MIG, the mutual information gap (Chen et al. 2018, eq. 6): per factor, the gap between the two
  codes with the most mutual information with it, over the factor's entropy; averaged.
- MIG-sup (Li et al. 2020, "Progressive learning and disentanglement of hierarchical
  representations", eq. 11): per code, the gap between the two factors it is most informative
  about (mutual information normalised by the factor's entropy); averaged over codes.
- DCI (Eastwood & Williams 2018): disentanglement, completeness and informativeness from the
  feature-importance matrix of one classifier per factor.
- SAP, the separated attribute predictability (Kumar et al. 2018): per factor, the gap between the
  two codes that predict it best on their own; averaged.

The intervention-based ones sample factors themselves and take ``represent(factors [B, K]) ->
codes [B, D]`` (for a model: render the images of those factors and encode them; in tests: any
function of the factors) and ``factor_sizes`` (factors are drawn uniformly from the full grid):

- beta-VAE metric (Higgins et al. 2017, sec. 3): accuracy of a linear classifier that names the
  factor held fixed in a batch of pairs from the mean absolute code difference.
- FactorVAE metric (Kim & Mnih 2018, sec. 4): accuracy of a majority-vote classifier that names the
  factor held fixed in a batch from the code with the least normalised variance.

Mutual information is estimated as in disentanglement_lib: codes discretised into 20 equal-width bins
per dimension, plug-in estimate in nats. :func:`disentanglement_metrics` runs everything on a model.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, mutual_info_score
from sklearn.tree import DecisionTreeClassifier

from vaekit.errors import UsageError
from vaekit.evaluation.mode import evaluating

Represent = Callable[[np.ndarray], np.ndarray]
NUM_BINS = 20  # histogram bins per code dimension for mutual information, as in disentanglement_lib
ACTIVE_STD = 0.05  # FactorVAE metric: codes whose std over the data is below this are collapsed


class GroundTruthData(Protocol):
    """Images of a full grid of discrete factors (e.g. :class:`vaekit.data.dsprites.DSprites`)."""

    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray: ...


def sample_factors(factor_sizes: Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` factor class indices ``[n, K]`` (int64), each factor uniform over its values."""
    return np.stack([rng.integers(0, size, n) for size in factor_sizes], axis=1)


def _represent(represent: Represent, factors: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """``represent`` applied in chunks of rows, as float64 ``[N, D]``."""
    parts = [represent(factors[i : i + chunk]) for i in range(0, len(factors), chunk)]
    codes = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    if codes.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"represent returned {codes.shape} for {len(factors)} factor rows; expected [N, D]")
    return codes


# --- mutual information ---------------------------------------------------------------------------


def discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Each column of ``codes [N, D]`` in ``num_bins`` equal-width bins over its range: int ``[N, D]``."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, d], bins=num_bins)
        out[:, d] = np.digitize(codes[:, d], edges[1:-1])  # interior edges -> bins 0..num_bins-1
    return out


def mutual_information(codes: np.ndarray, factors: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Plug-in mutual information ``I(z_d; v_k)`` in nats between binned codes and factors: ``[D, K]``."""
    binned = discretize(codes, num_bins)
    factors = np.asarray(factors)
    return np.array(
        [[mutual_info_score(v, z) for v in factors.T] for z in binned.T]
    )


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy ``H(v_k)`` in nats of each factor column: ``[K]``."""
    factors = np.asarray(factors)
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def _information(codes: np.ndarray, factors: np.ndarray, num_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``I(z_d; v_k)`` ``[D, K]`` and ``H(v_k)`` ``[K]``, in nats."""
    return mutual_information(codes, factors, num_bins), factor_entropy(factors)


def factor_information(codes: np.ndarray, factors: np.ndarray, *, num_bins: int = NUM_BINS) -> np.ndarray:
    """``I(z_d; v_k) / H(v_k)``: the share of each factor's entropy that each code carries, ``[D, K]``.

    The matrix behind MIG (Chen et al. 2018, eq. 6: the gap between a column's two largest entries)
    and MIG-sup (Li et al. 2020, eq. 11: the same along a row), and the "which factor did each latent
    take" figure. Columns of constant factors (zero entropy) are NaN.
    """
    _check(codes, factors)
    info, entropy = _information(codes, factors, num_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy > 0, info / entropy, np.nan)


def _top_two_gap(matrix: np.ndarray, axis: int) -> np.ndarray:
    """Largest minus second largest entry along ``axis``."""
    top = np.sort(matrix, axis=axis)
    return np.take(top, -1, axis=axis) - np.take(top, -2, axis=axis)


def mig(codes: np.ndarray, factors: np.ndarray, *, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """Mutual information gap (Chen et al. 2018): ``mean_k (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k)``.

    ``z_j1``, ``z_j2`` are the codes with the largest and second largest mutual information with
    factor ``v_k``. Factors with a single value (zero entropy) are left out.

    Args:
        codes: ``[N, D]`` representations, ``D >= 2``.
        factors: ``[N, K]`` integer factor values.

    Returns:
        ``mig`` in [0, 1] and ``mig_per_factor`` (list of ``K``, NaN for constant factors).
    """
    _check(codes, factors, min_codes=2)
    info, entropy = _information(codes, factors, num_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_factor = np.where(entropy > 0, _top_two_gap(info, axis=0) / entropy, np.nan)
    return {"mig": float(np.nanmean(per_factor)), "mig_per_factor": per_factor.tolist()}


def mig_sup(codes: np.ndarray, factors: np.ndarray, *, num_bins: int = NUM_BINS) -> dict[str, Any]:
    """MIG-sup (Li et al. 2020): ``mean_j (I_n(z_j; v_k1) - I_n(z_j; v_k2))`` over all ``D`` codes.

    ``I_n(z_j; v_k) = I(z_j; v_k) / H(v_k)``; ``v_k1``, ``v_k2`` are the factors with the largest and
    second largest normalised information about code ``z_j``. High when each code encodes at most
    one factor (MIG checks the converse: each factor in at most one code). Unused codes count as 0.

    Args:
        codes: ``[N, D]`` representations.
        factors: ``[N, K]`` integer factor values, ``K >= 2``.

    Returns:
        ``mig_sup`` in [0, 1] and ``mig_sup_per_code`` (list of ``D``).
    """
    _check(codes, factors, min_factors=2)
    info, entropy = _information(codes, factors, num_bins)
    if (entropy > 0).sum() < 2:
        raise ValueError(f"MIG-sup needs at least two factors that vary; factor entropies {entropy.tolist()} nats")
    info = info[:, entropy > 0] / entropy[entropy > 0]  # constant factors left out
    per_code = _top_two_gap(info, axis=1)
    return {"mig_sup": float(per_code.mean()), "mig_sup_per_code": per_code.tolist()}


# --- predictor-based ------------------------------------------------------------------------------


def _split_rows(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction={train_fraction}; expected a number in (0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * train_fraction))
    if n_train < 2 or n - n_train < 2:
        raise UsageError(f"{n} rows leave too few for a train/test split at train_fraction={train_fraction}")
    return order[:n_train], order[n_train:]


def _importances(model: Any) -> np.ndarray:
    """Non-negative importance of each input feature of a fitted sklearn classifier: ``[D]``."""
    if hasattr(model, "feature_importances_"):
        return np.abs(np.asarray(model.feature_importances_, dtype=np.float64))
    if hasattr(model, "coef_"):
        return np.abs(np.asarray(model.coef_, dtype=np.float64)).reshape(-1, model.n_features_in_).sum(0)
    raise TypeError(f"{type(model).__name__} has neither feature_importances_ nor coef_")


def _entropy_base(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy of distributions along ``axis`` in units of ``log(base)`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis) / np.log(base)


def dci_from_importance(importance: np.ndarray) -> dict[str, float]:
    """Disentanglement and completeness (Eastwood & Williams 2018, sec. 3) of ``R [D, K]``.

    ``D_j = 1 - H_K(P_j.)`` with ``P_jk = R_jk / sum_k R_jk``, weighted by ``rho_j = sum_k R_jk / sum R``;
    ``C_k = 1 - H_D(P~_.k)`` with ``P~_jk = R_jk / sum_j R_jk``, weighted by each factor's share of
    ``sum R`` (equal weights when every factor's importances sum to one, as for tree ensembles).
    """
    importance = np.asarray(importance, dtype=np.float64)
    num_codes, num_factors = importance.shape
    total = importance.sum()
    if total <= 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    by_code = importance.sum(axis=1)
    by_factor = importance.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_code = np.where(by_code[:, None] > 0, importance / by_code[:, None], 0.0)
        p_factor = np.where(by_factor[None, :] > 0, importance / by_factor[None, :], 0.0)
    d_per_code = 1.0 - _entropy_base(p_code, num_factors, axis=1) if num_factors > 1 else np.ones(num_codes)
    c_per_factor = 1.0 - _entropy_base(p_factor, num_codes, axis=0) if num_codes > 1 else np.ones(num_factors)
    return {
        "disentanglement": float((d_per_code * by_code / total).sum()),
        "completeness": float((c_per_factor * by_factor / total).sum()),
    }


def default_dci_classifier(seed: int = 0) -> GradientBoostingClassifier:
    """Gradient-boosted trees, as disentanglement_lib uses for DCI (sklearn defaults)."""
    return GradientBoostingClassifier(random_state=seed)


def dci(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    train_fraction: float = 0.8,
    classifier: Callable[[int], Any] = default_dci_classifier,
    seed: int = 0,
) -> dict[str, Any]:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    One classifier per factor predicts it from all codes on a random ``train_fraction`` of the rows;
    its feature importances form column ``k`` of ``R [D, K]`` (see :func:`dci_from_importance`).
    Informativeness is the classifiers' mean accuracy (disentanglement_lib's convention; the paper
    reports the prediction error, 1 - accuracy).

    Args:
        codes: ``[N, D]`` representations.
        factors: ``[N, K]`` integer factor values.
        classifier: ``classifier(seed)`` returns an unfitted sklearn classifier with
            ``feature_importances_`` or ``coef_`` (default: gradient-boosted trees).
        seed: Seeds the row split and the classifiers.

    Returns:
        ``disentanglement``, ``completeness``, ``informativeness_train_accuracy``,
        ``informativeness_test_accuracy`` and ``importance`` (``[D][K]`` nested list).
    """
    _check(codes, factors)
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    train, test = _split_rows(len(codes), train_fraction, seed)
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    train_acc, test_acc = [], []
    for k in range(factors.shape[1]):
        model = classifier(seed).fit(codes[train], factors[train, k])
        importance[:, k] = _importances(model)
        train_acc.append(model.score(codes[train], factors[train, k]))
        test_acc.append(model.score(codes[test], factors[test, k]))
    return {
        **dci_from_importance(importance),
        "informativeness_train_accuracy": float(np.mean(train_acc)),
        "informativeness_test_accuracy": float(np.mean(test_acc)),
        "importance": importance.tolist(),
    }


def sap(
    codes: np.ndarray, factors: np.ndarray, *, train_fraction: float = 0.8, seed: int = 0
) -> dict[str, Any]:
    """Separated attribute predictability (Kumar et al. 2018, sec. 3): ``mean_k (S_j1,k - S_j2,k)``.

    ``S_jk`` is how well code ``j`` alone predicts factor ``k``: the held-out balanced accuracy of a
    threshold classifier (a decision tree with at most as many leaves as the factor has values) on
    that one code, adjusted for chance (0 = chance, 1 = perfect; negative values clipped to 0).
    Kumar et al. fit thresholds for categorical factors; disentanglement_lib uses a linear SVM, which
    cannot separate the middle values of an ordinal factor from a single code.

    Returns:
        ``sap`` in [0, 1] and ``score_matrix`` (``[D][K]`` nested list).
    """
    _check(codes, factors, min_codes=2)
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    train, test = _split_rows(len(codes), train_fraction, seed)
    score = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        leaves = max(2, len(np.unique(factors[:, k])))
        for j in range(codes.shape[1]):
            tree = DecisionTreeClassifier(max_leaf_nodes=leaves, random_state=seed)
            tree.fit(codes[train, j : j + 1], factors[train, k])
            predicted = tree.predict(codes[test, j : j + 1])
            with warnings.catch_warnings():  # a value absent from a small test split is expected
                warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
                score[j, k] = balanced_accuracy_score(factors[test, k], predicted, adjusted=True)
    score = np.clip(score, 0.0, 1.0)
    return {"sap": float(_top_two_gap(score, axis=0).mean()), "score_matrix": score.tolist()}


# --- intervention-based ---------------------------------------------------------------------------


def _beta_vae_points(
    represent: Represent, factor_sizes: Sequence[int], n: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of the beta-VAE metric: mean |z(v1) - z(v2)| over a batch, and the fixed factor."""
    features, labels = [], []
    points_per_call = max(1, 4096 // batch_size)
    for start in range(0, n, points_per_call):
        m = min(points_per_call, n - start)
        fixed = rng.integers(0, len(factor_sizes), m)
        first = sample_factors(factor_sizes, m * batch_size, rng)
        second = sample_factors(factor_sizes, m * batch_size, rng)
        rows = np.repeat(fixed, batch_size)
        second[np.arange(len(rows)), rows] = first[np.arange(len(rows)), rows]
        diff = np.abs(_represent(represent, first) - _represent(represent, second))
        features.append(diff.reshape(m, batch_size, -1).mean(axis=1))
        labels.append(fixed)
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    represent: Represent,
    factor_sizes: Sequence[int],
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """beta-VAE metric (Higgins et al. 2017): accuracy of naming the factor shared within pairs.

    Each point: pick a factor ``k``; draw ``batch_size`` pairs of factor vectors that agree on ``k``
    only by construction; the feature is ``mean_b |z(v1_b) - z(v2_b)|`` (``[D]``). A logistic
    regression is trained on ``num_train`` points and scored on ``num_eval`` fresh ones.
    Chance is ``1 / K``; a representation with one code per factor scores 1.

    Args:
        represent: ``factors [B, K] -> codes [B, D]``.
        factor_sizes: Number of values of each factor (sampled uniformly).

    Returns:
        ``train_accuracy`` and ``eval_accuracy`` (fractions).
    """
    rng = np.random.default_rng(seed)
    x_train, y_train = _beta_vae_points(represent, factor_sizes, num_train, batch_size, rng)
    x_eval, y_eval = _beta_vae_points(represent, factor_sizes, num_eval, batch_size, rng)
    if len(np.unique(y_train)) < 2:
        raise UsageError("beta-VAE metric: the training points hold fewer than two factors; raise --num-train")
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    return {
        "train_accuracy": float(model.score(x_train, y_train)),
        "eval_accuracy": float(model.score(x_eval, y_eval)),
    }


def _factor_vae_votes(
    represent: Represent,
    factor_sizes: Sequence[int],
    n: int,
    batch_size: int,
    std: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vote counts ``[D, K]``: (code with the least normalised variance, factor held fixed) per batch."""
    votes = np.zeros((len(std), len(factor_sizes)), dtype=np.int64)
    batches_per_call = max(1, 4096 // batch_size)
    for start in range(0, n, batches_per_call):
        m = min(batches_per_call, n - start)
        fixed = rng.integers(0, len(factor_sizes), m)
        factors = sample_factors(factor_sizes, m * batch_size, rng).reshape(m, batch_size, -1)
        value = sample_factors(factor_sizes, m, rng)[np.arange(m), fixed]
        factors[np.arange(m), :, fixed] = value[:, None]
        codes = _represent(represent, factors.reshape(m * batch_size, -1)).reshape(m, batch_size, -1)
        variance = (codes / std).var(axis=1, ddof=1)[:, active]  # [m, D_active]
        winner = np.flatnonzero(active)[np.argmin(variance, axis=1)]
        np.add.at(votes, (winner, fixed), 1)
    return votes


def factor_vae_score(
    represent: Represent,
    factor_sizes: Sequence[int],
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    seed: int = 0,
) -> dict[str, float]:
    """FactorVAE metric (Kim & Mnih 2018): accuracy of naming the fixed factor by majority vote.

    Codes are divided by their std over ``num_variance_estimate`` random factor vectors; codes with
    std below 0.05 are collapsed and never vote. Each vote: fix one factor ``k`` at a random value,
    draw a batch varying the others, take the active code with the least variance in the batch.
    The classifier maps each code to the factor it won most often on ``num_train`` votes; accuracy
    is scored on those and on ``num_eval`` fresh votes. No active code scores 0.

    Args:
        represent: ``factors [B, K] -> codes [B, D]``.
        factor_sizes: Number of values of each factor (sampled uniformly).

    Returns:
        ``train_accuracy``, ``eval_accuracy`` (fractions) and ``num_active_dims``.
    """
    rng = np.random.default_rng(seed)
    codes = _represent(represent, sample_factors(factor_sizes, num_variance_estimate, rng))
    std = codes.std(axis=0, ddof=1)
    active = std >= ACTIVE_STD
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    std = np.where(active, std, 1.0)
    train_votes = _factor_vae_votes(represent, factor_sizes, num_train, batch_size, std, active, rng)
    eval_votes = _factor_vae_votes(represent, factor_sizes, num_eval, batch_size, std, active, rng)
    assigned = np.argmax(train_votes, axis=1)  # the factor each code stands for
    rows = np.arange(len(assigned))
    return {
        "train_accuracy": float(train_votes[rows, assigned].sum() / num_train),
        "eval_accuracy": float(eval_votes[rows, assigned].sum() / num_eval),
        "num_active_dims": int(active.sum()),
    }


def _check(codes: np.ndarray, factors: np.ndarray, *, min_codes: int = 1, min_factors: int = 1) -> None:
    codes, factors = np.asarray(codes), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes {codes.shape} and factors {factors.shape}: expected [N, D] and [N, K]")
    if codes.shape[1] < min_codes or factors.shape[1] < min_factors:
        raise ValueError(
            f"needs at least {min_codes} codes and {min_factors} factors; "
            f"got {codes.shape[1]} and {factors.shape[1]}"
        )
    if not np.isfinite(codes).all():
        raise ValueError("codes hold NaN or infinite values")


# --- on a model -----------------------------------------------------------------------------------


def encoder_representation(
    model: torch.nn.Module,
    data: GroundTruthData,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> Represent:
    """``factors [B, K] -> posterior means [B, D]``: the factors' images through the model's encoder.

    ``D`` counts every latent layer: the posterior means of ``model.layer_codes(x)`` (bottom layer
    first) side by side, or ``model.encode(x).mean`` for a model without ``layer_codes``.
    """
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")

    @torch.no_grad()
    def represent(factors: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(factors), batch_size):
            images = data.images_from_factors(factors[i : i + batch_size])  # [B, H, W] uint8 {0, 1}
            x = torch.from_numpy(images).to(device=device, dtype=torch.float32).unsqueeze(1)  # [B, 1, H, W]
            out.append(torch.cat(_layer_means(model, x), dim=-1).double().cpu().numpy())
        return np.concatenate(out)

    return represent


def _layer_means(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Posterior means per latent layer, bottom first, each ``[B, D_l]``."""
    if "latent_means" not in getattr(model, "capabilities", {"latent_means"}):
        raise UsageError("a VQ model's codes are categorical indices; the disentanglement metrics need "
                         "continuous posterior means")
    layer_codes = getattr(model, "layer_codes", None)
    codes = layer_codes(x) if layer_codes is not None else [model.encode(x).mean]
    return [c.flatten(1) for c in codes]


def layer_sizes(model: torch.nn.Module, data: GroundTruthData, device: str | torch.device | None = None) -> list[int]:
    """How many of :func:`encoder_representation`'s ``D`` codes each latent layer holds, bottom first."""
    first = next(iter(model.parameters()), None)
    device = device or (first.device if first is not None else "cpu")
    image = data.images_from_factors(np.zeros((1, len(data.factor_sizes)), dtype=np.int64))
    x = torch.from_numpy(image).to(device=device, dtype=torch.float32).unsqueeze(1)  # [1, 1, H, W]
    with torch.no_grad(), evaluating(model):  # one image: batch norm needs its running statistics
        return [c.shape[-1] for c in _layer_means(model, x)]


def disentanglement_metrics(
    model: torch.nn.Module,
    dsprites: GroundTruthData,
    *,
    num_train: int = 10000,
    num_test: int = 5000,
    seed: int = 0,
    batch_size: int = 64,
    dci_classifier: Callable[[int], Any] = default_dci_classifier,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """All metrics above for a model on a ground-truth data set, each timed.

    Observational metrics (MIG, MIG-sup, DCI, SAP) use posterior means of ``num_train + num_test``
    random factor vectors (DCI and SAP train on a random ``num_train`` of them); the beta-VAE and
    FactorVAE metrics train on ``num_train`` points (batches) and score ``num_test`` fresh ones.

    Args:
        model: Has ``encode(x)`` returning a Distribution whose ``.mean`` is ``[B, D]``, for ``x``
            float ``[B, 1, 64, 64]`` in [0, 1].
        dsprites: Provides ``factor_sizes``, ``sample_factors(n, rng)`` and ``images_from_factors``
            (e.g. :func:`vaekit.data.dsprites.load_dsprites`'s result).
        batch_size: Pairs per beta-VAE point and images per FactorVAE vote (64 in both papers).

    Returns:
        Flat dict: ``beta_vae/train_accuracy``, ``beta_vae/eval_accuracy``, ``factor_vae/...``,
        ``mig``, ``mig_sup``, ``dci/disentanglement``, ``dci/completeness``,
        ``dci/informativeness_test_accuracy``, ``sap``, a ``<metric>/seconds`` time per metric,
        ``elapsed_s`` and ``config``; and which factor each code took: ``factor_information``
        (:func:`factor_information` of the codes, ``[D, K]`` as nested lists), ``layer_sizes``
        (codes per latent layer, bottom first, summing to ``D``), ``factor_names`` and
        ``code_variance`` (each code's variance over the sampled factors, ``[D]``).
    """
    start = time.perf_counter()
    with evaluating(model):
        represent = encoder_representation(model, dsprites, device=device)
        sizes = tuple(dsprites.factor_sizes)
        result: dict[str, Any] = {}

        def timed(name: str, fn: Callable[[], dict[str, Any]]) -> None:
            t0 = time.perf_counter()
            scores = fn()
            result.update({(k if k == name else f"{name}/{k}"): v for k, v in scores.items()})
            result[f"{name}/seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        factors = dsprites.sample_factors(num_train + num_test, np.random.default_rng(seed))
        codes = represent(factors)
        result["codes/seconds"] = time.perf_counter() - t0
        fraction = num_train / (num_train + num_test)
        result["factor_information"] = factor_information(codes, factors).tolist()  # [D, K]: I(z_d; v_k) / H(v_k)
        result["layer_sizes"] = layer_sizes(model, dsprites, device)
        result["representation"] = "posterior means of every latent layer, bottom first"
        # Burda et al.'s active-unit statistic Cov_x(E_q[z_d]) over the sampled factors: a code under 0.01
        # is unused, though binning it over its own tiny range can still show mutual information
        result["code_variance"] = codes.var(axis=0).tolist()
        result["factor_names"] = list(getattr(dsprites, "factor_names", [f"v_{k}" for k in range(len(sizes))]))
        timed("mig", lambda: mig(codes, factors))
        timed("mig_sup", lambda: mig_sup(codes, factors))
        dci_kw = {"train_fraction": fraction, "classifier": dci_classifier, "seed": seed}
        timed("dci", lambda: dci(codes, factors, **dci_kw))
        timed("sap", lambda: sap(codes, factors, train_fraction=fraction, seed=seed))
        kw = {"batch_size": batch_size, "num_train": num_train, "num_eval": num_test, "seed": seed}
        timed("beta_vae", lambda: beta_vae_score(represent, sizes, **kw))
        timed("factor_vae", lambda: factor_vae_score(represent, sizes, num_variance_estimate=num_train, **kw))
    result["elapsed_s"] = time.perf_counter() - start
    result["config"] = {"num_train": num_train, "num_test": num_test, "seed": seed, "batch_size": batch_size}
    return result
