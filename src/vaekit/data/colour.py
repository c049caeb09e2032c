"""Colour images for colorization (seed 004): grey input, chroma to predict, and where known the true segments.

**Grey and chroma.** The grey image is the ITU-R BT.601 luma ``Y' = 0.299 R + 0.587 G + 0.114 B`` of the
(gamma-encoded) RGB values, and the colour is the rest of full-range YPbPr: ``Pb = (B - Y') / 1.772``,
``Pr = (R - Y') / 1.402``, each in [-0.5, 0.5]. The map is linear and invertible, so grey + chroma -> RGB ->
grey + chroma is exact for every RGB image (:func:`rgb_to_luma_chroma`, :func:`luma_chroma_to_rgb`; tests
check it against scikit-image's ``rgb2ypbpr``). Lab's L would separate lightness more perceptually, but is
non-linear (a cube root of linearised XYZ): a Gaussian over (a, b) given L is not one over RGB given the
grey, and the round trip then depends on the gamut clipping. BT.601 luma is also what PIL's ``convert("L")``
computes, so a user's grey photo is the grey vaekit would have made of it.

**Data sets** (``modality: colour_image``, loaded by :data:`vaekit.data.load.LOADERS`):

- ``colour_mnist``, ``colour_fashion_mnist``, ``colour_dsprites``: the grey sets coloured deterministically
  from a seed (:func:`colourise`). Every image gets a background colour drawn from a background palette and
  an object colour drawn from its class's palette (two colours per class), all at fixed saturation; the
  object's grey level sets the luma (background 0.3, object up to 0.8), the object/background blend of an
  anti-aliased edge sets the chroma blend, and the true segmentation is the object where the source image is
  above half intensity. So the grey image says where the object is, its shape says the class, and which of
  the palette's colours an image got is not in the grey at all: ``P(y|x)`` is multimodal. With
  ``data.options.fixed_palette`` every image takes its palettes' first colours: the colour is then a function
  of the grey image (through its class), the case where seed 004 expects a latent segmentation to collapse.
- ``colour_photos``: the colour photographs scikit-image ships (``astronaut``, ``chelsea``, ``coffee``,
  ``rocket``, the left view of ``stereo_motorcycle``), halved and cut into overlapping patches; whole photos
  are held out for validation (the motorcycle) and test (``astronaut``), so no test patch overlaps a training
  one. No true segmentation.
- a folder of the user's colour images (PNG, JPEG, ...), cut into patches the same way; every tenth image
  (sorted by name) goes to validation and test. A grey image in it is refused (a colour model cannot learn
  chroma from it), as is an image with transparency.

Batches: ``x`` float32 RGB ``[B, 3, H, W]`` in [0, 1] and, for the synthetic sets, ``segments`` int64
``[B, H, W]`` (0 background, 1 object). The grey input is computed from ``x`` by the model, never stored
apart, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaekit.data.batches import SeededDataset, StoredSplits
from vaekit.data.resolve import DataCorruptError, DataNotFoundError
from vaekit.dataspec import DataSpec
from vaekit.errors import ConfigError, DataError
from vaekit.registry import DATASETS

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
PB_SCALE = 2 * (1 - LUMA[2])  # 1.772: Pb = (B - Y') / 1.772
PR_SCALE = 2 * (1 - LUMA[0])  # 1.402: Pr = (R - Y') / 1.402
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
PHOTO_SPLIT = {"val": ("motorcycle_left",), "test": ("astronaut",)}


# -- colour conversion --------------------------------------------------------------------------------
def luma(rgb: Tensor) -> Tensor:
    """BT.601 luma ``[..., 1, H, W]`` of RGB ``[..., 3, H, W]`` in [0, 1]."""
    if rgb.shape[-3] != 3:
        raise ValueError(f"expected RGB images [..., 3, H, W], got {list(rgb.shape)}")
    r, g, b = rgb.unbind(-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def rgb_to_luma_chroma(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """RGB ``[..., 3, H, W]`` -> (luma ``[..., 1, H, W]`` in [0, 1], chroma (Pb, Pr) ``[..., 2, H, W]`` in
    [-0.5, 0.5])."""
    y = luma(rgb)
    r, _, b = rgb.unbind(-3)
    chroma = torch.stack([(b - y[..., 0, :, :]) / PB_SCALE, (r - y[..., 0, :, :]) / PR_SCALE], dim=-3)
    return y, chroma


def luma_chroma_to_rgb(y: Tensor, chroma: Tensor, *, clip: bool = True) -> Tensor:
    """The inverse of :func:`rgb_to_luma_chroma`: ``[..., 1, H, W]`` + ``[..., 2, H, W]`` -> RGB
    ``[..., 3, H, W]``, clipped to [0, 1] unless ``clip=False`` (a predicted chroma may leave the gamut)."""
    yy = y[..., 0, :, :]
    pb, pr = chroma.unbind(-3)
    r = yy + PR_SCALE * pr
    b = yy + PB_SCALE * pb
    g = (yy - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    rgb = torch.stack([r, g, b], dim=-3)
    return rgb.clamp(0, 1) if clip else rgb


# -- reading users' images ---------------------------------------------------------------------------
def _open_image(path: Path) -> tuple[str, np.ndarray]:
    """(PIL mode, pixels as stored) of an image file; a missing or unreadable file gets a clear error."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataNotFoundError(f"no image file {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.mode, np.asarray(im)
    except (UnidentifiedImageError, OSError) as e:
        raise DataCorruptError(f"{path}: not a readable image ({e})") from e


def read_rgb(path: str | Path) -> np.ndarray:
    """A colour image file as uint8 ``[H, W, 3]``. Refused with a clear message: a missing or unreadable
    file, a grey image (nothing to learn chroma from), transparency (which colour is under it?)."""
    path = Path(path)
    mode, arr = _open_image(path)
    if mode in ("L", "I", "I;16", "F", "1", "LA") or arr.ndim == 2:
        raise DataError(f"{path} is a grey image ({mode}): a colour model learns chroma from colour images; "
                        f"remove it from the training folder")
    if mode in ("RGBA", "LA", "PA") or (arr.ndim == 3 and arr.shape[2] == 4):
        if arr.ndim == 3 and arr.shape[2] == 4 and arr[..., 3].min() == 255:
            return np.ascontiguousarray(arr[..., :3])  # opaque everywhere: the alpha channel says nothing
        raise DataError(f"{path} has transparency (4 channels, alpha below 255): flatten it onto a background "
                        f"first (e.g. PIL's Image.alpha_composite), vaekit will not guess what is under it")
    if mode != "RGB":
        from PIL import Image as _Image

        with _Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    return arr


def read_grey(path: str | Path) -> tuple[np.ndarray, str | None]:
    """A grey input for colorization as float32 ``[H, W]`` in [0, 1], and a note when it was converted: a
    colour image becomes its BT.601 luma (stated, not refused); an opaque alpha channel is dropped; real
    transparency is refused."""
    path = Path(path)
    mode, arr = _open_image(path)
    note = None
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # LA or RGBA
        if arr[..., -1].min() != 255:
            raise DataError(f"{path} has transparency (alpha below 255): flatten it onto a background first")
        arr = arr[..., :-1]
        note = f"{path.name}: the opaque alpha channel was dropped"
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        if arr.shape[2] != 3:
            raise DataError(f"{path}: {arr.shape[2]} channels; expected a grey or RGB image")
        rgb = torch.from_numpy(np.array(arr, dtype=np.float32)).permute(2, 0, 1) / 255
        grey = luma(rgb)[0].numpy()
        converted = f"{path.name} is a colour image: its BT.601 luma is the grey input"
        note = converted if note is None else f"{note}; {converted[len(path.name) + 1:]}"
        return grey.astype(np.float32), note
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) / 255), note
    if arr.dtype == np.bool_:
        return arr.astype(np.float32), note
    if np.issubdtype(arr.dtype, np.integer):  # 16-bit grey
        return (arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)), note
    raise DataError(f"{path}: grey values of type {arr.dtype} ({mode}); expected 8- or 16-bit")


