"""Image data sets as integer-level tensors with fixed, documented train/val/test splits.

Images are kept in their stored form (uint8 levels, or float32 for continuous data) so that a
likelihood can use the exact discrete values; :meth:`ImageData.to_float` maps them to [0, 1].
Registered data sets (:data:`vaekit.registry.DATASETS`): ``fashion_mnist``, ``mnist``,
``binarized_mnist`` (Larochelle's static binarisation) and ``digits`` (scikit-learn's 8x8 digits).
:func:`load_images` also reads a folder of images or a .npy/.npz file given by path.

Loaders describe a data set first (:class:`LazyImageData`: split sizes, labels, levels, with the
stored images not read yet: memory maps, :class:`~vaekit.data.formats.LazyArray`, image files) and
read images only when asked, so ``subset`` and ``splits`` read the files they need (see
:mod:`vaekit.data.formats` for which formats give only the rows kept and which are read whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from vaekit.data.formats import (
    ImageFiles,
    LazyArray,
    image_levels,
    list_image_folder,
    open_idx,
    open_mat_binary,
    open_npy,
    open_npz,
    read_idx,
    to_labels,
    to_nchw_view,
)
from vaekit.data.resolve import DataCorruptError, DataFiles, DataNotFoundError, first_complete_layout
from vaekit.dataspec import DataSpec, image_spec
from vaekit.errors import ConfigError, DataError
from vaekit.registry import DATASETS

BINARIZATIONS = ("none", "dynamic", "sampled")
MNIST_SHAPES = {"train": (60000, 28, 28), "test": (10000, 28, 28)}
MNIST_VAL = 5000  # the last 5,000 training images, the usual validation split since Larochelle 2011
SPLIT_SEED = 0  # the fixed permutation behind every split that is not given by the source
SPLITS = ("train", "val", "test")


@dataclass
class ImageSplit:
    """One split of an image data set.

    Attributes:
        x: ``[N, C, H, W]`` uint8 integer levels, or float32 in [0, 1] for continuous data.
        y: ``[N]`` int64 class labels, or None.
    """

    x: torch.Tensor
    y: torch.Tensor | None

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class ImageData:
    """An image data set: three splits plus what a model and its likelihood need to know.

    Attributes:
        name: Registered name, or the path it was read from.
        train, val, test: The splits.
        levels: Number of integer levels of val/test (and of train unless dynamically binarised):
            2 binary, 256 8-bit, 17 for scikit-learn's digits (0..16); None for continuous floats.
        shape: ``(C, H, W)`` of one image.
        num_classes: Number of classes, or None without labels.
        source: The file(s) or folder the data came from.
        binarization: ``"none"``, ``"static"`` (binarised once by the source, e.g. binarized_mnist)
            or ``"dynamic"`` (train resampled every batch, see ``train_levels``) or ``"sampled"`` (every split
            drawn once from its grey levels with a seeded generator: a fixed binary data set, as EM needs).
        split_note: One sentence documenting how the splits were made.
        train_levels: Levels of the stored ``train.x``. Equal to ``levels`` except under dynamic
            binarisation, where train keeps its grey levels (e.g. 256) and a fresh Bernoulli sample
            of ``to_float(train.x, train_levels)`` is drawn for every batch, while ``levels`` is 2.
    """

    name: str
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    levels: int | None
    shape: tuple[int, int, int]
    num_classes: int | None
    source: str
    binarization: str
    split_note: str
    train_levels: int | None

    def to_float(self, x: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Map stored images to float32 in [0, 1], on ``x``'s device.

        Args:
            x: Images as stored: an integer tensor of levels, or a float tensor (returned as float32
                unchanged, continuous data).
            levels: Levels of ``x``; defaults to ``self.levels``. Pass ``self.train_levels`` (or use
                :meth:`levels_of`) for the train split under dynamic binarisation.

        Returns:
            ``x / (levels - 1)`` as float32 for integer input.
        """
        if x.is_floating_point():
            return x.float()
        levels = self.levels if levels is None else levels
        if levels is None:
            raise ValueError(f"{self.name}: integer images but levels is None (continuous data is float)")
        return x.float().div_(levels - 1)

    @property
    def spec(self) -> DataSpec:
        """The description a model of this data stores (:class:`~vaekit.dataspec.DataSpec`)."""
        return image_spec(self.shape, self.levels, self.num_classes)

    def levels_of(self, split: ImageSplit) -> int | None:
        """Levels of a split as stored: ``train_levels`` for ``self.train``, else ``levels``."""
        return self.train_levels if split is self.train else self.levels

    # -- the data-set interface every modality's data keeps (vaekit.data.load) -------------------
    def part(self, split: str, subset: int | None = None) -> ImageSplit:
        """The named split (``train``, ``val``, ``test``), cut to its first ``subset`` images (None: all)."""
        if split not in SPLITS:
            raise ConfigError(f"split must be test, val or train, got {split!r}")
        part = getattr(self, split)
        if subset:
            part = ImageSplit(part.x[:subset], part.y[:subset] if part.y is not None else None)
        return part

    def batches(self, part: ImageSplit, batch_size: int, device=None, *, seed: int = 0):
        """In-order batch dicts of ``part`` on ``device`` (:func:`vaekit.data.batches.iterate_batches`)."""
        from vaekit.data.batches import iterate_batches

        return iterate_batches(part, self, batch_size, device, seed=seed)

    def dataset(self, part: ImageSplit, *, train: bool, seed: int = 0):
        """The batch-at-once Dataset that training's DataLoaders read (:class:`~vaekit.data.batches.BatchDataset`)."""
        from vaekit.data.batches import BatchDataset

        return BatchDataset(self, part, seed)

    @property
    def form(self) -> str:
        """What a likelihood of this data is over, e.g. 'binary (dynamic binarization)'."""
        if self.levels == 2:
            return f"binary ({self.binarization} binarization)" if self.binarization != "none" else "binary"
        if self.levels is None:
            return "continuous values"
        return f"{self.levels} grey levels per pixel"

    def describe(self) -> dict:
        """What ``model.json`` and evaluation results record of the data."""
        return {"name": self.name, "source": self.source, "binarization": self.binarization,
                "levels": self.levels, "split": self.split_note}


