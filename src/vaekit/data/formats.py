"""Readers for the on-disk formats of image data: idx (gz or raw), .mat, .npy/.npz and image folders.

Every reader checks what it reads and raises :class:`DataCorruptError` (a ``ValueError``) naming the
file for truncated, corrupt or wrongly shaped input, never a bare numpy or zlib traceback.
Array-like inputs are normalised by :func:`to_image_array` to ``[N, C, H, W]`` plus their number of
integer levels (``None`` for continuous floats).
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, UnidentifiedImageError

from vaekit.data.resolve import DataCorruptError

IDX_UINT8 = 0x08
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
CHANNEL_COUNTS = (1, 3, 4)


def read_idx(path: Path, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format), gzip-compressed when its name ends in ``.gz``.

    Args:
        path: The file.
        expected_shape: If given, the shape the array must have.

    Returns:
        A uint8 array of the shape stored in the header.

    Raises:
        DataCorruptError: Bad gzip stream, wrong magic number, size not matching the header, or
            not ``expected_shape``.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataCorruptError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from e
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != IDX_UINT8:
        raise DataCorruptError(
            f"{path}: not a uint8 idx file (magic bytes {raw[:4].hex() or 'missing'}, expected 0000 08 nd)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_bytes = header + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise DataCorruptError(
            f"{path}: header says shape {shape} ({expected_bytes} bytes) but the file holds {len(raw)} "
            "bytes; it is truncated or corrupt"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    _check_shape(array, expected_shape, path)
    return array


def _check_shape(array: np.ndarray, expected_shape: tuple[int, ...] | None, where: object) -> None:
    if expected_shape is not None and array.shape != expected_shape:
        raise DataCorruptError(f"{where}: shape {array.shape}, expected {expected_shape}")


def read_mat_binary(path: Path, key: str = "X", width: int = 784) -> np.ndarray:
    """Read the ``[N, width]`` {0,1} uint8 matrix ``key`` of a MATLAB .mat file.

    Raises:
        DataCorruptError: Unreadable file, missing key, wrong shape or values outside {0, 1}.
    """
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError, zlib.error) as e:
        raise DataCorruptError(f"{path}: cannot read as a .mat file ({e})") from e
    if key not in mat:
        raise DataCorruptError(
            f"{path}: no variable {key!r} (found {sorted(k for k in mat if not k.startswith('__'))})"
        )
    x = np.asarray(mat[key])
    if x.ndim != 2 or x.shape[1] != width:
        raise DataCorruptError(f"{path}: {key!r} has shape {x.shape}, expected (N, {width})")
    if not _is_binary(x):
        raise DataCorruptError(f"{path}: {key!r} has values outside {{0, 1}}")
    return x.astype(np.uint8)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file, loaded eagerly (pickled objects refused).

    Raises:
        DataCorruptError: Not a readable .npz archive.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataCorruptError(f"{path}: cannot read as an .npz archive ({e})") from e


def load_npy(path: Path) -> np.ndarray:
    """One array from an .npy file (pickled objects refused).

    Raises:
        DataCorruptError: Not a readable .npy file.
    """
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataCorruptError(f"{path}: cannot read as an .npy file ({e})") from e


def _is_binary(a: np.ndarray) -> bool:
    return bool(((a == 0) | (a == 1)).all())


def _to_nchw(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 4 and a.shape[1] in CHANNEL_COUNTS:
        return a
    if a.ndim == 4 and a.shape[-1] in CHANNEL_COUNTS:
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    raise ValueError(
        f"{where}: images of shape {a.shape} ({a.dtype}); expected [N, H, W], [N, C, H, W] or "
        f"[N, H, W, C] with C in {CHANNEL_COUNTS}"
    )


def to_image_array(a: np.ndarray, where: str) -> tuple[np.ndarray, int | None]:
    """Normalise an image array to ``[N, C, H, W]`` and find its number of levels.

    Args:
        a: ``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` (``C`` in 1, 3, 4) of bool, integer
            or floating dtype.
        where: Names the source in error messages.

    Returns:
        ``(images, levels)``: uint8 with ``levels`` 2 when every value is 0 or 1, uint8 with
        ``levels`` 256 for other integers in 0..255, float32 with ``levels`` None for other floats
        in [0, 1].

    Raises:
        ValueError: Wrong number of dimensions, non-finite values, floats outside [0, 1], integers
            outside 0..255, or a non-numeric dtype.
    """
    a = _to_nchw(np.asarray(a), where)
    described = f"{where}: array of shape {a.shape} and dtype {a.dtype}"
    if a.dtype == np.bool_ or (a.dtype.kind in "uif" and _is_binary(a)):
        return a.astype(np.uint8), 2
    if a.dtype.kind in "ui":
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"{described} has values in [{a.min()}, {a.max()}]; expected integers in 0..255")
        return a.astype(np.uint8), 256
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{described} contains NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(
                f"{described} has values in [{a.min():.4g}, {a.max():.4g}]; expected floats in [0, 1] "
                "(or uint8 0..255)"
            )
        return a.astype(np.float32), None
    raise ValueError(f"{described}: expected a numeric or boolean dtype")


def to_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """Check that ``y`` holds ``n`` non-negative integer labels and return them as int64.

    Raises:
        ValueError: Wrong shape, non-integer dtype or negative labels.
    """
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "ui" or (n and y.min() < 0):
        raise ValueError(
            f"{where}: labels of shape {y.shape} and dtype {y.dtype}; expected {n} non-negative integers"
        )
    return y.astype(np.int64)


def _image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_image_folder(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """The image files of a folder, with labels when they sit in class subfolders.

    Returns:
        ``(files, labels, class_names)``: sorted files; labels index ``class_names`` (the sorted
        subfolder names), or both None for a flat folder.

    Raises:
        ValueError: No images, or images both at the top level and in subfolders (ambiguous).
    """
    top = _image_files(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and _image_files(d))
    if top and classes:
        raise ValueError(
            f"{root}: images both at the top level and in subfolders {classes[:3]}...; put all images in "
            "class subfolders (labelled) or all at the top level (unlabelled)"
        )
    if top:
        return top, None, None
    if not classes:
        raise ValueError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    files, labels = [], []
    for index, name in enumerate(classes):
        class_files = _image_files(root / name)
        files += class_files
        labels += [index] * len(class_files)
    return files, labels, classes


def read_image(path: Path) -> np.ndarray:
    """One image as uint8 ``[C, H, W]``: grey ("L", and 1-bit "1") gives C=1, RGB (and palette) C=3.

    Raises:
        DataCorruptError: Unreadable image.
        ValueError: A mode other than L, 1, RGB or P (e.g. RGBA, 16-bit).
    """
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("1", "P"):
                img = img.convert("L" if mode == "1" else "RGB")
            elif mode not in ("L", "RGB"):
                raise ValueError(f"{path}: image mode {mode!r}; expected grey (L) or RGB images")
            a = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise DataCorruptError(f"{path}: cannot read as an image ({e})") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def read_image_stack(files: list[Path]) -> np.ndarray:
    """Read images that must all share one size and channel count into uint8 ``[N, C, H, W]``.

    Raises:
        ValueError: An image whose shape differs from the first one's, naming both files.
    """
    first = read_image(files[0])
    out = np.empty((len(files), *first.shape), dtype=np.uint8)
    out[0] = first
    for i, path in enumerate(files[1:], start=1):
        img = read_image(path)
        if img.shape != first.shape:
            raise ValueError(
                f"{path}: image of shape (C, H, W) = {img.shape}, but {files[0]} has {first.shape}; all "
                "images of a folder must have the same size and colour mode"
            )
        out[i] = img
    return out
