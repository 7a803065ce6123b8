"""Issue 17, item 3: ``sparse_encode`` on data larger than memory: memmaps in and out, chunk by chunk, joblib
workers (``n_jobs``), the same codes whatever the chunks and workers."""

import pickle
import tracemalloc

import joblib
import numpy as np
import pytest
import torch

from sparsecode.solvers import encode, sparse_encode
from sparsecode.solvers._common import map_chunks
from sparsecode.solvers.encode import encode_in_chunks, max_correlation


def _problem(seed=0, n=600, p=16, m=32, dtype=np.float64):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = (rng.randn(n, m) * (rng.rand(n, m) < 0.2)) @ D + 0.05 * rng.randn(n, p)
    return X.astype(dtype), D.astype(dtype)


def _memmap(path, array, mode="r"):
    mm = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
    mm[:] = array
    mm.flush()
    return np.memmap(path, dtype=array.dtype, mode=mode, shape=array.shape)


@pytest.mark.parametrize(
    "algorithm, dtype, atol",
    [("auto", np.float32, 1e-6), ("omp", np.float32, 1e-6), ("auto", np.float64, 1e-12),
     ("fista", np.float64, 1e-12)],  # FISTA in float32 may stop a check apart (see encode_in_chunks)
)
def test_memmap_in_and_out_give_the_in_memory_codes(tmp_path, algorithm, dtype, atol):
    X, D = _problem(1, n=300, dtype=dtype)
    ref = sparse_encode(X, D, alpha=0.2, algorithm=algorithm, device="cpu")
    Xmm = _memmap(tmp_path / "X.dat", X)
    out = np.memmap(tmp_path / "Z.dat", dtype=dtype, mode="w+", shape=ref.shape)
    for chunk_size in (37, None):
        out[:] = np.nan
        Z = sparse_encode(Xmm, D, alpha=0.2, algorithm=algorithm, device="cpu", out=out, chunk_size=chunk_size)
        assert Z is out and Z.dtype == dtype
        np.testing.assert_allclose(Z, ref, rtol=0, atol=atol)

def test_tensor_in_ndarray_out_and_a_warm_start_read_by_chunks():
    """FISTA's warm start ("auto" with one also polishes supports, whose outcome depends on the chunk
    within ``tol``), in float64: in float32 the stopping checks of a sample near ``tol`` can fall either way."""
    X, D = _problem(1)
    init = 0.9 * sparse_encode(X, D, alpha=0.2, device="cpu")
    warm = sparse_encode(X, D, alpha=0.2, algorithm="fista", device="cpu", init=init)
    Z = sparse_encode(torch.from_numpy(X), D, alpha=0.2, algorithm="fista", out=np.empty_like(init), init=init,
                      chunk_size=50)
    np.testing.assert_allclose(Z, warm, rtol=0, atol=1e-12)


def test_workers_give_the_same_codes_and_iterations(tmp_path, monkeypatch):
    """Threads (the default), and the work shipped pickled as a process or cluster backend ships it."""
    X, D = _problem(2, n=2000, dtype=np.float32)
    ref, n_iter = sparse_encode(X, D, alpha=0.1, device="cpu", return_n_iter=True)
    Xmm = _memmap(tmp_path / "X.dat", X)
    Z, n_iter_2 = sparse_encode(Xmm, D, alpha=0.1, device="cpu", n_jobs=2, return_n_iter=True)
    np.testing.assert_allclose(Z, ref, rtol=0, atol=1e-6)
    assert n_iter_2 == n_iter

    def shipped(fn, chunk, *arrays, **kwargs):  # every task through pickle, as loky, Dask or Ray send it
        fn = pickle.loads(pickle.dumps(fn))
        return map_chunks(lambda *parts: pickle.loads(pickle.dumps(fn(*pickle.loads(pickle.dumps(parts))))),
                          chunk, *arrays, **kwargs)

    monkeypatch.setattr(encode, "map_chunks", shipped)
    X, D = X.astype(np.float64), D.astype(np.float64)
    with joblib.parallel_backend("threading"):
        out = np.empty(ref.shape)
        sparse_encode(X, D, alpha=0.1, algorithm="fista", device="cpu", n_jobs=-1, out=out)
    np.testing.assert_allclose(out, sparse_encode(X, D, alpha=0.1, algorithm="fista", device="cpu"),
                               rtol=0, atol=1e-12)


def test_tensors_in_without_out_give_a_tensor_gathered_from_chunks():
    X, D = _problem(3)
    Xt, Dt = torch.from_numpy(X), torch.from_numpy(D)
    whole = sparse_encode(Xt, Dt, alpha=0.2)
    chunks = sparse_encode(Xt, Dt, alpha=0.2, chunk_size=64)
    assert isinstance(whole, torch.Tensor) and isinstance(chunks, torch.Tensor)
    torch.testing.assert_close(chunks, whole, rtol=0, atol=1e-12)


def test_reading_a_memmap_holds_a_chunk_not_the_data(tmp_path):
    """tracemalloc counts numpy's allocations: a chunk's copy of the read-only memmap, never the whole of it."""
    rng = np.random.RandomState(4)
    X = _memmap(tmp_path / "X.dat", rng.randn(60_000, 64).astype(np.float32))
    D = torch.from_numpy(rng.randn(8, 64).astype(np.float32))
    out = np.memmap(tmp_path / "Z.dat", dtype=np.float32, mode="w+", shape=(len(X), 8))
    tracemalloc.start()
    try:
        sparse_encode(X, D, alpha=5.0, algorithm="threshold", out=out, chunk_size=5_000)
        alpha_max = max_correlation(X, D, chunk_size=5_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk_bytes = 5_000 * 64 * 4
    assert peak < 2 * chunk_bytes < X.nbytes / 4
    assert out[:].any() and alpha_max == pytest.approx(float(np.abs(X @ D.numpy().T).max()), rel=1e-5)


@pytest.mark.parametrize(
    "out, error, match",
    [
        (np.empty((600, 31)), ValueError, r"shape \(600, 32\).*np.empty\(\(600, 32\), dtype=np.float64\)"),
        (np.empty((600, 32), np.float32), ValueError, "dtype float64 .*got shape .* dtype float32"),
        ([[0.0] * 32] * 600, TypeError, "numpy array or np.memmap, got list"),
        (torch.empty(600, 32, dtype=torch.float64), TypeError, "got Tensor"),
    ],
)
def test_a_wrong_out_is_refused_with_how_to_allocate_one(out, error, match):
    X, D = _problem(5)
    with pytest.raises(error, match=match):
        sparse_encode(X, D, alpha=0.2, out=out)


def test_read_only_out_zero_jobs_and_mismatched_features_are_refused(tmp_path):
    X, D = _problem(6)
    read_only = _memmap(tmp_path / "Z.dat", np.zeros((600, 32)))
    with pytest.raises(ValueError, match="read-only .*mode='w\\+' or 'r\\+'"):
        sparse_encode(X, D, alpha=0.2, out=read_only)
    with pytest.raises(ValueError, match="n_jobs=0 runs nothing"):
        sparse_encode(X, D, alpha=0.2, n_jobs=0)
    with pytest.raises(ValueError, match="same n_features"):
        encode_in_chunks(X[:, :5], torch.from_numpy(D), 0.2)
