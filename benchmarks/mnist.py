"""Read MNIST from its original IDX files (``train-images-idx3-ubyte[.gz]`` and friends).

The IDX format: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions ``k``, then ``k`` big-endian
uint32 sizes and the data in big-endian C order. Files may be gzip-compressed. Download the four
files from the MNIST page yourself; nothing here touches the network.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "load_mnist", "MNIST_FILES"]

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in one IDX file (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header says {shape} of {dtype} ({expected} bytes), "
                         f"the file holds {len(raw) - offset}.")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"neither {name} nor {name}.gz is in {directory}.")


def load_mnist(directory: str | Path, subset: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 rows in [0, 1], shape ``(n, 784)``, and integer labels.

    Parameters
    ----------
    directory : path
        Folder holding the IDX files (compressed or not).
    subset : {"train", "test"}
    """
    images_name, labels_name = MNIST_FILES[subset]
    directory = Path(directory)
    images = read_idx(_find(directory, images_name))
    labels = read_idx(_find(directory, labels_name))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels in {directory}.")
    return images.reshape(images.shape[0], -1) / 255.0, labels.astype(np.int64)
