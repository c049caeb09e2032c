"""Plots of vaekit results. Every plot function takes results and returns a matplotlib Figure.

Figures are built without pyplot (no window, no backend change); save them with
:func:`save_figure`.
"""

from vaekit.plots.codes import codebook_over_training, codebook_usage
from vaekit.plots.curves import (active_units, collapse_curves, kl_per_dim, kl_per_layer_curves, rate_distortion,
                                 training_curves)
from vaekit.plots.images import (
    class_grid,
    image_grid,
    interpolations,
    labelled_columns,
    make_grid,
    reconstructions,
    traversals,
)
from vaekit.plots.io import save_figure
from vaekit.plots.music import piano_roll_figure
from vaekit.plots.latents import code_labels, factor_information_map, informative_codes, latent_pca

__all__ = [
    "code_labels",
    "factor_information_map",
    "informative_codes", "codebook_over_training",
    "make_grid",
    "image_grid",
    "labelled_columns",
    "reconstructions",
    "interpolations",
    "traversals",
    "class_grid",
    "training_curves",
    "kl_per_dim",
    "active_units",
    "kl_per_layer_curves",
    "collapse_curves",
    "rate_distortion",
    "latent_pca",
    "save_figure",
    "piano_roll_figure",
    "codebook_usage",
]
