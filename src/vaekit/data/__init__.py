"""Data: image data sets with fixed splits, where to find their files, and batches for training.

Importing this package registers the image data sets in :data:`vaekit.registry.DATASETS`.
"""

from vaekit.data.images import ImageData, ImageSplit, describe_datasets, load_images
from vaekit.data.dsprites import DSprites, load_dsprites  # registers "dsprites"
from vaekit.data.audio import AudioData, load_audio, load_fsdd  # registers "fsdd"
from vaekit.data.text import TextData, Vocabulary, load_text  # registers "ptb"
from vaekit.data.music import PianoRollData, load_piano_rolls  # registers "jsb"
from vaekit.data.chorales import ChoraleEvents, load_chorales  # registers "bach_chorales"
from vaekit.data.chars import CharData, load_ptb_chars  # registers "ptb_chars"
from vaekit.data.colour import ColourData, load_colour  # registers colour_mnist, colour_photos, ...
from vaekit.data.video import SequenceData, load_clips  # registers moving_mnist, shifted_digits, oscillator, ...
from vaekit.data.batches import iterate_batches
from vaekit.data.load import LOADERS, load_data, modality_of
from vaekit.data.resolve import DataCorruptError, DataNotFoundError, find_dataset_dir, searched_places

__all__ = [
    "AudioData",
    "DSprites",
    "load_audio",
    "load_fsdd",
    "load_text",
    "load_piano_rolls",
    "PianoRollData",
    "ChoraleEvents",
    "load_chorales",
    "TextData",
    "Vocabulary",
    "load_dsprites",
    "DataCorruptError",
    "DataNotFoundError",
    "ImageData",
    "DataModule",
    "ImageDataModule",
    "ImageSplit",
    "describe_datasets",
    "find_dataset_dir",
    "iterate_batches",
    "load_images",
    "load_data",
    "LOADERS",
    "modality_of",
    "searched_places",
]


def __getattr__(name: str):
    """``ImageDataModule`` on first use: it imports Lightning (~2 s), which evaluation does not need."""
    if name in ("ImageDataModule", "DataModule"):
        from vaekit.data import module

        return getattr(module, name)
    raise AttributeError(f"module 'vaekit.data' has no attribute {name!r}")
