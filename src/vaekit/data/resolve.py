"""Finding data set files on disk, and downloading the canonical copies when they are absent.

A data set is a set of file names (a *layout*). :func:`find_dataset_dir` looks for a directory that
holds every file of a layout, in a fixed list of places, and downloads the canonical files (checked
against a SHA-256 digest) only when nothing is found, the data set has a :class:`DownloadSpec` and
``VAEKIT_OFFLINE`` is unset. A missing data set is an error that lists every place searched; it never
falls back to another data set.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vaekit.errors import DataError
from vaekit.fileio import atomic_path

DOWNLOAD_TIMEOUT_S = 10.0  # short, so that machines without internet fail fast
SYSTEM_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"), Path("/var/lib/vaekit"))


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set's files are in none of the places searched (and could not be downloaded)."""


class DataCorruptError(DataError):
    """A data file exists but is truncated, corrupt or not of the expected format."""


@dataclass(frozen=True)
class DownloadSpec:
    """Where the canonical files of a data set live, with the SHA-256 of each file as served."""

    base_url: str
    sha256: dict[str, str]  # file name -> hex digest


# The digests are those of the files as served by the canonical URLs, as recorded by TensorFlow
# Datasets (tensorflow/datasets: tensorflow_datasets/url_checksums/{fashion_mnist,mnist}.txt).
# Debian's dataset-fashion-mnist ships the same idx payloads recompressed (gzip header without the
# file name, mtime 2020-06-05), so its .gz files hash differently and cannot serve as the reference.
DOWNLOADS: dict[str, DownloadSpec] = {
    "fashion_mnist": DownloadSpec(
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
    "mnist": DownloadSpec(
        base_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
}


def cache_dir(name: str) -> Path:
    """The per-user directory that downloads of data set ``name`` go to."""
    return Path.home() / ".cache" / "vaekit" / name


def offline() -> bool:
    """Whether downloads are disabled (``VAEKIT_OFFLINE`` set to anything but ``""`` or ``"0"``)."""
    return os.environ.get("VAEKIT_OFFLINE", "") not in ("", "0")


def _explicit_dir(explicit: str | os.PathLike) -> Path:
    path = Path(explicit).expanduser()
    return path.parent if path.is_file() else path


def searched_places(
    name: str,
    subdirs: Sequence[str] | None = None,
    explicit: str | os.PathLike | None = None,
) -> list[Path]:
    """The directories searched for data set ``name``, in order.

    The explicit path first (a directory, or a file whose parent is used), then
    ``$VAEKIT_DATA/<subdir>`` and ``$VAEKIT_DATA``, ``~/.cache/vaekit/<subdir>``,
    ``/usr/share/datasets/<subdir>``, ``/usr/local/share/datasets/<subdir>`` and
    ``/var/lib/vaekit/<subdir>``.

    Args:
        name: The data set's registered name.
        subdirs: Folder names the data set may sit under; defaults to ``[name]``.
        explicit: A path given by the user (``--data``), or None.
    """
    subdirs = list(subdirs) if subdirs else [name]
    places = [] if explicit is None else [_explicit_dir(explicit)]
    env_root = os.environ.get("VAEKIT_DATA")
    if env_root:
        root = Path(env_root).expanduser()
        places += [root / s for s in subdirs] + [root]
    places += [Path.home() / ".cache" / "vaekit" / s for s in subdirs]
    places += [base / s for base in SYSTEM_DIRS for s in subdirs]
    return list(dict.fromkeys(places))  # drop duplicates, keep order


def first_complete_layout(directory: Path, layouts: Sequence[Sequence[str]]) -> tuple[str, ...] | None:
    """The first layout (a list of file names) whose files all exist in ``directory``, else None."""
    for layout in layouts:
        if all((directory / f).is_file() for f in layout):
            return tuple(layout)
    return None


def find_dataset_dir(
    name: str,
    required: Sequence[str],
    explicit: str | os.PathLike | None = None,
    *,
    subdirs: Sequence[str] | None = None,
    alternatives: Sequence[Sequence[str]] = (),
    download: bool = True,
) -> Path:
    """The first directory holding every file of ``required`` (or of one of ``alternatives``).

    Args:
        name: The data set's registered name (also the key of its :data:`DOWNLOADS` entry).
        required: File names that must all be present (the layout that a download produces).
        explicit: A user-given directory or file, searched first. It must exist: a mistyped path is
            an error, not a reason to quietly use another copy.
        subdirs: Folder names the data set may sit under; defaults to ``[name]``.
        alternatives: Other complete layouts accepted in the same directory, checked after
            ``required`` (e.g. uncompressed idx files, or a single .npz).
        download: Allow downloading into ``~/.cache/vaekit/<name>`` when nothing is found (also
            disabled by ``VAEKIT_OFFLINE``).

    Raises:
        DataNotFoundError: Nothing found and no download possible; the message lists every place
            searched and how to fix it.
        DataCorruptError: A downloaded file does not match its SHA-256.
    """
    if explicit is not None and not Path(explicit).expanduser().exists():
        raise DataNotFoundError(f"data path {explicit} (given for data set {name!r}) does not exist")
    layouts = [required, *alternatives]
    places = searched_places(name, subdirs, explicit)
    for place in places:
        if first_complete_layout(place, layouts):
            return place
    spec = DOWNLOADS.get(name)
    if spec is None or not download or offline():
        raise DataNotFoundError(_not_found_message(name, layouts, places, spec))
    target = cache_dir(name)
    try:
        download_files(spec, target)
    except (urllib.error.URLError, OSError) as e:
        raise DataNotFoundError(_not_found_message(name, layouts, places, spec, failure=e)) from e
    if not first_complete_layout(target, layouts):
        raise DataNotFoundError(_not_found_message(name, layouts, [*places, target], spec))
    return target


@dataclass(frozen=True)
class DataFiles:
    """Where a registered data set's files may be: the arguments of :func:`find_dataset_dir`.

    Stored as the ``files`` extra of a :data:`vaekit.registry.DATASETS` entry, so that loaders and
    ``vaekit data`` (:func:`vaekit.data.describe_datasets`) search exactly the same places.
    """

    required: tuple[str, ...]
    alternatives: tuple[tuple[str, ...], ...] = ()
    subdirs: tuple[str, ...] | None = None

    @property
    def layouts(self) -> list[tuple[str, ...]]:
        """Every accepted layout, ``required`` first."""
        return [self.required, *self.alternatives]

    def find(self, name: str, explicit: str | os.PathLike | None = None, *, download: bool = True) -> Path:
        """:func:`find_dataset_dir` for these files."""
        return find_dataset_dir(
            name,
            self.required,
            explicit,
            subdirs=self.subdirs,
            alternatives=self.alternatives,
            download=download,
        )

    def searched(self, name: str, explicit: str | os.PathLike | None = None) -> list[Path]:
        """:func:`searched_places` for these files."""
        return searched_places(name, self.subdirs, explicit)


def _not_found_message(
    name: str,
    layouts: Sequence[Sequence[str]],
    places: Sequence[Path],
    spec: DownloadSpec | None,
    failure: BaseException | None = None,
) -> str:
    wanted = " or ".join("{" + ", ".join(layout) + "}" for layout in layouts)
    lines = [f"data set {name!r} not found: no directory holds {wanted}. Searched:"]
    lines += [f"  - {p}" for p in places]
    if failure is not None:
        lines.append(f"Downloading from {spec.base_url} failed: {failure}")
    elif spec is not None and offline():
        lines.append(f"Not downloaded from {spec.base_url} because VAEKIT_OFFLINE is set.")
    lines.append(
        "Fix: pass --data PATH (the folder holding the files), or set VAEKIT_DATA to a folder with a "
        f"{name}/ subfolder, or install a system copy (e.g. `apt-get install dataset-fashion-mnist` "
        "puts Fashion-MNIST in /usr/share/datasets/fashion-mnist)."
    )
    return "\n".join(lines)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_files(spec: DownloadSpec, target: Path) -> None:
    """Download every file of ``spec`` into ``target``, verifying each SHA-256.

    Each file goes to a temporary file in ``target`` and is moved into place with ``os.replace``
    only after its digest matches, so an interrupted or corrupt download never leaves a file
    that a later search would accept. Files already present with the right digest are kept.

    Raises:
        DataCorruptError: A downloaded file's digest differs from the expected one.
        urllib.error.URLError, OSError: The network or the disk failed.
    """
    target.mkdir(parents=True, exist_ok=True)
    for file_name, expected in spec.sha256.items():
        dest = target / file_name
        if dest.is_file() and sha256_of(dest) == expected:
            continue
        url = spec.base_url + file_name
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    out.write(chunk)
            actual = sha256_of(tmp)
            if actual != expected:
                raise DataCorruptError(
                    f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                    "the file was not kept (a changed or corrupted download)"
                )