# -- the synthetic colour sets -----------------------------------------------------------------------
BACKGROUND_LUMA = 0.3
OBJECT_LUMA = 0.8
SATURATION = 0.15  # chroma radius of every palette colour
CHROMA_NOISE = 0.01  # per-pixel std of the chroma around the segment's colour
BACKGROUND_HUES = (0.6, 2.6, 4.6)  # radians in the (Pb, Pr) plane: three background colours


def palettes(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(background ``[3, 2]``, object ``[num_classes, 2, 2]``) chroma (Pb, Pr): class ``c``'s two colours at
    hues ``2 pi c / C`` and that plus ``pi / 2``."""
    bg = SATURATION * np.stack([np.cos(BACKGROUND_HUES), np.sin(BACKGROUND_HUES)], -1)
    hues = 2 * np.pi * np.arange(num_classes)[:, None] / num_classes + np.array([0.0, np.pi / 2])[None]
    obj = SATURATION * np.stack([np.cos(hues), np.sin(hues)], -1)
    return bg.astype(np.float32), obj.astype(np.float32)


def colourise(grey: np.ndarray, labels: np.ndarray, num_classes: int, seed: int,
              fixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Colour grey object images ``[N, H, W]`` uint8 (object bright on black) by the module docstring's recipe;
    ``fixed``: every background gets the palette's first colour and every object its class's first, so the colour
    is a function of the image (of its class), nothing is left to chance but the per-pixel noise.

    Returns (RGB uint8 ``[N, 3, H, W]``, true segments uint8 ``[N, H, W]``). Image ``i``'s colours depend on
    ``(seed, i)`` only, so a split is the same however it is cut.
    """
    rng = np.random.default_rng(seed)
    n = len(grey)
    bg, obj = palettes(num_classes)
    pick_bg = rng.integers(0, len(bg), n) * (not fixed)
    pick_obj = rng.integers(0, 2, n) * (not fixed)
    g = grey.astype(np.float32) / 255  # [N, H, W] the object's coverage of each pixel
    y = BACKGROUND_LUMA + (OBJECT_LUMA - BACKGROUND_LUMA) * g
    c_bg = bg[pick_bg][:, :, None, None]  # [N, 2, 1, 1]
    c_obj = obj[labels, pick_obj][:, :, None, None]
    chroma = (1 - g[:, None]) * c_bg + g[:, None] * c_obj
    chroma = chroma + CHROMA_NOISE * rng.standard_normal(chroma.shape, dtype=np.float32)
    rgb = luma_chroma_to_rgb(torch.from_numpy(y[:, None]), torch.from_numpy(chroma)).numpy()
    return np.round(rgb * 255).astype(np.uint8), (grey > 127).astype(np.uint8)


# -- splits and batches ------------------------------------------------------------------------------
class ColourSplit:
    """One split: ``x`` uint8 RGB ``[N, 3, H, W]``, ``segments`` uint8 ``[N, H, W]`` or None."""

    def __init__(self, x: np.ndarray, segments: np.ndarray | None = None):
        self.x, self.segments = x, segments

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> ColourSplit:
        index = np.asarray(index, dtype=np.int64)
        return ColourSplit(self.x[index], None if self.segments is None else self.segments[index])


class ColourBatches(SeededDataset):
    """A split whose ``__getitems__`` returns whole batches ``{"x", "segments"?}``."""

    def __init__(self, split: ColourSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Tensor]:
        index = np.asarray(list(indices), dtype=np.int64)
        batch = {"x": torch.from_numpy(np.divide(self.split.x[index], np.float32(255), dtype=np.float32))}
        if self.split.segments is not None:
            batch["segments"] = torch.from_numpy(self.split.segments[index].astype(np.int64))
        return batch


class ColourData(StoredSplits):
    """Colour images in three splits, with the interface every data set keeps (:mod:`vaekit.data.load`)."""

    def __init__(self, name: str, source: str, splits: dict[str, ColourSplit], *, split_note: str,
                 segments: int | None, extra: dict | None = None):
        self.name, self.source, self.split_note = name, source, split_note
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self.num_segments, self.extra = segments, dict(extra or {})
        shape = self.train.x.shape[1:] if len(self.train) else self.test.x.shape[1:]
        self._spec = DataSpec("image", [int(s) for s in shape], "levels", 256,
                              features={"colour": "BT.601 luma + (Pb, Pr)",
                                        **({"true_segments": segments} if segments else {})})
        self._spec.validate()

    @property
    def spec(self) -> DataSpec:
        return self._spec

    @property
    def form(self) -> str:
        return "the chroma (Pb, Pr) of 8-bit RGB images given their BT.601 luma"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "split": self.split_note,
                "examples": {s: len(getattr(self, s)) for s in ("train", "val", "test")},
                "true_segments": self.num_segments, **self.extra}

    def dataset(self, part: ColourSplit, *, train: bool, seed: int = 0) -> ColourBatches:
        return ColourBatches(part)


