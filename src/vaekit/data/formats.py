"""Readers for the on-disk formats of image data: idx (gz or raw), .mat, .npy/.npz and image folders.

Every reader checks what it reads and raises :class:`DataCorruptError` (a ``ValueError``) naming the
file for truncated, corrupt or wrongly shaped input, never a bare numpy or zlib traceback.
Array-like inputs are normalised by :func:`to_image_array` to ``[N, C, H, W]`` plus their number of
integer levels (``None`` for continuous floats).

What is read lazily and what whole (``load_images(..., subset=, splits=)`` wants a few images):
numpy memory-maps .npy files, raw idx files and the members of an .npz stored uncompressed
(``np.savez``), so only the rows asked for are read. Compressed .npz members, gzip idx files and
MATLAB .mat files are read whole (by numpy, gzip, ``scipy.io.loadmat``), each when first indexed
(:class:`LazyArray`: a file no split needs is never read), and then cut: numpy and scipy read such
arrays only whole, a random subset of train needs most of a compressed stream anyway, the files
are small (MNIST's 47 MB of training images, binarized MNIST's 39 MB) and parsing their formats by
hand is not worth it. The one exception is :class:`NpzRows`, for dSprites' original (3 GB of
images deflated into one .npz member): zipfile decompresses it up to the last row asked for.
Image folders decode only the files asked for.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, UnidentifiedImageError

from vaekit.data.resolve import DataCorruptError
from vaekit.errors import DataError

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


def _is_binary(a: np.ndarray) -> bool:
    return bool(((a == 0) | (a == 1)).all())


def to_nchw_view(a: np.ndarray, where: str) -> np.ndarray:
    """``[N, C, H, W]`` of an image array, as a view (a memory map stays unread); see to_image_array."""
    if a.ndim == 3:
        return a[:, None]
    if a.ndim == 4 and a.shape[1] in CHANNEL_COUNTS:
        return a
    if a.ndim == 4 and a.shape[-1] in CHANNEL_COUNTS:
        return a.transpose(0, 3, 1, 2)  # a view: a memory map stays unread
    raise DataError(
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
    a = to_nchw_view(np.asarray(a), where)
    levels = image_levels(a, where)
    return a.astype(np.float32 if levels is None else np.uint8, order="C"), levels


SCAN_BLOCK_BYTES = 1 << 20  # bytes of an array checked at once by image_levels (1 MiB)


def image_levels(a: np.ndarray, where: str) -> int | None:
    """:func:`to_image_array`'s levels (and errors) of an ``[N, C, H, W]`` array, found in blocks of
    :data:`SCAN_BLOCK_BYTES` (the levels depend on every value; a memory map is not held whole)."""
    described = f"{where}: array of shape {a.shape} and dtype {a.dtype}"
    step = max(1, SCAN_BLOCK_BYTES // max(1, a[:1].nbytes))

    def blocks():
        return (a[i : i + step] for i in range(0, len(a), step))

    if a.dtype == np.bool_ or (a.dtype.kind in "uif" and all(_is_binary(b) for b in blocks())):
        return 2
    if a.dtype.kind in "ui":
        lo, hi = _min_max(blocks())
        if lo < 0 or hi > 255:
            raise DataError(f"{described} has values in [{lo}, {hi}]; expected integers in 0..255")
        return 256
    if a.dtype.kind == "f":
        if not all(np.isfinite(b).all() for b in blocks()):
            raise DataError(f"{described} contains NaN or infinite values")
        lo, hi = _min_max(blocks())
        if lo < 0 or hi > 1:
            raise DataError(
                f"{described} has values in [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
                "(or uint8 0..255)"
            )
        return None
    raise DataError(f"{described}: expected a numeric or boolean dtype")


def _min_max(blocks) -> tuple:
    ranges = [(b.min(), b.max()) for b in blocks]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def to_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """Check that ``y`` holds ``n`` non-negative integer labels and return them as int64.

    Raises:
        ValueError: Wrong shape, non-integer dtype or negative labels.
    """
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "ui" or (n and y.min() < 0):
        raise DataError(
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
        raise DataError(
            f"{root}: images both at the top level and in subfolders {classes[:3]}...; put all images in "
            "class subfolders (labelled) or all at the top level (unlabelled)"
        )
    if top:
        return top, None, None
    if not classes:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
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
                raise DataError(f"{path}: image mode {mode!r}; expected grey (L) or RGB images")
            a = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise DataCorruptError(f"{path}: cannot read as an image ({e})") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def read_image_stack(files: list[Path]) -> np.ndarray:
    """Read images that must all share one size and channel count into uint8 ``[N, C, H, W]``.

    Raises:
        ValueError: An image whose shape differs from the first one's, naming both files.
    """
    return ImageFiles(files)[np.arange(len(files))]


# --- unread arrays: ``a[rows]`` reads them (see the module docstring for what is read whole) -------

_ZIP_ERRORS = (OSError, EOFError, KeyError, ValueError, struct.error, zipfile.BadZipFile, zlib.error)


class LazyArray:
    """An array of known shape and dtype that ``load`` reads whole the first time it is indexed."""

    def __init__(self, shape: tuple[int, ...], dtype, load: Callable[[], np.ndarray], where: object):
        self.shape, self.dtype, self._load, self._where = tuple(shape), np.dtype(dtype), load, where
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if self._array is None:
            array = self._load()
            if array.shape != self.shape:
                raise DataCorruptError(f"{self._where}: shape {array.shape}, but its header says {self.shape}")
            self._array = array
        return self._array[index]


def open_idx(path: Path, expected_shape: tuple[int, ...]) -> np.ndarray | LazyArray:
    """:func:`read_idx`'s array, unread: a memory map of an uncompressed file whose header and size
    are right; a .gz file (or an odd one, whose error read_idx gives) is read whole when indexed."""
    header = bytes([0, 0, IDX_UINT8, len(expected_shape)]) + b"".join(d.to_bytes(4, "big") for d in expected_shape)
    if path.suffix != ".gz":
        try:
            with open(path, "rb") as f:
                ok = f.read(len(header)) == header
            if ok and path.stat().st_size == len(header) + int(np.prod(expected_shape)):
                return np.memmap(path, np.uint8, "r", offset=len(header), shape=tuple(expected_shape))
        except OSError:
            pass
    return LazyArray(expected_shape, np.uint8, lambda: read_idx(path, expected_shape), path)


def open_npy(path: Path) -> np.ndarray:
    """An .npy file as a read-only memory map (pickled objects refused).

    Raises:
        DataCorruptError: Not a readable .npy file.
    """
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataCorruptError(f"{path}: cannot read as an .npy file ({e})") from e


def load_npz_member(path: Path, key: str) -> np.ndarray:
    """One array of an .npz file, read whole by numpy (pickled objects refused)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return np.asarray(archive[key])
    except _ZIP_ERRORS as e:
        raise DataCorruptError(f"{path}: cannot read as an .npz archive ({e})") from e