def _num_classes(*ys: np.ndarray | None) -> int | None:
    present = [y for y in ys if y is not None and len(y)]
    return int(max(y.max() for y in present)) + 1 if present else None


@dataclass
class LazySplit:
    """One split before its images are read: which rows of a stored array it is, and its labels.

    Attributes:
        x: The stored images ``[N_stored, ...]``, one image a row (``C*H*W`` values in C order, in
            the stored dtype), not read yet: anything ``x[rows]`` reads (an array, a memory map, a
            :class:`~vaekit.data.formats.LazyArray`). Splits carved from one array (MNIST's val from
            its training file) share one ``x``.
        rows: int64 ``[n]``: the split's images in split order, as rows of ``x``.
        y: int64 ``[n]`` labels in split order (labels are small and read at once), or None.
    """

    x: object
    rows: np.ndarray
    y: np.ndarray | None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class LazyImageData:
    """An image data set whose splits are known (sizes, labels, levels) but whose images are unread.

    :meth:`read` reads the images of the rows picked from each split, and only those; every loader
    of this module builds one of these, so that a subset never reads a whole data set.
    """

    name: str
    splits: dict[str, LazySplit]
    levels: int | None
    shape: tuple[int, int, int]
    source: str
    split_note: str
    binarization: str = "none"
    num_classes: int | None = field(default=None)

    def __post_init__(self) -> None:
        if self.num_classes is None:  # from every label of every split, so the same whatever is read
            self.num_classes = _num_classes(*(s.y for s in self.splits.values()))

    def read(self, picks: Mapping[str, np.ndarray | None] | None = None) -> ImageData:
        """The :class:`ImageData` of the picked images.

        Args:
            picks: Split name -> positions within the split (int array; empty for none) or None
                for the whole split; a missing split or ``picks=None`` reads it whole.

        Splits sharing an ``x`` that is read in one pass (``x.one_pass``: dSprites' compressed
        original) are read together.
        """
        picks = {s: (picks or {}).get(s) for s in SPLITS}
        wanted = {s: sp.rows if picks[s] is None else sp.rows[picks[s]] for s, sp in self.splits.items()}
        dtype = np.uint8 if self.levels is not None else np.float32
        images = {s: np.empty((0, *self.shape), dtype) for s in SPLITS if not len(wanted[s])}  # unread
        for s in SPLITS:
            if s in images:
                continue
            x = self.splits[s].x
            together = [t for t in SPLITS if self.splits[t].x is x and t not in images]
            if getattr(x, "one_pass", False) and len(together) > 1:
                block = x[np.concatenate([wanted[t] for t in together])]
                parts = np.split(block, np.cumsum([len(wanted[t]) for t in together])[:-1])
                images.update({t: part.copy() for t, part in zip(together, parts)})  # no shared buffer
            else:
                images[s] = x[wanted[s]]  # a new array: fancy indexing copies, even of a memory map
        for s, a in images.items():
            images[s] = np.ascontiguousarray(np.asarray(a).reshape(len(a), *self.shape), dtype=dtype)

        def split(s: str) -> ImageSplit:
            y = self.splits[s].y
            if y is not None:  # a copy: labels are often read-only views of a file buffer
                y = torch.from_numpy(np.array(y if picks[s] is None else y[picks[s]], dtype=np.int64))
            return ImageSplit(torch.from_numpy(images[s]), y)

        return ImageData(
            name=self.name,
            train=split("train"),
            val=split("val"),
            test=split("test"),
            levels=self.levels,
            shape=self.shape,
            num_classes=self.num_classes,
            source=self.source,
            binarization=self.binarization,
            split_note=self.split_note,
            train_levels=self.levels,
        )


