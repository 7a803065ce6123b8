"""The benchmark's MNIST reader on small generated files of the same IDX format."""

import gzip
import struct

import numpy as np
import pytest

from benchmarks.mnist import load_mnist, read_idx


def _write_idx(path, array, type_code=0x08, compress=False):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_round_trip(tmp_path, compress):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(7, 28, 28)).astype(np.uint8)
    labels = rng.randint(0, 10, size=7).astype(np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, compress=compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress=compress)
    X, y = load_mnist(tmp_path, "test")
    assert X.shape == (7, 784) and X.dtype == np.float64
    np.testing.assert_array_equal(X, images.reshape(7, -1) / 255.0)
    np.testing.assert_array_equal(y, labels)


def test_read_idx_other_types_and_errors(tmp_path):
    values = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    _write_idx(tmp_path / "f.idx", values, type_code=0x0D)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), values)
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes((tmp_path / "f.idx").read_bytes()[:-4])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short.idx")
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path, "train")
