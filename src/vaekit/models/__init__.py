"""Models: one module per family, each registered in ``vaekit.registry.MODELS``."""

from __future__ import annotations

from typing import Any

from vaekit.config import from_dict, to_dict
from vaekit.models.audio_vqvae import AudioVQVAE, AudioVQVAEConfig
from vaekit.models.dmm import DMM, DMMConfig
from vaekit.models.cwvae import ClockworkVAE, CWVAEConfig
from vaekit.models.tdvae import TDVAE, TDVAEConfig
from vaekit.models.vta import VTA, VTAConfig
from vaekit.models.frame_rnn import FrameRNN, FrameRNNConfig
from vaekit.models.char_rnn import CharRNN, CharRNNConfig
from vaekit.models.srnn import SRNN, SRNNConfig
from vaekit.models.musicvae import MusicVAE, MusicVAEConfig
from vaekit.models.inpaint import InpaintNet, InpaintNetConfig
from vaekit.models.sketchvae import SketchVAE, SketchVAEConfig
from vaekit.models.pianotree import PianoTree, PianoTreeConfig
from vaekit.models.base import BatchError, LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.models.ladder import LadderVAE, LadderVAEConfig
from vaekit.models.ml_text_vae import MLTextVAE, MLTextVAEConfig
from vaekit.models.provlae import ProVLAE, ProVLAEConfig
from vaekit.models.speech_vae import SpeechVAE, SpeechVAEConfig
from vaekit.models.stacked import StackedVAE, StackedVAEConfig
from vaekit.models.text_vae import TextLM, TextLMConfig, TextVAE, TextVAEConfig
from vaekit.models.vqvae import VQVAE, VQVAE2, VQModel, VQVAE2Config, VQVAEConfig
from vaekit.models.vae import CVAE, VAE, CVAEConfig, VAEConfig, num_parameters
from vaekit.models.wavenet import WaveNetConfig, WaveNetModel
from vaekit.models.mixture import MixtureConfig, MixtureModel
from vaekit.models.colorizer import ColorizerConfig, ColorizerModel
from vaekit.registry import MODELS


def build_model(name: str, config: dict[str, Any] | Any | None = None) -> LatentVariableModel:
    """Build the registered model ``name`` from a dict (validated, unknown keys refused) or a config."""
    entry = MODELS.get(name)
    cfg = config if isinstance(config, entry.config_cls) else from_dict(entry.config_cls, config or {}, where="model")
    return entry.obj(cfg)


def model_spec(name: str, model: LatentVariableModel) -> dict[str, Any]:
    """The JSON-able description that rebuilds ``model``: ``{"name": ..., "config": {...}}``."""
    return {"name": name, "config": to_dict(model.config)}


__all__ = [
    "AudioVQVAE", "AudioVQVAEConfig", "DMM", "DMMConfig", "SRNN", "SRNNConfig", "SpeechVAE", "SpeechVAEConfig",
    "BatchError", "LatentLayer", "LatentVariableModel", "ModelConfig", "ModelOutput", "CVAE", "VAE",
    "CVAEConfig", "VAEConfig", "StackedVAE", "StackedVAEConfig", "LadderVAE", "LadderVAEConfig", "MLTextVAE", "MLTextVAEConfig", "ProVLAE", "ProVLAEConfig", "num_parameters", "build_model", "model_spec",
    "VQVAE", "VQVAE2", "VQModel", "VQVAEConfig", "VQVAE2Config", "WaveNetConfig", "WaveNetModel",
]