def _npy_header(archive: zipfile.ZipFile, name: str) -> tuple | None:
    """``(shape, fortran_order, dtype, header bytes)`` of an .npz member, or None when it is not an
    .npy file numpy's public header readers take (numpy then reads it whole)."""
    with archive.open(name) as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            return None
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        return None if version not in read else (*read[version](f), f.tell())


def open_npz(path: Path) -> dict[str, np.ndarray | LazyArray]:
    """The arrays of an .npz file, unread: a member stored uncompressed (``np.savez``) as a memory
    map, a compressed one (``np.savez_compressed``) as a :class:`LazyArray` numpy reads whole.

    Raises:
        DataCorruptError: Not a readable .npz archive, or a member holding pickled objects.
    """
    members: dict[str, np.ndarray | LazyArray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                key = info.filename.removesuffix(".npy")
                header = _npy_header(archive, info.filename)
                if header is None:
                    members[key] = load_npz_member(path, key)
                    continue
                shape, fortran, dtype, header_bytes = header
                if dtype.hasobject:
                    raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
                if info.compress_type == zipfile.ZIP_STORED and np.prod(shape, dtype=np.int64) > 0:
                    with open(path, "rb") as f:  # the local header: 30 bytes, then name and extra field
                        f.seek(info.header_offset + 26)
                        name_len, extra_len = struct.unpack("<HH", f.read(4))
                    offset = info.header_offset + 30 + name_len + extra_len + header_bytes
                    members[key] = np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
                else:
                    members[key] = LazyArray(shape, dtype, lambda key=key: load_npz_member(path, key), path)
    except _ZIP_ERRORS as e:
        raise DataCorruptError(f"{path}: cannot read as an .npz archive ({e})") from e
    return members


class NpzRows:
    """The C-ordered array ``key`` of an .npz, never read whole: ``a[rows]`` has zipfile decompress
    the member up to the last row asked for, one pass per call. For dSprites' original (3 GB of
    images deflated into one member); other members are small enough for :func:`load_npz_member`.

    Raises:
        DataCorruptError: Not an .npz holding such an array, or (when read) cut short.
    """

    def __init__(self, path: Path, key: str):
        self.path, self.name = path, f"{key}.npy"
        try:
            with zipfile.ZipFile(path) as archive:
                header = _npy_header(archive, self.name)
            if header is None or header[1] or not header[0]:
                raise ValueError(f"{key} is not a C-ordered array of rows")
        except _ZIP_ERRORS as e:
            raise DataCorruptError(f"{path}: cannot read {key} ({e})") from e
        self.shape, _, self.dtype, self._start = header

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(np.asarray(index, dtype=np.int64), return_inverse=True)
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        out = np.empty((len(unique), *self.shape[1:]), self.dtype)
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.name) as f:
                for i, row in enumerate(unique):
                    f.seek(self._start + int(row) * row_bytes)  # forward: decompressed and skipped
                    data = f.read(row_bytes)
                    if len(data) != row_bytes:
                        raise EOFError(f"{self.name} ends before row {row}")
                    out[i] = np.frombuffer(data, self.dtype).reshape(self.shape[1:])
        except _ZIP_ERRORS as e:
            raise DataCorruptError(f"{self.path}: cannot read {self.name} ({e}); truncated or corrupt") from e
        return out[inverse]


