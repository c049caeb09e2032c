"""dSprites (Matthey et al. 2017), re-rendered procedurally, with its ground-truth factors.

737,280 binary 64x64 images of one white sprite: every combination of 3 shapes (square, ellipse,
heart) x 6 scales ``linspace(0.5, 1, 6)`` x 40 orientations ``linspace(0, 2 pi, 40)`` x 32 x 32
positions ``linspace(0, 1, 32)``, stored in the original's order (the last factor, posY, varies
fastest). The original file (``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``) is used when a
user has it; otherwise the images are rendered here and cached.

Geometry, fitted to the 320 real frames of the data set's ``dsprites.gif`` (see docs/dsprites.md):
a pixel (row r, column c) is on when its centre ``(c + 0.5, r + 0.5)`` lies inside the sprite. The
sprite's centre is ``16 + 32 * pos`` pixels (posX along columns, left to right; posY along rows,
top to bottom), it is rotated counter-clockwise on screen by ``orientation`` and scaled about its
centre by ``scale``. At scale 1 the square's side is 19.2 px (0.3 of the image), the ellipse's
semi-axes are 12.76 x 7.22 px (long axis horizontal at orientation 0), and the heart (lobes up,
tip down at orientation 0) is a star-shaped outline given by a table of radii.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from vaekit.data.formats import NpzRows
from vaekit.data.images import ImageData, ImageSplit, LazyImageData, LazySplit
from vaekit.data.resolve import DataCorruptError, DataFiles
from vaekit.fileio import atomic_path
from vaekit.errors import ConfigError
from vaekit.registry import DATASETS

# --- the factor grid ------------------------------------------------------------------------------

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0]),  # the original's latents_values for shape
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),  # 0 and 2 pi both present, as in the original
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
NUM_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
IMAGE_SIZE = 64
STRIDES = tuple(int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(len(FACTOR_SIZES)))  # last fastest

# --- geometry (pixels; fitted to dsprites.gif, see docs/dsprites.md) ------------------------------

CENTER_MIN = 16.0  # sprite centre at pos 0: a quarter of the image
CENTER_SPAN = 32.0  # pos 0..1 moves the centre over half the image
SQUARE_HALF_SIDE = 9.6  # 0.15 * 64; sides of 19.2 px at scale 1 (9.5 and 9.7 each cost ~250 px)
ELLIPSE_SEMI_AXES = (12.76, 7.22)  # along the sprite's x (horizontal at orientation 0) and y
HEART_ORIGIN_Y = 1.0  # the heart's outline is star-shaped about (0, 1) in sprite coordinates
# Radius of the heart's outline from (0, HEART_ORIGIN_Y) at scale 1, for angles from -90 deg (the
# tip) to +90 deg (the notch) measured from the right-hand side (x > 0; the heart is symmetric in x)
# at the centres of 120 equal bins; fitted to the GIF's heart frames by per-bin optimal thresholds.
HEART_RADII = np.array([
    10.50, 9.51, 9.43, 9.08, 8.57, 8.23, 8.17, 8.11, 7.82, 7.73, 7.55, 7.39, 7.38, 7.27, 7.16, 7.08,
    7.03, 7.06, 7.08, 6.73, 6.78, 6.77, 6.76, 6.71, 6.64, 6.71, 6.52, 6.58, 6.63, 6.62, 6.61, 6.66,
    6.69, 6.79, 6.78, 6.70, 6.76, 6.77, 6.92, 6.89, 6.98, 7.00, 6.98, 7.13, 7.21, 7.27, 7.34, 7.44,
    7.48, 7.59, 7.70, 7.87, 7.89, 8.01, 8.12, 8.15, 8.42, 8.47, 8.57, 8.70, 8.80, 8.93, 9.01, 9.11,
    9.34, 9.37, 9.47, 9.64, 9.81, 9.87, 10.05, 10.07, 10.11, 10.20, 10.33, 10.35, 10.37, 10.44,
    10.52, 10.54, 10.58, 10.63, 10.56, 10.61, 10.61, 10.61, 10.53, 10.62, 10.50, 10.50, 10.46,
    10.46, 10.35, 10.26, 10.22, 10.24, 10.09, 9.92, 9.79, 9.75, 9.53, 9.45, 9.32, 9.11, 8.88, 8.73,
    8.45, 8.30, 8.01, 7.54, 7.45, 7.06, 6.86, 6.56, 6.25, 5.79, 5.47, 5.21, 4.61, 4.32,
], dtype=np.float32)
HEART_ANGLES = (-np.pi / 2 + (np.arange(len(HEART_RADII)) + 0.5) * np.pi / len(HEART_RADII)).astype(
    np.float32
)
PATCH = 32  # every sprite fits in a 32x32 window around its centre (the square's corner: 13.6 px)

# --- files ----------------------------------------------------------------------------------------

ORIGINAL_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CACHE_FILE = "dsprites_rendered_packed_v1.npy"  # bump the version when the geometry changes
DSPRITES_FILES = DataFiles(required=(ORIGINAL_NPZ,), alternatives=((CACHE_FILE,),), subdirs=("dsprites",))
READ_BLOCK = 65536  # images read and unpacked at once (256 MB unpacked)
SPLIT_SEED = 0
EVAL_FRACTION = 0.05  # val and test each; dSprites has no official split
SPLIT_NOTE = (
    "no official split: a fixed permutation (seed 0) of all 737,280 images: test = the first 5% "
    "(36,864), val = the next 5% (36,864), train = the remaining 90% (663,552)"
)


# --- indices --------------------------------------------------------------------------------------


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    """Flat index in the original's order of factor class indices ``[..., 5]`` -> int64 ``[...]``."""
    factors = np.asarray(factors, dtype=np.int64)
    if factors.shape[-1] != len(FACTOR_SIZES) or (factors < 0).any() or (factors >= FACTOR_SIZES).any():
        raise ValueError(f"factor indices of shape {factors.shape} outside the grid {FACTOR_SIZES}")
    return factors @ np.asarray(STRIDES, dtype=np.int64)


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """Factor class indices ``[..., 5]`` (int64) of flat indices ``[...]`` (inverts factors_to_index)."""
    index = np.asarray(index, dtype=np.int64)
    if (index < 0).any() or (index >= NUM_IMAGES).any():
        raise ValueError(f"flat indices outside [0, {NUM_IMAGES})")
    return np.stack([(index // s) % n for s, n in zip(STRIDES, FACTOR_SIZES)], axis=-1)


def factor_values(factors: np.ndarray) -> np.ndarray:
    """Factor values ``[..., 5]`` float64 (shape 1..3, scale, radians, posX, posY) of class indices."""
    factors = np.asarray(factors, dtype=np.int64)
    return np.stack([FACTOR_VALUES[k][factors[..., k]] for k in range(len(FACTOR_SIZES))], axis=-1)


# --- rendering ------------------------------------------------------------------------------------


def _inside(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether sprite-frame points ``(x, y)`` (y up, pixels at scale 1) lie inside sprite ``shape``."""
    if shape == 0:
        return np.maximum(np.abs(x), np.abs(y)) < SQUARE_HALF_SIDE
    if shape == 1:
        ax, ay = ELLIPSE_SEMI_AXES
        return (x / ax) ** 2 + (y / ay) ** 2 < 1.0
    u, v = np.abs(x), y - HEART_ORIGIN_Y
    return np.hypot(u, v) < np.interp(np.arctan2(v, u), HEART_ANGLES, HEART_RADII)


def render_values(
    shape: np.ndarray, scale: np.ndarray, orientation: np.ndarray, pos_x: np.ndarray, pos_y: np.ndarray
) -> np.ndarray:
    """Render sprites from factor values; every argument is ``[B]`` (shape: 0 square, 1 ellipse, 2 heart).

    Only a 32x32 window around each sprite is evaluated, then placed in the 64x64 image.

    Returns:
        uint8 ``[B, 64, 64]`` in {0, 1}.
    """
    shape = np.asarray(shape, dtype=np.int64)
    if ((shape < 0) | (shape > 2)).any():
        raise ValueError("shape must be 0 (square), 1 (ellipse) or 2 (heart)")
    scale, theta = (np.asarray(a, dtype=np.float32) for a in (scale, orientation))
    centres = [CENTER_MIN + CENTER_SPAN * np.asarray(p, dtype=np.float32) for p in (pos_x, pos_y)]
    # window start: a pixel index, clipped so that the window stays in the image
    starts = [np.clip(np.round(c).astype(np.int64) - PATCH // 2, 0, IMAGE_SIZE - PATCH) for c in centres]
    steps = np.arange(PATCH)
    cols, rows = (s[:, None] + steps for s in starts)  # [B, P] pixel indices
    dx = (cols + 0.5 - centres[0][:, None])[:, None, :]  # [B, 1, P], right = +
    dy = (centres[1][:, None] - rows - 0.5)[:, :, None]  # [B, P, 1], up = + (rows go down)
    cos, sin, s = (a[:, None, None] for a in (np.cos(theta), np.sin(theta), scale))
    x = (cos * dx + sin * dy) / s  # undo a counter-clockwise rotation by theta, then the scale
    y = (cos * dy - sin * dx) / s
    patch = np.empty(x.shape, dtype=bool)  # [B, P, P]
    for k in np.unique(shape):
        rows_k = shape == k
        patch[rows_k] = _inside(int(k), x[rows_k], y[rows_k])
    out = np.zeros((len(shape), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out[np.arange(len(shape))[:, None, None], rows[:, :, None], cols[:, None, :]] = patch
    return out


def render(shape: int | str, scale: float, orientation: float, pos_x: float, pos_y: float) -> np.ndarray:
    """One sprite from factor values (not indices): uint8 ``[64, 64]`` in {0, 1}.

    Args:
        shape: ``"square"``, ``"ellipse"``, ``"heart"`` or its index 0, 1, 2.
        scale: Size relative to the largest (0.5..1 in the data set).
        orientation: Counter-clockwise rotation on screen, radians.
        pos_x, pos_y: Position in [0, 1]: left to right, top to bottom.
    """
    index = SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    return render_values(*([v] for v in (index, scale, orientation, pos_x, pos_y)))[0]


def render_factors(factors: np.ndarray) -> np.ndarray:
    """Images ``uint8 [B, 64, 64]`` of factor class indices ``[B, 5]`` (rendered, no cache needed)."""
    values = factor_values(factors)
    return render_values(np.asarray(factors)[:, 0], *values[:, 1:].T)


def render_grid(out: np.ndarray | None = None, *, chunk: int = 8192) -> np.ndarray:
    """Render all 737,280 images in the original's order, bit-packed along the image rows.

    Args:
        out: A writable uint8 ``[737280, 64, 8]`` array (e.g. an ``np.lib.format.open_memmap``) to
            fill; allocated when None (377 MB).
        chunk: Images rendered at once (about 50 MB of temporaries at 8192).

    Returns:
        ``out``: ``np.packbits(images, axis=-1)``; :func:`unpack` inverts it.
    """
    if out is None:
        out = np.empty((NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8), dtype=np.uint8)
    for start in range(0, NUM_IMAGES, chunk):
        index = np.arange(start, min(start + chunk, NUM_IMAGES))
        out[index[0] : index[-1] + 1] = np.packbits(render_factors(index_to_factors(index)), axis=-1)
    return out


def unpack(packed: np.ndarray) -> np.ndarray:
    """Bit-packed images ``[..., 64, 8]`` -> uint8 ``[..., 64, 64]`` in {0, 1}."""
    return np.unpackbits(np.asarray(packed), axis=-1)


# --- where the images come from -------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$VAEKIT_CACHE/dsprites`` when set, else ``~/.cache/vaekit/dsprites``. Never the data folder:
    that may be shared read-only data (VAEKIT_DATA), which vaekit only reads."""
    root = os.environ.get("VAEKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "vaekit") / "dsprites"


def build_cache(directory: str | os.PathLike | None = None) -> Path:
    """Render the full grid once into ``directory/CACHE_FILE`` (bit-packed .npy, 377 MB); return its path.

    The file is written under a temporary name and moved into place when complete, so an
    interrupted render never leaves a file that a later load would accept. An existing file is kept.
    """
    directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
    path = directory / CACHE_FILE
    if path.is_file():
        return path
    with atomic_path(path, suffix=".npy") as tmp:
        shape = (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        render_grid(array)
        array.flush()
        del array
    return path


@dataclass
class DSpritesSource:
    """Images by flat index, from the original arrays, the packed cache, or rendered on demand.

    Attributes:
        kind: ``"original"`` (the .npz), ``"cache"`` (bit-packed .npy) or ``"render"``.
        path: The file read, or None when rendering.
        _array: The original's images (in memory, 3 GB, or a :class:`~vaekit.data.formats.NpzRows`
            read on demand, one pass through the file per call), or the packed cache (a memory map).
    """

    kind: str
    path: Path | None = None
    _array: np.ndarray | None = field(default=None, repr=False)

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 ``[B, 64, 64]`` in {0, 1} of flat indices ``[B]``."""
        index = np.asarray(index, dtype=np.int64)
        if self.kind == "render":
            return render_factors(index_to_factors(index))
        if isinstance(self._array, NpzRows):  # the original, compressed: one pass, rows asked for
            return self._array[index]
        # sorted reads are sequential on a memory map; blocks keep the temporaries small (the
        # full set is 3 GB unpacked)
        order = np.argsort(index, kind="stable")
        rows = np.empty((len(index), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for start in range(0, len(index), READ_BLOCK):
            block = order[start : start + READ_BLOCK]
            got = self._array[index[block]]
            rows[block] = unpack(got) if self.kind == "cache" else got
        return rows


def _open_original(path: Path, *, stream: bool = False) -> DSpritesSource:
    """The original .npz, checked; its images in memory (3 GB), or with ``stream`` read on demand."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            imgs = NpzRows(path, "imgs") if stream else archive["imgs"]  # NpzRows: its header only
            classes = archive["latents_classes"]  # 35 MB
    except (OSError, ValueError, KeyError) as e:
        raise DataCorruptError(f"{path}: cannot read imgs/latents_classes ({e})") from e
    if imgs.shape != (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE) or classes.shape != (NUM_IMAGES, 6):
        raise DataCorruptError(f"{path}: imgs {imgs.shape}, latents_classes {classes.shape}; not dSprites")
    probe = np.array([0, 1, 12345, NUM_IMAGES - 1])  # the order must be the original's
    if not np.array_equal(classes[probe, 1:], index_to_factors(probe)):
        raise DataCorruptError(f"{path}: latents_classes are not in the original order")
    return DSpritesSource("original", path, imgs)


def open_source(
    root: str | os.PathLike | None = None, *, render_missing: bool = True, stream_original: bool = False
) -> DSpritesSource:
    """Where dSprites images come from: the original .npz if found, else the packed cache.

    Args:
        root: An explicit folder (or file) holding the original .npz or the cache; it is also where
            a new cache is written. When None, the standard places are searched
            (:func:`vaekit.data.resolve.searched_places`), then :func:`default_cache_dir`, where
            a new cache goes.
        render_missing: When neither file exists: render the whole grid into the cache (about a
            minute) if True, else return a source that renders each requested image on demand.
        stream_original: Read the original's (compressed) images on demand, one pass through the
            file per request, up to the last image asked for, instead of holding all 3 GB in
            memory. For one read (``load_images``); code that asks for images again and again
            (the disentanglement metrics) wants them in memory.
    """
    if root is not None and Path(root).expanduser().is_file():
        path = Path(root).expanduser()
        if path.name == CACHE_FILE:
            return DSpritesSource("cache", path, np.load(path, mmap_mode="r"))
        return _open_original(path, stream=stream_original)
    places = DSPRITES_FILES.searched("dsprites", root)
    if root is None:  # also where build_cache writes ($VAEKIT_CACHE may be outside the standard places)
        places = list(dict.fromkeys([*places, default_cache_dir()]))
    for name in (ORIGINAL_NPZ, CACHE_FILE):
        for place in places:
            if (place / name).is_file():
                if name == ORIGINAL_NPZ:
                    return _open_original(place / name, stream=stream_original)
                return DSpritesSource("cache", place / name, np.load(place / name, mmap_mode="r"))
    if not render_missing:
        return DSpritesSource("render")
    path = build_cache(root)
    return DSpritesSource("cache", path, np.load(path, mmap_mode="r"))


# --- the data set ---------------------------------------------------------------------------------


def split_indices() -> dict[str, np.ndarray]:
    """Flat indices of each split: a fixed permutation (seed 0), test 5%, val 5%, train 90%."""
    order = np.random.default_rng(SPLIT_SEED).permutation(NUM_IMAGES)
    n = int(NUM_IMAGES * EVAL_FRACTION)
    return {"train": order[2 * n :], "val": order[n : 2 * n], "test": order[:n]}


@dataclass
class DSprites:
    """dSprites images with their ground-truth factors.

    Attributes:
        images: The image data set (levels 2, shape ``(1, 64, 64)``, ``y`` = shape index 0..2).
        factors: Split name -> int64 ``[N_split, 5]`` factor class indices, row-aligned with
            ``images.<split>.x``.
        indices: Split name -> int64 ``[N_split]`` flat indices into the original order.
        source: Where images come from (also used by :meth:`images_from_factors`).
        factor_names: ``("shape", "scale", "orientation", "posX", "posY")``.
        factor_sizes: ``(3, 6, 40, 32, 32)``.
    """

    images: ImageData
    factors: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]
    source: DSpritesSource
    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FACTOR_SIZES

    def factor_values(self, split: str) -> np.ndarray:
        """Float ``[N_split, 5]`` factor values of a split (see :data:`FACTOR_VALUES`)."""
        return factor_values(self.factors[split])

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor class indices ``[n, 5]`` drawn uniformly from the whole grid."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 ``[B, 64, 64]`` images of factor class indices ``[B, 5]`` (any split)."""
        return self.source.images(factors_to_index(factors))


def load_dsprites(
    root: str | os.PathLike | None = None,
    *,
    subset: int | None = None,
    seed: int = 0,
    render_missing: bool | None = None,
) -> DSprites:
    """dSprites with its fixed 90/5/5 split (see :data:`SPLIT_NOTE`) and factors.

    Args:
        root: Folder (or file) holding ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (preferred
            when present) or the rendered cache; also where a new cache goes. None searches the
            standard places and caches in :func:`default_cache_dir`.
        subset: Keep ``subset`` random train images (seeded by ``seed``) and the first ``subset``
            of val and test. The full set holds 3 GB of uint8 images in memory.
        seed: Seeds the train subset.
        render_missing: With neither file present, render the full grid into the cache (True) or
            render only the images asked for (False). Default: False when ``subset`` is given.

    Raises:
        ValueError: A non-positive ``subset``.
        DataCorruptError: The .npz is unreadable or not dSprites.
    """
    if subset is not None and (not isinstance(subset, int) or subset <= 0):
        raise ConfigError(f"subset={subset!r}; expected a positive integer or None")
    source = open_source(root, render_missing=subset is None if render_missing is None else render_missing)
    indices = split_indices()
    note = SPLIT_NOTE
    if subset is not None:
        pick = np.random.default_rng(seed).permutation(len(indices["train"]))[:subset]
        indices = {
            "train": indices["train"][np.sort(pick)],
            **{k: indices[k][:subset] for k in ("val", "test")},
        }
        note += f"; subset: {subset} random train images (seed {seed}), the first {subset} of val and test"
    factors = {k: index_to_factors(v) for k, v in indices.items()}
    splits = {
        k: ImageSplit(torch.from_numpy(source.images(v)[:, None]), torch.from_numpy(factors[k][:, 0].copy()))
        for k, v in indices.items()
    }
    where = str(source.path) if source.path else "rendered on demand by vaekit.data.dsprites"
    images = ImageData(
        name="dsprites",
        **splits,
        levels=2,
        shape=(1, IMAGE_SIZE, IMAGE_SIZE),
        num_classes=len(SHAPES),
        source=f"{where} ({source.kind})",
        binarization="none",
        split_note=note,
        train_levels=2,
    )
    return DSprites(images=images, factors=factors, indices=indices, source=source)


def load_dsprites_images(root: str | None = None) -> ImageData:
    """dSprites (Matthey et al. 2017): 64x64 binary sprites, 5 factors (663,552/36,864/36,864)."""
    return load_dsprites(root).images


class _SourceImages:
    """The 737,280 images ``[N, 1, 64, 64]`` of a :class:`DSpritesSource`, by flat index (``a[rows]``)."""

    dtype = np.dtype(np.uint8)

    def __init__(self, source: DSpritesSource):
        self.source, self.shape = source, (NUM_IMAGES, 1, IMAGE_SIZE, IMAGE_SIZE)
        self.one_pass = isinstance(source._array, NpzRows)

    def __len__(self) -> int:
        return NUM_IMAGES

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        return self.source.images(index)[:, None]


def open_dsprites_images(root: str | None = None, *, whole: bool = True) -> LazyImageData:
    """dSprites as :func:`load_dsprites_images` has it, before any image is read (``load_images``).

    Args:
        root: As for :func:`load_dsprites`.
        whole: Every image will be read: with neither file present the whole grid is rendered into
            the cache first (as :func:`load_dsprites` does). Otherwise only the images read are
            rendered, nothing is written, and the original .npz (if present) is streamed, not held.
    """
    source = open_source(root, render_missing=whole, stream_original=not whole)
    x = _SourceImages(source)
    splits = {k: LazySplit(x, v, v // STRIDES[0]) for k, v in split_indices().items()}  # y: the shape
    where = str(source.path) if source.path else "rendered on demand by vaekit.data.dsprites"
    return LazyImageData(
        name="dsprites",
        splits=splits,
        levels=2,
        shape=(1, IMAGE_SIZE, IMAGE_SIZE),
        source=f"{where} ({source.kind})",
        split_note=SPLIT_NOTE,
        num_classes=len(SHAPES),
    )


def _register() -> None:
    # the registry refuses a second registration; importlib.reload of this module must not fail
    if DATASETS.registered("dsprites"):
        return
    DATASETS.register(
        "dsprites",
        description="dSprites: 64x64 binary sprites with 5 factors, rendered or from the original .npz "
        "(663,552/36,864/36,864)",
        files=DSPRITES_FILES,
        modality="image",
        open=open_dsprites_images,
    )(load_dsprites_images)


_register()


# --- finding the factors of given frames ----------------------------------------------------------


def _reference_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (shape, scale, orientation) at position (0, 0): class indices, areas, centroid offsets."""
    axes = np.meshgrid(*(np.arange(n) for n in FACTOR_SIZES[:3]), indexing="ij")
    combos = np.stack(axes, axis=-1).reshape(-1, 3)
    factors = np.concatenate([combos, np.zeros((len(combos), 2), np.int64)], axis=1)
    images = render_factors(factors).astype(np.float64)
    area = images.sum(axis=(1, 2))
    grid = np.arange(IMAGE_SIZE) + 0.5
    offset_x = (images.sum(1) @ grid) / np.maximum(area, 1) - CENTER_MIN
    offset_y = (images.sum(2) @ grid) / np.maximum(area, 1) - CENTER_MIN
    return combos, area, np.stack([offset_x, offset_y], axis=1)


def match_factors(
    frames: np.ndarray, *, area_tolerance: float = 0.1, radius: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The grid point whose rendering best matches each binary frame, and the pixel agreement.

    Shape, scale and orientation candidates are those whose area is within ``area_tolerance`` of the
    frame's; for each, the position follows from the frame's centroid and is searched within
    ``radius`` grid steps.

    Args:
        frames: ``[F, 64, 64]``, nonzero = sprite.

    Returns:
        ``(factors int64 [F, 5], agreement float64 [F])``: agreement is the fraction of the 4,096
        pixels equal to the rendering of ``factors``.
    """
    frames = np.asarray(frames) != 0
    combos, ref_area, ref_offset = _reference_table()
    grid = np.arange(IMAGE_SIZE) + 0.5
    steps = np.arange(-radius, radius + 1)
    best_factors = np.zeros((len(frames), 5), np.int64)
    best_agreement = np.zeros(len(frames))
    for i, frame in enumerate(frames):
        area = frame.sum()
        centroid = np.array([frame.sum(0) @ grid, frame.sum(1) @ grid]) / max(area, 1)
        keep = np.abs(ref_area - area) <= area_tolerance * max(area, 1) + 2
        cand = combos[keep]
        pos = np.rint((centroid - ref_offset[keep] - CENTER_MIN) / CENTER_SPAN * (FACTOR_SIZES[3] - 1))
        tries = [
            np.concatenate([cand, np.clip(pos + [dx, dy], 0, FACTOR_SIZES[3] - 1)], axis=1).astype(np.int64)
            for dx in steps
            for dy in steps
        ]
        tries = np.unique(np.concatenate(tries), axis=0)
        agreement = (render_factors(tries) == frame).mean(axis=(1, 2))
        j = int(np.argmax(agreement))
        best_factors[i], best_agreement[i] = tries[j], agreement[j]
    return best_factors, best_agreement


def read_gif_frames(path: str | os.PathLike) -> np.ndarray:
    """All frames of an animated GIF as uint8 ``[F, H, W]`` in {0, 1} (grey > 127 = sprite)."""
    with Image.open(path) as gif:
        frames = [np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(gif)]
    return np.stack(frames).astype(np.uint8)


__all__ = [
    "DSprites",
    "DSpritesSource",
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "build_cache",
    "factor_values",
    "factors_to_index",
    "index_to_factors",
    "load_dsprites",
    "match_factors",
    "read_gif_frames",
    "render",
    "render_factors",
    "render_grid",
    "render_values",
    "unpack",
]
