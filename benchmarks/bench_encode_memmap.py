"""Encoding data larger than memory (issue 17, item 3): ``sparse_encode`` from a memmap into a memmap.

Writes ``--n-samples`` unit-norm 8x8 patches (float32) to a memmap, then codes them in 256 other patches
(``"auto"``, alpha 0.1) into a memmap output, once per setting in a fresh process: ``n_jobs`` 1 (with
``--threads`` torch threads, default 2), and 2 (half as many each, at least one) in joblib's thread
backend (the default) and process backend (loky). Prints the time of a first call (with the workers'
start-up) and of a second one, and the growth of the peak anonymous resident memory (``RssAnon``, the
process and its workers; the memmaps' pages are file-backed and not counted), sampled every 10 ms.
Run ``python benchmarks/bench_encode_memmap.py [--n-samples 200000] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import parser, patches

SETTINGS = [(1, "threading"), (2, "threading"), (2, "loky")]


def _rss_anon(pid: int) -> int:
    """Anonymous resident bytes of ``pid`` and its descendants."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                total += int(line.split()[1]) * 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _rss_anon(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


class PeakMemory:
    """Peak growth of :func:`_rss_anon` of this process over a block, sampled every 10 ms."""

    def __enter__(self):
        self.base = self.peak = _rss_anon(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_anon(os.getpid()))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth = self.peak - self.base


def run_one(folder: Path, n: int, m: int, n_jobs: int, backend: str, device: str, alpha: float,
            threads: int) -> None:
    """One setting, in this process: two calls, each timed with its peak memory growth."""
    import joblib
    import torch

    from sparsecode.solvers import sparse_encode

    torch.set_num_threads(max(1, threads // n_jobs))
    X = np.memmap(folder / "X.dat", dtype=np.float32, mode="r", shape=(n, 64))
    D = np.load(folder / "D.npy")
    out = np.memmap(folder / f"Z_{n_jobs}_{backend}.dat", dtype=np.float32, mode="w+", shape=(n, m))
    sparse_encode(X[:256], D, alpha=alpha, device=device)  # kernels loaded, as in a warm session
    cells = []
    for _ in range(2):
        with joblib.parallel_backend(backend), PeakMemory() as mem:
            t = time.perf_counter()
            sparse_encode(X, D, alpha=alpha, device=device, n_jobs=n_jobs, out=out)
            t = time.perf_counter() - t
        cells += [f"{t:.1f}", f"{mem.growth / 1e6:.0f}"]
    ref = np.memmap(folder / "Z_1_threading.dat", dtype=np.float32, mode="r", shape=(n, m))
    same = f"{float(np.abs(out - ref).max()):.1e}" if n_jobs > 1 else "-"
    print(f"| {n_jobs} | {backend} | " + " | ".join(cells) + f" | {same} |", flush=True)


def main():
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(n_samples=200_000)
    p.add_argument("--worker", nargs=3, metavar=("FOLDER", "N_JOBS", "BACKEND"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        folder, n_jobs, backend = args.worker
        return run_one(Path(folder), args.n_samples, args.n_components, int(n_jobs), backend, args.device,
                       args.alpha, args.threads)
    n, m = args.n_samples, args.n_components
    with tempfile.TemporaryDirectory() as folder:
        P = patches(n + m).astype(np.float32)
        X = np.memmap(Path(folder) / "X.dat", dtype=np.float32, mode="w+", shape=(n, 64))
        X[:] = P[:n]
        X.flush()
        np.save(Path(folder) / "D.npy", P[n:])
        del P, X
        print(f"{n} x 64 float32 patches (memmap, {n * 64 * 4 / 1e6:.0f} MB) coded in {m} atoms, alpha "
              f"{args.alpha}, into a memmap ({n * m * 4 / 1e6:.0f} MB) on {args.device}; load "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print("| n_jobs | backend | 1st call (s) | 1st peak RssAnon growth (MB) | 2nd call (s) | 2nd growth (MB) "
              "| max diff to n_jobs=1 |\n|---|---|---|---|---|---|---|", flush=True)
        for n_jobs, backend in SETTINGS:
            subprocess.run([sys.executable, __file__, "--worker", folder, str(n_jobs), backend,
                            "--n-samples", str(n), "--n-components", str(m), "--device", args.device,
                            "--alpha", str(args.alpha), "--threads", str(args.threads)], check=True)


if __name__ == "__main__":
    main()
