"""Distributions: likelihood heads p(x|z), Gaussian posteriors and priors, discrete pixel likelihoods."""

from vaekit.distributions.codes import CodePointMass, uniform_codes
from vaekit.distributions.discrete import DiscretizedLogisticMixture, QuantizedCategorical, to_bins
from vaekit.distributions.gaussian import (
    ConditionalGaussianPrior,
    LearnedGaussianPrior,
    Prior,
    StandardNormalPrior,
    build_prior,
    diag_gaussian,
    kl_per_dim,
    kl_total,
)
from vaekit.distributions.likelihoods import (
    LikelihoodDataError,
    LikelihoodHead,
    build_likelihood,
)

__all__ = [
    "CodePointMass", "uniform_codes",
    "DiscretizedLogisticMixture", "QuantizedCategorical", "to_bins", "ConditionalGaussianPrior",
    "LearnedGaussianPrior", "Prior", "StandardNormalPrior", "build_prior", "diag_gaussian",
    "kl_per_dim", "kl_total", "LikelihoodDataError", "LikelihoodHead", "build_likelihood",
]