@dataclass
class ColourOptions:
    """``data.options`` of the colour sets."""

    train_images: int | None = 20000  # synthetic: the first N training images of the source (null: all)
    val_images: int = 1000
    test_images: int = 2000
    seed: int = 0  # the colours of the synthetic sets
    fixed_palette: bool = False  # synthetic: one colour per class and one background colour (colour given by x)
    patch: int = 32  # photos and folders: patch side in pixels
    stride: int = 4  # photos and folders: step between patches
    scale: float = 0.5  # photos and folders: resize factor before cutting

    def validate(self) -> None:
        if self.train_images is not None and self.train_images < 1:
            raise ConfigError(f"data.options.train_images must be >= 1 or null, got {self.train_images}")
        if self.val_images < 1 or self.test_images < 1:
            raise ConfigError("data.options.val_images and test_images must be >= 1")
        if self.patch < 4 or self.stride < 1 or not 0 < self.scale <= 1:
            raise ConfigError(f"need patch >= 4, stride >= 1 and 0 < scale <= 1, got {self.patch}, {self.stride}, "
                              f"{self.scale}")


def _synthetic(source: str, options: ColourOptions, root: str | None) -> ColourData:
    from vaekit.data.images import load_fashion_mnist, load_mnist

    if source == "dsprites":
        from vaekit.data.dsprites import load_dsprites

        n = sum(v for v in (options.train_images or 20000, options.val_images, options.test_images))
        ds = load_dsprites(root, subset=max(n, 1), seed=options.seed)
        splits = {}
        for s in ("train", "val", "test"):
            x = getattr(ds.images, s).x[:, 0].numpy()  # {0, 1}
            # 64 -> 32 pixels by 2x2 means (anti-aliased edges), kept as 8-bit grey
            small = x.reshape(len(x), 32, 2, 32, 2).mean((2, 4)) * 255.0
            splits[s] = (np.round(small).astype(np.uint8), getattr(ds.images, s).y.numpy())
        classes, where = 3, f"dSprites ({ds.images.source}), 2x2-averaged to 32x32"
    else:
        images = (load_mnist if source == "mnist" else load_fashion_mnist)(root)
        splits = {s: (getattr(images, s).x[:, 0].numpy(), getattr(images, s).y.numpy())
                  for s in ("train", "val", "test")}
        classes, where = 10, images.source
    wanted = {"train": options.train_images, "val": options.val_images, "test": options.test_images}
    out = {}
    for i, s in enumerate(("train", "val", "test")):
        grey, labels = splits[s]
        n = len(grey) if wanted[s] is None else min(wanted[s], len(grey))
        rgb, seg = colourise(grey[:n], labels[:n], classes, seed=options.seed * 3 + i, fixed=options.fixed_palette)
        out[s] = ColourSplit(rgb, seg)
    note = (f"the first {len(out['train'])} / {len(out['val'])} / {len(out['test'])} images of {source}'s "
            f"train / val / test splits, coloured with seed {options.seed}"
            f"{' from a fixed palette' if options.fixed_palette else ''} (vaekit.data.colour.colourise)")
    return ColourData(f"colour_{source}", where, out, split_note=note, segments=2,
                      extra={"palette_seed": options.seed, "fixed_palette": options.fixed_palette})


