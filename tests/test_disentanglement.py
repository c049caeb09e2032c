"""Disentanglement metrics: known answers on small synthetic factor grids, and the model wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from torch.distributions import Independent, Normal

from vaekit.evaluation import disentanglement as dm

SIZES = (4, 5, 6)
N = 1500
SMALL = {"num_train": 300, "num_eval": 200, "batch_size": 32}


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    return dm.sample_factors(SIZES, N, np.random.default_rng(0))


def identity(f: np.ndarray) -> np.ndarray:
    return f + 0.01 * np.random.default_rng(len(f)).standard_normal(f.shape)


def permuted_scaled(f: np.ndarray) -> np.ndarray:
    return f[:, [2, 0, 1]] * np.array([3.0, -0.5, 10.0]) + np.array([1.0, 2.0, 3.0])


def noise(f: np.ndarray) -> np.ndarray:
    return np.random.default_rng(len(f) + int(f.sum())).standard_normal((len(f), 3))


def constant(f: np.ndarray) -> np.ndarray:
    return np.zeros((len(f), 3))


def rotated(f: np.ndarray) -> np.ndarray:
    """Factors 0 and 1 each spread over two codes (a 45 degree rotation)."""
    return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], axis=1).astype(float)


def packed(f: np.ndarray) -> np.ndarray:
    """Factors 0 and 1 packed into one code (invertibly), factor 2 alone, one unused code."""
    return np.stack([5.0 * f[:, 0] + f[:, 1], f[:, 2], np.zeros(len(f))], axis=1)


@pytest.mark.parametrize("represent", [identity, permuted_scaled], ids=["identity", "permuted_scaled"])
def test_factor_aligned_codes_score_near_the_maximum(factors, represent):
    codes = represent(factors)
    assert dm.mig(codes, factors)["mig"] > 0.95
    assert dm.mig_sup(codes, factors)["mig_sup"] > 0.95
    d = dm.dci(codes, factors)
    assert d["disentanglement"] > 0.95 and d["completeness"] > 0.95
    assert d["informativeness_test_accuracy"] > 0.99
    assert dm.sap(codes, factors)["sap"] > 0.9
    assert dm.beta_vae_score(represent, SIZES, **SMALL)["eval_accuracy"] > 0.98
    fv = dm.factor_vae_score(represent, SIZES, num_variance_estimate=1000, **SMALL)
    assert fv["eval_accuracy"] > 0.98 and fv["num_active_dims"] == 3


def test_noise_scores_near_zero_and_chance(factors):
    codes = noise(factors)
    assert dm.mig(codes, factors)["mig"] < 0.05
    assert dm.mig_sup(codes, factors)["mig_sup"] < 0.05
    d = dm.dci(codes, factors)
    assert d["disentanglement"] < 0.2 and d["completeness"] < 0.2
    assert dm.sap(codes, factors)["sap"] < 0.1
    chance = 1 / len(SIZES)
    assert dm.beta_vae_score(noise, SIZES, **SMALL)["eval_accuracy"] < chance + 0.15
    fv = dm.factor_vae_score(noise, SIZES, num_variance_estimate=1000, **SMALL)
    assert fv["eval_accuracy"] < chance + 0.15


def test_constant_codes_score_zero_and_chance(factors):
    codes = constant(factors)
    assert dm.mig(codes, factors)["mig"] == 0.0
    assert dm.beta_vae_score(constant, SIZES, **SMALL)["eval_accuracy"] < 1 / len(SIZES) + 0.15
    fv = dm.factor_vae_score(constant, SIZES, num_variance_estimate=1000, **SMALL)
    assert fv == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_factors_spread_over_two_codes_lower_mig(factors):
    aligned, spread = dm.mig(identity(factors), factors), dm.mig(rotated(factors), factors)
    assert spread["mig"] < aligned["mig"] - 0.3
    assert spread["mig_per_factor"][2] > 0.95  # the untouched factor keeps its gap
    assert dm.dci(rotated(factors), factors)["completeness"] < 0.9


def test_factor_information_is_the_matrix_behind_mig(factors):
    aligned = dm.factor_information(identity(factors), factors)
    # each code holds its own factor exactly (sizes <= 20 bins: binning loses nothing) and ~nothing else;
    # the plug-in estimate's upward bias on independent pairs is about (bins-1)(values-1) / 2N nats
    assert np.diag(aligned) == pytest.approx(np.ones(3))
    assert np.abs(aligned - np.diag(np.diag(aligned))).max() < 0.05
    spread = dm.factor_information(rotated(factors), factors)
    assert 0.2 < spread[0, 0] < 0.8 and 0.2 < spread[1, 0] < 0.8  # factor 0 shared by codes 0 and 1
    info, entropy = dm.mutual_information(rotated(factors), factors), dm.factor_entropy(factors)
    assert np.allclose(spread, info / entropy)
    top = np.sort(info, axis=0)  # MIG as Chen et al. write it: (I_1 - I_2) / H, unchanged to the last bit
    assert dm.mig(rotated(factors), factors)["mig_per_factor"] == ((top[-1] - top[-2]) / entropy).tolist()
    with_constant = np.concatenate([factors, np.zeros((len(factors), 1), dtype=factors.dtype)], axis=1)
    info = dm.factor_information(identity(factors), with_constant)
    assert info.shape == (3, 4) and np.isnan(info[:, 3]).all()
    assert dm.mig_sup(identity(factors), with_constant)["mig_sup"] == pytest.approx(
        dm.mig_sup(identity(factors), factors)["mig_sup"])  # a constant factor changes nothing


def test_code_labels_name_each_codes_factor(factors):
    from vaekit.plots import code_labels

    info = dm.factor_information(packed(factors), factors)
    assert code_labels(info, ["a", "b", "c"]) == [
        f"z_0: a {info[0, 0]:.2f}", "z_1: c 1.00", "z_2: -"]  # packed: code 0 holds a (and b), code 2 nothing
    assert code_labels(info, ["a", "b", "c"], [1, 2])[1:] == ["L2 z_0: c 1.00", "L2 z_1: -"]
    # a code whose mean hardly varies is unused, whatever its binned information says
    assert code_labels(info, ["a", "b", "c"], variance=[1e-4, 2.0, 0.0]) == ["z_0: inactive", "z_1: c 1.00", "z_2: inactive"]
    with pytest.raises(ValueError, match="one entry per code"):
        code_labels(info, ["a", "b", "c"], variance=[1.0])
    with pytest.raises(ValueError, match="sum to"):
        code_labels(info, ["a", "b", "c"], [1, 1])
    with pytest.raises(ValueError, match="K = 2"):
        code_labels(info, ["a", "b"])


def test_two_factors_in_one_code_lower_mig_sup_but_not_mig(factors):
    codes = packed(factors)
    assert dm.mig(codes, factors)["mig"] > 0.9  # each factor still lives in one code
    sup = dm.mig_sup(codes, factors)
    assert sup["mig_sup"] < 0.5
    assert sup["mig_sup_per_code"][1] > 0.95 and sup["mig_sup_per_code"][2] == 0.0
    assert dm.dci(codes, factors)["disentanglement"] < 0.8


def test_dci_from_known_importance_matrices():
    assert dm.dci_from_importance(np.eye(3)) == {"disentanglement": 1.0, "completeness": 1.0}
    uniform = dm.dci_from_importance(np.ones((3, 3)))
    assert uniform["disentanglement"] == pytest.approx(0.0) and uniform["completeness"] == pytest.approx(0.0)
    one_code = dm.dci_from_importance(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert one_code["disentanglement"] == pytest.approx(0.0)
    assert one_code["completeness"] == pytest.approx(1.0)


def test_mutual_information_and_entropy_in_nats():
    f = np.repeat(np.arange(4), 50)[:, None]
    assert dm.factor_entropy(f)[0] == pytest.approx(np.log(4))
    assert dm.mutual_information(f.astype(float) * 2.5, f)[0, 0] == pytest.approx(np.log(4))
    binned = dm.discretize(np.linspace(0, 1, 200)[:, None])
    assert binned.min() == 0 and binned.max() == dm.NUM_BINS - 1


def test_bad_shapes_are_refused(factors):
    with pytest.raises(ValueError):
        dm.mig(identity(factors)[:, :1], factors)  # MIG needs two codes
    with pytest.raises(ValueError):
        dm.mig(identity(factors)[:10], factors)


class CentroidEncoder(torch.nn.Module):
    """A stand-in model: posterior mean = (centroid column, centroid row, area, 0)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def encode(self, x: torch.Tensor) -> Independent:
        grid = torch.arange(x.shape[-1], dtype=x.dtype) / x.shape[-1]
        area = x.sum(dim=(1, 2, 3)).clamp_min(1.0)  # [B]
        cols = (x.sum(dim=(1, 2)) @ grid) / area
        rows = (x.sum(dim=(1, 3)) @ grid) / area
        mean = torch.stack([cols, rows, area / 400.0, torch.zeros_like(area)], dim=1)  # [B, 4]
        return Independent(Normal(mean, torch.ones_like(mean)), 1)