def _whole(x, y: np.ndarray | None) -> LazySplit:
    """A split that is all of ``x``, in stored order."""
    return LazySplit(x, np.arange(len(x), dtype=np.int64), y)


def _rows(
    y: np.ndarray | torch.Tensor | None, index: np.ndarray | torch.Tensor | slice
) -> np.ndarray | torch.Tensor | None:
    """Labels at ``index``, passing None (no labels) through."""
    return None if y is None else y[index]


def _permuted_split(x, y: np.ndarray | None, n_val: int, n_test: int) -> dict[str, LazySplit]:
    """Split by a fixed permutation (seed :data:`SPLIT_SEED`): test first, then val, the rest train."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return {k: LazySplit(x, idx, _rows(y, idx)) for k, idx in parts.items()}


def _tenth_split(x, y: np.ndarray | None, where: str) -> dict[str, LazySplit]:
    """80/10/10 by the fixed permutation; val and test get ``max(1, N // 10)`` images each."""
    if len(x) < 3:
        raise DataError(f"{where}: {len(x)} images; at least 3 are needed for train/val/test splits")
    n_eval = max(1, len(x) // 10)
    return _permuted_split(x, y, n_eval, n_eval)


TENTH_NOTE = (
    "a fixed permutation (seed 0) of all images: test = the first N//10, val = the next N//10, "
    "train = the rest"
)


# --- MNIST-style sets: 60k train (last 5k = val) + 10k test -------------------------------------

IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IDX_GZ = tuple(f"{n}.gz" for n in IDX_NAMES)
FASHION_FILES = DataFiles(
    required=IDX_GZ, alternatives=(IDX_NAMES,), subdirs=("fashion_mnist", "fashion-mnist")
)
MNIST_FILES = DataFiles(required=IDX_GZ, alternatives=(("mnist_full.npz",), IDX_NAMES), subdirs=("mnist",))
MNIST_NOTE = (
    "train = the first 55,000 of the 60k training images, val = the last 5,000, test = the 10k test set"
)


def _read_idx_set(directory: Path, files: tuple[str, ...]) -> tuple:
    """``(x_train, y_train, x_test, y_test)`` from the four idx files named by ``files``: the images
    unread (memory maps, or read whole when indexed), the labels read."""
    train_x, train_y, test_x, test_y = (directory / f for f in files)
    return (
        open_idx(train_x, MNIST_SHAPES["train"]),
        read_idx(train_y, MNIST_SHAPES["train"][:1]),
        open_idx(test_x, MNIST_SHAPES["test"]),
        read_idx(test_y, MNIST_SHAPES["test"][:1]),
    )


def _read_mnist_npz(path: Path) -> tuple:
    """As :func:`_read_idx_set`, from ``mnist_full.npz`` (only the members' headers and labels read)."""
    arrays = open_npz(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataCorruptError(f"{path}: missing arrays {missing} (found {sorted(arrays)})")
    for split in ("train", "test"):
        for key, shape in ((f"x_{split}", MNIST_SHAPES[split]), (f"y_{split}", MNIST_SHAPES[split][:1])):
            if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
                raise DataCorruptError(
                    f"{path}: {key} is {arrays[key].dtype} {arrays[key].shape}, expected uint8 {shape}"
                )
    labels = {k: np.asarray(arrays[k][...]) for k in ("y_train", "y_test")}  # small: read now
    return arrays["x_train"], labels["y_train"], arrays["x_test"], labels["y_test"]


def _mnist_style(name: str, arrays: tuple, source: str) -> LazyImageData:
    x_train, y_train, x_test, y_test = arrays  # val is carved from x_train
    n = len(x_train) - MNIST_VAL
    rows = np.arange(len(x_train), dtype=np.int64)
    return LazyImageData(
        name,
        {
            "train": LazySplit(x_train, rows[:n], y_train[:n]),
            "val": LazySplit(x_train, rows[n:], y_train[n:]),
            "test": _whole(x_test, y_test),
        },
        levels=256,
        shape=(1, 28, 28),
        source=source,
        split_note=MNIST_NOTE,
    )


def _open_idx_or_npz(name: str, files: DataFiles, root: str | None) -> LazyImageData:
    directory = files.find(name, root)
    layout = first_complete_layout(directory, files.layouts)
    if layout == ("mnist_full.npz",):
        arrays = _read_mnist_npz(directory / layout[0])
    else:
        arrays = _read_idx_set(directory, layout)
    return _mnist_style(name, arrays, ", ".join(str(directory / f) for f in layout))


def _open_fashion_mnist(root: str | None = None, *, whole: bool = True) -> LazyImageData:
    return _open_idx_or_npz("fashion_mnist", FASHION_FILES, root)


def _open_mnist(root: str | None = None, *, whole: bool = True) -> LazyImageData:
    return _open_idx_or_npz("mnist", MNIST_FILES, root)


@DATASETS.register(
    "fashion_mnist",
    description="Fashion-MNIST: 28x28 grey clothing images, 10 classes (55k/5k/10k)",
    files=FASHION_FILES,
    modality="image",
    open=_open_fashion_mnist,
)
def load_fashion_mnist(root: str | None = None) -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017) from its four idx files (.gz or uncompressed)."""
    return _open_fashion_mnist(root).read()


@DATASETS.register(
    "mnist",
    description="MNIST: 28x28 grey handwritten digits, 10 classes (55k/5k/10k)",
    files=MNIST_FILES,
    modality="image",
    open=_open_mnist,
)
def load_mnist(root: str | None = None) -> ImageData:
    """MNIST from its four idx files (.gz or uncompressed) or ``mnist_full.npz``."""
    return _open_mnist(root).read()


# --- statically binarised MNIST (Larochelle & Murray 2011) ---------------------------------------

BINARIZED_SPLITS = {
    "train": "binarized_mnist_train.mat",
    "val": "binarized_mnist_valid.mat",
    "test": "binarized_mnist_test.mat",
}
BINARIZED_FILES = DataFiles(required=tuple(BINARIZED_SPLITS.values()))


def _open_binarized_mnist(root: str | None = None, *, whole: bool = True) -> LazyImageData:
    directory = BINARIZED_FILES.find("binarized_mnist", root)
    splits = {
        split: _whole(open_mat_binary(directory / f), None)  # [N, 784], read whole when indexed
        for split, f in BINARIZED_SPLITS.items()
    }
    return LazyImageData(
        "binarized_mnist",
        splits,
        levels=2,
        shape=(1, 28, 28),
        source=", ".join(str(directory / f) for f in BINARIZED_SPLITS.values()),
        split_note="the published Larochelle split: train 50,000, val 10,000, "
        "test 10,000 (the MNIST test set)",
        binarization="static",
    )


@DATASETS.register(
    "binarized_mnist",
    description="Statically binarised MNIST (Larochelle & Murray 2011): 28x28 {0,1}, no labels (50k/10k/10k)",
    files=BINARIZED_FILES,
    modality="image",
    open=_open_binarized_mnist,
)
def load_binarized_mnist(root: str | None = None) -> ImageData:
    """The fixed binarisation of MNIST used for likelihood benchmarks, from its three .mat files."""
    return _open_binarized_mnist(root).read()


# --- scikit-learn digits: always present -----------------------------------------------------------

def _sklearn_dir() -> Path:
    """scikit-learn's package folder, found without importing it (its import costs ~75 MiB of RSS)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    return Path(spec.origin).parent if spec and spec.origin else Path("sklearn")


DIGITS_FILE = _sklearn_dir() / "datasets" / "data" / "digits.csv.gz"


def _open_digits(root: str | None = None, *, whole: bool = True) -> LazyImageData:
    if root is not None:
        raise ConfigError(f"digits is bundled with scikit-learn and takes no data path (got {root!r})")
    import sklearn.datasets  # here, not at module import: only this loader needs it

    bunch = sklearn.datasets.load_digits()  # 1,797 tiny images: read whole
    x = bunch.images.astype(np.uint8)[:, None]  # [1797, 1, 8, 8], integers 0..16
    return LazyImageData(
        "digits",
        _permuted_split(x, bunch.target.astype(np.int64), n_val=180, n_test=360),
        levels=17,
        shape=(1, 8, 8),
        source=str(DIGITS_FILE),
        split_note="a fixed permutation (seed 0) of the 1,797 images: test = the first 360, "
        "val = the next 180, train = the remaining 1,257",
    )


@DATASETS.register(
    "digits",
    description="scikit-learn's 8x8 digits, values 0..16, 10 classes (1257/180/360); always available",
    bundled=DIGITS_FILE,
    modality="image",
    open=_open_digits,
)
def load_digits(root: str | None = None) -> ImageData:
    """The 1,797 8x8 digits bundled with scikit-learn (levels 0..16, so ``levels`` = 17)."""
    return _open_digits(root).read()


# --- data given by path ----------------------------------------------------------------------------


def _open_image_folder(path: Path) -> LazyImageData:
    files, labels, _ = list_image_folder(path)
    x = ImageFiles(files)  # every header checked, no image decoded yet
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    return LazyImageData(
        str(path), _tenth_split(x, y, str(path)), levels=256, shape=x.shape[1:], source=str(path),
        split_note=TENTH_NOTE,
    )


def load_image_folder(path: Path) -> ImageData:
    """A folder of same-size grey or RGB images, labelled by class subfolder when present."""
    return _open_image_folder(path).read()


ARRAY_KEYS = ("x", "X", "images", "arr_0")
LABEL_KEYS = ("y", "labels")


def _array_split(arrays: dict, x_key: str, y_key: str | None, where: str) -> tuple:
    """Images ``[N, C, H, W]`` (a view: a memory map stays unread) with their levels and, when
    ``y_key`` is present, labels of one split."""
    x = arrays[x_key]
    if isinstance(x, LazyArray):  # a compressed member: read whole (its levels need every value anyway)
        x = x[...]
    x = to_nchw_view(x, f"{where}[{x_key}]")
    levels = image_levels(x, f"{where}[{x_key}]")
    y = to_labels(np.asarray(arrays[y_key][...]), len(x), f"{where}[{y_key}]") if y_key in arrays else None
    return x, levels, y


def _load_train_test_npz(arrays: dict, where: str) -> tuple[dict, list[int | None], str]:
    """Splits from ``x_train``/``x_test`` (and ``x_val`` if present; else the last tenth of train)."""
    parts = {
        s: _array_split(arrays, f"x_{s}", f"y_{s}", where)
        for s in ("train", "val", "test")
        if f"x_{s}" in arrays
    }
    levels_found = [levels for _, levels, _ in parts.values()]
    splits = {s: _whole(x, y) for s, (x, _, y) in parts.items()}
    if "val" in splits:
        return splits, levels_found, "train, val and test as stored in the file (x_train, x_val, x_test)"
    x, y = splits["train"].x, splits["train"].y
    n = len(x) - max(1, len(x) // 10)
    rows = splits["train"].rows
    splits["train"] = LazySplit(x, rows[:n], _rows(y, slice(0, n)))
    splits["val"] = LazySplit(x, rows[n:], _rows(y, slice(n, None)))
    note = (
        "train = x_train without its last N//10 images, val = those last N//10 (stored order), test = x_test"
    )
    return splits, levels_found, note


def _open_array_file(path: Path) -> LazyImageData:
    where = str(path)
    arrays = {"x": open_npy(path)} if path.suffix == ".npy" else open_npz(path)
    if "x_train" in arrays and "x_test" in arrays:
        splits, levels_found, note = _load_train_test_npz(arrays, where)
    else:
        x_key = next((k for k in ARRAY_KEYS if k in arrays), None)
        if x_key is None:
            raise DataError(
                f"{where}: no image array; expected x_train + x_test, or one of {ARRAY_KEYS} "
                f"(found {sorted(arrays)})"
            )
        y_key = next((k for k in LABEL_KEYS if k in arrays), None)
        x, levels, y = _array_split(arrays, x_key, y_key, where)
        splits, levels_found, note = _tenth_split(x, y, where), [levels], TENTH_NOTE
    levels = _agreed_levels(splits, levels_found, where)
    shape = tuple(splits["train"].x.shape[1:])
    return LazyImageData(where, splits, levels=levels, shape=shape, source=where, split_note=note)


def load_array_file(path: Path) -> ImageData:
    """Images from an .npy file, or an .npz with ``x_train``/``x_test`` (optional ``x_val``, ``y_*``)
    or a single array under one of :data:`ARRAY_KEYS` (labels optional under :data:`LABEL_KEYS`)."""
    return _open_array_file(path).read()


def _agreed_levels(splits: dict[str, LazySplit], levels_found: list[int | None], where: str) -> int | None:
    """Check that all splits share an image shape and kind; return their common number of levels.

    A split that happens to hold only 0 and 1 next to 8-bit splits counts as 8-bit (256).
    """
    shapes = {tuple(split.x.shape[1:]) for split in splits.values()}
    if len(shapes) > 1:
        raise DataError(f"{where}: splits have different image shapes {sorted(shapes)}")
    kinds = set(levels_found)
    if kinds == {2, 256}:
        return 256
    if len(kinds) > 1:
        raise DataError(f"{where}: splits mix integer and float images ({sorted(map(str, kinds))})")
    return levels_found[0]


# --- the entry point -------------------------------------------------------------------------------


def _load_source(name_or_path: str, root: str | None, *, whole: bool = True) -> LazyImageData | ImageData:
    """The data set, unread where its loader can (a :class:`LazyImageData`), else loaded whole.

    A registered image data set reads on demand when its registry entry has ``open`` (a function
    ``(root, *, whole) -> LazyImageData``; ``whole`` says that every image will be read, which lets
    dSprites build its cache rather than render images one by one); otherwise its loader is called.
    """
    if name_or_path in DATASETS:
        entry = DATASETS.get(name_or_path)
        if entry.extra.get("modality") != "image":
            raise DataError(f"data set {name_or_path!r} is not an image data set")
        opener = entry.extra.get("open")
        return entry.obj(root) if opener is None else opener(root, whole=whole)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _open_image_folder(path)
    if path.is_file() and path.suffix in (".npy", ".npz"):
        return _open_array_file(path)
    images = [e.name for e in DATASETS if e.extra.get("modality") == "image"]
    raise DataNotFoundError(
        f"{name_or_path!r} is neither a registered image data set ({', '.join(images)}) nor an existing "
        "folder of images or .npy/.npz file"
    )


def _check_binarizable(name: str, levels: int | None) -> None:
    if levels == 2:
        raise ConfigError(f"{name} is already binary; binarisation (dynamic or sampled) needs grey-level data")


def _skip_draws(generator: torch.Generator, count: int, block: int = 1 << 20) -> None:
    """Advance ``generator`` as ``torch.bernoulli`` of ``count`` float32 probabilities would: one draw
    per element, in order (so the images after skipped ones get the values a full pass gives them)."""
    zeros = torch.zeros(min(block, count))
    while count > 0:
        m = min(block, count)
        torch.bernoulli(zeros[:m], generator=generator)
        count -= m


def _binarize_dynamic(data: ImageData, seed: int, *, val_skipped: int = 0) -> ImageData:
    """Dynamic binarisation: val/test binarised once (generator seeded by ``seed``), train kept grey.

    One generator draws val's values and then test's. ``val_skipped``: the number of val images
    after ``data.val`` (the first ones) that were not read; the generator skips their draws so that
    test gets the values it gets when val is read whole.
    """
    _check_binarizable(data.name, data.levels)
    generator = torch.Generator().manual_seed(seed)

    def once(split: ImageSplit) -> ImageSplit:
        return ImageSplit(
            torch.bernoulli(data.to_float(split.x), generator=generator).to(torch.uint8), split.y
        )

    val = once(data.val)
    if val_skipped and len(data.test):
        _skip_draws(generator, val_skipped * int(np.prod(data.shape)))
    return replace(
        data,
        val=val,
        test=once(data.test),
        levels=2,
        binarization="dynamic",
        train_levels=data.levels,
        split_note=data.split_note + "; val/test binarised once with a generator seeded by "
        f"{seed} (deterministic evaluation), train resampled every batch",
    )


def _binarize_sampled(data: ImageData, seed: int, *, val_skipped: int = 0) -> ImageData:
    """Every split binarised once: val/test exactly as :func:`_binarize_dynamic` draws them (so a model
    trained either way is scored on the same test images), train by its own generator seeded by
    ``seed + 1``: a fixed binary training set, which EM's closed-form passes need (a set resampled every
    batch changes under them)."""
    dynamic = _binarize_dynamic(data, seed, val_skipped=val_skipped)
    generator = torch.Generator().manual_seed(seed + 1)
    train = ImageSplit(torch.bernoulli(data.to_float(data.train.x), generator=generator).to(torch.uint8), data.train.y)
    return replace(dynamic, train=train, binarization="sampled", train_levels=2,
                   split_note=data.split_note + f"; every split binarised once (val/test with a generator seeded by "
                   f"{seed}, train by {seed + 1}): a fixed binary data set")


_BINARIZE = {"dynamic": _binarize_dynamic, "sampled": _binarize_sampled}


def _take(split: ImageSplit, index: torch.Tensor | slice) -> ImageSplit:
    return ImageSplit(split.x[index], _rows(split.y, index))


def _subset_picks(lengths: Mapping[str, int], n: int, seed: int) -> dict[str, np.ndarray]:
    """What ``subset=n`` keeps, as positions within each split: the first ``n`` of a permutation of
    train (seeded by ``seed``, in that random order) and the first ``n`` of val and test."""
    order = torch.randperm(lengths["train"], generator=torch.Generator().manual_seed(seed))[:n]
    return {
        "train": order.numpy(),
        **{s: np.arange(min(n, lengths[s]), dtype=np.int64) for s in ("val", "test")},
    }


def _subset_note(n: int, seed: int) -> str:
    return f"; subset: {n} random train images (seed {seed}), the first {n} of val and test"


def _first_picks(lengths: Mapping[str, int], wanted: Mapping[str, int | None]) -> dict[str, np.ndarray | None]:
    """``splits=``: the first ``n`` of each named split (None: all of it), nothing of the others."""
    return {
        s: None if s in wanted and wanted[s] is None
        else np.arange(min(wanted.get(s, 0), lengths[s]), dtype=np.int64)
        for s in SPLITS
    }


def _subset(data: ImageData, n: int, seed: int) -> ImageData:
    """The first ``n`` of a permutation of train (seeded by ``seed``) and the first ``n`` of val/test."""
    picks = _subset_picks({s: len(getattr(data, s)) for s in SPLITS}, n, seed)
    return replace(
        data,
        **{s: _take(getattr(data, s), torch.from_numpy(picks[s])) for s in SPLITS},
        split_note=data.split_note + _subset_note(n, seed),
    )


def _check_splits(splits, subset: int | None) -> dict[str, int | None] | None:
    """``splits=`` as ``{name: n or None}``, checked."""
    if splits is None:
        return None
    if subset is not None:
        raise ConfigError(
            "subset and splits cannot be combined: subset draws random train images, splits keeps the "
            "first n of each split it names"
        )
    if isinstance(splits, str):
        splits = (splits,)
    wanted = dict(splits) if isinstance(splits, Mapping) else {s: None for s in splits}
    unknown = sorted(set(wanted) - set(SPLITS))
    if unknown or not wanted:
        raise ConfigError(f"splits={splits!r}; expected split names among {SPLITS} (a mapping to n or None)")
    for s, n in wanted.items():
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n <= 0):
            raise ConfigError(f"splits[{s!r}]={n!r}; expected a positive integer or None (the whole split)")
    return wanted


def load_images(
    name_or_path: str,
    *,
    root: str | None = None,
    binarize: str = "none",
    subset: int | None = None,
    seed: int = 0,
    splits: Mapping[str, int | None] | Iterable[str] | None = None,
) -> ImageData:
    """Load an image data set with its fixed train/val/test split.

    A subset or a cut split reads only the files it needs: from a memory map (.npy, raw idx, an
    uncompressed .npz member) only its rows; a compressed file (gzip idx, compressed .npz member,
    .mat) whole, then cut (see :mod:`vaekit.data.formats`). dSprites renders only those images when
    neither its original file nor its cache is present, and reads only them from either file.

    Args:
        name_or_path: A registered data set (``fashion_mnist``, ``mnist``, ``binarized_mnist``,
            ``digits``, ``dsprites``) or a path to a folder of images or a .npy/.npz file.
        root: Explicit folder (or file) holding a registered data set's files; when None, the
            standard places are searched (see :func:`vaekit.data.resolve.searched_places`).
        binarize: ``"none"``, ``"sampled"`` (every split binarised once, train too: :func:`_binarize_sampled`),
            or ``"dynamic"``: ``levels`` becomes 2; val and test are binarised
            once by Bernoulli sampling with a generator seeded by ``seed`` (so evaluation is
            deterministic); train keeps its grey levels (``train_levels``) and the data module draws
            a fresh Bernoulli sample every batch. Static binarisation is the ``binarized_mnist`` set.
        subset: Keep the first ``subset`` images of a fixed permutation (seeded by ``seed``) of
            train and the first ``subset`` of val and test (after binarisation, so val/test values
            do not depend on ``subset``).
        seed: Seeds the val/test binarisation and the train subset.
        splits: Read only some splits, each cut to its first images: a mapping from split name
            (``"train"``, ``"val"``, ``"test"``) to ``n`` (its first ``n`` images in the split's fixed
            order) or None (all of it), or a collection of names (each whole). E.g.
            ``splits={"test": 500}`` gives the same images, labels and (under dynamic binarisation)
            values as ``load_images(...).test`` cut to ``[:500]``, without reading train or val.
            The splits not named come back empty (no images, the same image shape and dtype).
            ``shape``, ``levels``, ``num_classes`` and ``split_note`` stay those of the whole data
            set. Not combined with ``subset`` (whose train images are a random draw).

    Raises:
        ValueError: An unknown ``binarize``, a non-positive ``subset``, bad ``splits``, bad array
            contents.
        DataNotFoundError: The data set's files are nowhere to be found.
        DataCorruptError: A file is truncated or corrupt.
    """
    if binarize not in BINARIZATIONS:
        hint = " (for static binarisation use the binarized_mnist data set)" if binarize == "static" else ""
        raise ConfigError(f"binarize={binarize!r}; expected one of {BINARIZATIONS}{hint}")
    if subset is not None and (not isinstance(subset, int) or subset <= 0):
        raise ConfigError(f"subset={subset!r}; expected a positive integer or None")
    wanted = _check_splits(splits, subset)
    whole = subset is None and (wanted is None or all(s in wanted and wanted[s] is None for s in SPLITS))
    source = _load_source(name_or_path, root, whole=whole)
    if isinstance(source, ImageData):  # a loader that only loads whole: load, then cut
        data = _BINARIZE[binarize](source, seed) if binarize in _BINARIZE else source
        if subset is not None:
            data = _subset(data, subset, seed)
        if wanted is not None:
            picks = _first_picks({s: len(getattr(data, s)) for s in SPLITS}, wanted)
            data = replace(data, **{s: _take(getattr(data, s), slice(None) if picks[s] is None
                                             else slice(0, len(picks[s]))) for s in SPLITS})
        return data
    if binarize in _BINARIZE:
        _check_binarizable(source.name, source.levels)  # before reading anything
    lengths = {s: len(source.splits[s]) for s in SPLITS}
    picks = None
    if subset is not None:
        picks = _subset_picks(lengths, subset, seed)
    elif wanted is not None:
        picks = _first_picks(lengths, wanted)
    data = source.read(picks)
    if binarize in _BINARIZE:
        data = _BINARIZE[binarize](data, seed, val_skipped=lengths["val"] - len(data.val))
    if subset is not None:
        data = replace(data, split_note=data.split_note + _subset_note(subset, seed))
    return data


def describe_datasets(root: str | None = None) -> list[dict]:
    """Where each registered data set is, without loading or downloading anything.

    Args:
        root: An explicit folder to look in (as ``--data``), or None for the standard places.

    Returns:
        One dict per registered data set: ``name``, ``description``, ``found`` (the folder or
        bundled file, as a string, or None) and ``searched`` (the places looked in, as strings).
    """
    return [_describe(entry.name, entry.description, entry.extra, root) for entry in DATASETS]


def _describe(name: str, description: str, extra: dict, root: str | None) -> dict:
    files: DataFiles | None = extra.get("files")
    if extra.get("generated"):  # made on demand by vaekit.data.synthetic (from MNIST's digits, for some)
        if extra["generated"] is True:
            return {"name": name, "description": description, "found": "generated", "searched": []}
        inner = _describe(extra["generated"], "", DATASETS.get(extra["generated"]).extra, root)
        found = None if inner["found"] is None else f"generated from {inner['found']}"
        return {"name": name, "description": description, "found": found, "searched": inner["searched"]}
    if files is None:
        bundled: Path | None = extra.get("bundled")
        found = str(bundled) if bundled is not None and bundled.is_file() else None
        searched = [] if bundled is None else [str(bundled)]
    else:
        searched = [str(p) for p in files.searched(name, root)]
        try:
            found = str(files.find(name, root, download=False))
        except DataNotFoundError:
            found = None
    return {"name": name, "description": description, "found": found, "searched": searched}