def open_mat_binary(path: Path, key: str = "X", width: int = 784) -> np.ndarray | LazyArray:
    """:func:`read_mat_binary`'s matrix, read whole when first indexed; its shape from the file's
    variable headers (``scipy.io.whosmat``). A file that does not list it is read now, for the error."""
    try:
        shape = {name: shape for name, shape, _ in scipy.io.whosmat(path)}.get(key)
    except Exception:  # noqa: BLE001 - read_mat_binary below names whatever is wrong
        shape = None
    if shape is None or len(shape) != 2 or shape[1] != width:
        return read_mat_binary(path, key, width)
    return LazyArray(shape, np.uint8, lambda: read_mat_binary(path, key, width), path)


def image_shape(path: Path) -> tuple[int, int, int]:
    """``(C, H, W)`` that :func:`read_image` gives, from the file's header (nothing decoded).

    Raises:
        DataCorruptError: Unreadable image.
        ValueError: A mode other than L, 1, RGB or P.
    """
    try:
        with Image.open(path) as img:
            mode, (width, height) = img.mode, img.size
    except (OSError, UnidentifiedImageError) as e:
        raise DataCorruptError(f"{path}: cannot read as an image ({e})") from e
    if mode not in ("1", "L", "RGB", "P"):
        raise DataError(f"{path}: image mode {mode!r}; expected grey (L) or RGB images")
    return (1 if mode in ("1", "L") else 3, height, width)


def _same_shape(img, path: Path, first_path: Path, first_shape: tuple[int, ...]):
    """``img`` (an image or its shape) when its shape is ``first_shape``, else the folder's error."""
    shape = img if isinstance(img, tuple) else img.shape
    if shape != first_shape:
        raise DataError(
            f"{path}: image of shape (C, H, W) = {shape}, but {first_path} has {first_shape}; all "
            "images of a folder must have the same size and colour mode"
        )
    return img


class ImageFiles:
    """Same-size images of a list of files, each decoded when indexed (``a[rows]``: uint8
    ``[n, C, H, W]``); every header is checked first, so a bad folder fails before any decoding."""

    dtype = np.dtype(np.uint8)

    def __init__(self, files: list[Path]):
        first = image_shape(files[0])
        for path in files[1:]:
            _same_shape(image_shape(path), path, files[0], first)
        self.files, self.shape = files, (len(files), *first)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        for i, row in enumerate(rows):
            out[i] = _same_shape(read_image(self.files[row]), self.files[row], self.files[0], self.shape[1:])
        return out