def _patches(images: dict[str, np.ndarray], options: ColourOptions) -> np.ndarray:
    """Overlapping ``patch`` x ``patch`` crops of resized RGB images ``[H, W, 3]`` -> uint8 ``[N, 3, p, p]``."""
    from PIL import Image

    p, s = options.patch, options.stride
    out = []
    for name, arr in images.items():
        im = Image.fromarray(arr)
        w, h = max(p, round(im.width * options.scale)), max(p, round(im.height * options.scale))
        small = np.asarray(im.resize((w, h), Image.Resampling.BICUBIC if hasattr(Image, "Resampling")
                                     else Image.BICUBIC))
        for top in range(0, h - p + 1, s):
            for left in range(0, w - p + 1, s):
                out.append(small[top:top + p, left:left + p].transpose(2, 0, 1))
    if not out:
        raise DataError(f"no {p}x{p} patch fits in {sorted(images)} after resizing by {options.scale}")
    return np.ascontiguousarray(np.stack(out))


def _photos(options: ColourOptions, root: str | None) -> ColourData:
    try:
        import skimage.data as sk
    except ImportError as e:  # a declared dependency: only a broken install lands here
        raise DataNotFoundError("colour_photos needs scikit-image (pip install scikit-image)") from e
    loaders = {name: getattr(sk, name, None) for name in PHOTOS}
    loaders["motorcycle_left"] = lambda: sk.stereo_motorcycle()[0]
    images = {name: load() for name, load in loaders.items()}
    test, val = set(PHOTO_SPLIT["test"]), set(PHOTO_SPLIT["val"])
    parts = {"train": {k: v for k, v in images.items() if k not in test | val},
             "val": {k: images[k] for k in PHOTO_SPLIT["val"]}, "test": {k: images[k] for k in PHOTO_SPLIT["test"]}}
    splits = {s: ColourSplit(_patches(v, options)) for s, v in parts.items()}
    note = (f"{options.patch}x{options.patch} patches every {options.stride} px of scikit-image's colour photos "
            f"resized by {options.scale}: train {sorted(parts['train'])}, val {sorted(val)}, test {sorted(test)}")
    return ColourData("colour_photos", f"skimage.data (scikit-image {_skimage_version()})", splits,
                      split_note=note, segments=None)


