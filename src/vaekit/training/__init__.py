"""Training: the generic LightningModule, the run builder and atomic checkpoints."""

from vaekit.training.loop import CheckpointError, TrainResult, merge_metrics, prepare, train
from vaekit.run import OptimConfig
from vaekit.training.system import VAESystem

__all__ = ["CheckpointError", "TrainResult", "merge_metrics", "prepare", "train", "OptimConfig", "VAESystem"]