def test_disentanglement_metrics_on_dsprites_with_a_stand_in_encoder():
    from vaekit.data.dsprites import load_dsprites

    data = load_dsprites(subset=8)  # images rendered on demand; factors sampled from the whole grid
    model = CentroidEncoder().train()

    def small_forest(seed: int) -> RandomForestClassifier:
        return RandomForestClassifier(n_estimators=10, max_depth=6, random_state=seed)

    out = dm.disentanglement_metrics(
        model, data, num_train=240, num_test=120, seed=0, batch_size=16, dci_classifier=small_forest
    )
    assert model.training  # restored
    for key in ("mig", "mig_sup", "dci/disentanglement", "dci/completeness", "sap",
                "beta_vae/eval_accuracy", "factor_vae/eval_accuracy"):
        assert 0.0 <= out[key] <= 1.0, key
        assert out[f"{key.split('/')[0]}/seconds"] >= 0.0
    assert out["config"]["num_train"] == 240 and out["elapsed_s"] > 0
    # posX and posY each live in their own code: their MIG gaps are large
    per_factor = out["mig/mig_per_factor"]
    assert min(per_factor[3], per_factor[4]) > 0.3 and per_factor[2] < 0.1  # orientation: in no code
    assert out["factor_vae/num_active_dims"] == 3  # the constant fourth code is pruned
    assert out["layer_sizes"] == [4] and out["factor_names"][3] == "posX"
    info = np.array(out["factor_information"])  # [4 codes, 5 factors]
    assert info.shape == (4, 5)
    assert info[0].argmax() == 3 and info[1].argmax() == 4  # centroid column -> posX, row -> posY
    assert np.all(info[3] == 0.0)  # the constant code carries nothing
    assert out["code_variance"][3] == 0.0 and min(out["code_variance"][:3]) > 0.0


