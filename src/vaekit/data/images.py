"""Image data sets as integer-level tensors with fixed, documented train/val/test splits.

Images are kept in their stored form (uint8 levels, or float32 for continuous data) so that a
likelihood can use the exact discrete values; :meth:`ImageData.to_float` maps them to [0, 1].
Registered data sets (:data:`vaekit.registry.DATASETS`): ``fashion_mnist``, ``mnist``,
``binarized_mnist`` (Larochelle's static binarisation) and ``digits`` (scikit-learn's 8x8 digits).
:func:`load_images` also reads a folder of images or a .npy/.npz file given by path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vaekit.data.formats import (
    list_image_folder,
    load_npy,
    load_npz,
    read_idx,
    read_image_stack,
    read_mat_binary,
    to_image_array,
    to_labels,
)
from vaekit.data.resolve import DataCorruptError, DataFiles, DataNotFoundError, first_complete_layout
from vaekit.registry import DATASETS

BINARIZATIONS = ("none", "dynamic")
MNIST_SHAPES = {"train": (60000, 28, 28), "test": (10000, 28, 28)}
MNIST_VAL = 5000  # the last 5,000 training images, the usual validation split since Larochelle 2011
SPLIT_SEED = 0  # the fixed permutation behind every split that is not given by the source


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
            or ``"dynamic"`` (train resampled every batch, see ``train_levels``).
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

    def levels_of(self, split: ImageSplit) -> int | None:
        """Levels of a split as stored: ``train_levels`` for ``self.train``, else ``levels``."""
        return self.train_levels if split is self.train else self.levels


def _split(x: np.ndarray, y: np.ndarray | None) -> ImageSplit:
    # copies: the sources are often read-only views of a file buffer
    labels = None if y is None else torch.from_numpy(np.array(y, dtype=np.int64))
    return ImageSplit(torch.from_numpy(np.array(x)), labels)


def _num_classes(*ys: np.ndarray | None) -> int | None:
    present = [y for y in ys if y is not None and len(y)]
    return int(max(y.max() for y in present)) + 1 if present else None


def _assemble(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray | None]],
    *,
    levels: int | None,
    source: str,
    split_note: str,
    binarization: str = "none",
) -> ImageData:
    """Build :class:`ImageData` from ``{"train"|"val"|"test": (x [N,C,H,W], y [N] or None)}``."""
    x_train = splits["train"][0]
    return ImageData(
        name=name,
        train=_split(*splits["train"]),
        val=_split(*splits["val"]),
        test=_split(*splits["test"]),
        levels=levels,
        shape=tuple(x_train.shape[1:]),
        num_classes=_num_classes(*(y for _, y in splits.values())),
        source=source,
        binarization=binarization,
        split_note=split_note,
        train_levels=levels,
    )


def _rows(
    y: np.ndarray | torch.Tensor | None, index: np.ndarray | torch.Tensor | slice
) -> np.ndarray | torch.Tensor | None:
    """Labels at ``index``, passing None (no labels) through."""
    return None if y is None else y[index]


def _permuted_split(
    x: np.ndarray, y: np.ndarray | None, n_val: int, n_test: int
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Split by a fixed permutation (seed :data:`SPLIT_SEED`): test first, then val, the rest train."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return {k: (x[idx], _rows(y, idx)) for k, idx in parts.items()}


def _tenth_split(
    x: np.ndarray, y: np.ndarray | None, where: str
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """80/10/10 by the fixed permutation; val and test get ``max(1, N // 10)`` images each."""
    if len(x) < 3:
        raise ValueError(f"{where}: {len(x)} images; at least 3 are needed for train/val/test splits")
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


def _read_idx_set(directory: Path, files: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from the four idx files named by ``files``."""
    train_x, train_y, test_x, test_y = (directory / f for f in files)
    return (
        read_idx(train_x, MNIST_SHAPES["train"]),
        read_idx(train_y, MNIST_SHAPES["train"][:1]),
        read_idx(test_x, MNIST_SHAPES["test"]),
        read_idx(test_y, MNIST_SHAPES["test"][:1]),
    )


def _read_mnist_npz(path: Path) -> tuple[np.ndarray, ...]:
    arrays = load_npz(path)
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
    return tuple(arrays[k] for k in keys)


def _mnist_style(name: str, arrays: tuple[np.ndarray, ...], source: str) -> ImageData:
    x_train, y_train, x_test, y_test = arrays
    n = len(x_train) - MNIST_VAL
    return _assemble(
        name,
        {
            "train": (x_train[:n, None], y_train[:n]),
            "val": (x_train[n:, None], y_train[n:]),
            "test": (x_test[:, None], y_test),
        },
        levels=256,
        source=source,
        split_note=MNIST_NOTE,
    )


def _load_idx_or_npz(name: str, files: DataFiles, root: str | None) -> ImageData:
    directory = files.find(name, root)
    layout = first_complete_layout(directory, files.layouts)
    if layout == ("mnist_full.npz",):
        arrays = _read_mnist_npz(directory / layout[0])
    else:
        arrays = _read_idx_set(directory, layout)
    return _mnist_style(name, arrays, ", ".join(str(directory / f) for f in layout))


@DATASETS.register(
    "fashion_mnist",
    description="Fashion-MNIST: 28x28 grey clothing images, 10 classes (55k/5k/10k)",
    files=FASHION_FILES,
    modality="image",
)
def load_fashion_mnist(root: str | None = None) -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017) from its four idx files (.gz or uncompressed)."""
    return _load_idx_or_npz("fashion_mnist", FASHION_FILES, root)


@DATASETS.register(
    "mnist",
    description="MNIST: 28x28 grey handwritten digits, 10 classes (55k/5k/10k)",
    files=MNIST_FILES,
    modality="image",
)
def load_mnist(root: str | None = None) -> ImageData:
    """MNIST from its four idx files (.gz or uncompressed) or ``mnist_full.npz``."""
    return _load_idx_or_npz("mnist", MNIST_FILES, root)


# --- statically binarised MNIST (Larochelle & Murray 2011) ---------------------------------------

BINARIZED_SPLITS = {
    "train": "binarized_mnist_train.mat",
    "val": "binarized_mnist_valid.mat",
    "test": "binarized_mnist_test.mat",
}
BINARIZED_FILES = DataFiles(required=tuple(BINARIZED_SPLITS.values()))


@DATASETS.register(
    "binarized_mnist",
    description="Statically binarised MNIST (Larochelle & Murray 2011): 28x28 {0,1}, no labels (50k/10k/10k)",
    files=BINARIZED_FILES,
    modality="image",
)
def load_binarized_mnist(root: str | None = None) -> ImageData:
    """The fixed binarisation of MNIST used for likelihood benchmarks, from its three .mat files."""
    directory = BINARIZED_FILES.find("binarized_mnist", root)
    splits = {
        split: (read_mat_binary(directory / f).reshape(-1, 1, 28, 28), None)
        for split, f in BINARIZED_SPLITS.items()
    }
    return _assemble(
        "binarized_mnist",
        splits,
        levels=2,
        source=", ".join(str(directory / f) for f in BINARIZED_SPLITS.values()),
        split_note="the published Larochelle split: train 50,000, val 10,000, "
        "test 10,000 (the MNIST test set)",
        binarization="static",
    )


# --- scikit-learn digits: always present -----------------------------------------------------------

def _sklearn_dir() -> Path:
    """scikit-learn's package folder, found without importing it (its import costs ~75 MiB of RSS)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    return Path(spec.origin).parent if spec and spec.origin else Path("sklearn")


DIGITS_FILE = _sklearn_dir() / "datasets" / "data" / "digits.csv.gz"


@DATASETS.register(
    "digits",
    description="scikit-learn's 8x8 digits, values 0..16, 10 classes (1257/180/360); always available",
    bundled=DIGITS_FILE,
    modality="image",
)
def load_digits(root: str | None = None) -> ImageData:
    """The 1,797 8x8 digits bundled with scikit-learn (levels 0..16, so ``levels`` = 17)."""
    if root is not None:
        raise ValueError(f"digits is bundled with scikit-learn and takes no data path (got {root!r})")
    import sklearn.datasets  # here, not at module import: only this loader needs it

    bunch = sklearn.datasets.load_digits()
    x = bunch.images.astype(np.uint8)[:, None]  # [1797, 1, 8, 8], integers 0..16
    return _assemble(
        "digits",
        _permuted_split(x, bunch.target.astype(np.int64), n_val=180, n_test=360),
        levels=17,
        source=str(DIGITS_FILE),
        split_note="a fixed permutation (seed 0) of the 1,797 images: test = the first 360, "
        "val = the next 180, train = the remaining 1,257",
    )


# --- data given by path ----------------------------------------------------------------------------


def load_image_folder(path: Path) -> ImageData:
    """A folder of same-size grey or RGB images, labelled by class subfolder when present."""
    files, labels, _ = list_image_folder(path)
    x = read_image_stack(files)
    y = None if labels is None else np.asarray(labels, dtype=np.int64)
    return _assemble(
        str(path), _tenth_split(x, y, str(path)), levels=256, source=str(path), split_note=TENTH_NOTE
    )


ARRAY_KEYS = ("x", "X", "images", "arr_0")
LABEL_KEYS = ("y", "labels")


def _array_split(
    arrays: dict[str, np.ndarray], x_key: str, y_key: str | None, where: str
) -> tuple[np.ndarray, int | None, np.ndarray | None]:
    """Images (with their levels) and, when ``y_key`` is present, labels of one split."""
    x, levels = to_image_array(arrays[x_key], f"{where}[{x_key}]")
    y = to_labels(arrays[y_key], len(x), f"{where}[{y_key}]") if y_key in arrays else None
    return x, levels, y


def _load_train_test_npz(arrays: dict[str, np.ndarray], where: str) -> tuple[dict, list[int | None], str]:
    """Splits from ``x_train``/``x_test`` (and ``x_val`` if present; else the last tenth of train)."""
    parts = {
        s: _array_split(arrays, f"x_{s}", f"y_{s}", where)
        for s in ("train", "val", "test")
        if f"x_{s}" in arrays
    }
    levels_found = [levels for _, levels, _ in parts.values()]
    splits = {s: (x, y) for s, (x, _, y) in parts.items()}
    if "val" in splits:
        return splits, levels_found, "train, val and test as stored in the file (x_train, x_val, x_test)"
    x, y = splits["train"]
    n = len(x) - max(1, len(x) // 10)
    splits["train"], splits["val"] = (x[:n], _rows(y, slice(0, n))), (x[n:], _rows(y, slice(n, None)))
    note = (
        "train = x_train without its last N//10 images, val = those last N//10 (stored order), test = x_test"
    )
    return splits, levels_found, note


def load_array_file(path: Path) -> ImageData:
    """Images from an .npy file, or an .npz with ``x_train``/``x_test`` (optional ``x_val``, ``y_*``)
    or a single array under one of :data:`ARRAY_KEYS` (labels optional under :data:`LABEL_KEYS`)."""
    where = str(path)
    arrays = {"x": load_npy(path)} if path.suffix == ".npy" else load_npz(path)
    if "x_train" in arrays and "x_test" in arrays:
        splits, levels_found, note = _load_train_test_npz(arrays, where)
    else:
        x_key = next((k for k in ARRAY_KEYS if k in arrays), None)
        if x_key is None:
            raise ValueError(
                f"{where}: no image array; expected x_train + x_test, or one of {ARRAY_KEYS} "
                f"(found {sorted(arrays)})"
            )
        y_key = next((k for k in LABEL_KEYS if k in arrays), None)
        x, levels, y = _array_split(arrays, x_key, y_key, where)
        splits, levels_found, note = _tenth_split(x, y, where), [levels], TENTH_NOTE
    return _assemble(
        where, splits, levels=_agreed_levels(splits, levels_found, where), source=where, split_note=note
    )


def _agreed_levels(splits: dict, levels_found: list[int | None], where: str) -> int | None:
    """Check that all splits share an image shape and kind; return their common number of levels.

    A split that happens to hold only 0 and 1 next to 8-bit splits counts as 8-bit (256).
    """
    shapes = {tuple(x.shape[1:]) for x, _ in splits.values()}
    if len(shapes) > 1:
        raise ValueError(f"{where}: splits have different image shapes {sorted(shapes)}")
    kinds = set(levels_found)
    if kinds == {2, 256}:
        return 256
    if len(kinds) > 1:
        raise ValueError(f"{where}: splits mix integer and float images ({sorted(map(str, kinds))})")
    return levels_found[0]


# --- the entry point -------------------------------------------------------------------------------


def _load_source(name_or_path: str, root: str | None) -> ImageData:
    if name_or_path in DATASETS:
        entry = DATASETS.get(name_or_path)
        if entry.extra.get("modality") != "image":
            raise ValueError(f"data set {name_or_path!r} is not an image data set")
        return entry.obj(root)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return load_image_folder(path)
    if path.is_file() and path.suffix in (".npy", ".npz"):
        return load_array_file(path)
    images = [e.name for e in DATASETS if e.extra.get("modality") == "image"]
    raise DataNotFoundError(
        f"{name_or_path!r} is neither a registered image data set ({', '.join(images)}) nor an existing "
        "folder of images or .npy/.npz file"
    )


def _binarize_dynamic(data: ImageData, seed: int) -> ImageData:
    """Dynamic binarisation: val/test binarised once (generator seeded by ``seed``), train kept grey."""
    if data.levels == 2:
        raise ValueError(f"{data.name} is already binary; dynamic binarisation needs grey-level data")
    generator = torch.Generator().manual_seed(seed)

    def once(split: ImageSplit) -> ImageSplit:
        return ImageSplit(
            torch.bernoulli(data.to_float(split.x), generator=generator).to(torch.uint8), split.y
        )

    return replace(
        data,
        val=once(data.val),
        test=once(data.test),
        levels=2,
        binarization="dynamic",
        train_levels=data.levels,
        split_note=data.split_note + "; val/test binarised once with a generator seeded by "
        f"{seed} (deterministic evaluation), train resampled every batch",
    )


def _take(split: ImageSplit, index: torch.Tensor | slice) -> ImageSplit:
    return ImageSplit(split.x[index], _rows(split.y, index))


def _subset(data: ImageData, n: int, seed: int) -> ImageData:
    """The first ``n`` of a permutation of train (seeded by ``seed``) and the first ``n`` of val/test."""
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    return replace(
        data,
        train=_take(data.train, order),
        val=_take(data.val, slice(0, n)),
        test=_take(data.test, slice(0, n)),
        split_note=data.split_note
        + f"; subset: {n} random train images (seed {seed}), the first {n} of val and test",
    )


def load_images(
    name_or_path: str,
    *,
    root: str | None = None,
    binarize: str = "none",
    subset: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load an image data set with its fixed train/val/test split.

    Args:
        name_or_path: A registered data set (``fashion_mnist``, ``mnist``, ``binarized_mnist``,
            ``digits``) or a path to a folder of images or a .npy/.npz file.
        root: Explicit folder (or file) holding a registered data set's files; when None, the
            standard places are searched (see :func:`vaekit.data.resolve.searched_places`).
        binarize: ``"none"``, or ``"dynamic"``: ``levels`` becomes 2; val and test are binarised
            once by Bernoulli sampling with a generator seeded by ``seed`` (so evaluation is
            deterministic); train keeps its grey levels (``train_levels``) and the data module draws
            a fresh Bernoulli sample every batch. Static binarisation is the ``binarized_mnist`` set.
        subset: Keep the first ``subset`` images of a fixed permutation (seeded by ``seed``) of
            train and the first ``subset`` of val and test (after binarisation, so val/test values
            do not depend on ``subset``).
        seed: Seeds the val/test binarisation and the train subset.

    Raises:
        ValueError: An unknown ``binarize`` or a non-positive ``subset``, bad array contents.
        DataNotFoundError: The data set's files are nowhere to be found.
        DataCorruptError: A file is truncated or corrupt.
    """
    if binarize not in BINARIZATIONS:
        hint = " (for static binarisation use the binarized_mnist data set)" if binarize == "static" else ""
        raise ValueError(f"binarize={binarize!r}; expected one of {BINARIZATIONS}{hint}")
    if subset is not None and (not isinstance(subset, int) or subset <= 0):
        raise ValueError(f"subset={subset!r}; expected a positive integer or None")
    data = _load_source(name_or_path, root)
    if binarize == "dynamic":
        data = _binarize_dynamic(data, seed)
    if subset is not None:
        data = _subset(data, subset, seed)
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