def _skimage_version() -> str:
    import skimage

    return skimage.__version__


def load_colour_folder(path: str | Path, options: ColourOptions) -> ColourData:
    """A folder of the user's colour images (any sizes), cut into patches; every tenth file (sorted by name)
    is held out for validation and the next for test."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataNotFoundError(f"no folder {path}")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(files) < 3:
        raise DataError(f"{path}: {len(files)} image files; a colour folder needs at least 3 (train, val, test)")
    images = {str(f.relative_to(path)): read_rgb(f) for f in files}
    names = list(images)
    parts = {"train": {}, "val": {}, "test": {}}
    for i, name in enumerate(names):
        split = "val" if i % 10 == 8 else "test" if i % 10 == 9 else "train"
        parts[split][name] = images[name]
    for split, which in (("val", -2), ("test", -1)):  # small folders: the last files are held out
        if not parts[split]:
            name = [n for n in names if n in parts["train"]][which]
            parts[split][name] = parts["train"].pop(name)
    splits = {s: ColourSplit(_patches(v, options)) for s, v in parts.items()}
    note = (f"{options.patch}x{options.patch} patches every {options.stride} px of {len(files)} images resized by "
            f"{options.scale}; whole images held out: val {sorted(parts['val'])}, test {sorted(parts['test'])}")
    return ColourData(str(path), str(path), splits, split_note=note, segments=None)


def _folder(options: ColourOptions, root: str | None) -> ColourData:
    if root is None:
        raise ConfigError("colour_folder reads the folder of colour images given as data.path")
    return load_colour_folder(root, options)


def load_colour(name: str, options: ColourOptions | None = None, root: str | None = None) -> ColourData:
    """A registered colour set (``colour_mnist`` ...) or a folder of colour images."""
    options = options or ColourOptions()
    options.validate()
    if name in DATASETS and DATASETS.get(name).extra.get("modality") == "colour_image":
        return DATASETS.get(name).obj(options, root)
    return load_colour_folder(name, options)


def _skimage_photo() -> Path | None:
    """The file of scikit-image's astronaut (what `vaekit data` shows as found), without importing skimage."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"


def _register() -> None:
    if DATASETS.registered("colour_mnist"):
        return
    for source, what in (("mnist", "MNIST digits"), ("fashion_mnist", "Fashion-MNIST garments"),
                         ("dsprites", "dSprites shapes at 32x32")):
        DATASETS.register(f"colour_{source}", modality="colour_image", options=ColourOptions, generated=source,
                          description=f"{what} coloured from a seed, with the true object/background segments "
                                      f"(vaekit.data.colour)")(
            lambda options, root, _s=source: _synthetic(_s, options, root))
    DATASETS.register("colour_folder", modality="colour_image", options=ColourOptions,
                      description="a folder of your colour images (data.path), cut into patches; whole files held out")(
        lambda options, root: _folder(options, root))
    DATASETS.register("colour_photos", modality="colour_image", options=ColourOptions, bundled=_skimage_photo(),
                      description="scikit-image's colour photographs as 32x32 patches (astronaut held out for test)")(
        lambda options, root: _photos(options, root))


_register()