def _small_dsprites_model(name: str, **config):
    from vaekit.models import build_model

    return build_model(name, {"data_shape": [1, 64, 64], **config})


def test_representation_holds_every_layer_of_a_hierarchical_model():
    from vaekit.data.dsprites import load_dsprites

    data = load_dsprites(subset=8)
    # a ladder's encode() is one layer; the representation takes all three
    model = _small_dsprites_model("ladder_vae", latent_dims=[2, 3, 1], hidden=[[16], [8], [8]], batch_norm=True)
    model.train()
    assert dm.layer_sizes(model, data) == [2, 3, 1] and model.training  # one image, batch norm in eval
    f = data.sample_factors(5, np.random.default_rng(0))
    x = torch.from_numpy(data.images_from_factors(f)).float().unsqueeze(1)
    model.eval()
    codes = dm.encoder_representation(model, data)(f)
    with torch.no_grad():
        assert model.encode(x).mean.shape == (5, 1)  # encode(): the top layer only
        expected = torch.cat(model.layer_codes(x), -1).double().numpy()
    assert codes.shape == (5, 6) and np.allclose(codes, expected)


def test_factor_traversal_rows_line_up_with_their_labels():
    from vaekit.data.dsprites import load_dsprites
    from vaekit.plots import code_labels
    from vaekit.report import factor_traversals

    data = load_dsprites(subset=8)
    model = _small_dsprites_model("provlae", latent_dims=[2, 3], arch="mlp", hidden=8, mlp_hidden=[16]).eval()
    info = np.zeros((5, 5))
    info[0, 3], info[4, 1] = 0.8, 0.6  # L1 z_0 carries posX, L2 z_2 scale
    x = torch.from_numpy(data.images_from_factors(np.array([[2, 5, 0, 16, 16]]))).float().unsqueeze(1)
    with torch.no_grad():
        fig = factor_traversals(model, x, info, list(data.factor_names), [2, 3], steps=3)
        ax = fig.axes[0]
        rows = [t.get_text() for t in ax.get_yticklabels()]
        assert rows == ["L2 z_0: -", "L2 z_1: -", "L2 z_2: scale 0.60", "L1 z_0: posX 0.80", "L1 z_1: -"]
        assert rows == [code_labels(info, list(data.factor_names), [2, 3])[i] for i in (2, 3, 4, 0, 1)]
        # the third row moves z_2 of the top layer: the image shown is that traversal
        from vaekit.inference import traverse_layer

        expected = traverse_layer(model, x, 1, [2], torch.linspace(-3, 3, 3))[0]  # [S, 1, 64, 64]
        shown = ax.images[0].get_array()
        cell = shown[2 * 65 + 1: 3 * 65, 1: 65]  # row 2, column 0 (1-pixel padding between cells)
        assert np.allclose(np.asarray(cell).squeeze(), expected[0, 0].numpy(), atol=1e-6)


def test_vq_models_are_refused_with_a_clear_error():
    from vaekit.data.dsprites import load_dsprites

    model = _small_dsprites_model("vqvae")
    with pytest.raises(ValueError, match="categorical"):
        dm.encoder_representation(model, load_dsprites(subset=8))(np.zeros((2, 5), dtype=np.int64))
