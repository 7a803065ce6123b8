"""Dictionary-learning benchmark: one pass of online learning of 256 atoms on 20,000 8x8 patches.

Run ``python benchmarks/bench_dictionary.py [--device cuda]``. sparsecode's
:class:`estimators.DictionaryLearning`, scikit-learn's ``MiniBatchDictionaryLearning(fit_algorithm="cd")``
and SPAMS' ``trainDL`` all run the same number of minibatch steps of the same size (one pass, no early
stopping). Each learned dictionary is then scored by the mean lasso energy of exact codes of all patches
(sparsecode's solver run to a relative duality gap of 1e-9 in float64). Prints times, the ratio
``time(sparsecode) / time(peer)`` and the energies.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from _common import import_spams, mean_energy, parser, patches, report, timed
from threadpoolctl import threadpool_limits

from estimators import DictionaryLearning
from sparsecode.device import resolve_device
from sparsecode.solvers import sparse_encode


def exact_energy(X: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """Mean lasso energy of ``X`` with exact codes in the dictionary ``D`` (rows are atoms)."""
    X, D = X.astype(np.float64), D.astype(np.float64)
    Z = sparse_encode(X, D, alpha=alpha, tol=1e-9, max_iter=100000)
    return mean_energy(X, Z, D, alpha)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision given to sparsecode and scikit-learn (SPAMS computes in float64)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    X = patches(args.n_samples).astype(args.dtype)
    n_steps = math.ceil(X.shape[0] / args.batch_size)
    K, alpha, bs = args.n_components, args.alpha, args.batch_size
    print(f"Learning {K} atoms from {X.shape[0]} patches (8x8), alpha={alpha}, batch {bs}, one pass = "
          f"{n_steps} steps, {args.threads} threads, {args.dtype}, sparsecode on {device}.")
    rows = []
    est = DictionaryLearning(n_components=K, alpha=alpha, max_iter=1, batch_size=bs, random_state=0,
                             tol=0, max_no_improvement=None, device=str(device))
    t, est = timed(lambda: est.fit(X), device)
    rows.append(("sparsecode", t, exact_energy(X, est.components_, alpha)))
    with threadpool_limits(args.threads), warnings.catch_warnings():
        from sklearn.decomposition import MiniBatchDictionaryLearning
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)  # its inner lasso_cd budget, by design
        if "sklearn" not in args.skip:
            sk = MiniBatchDictionaryLearning(n_components=K, alpha=alpha, max_iter=1, batch_size=bs,
                                             fit_algorithm="cd", random_state=0, tol=0,
                                             max_no_improvement=None)
            t, sk = timed(lambda: sk.fit(X))
            rows.append(("sklearn MiniBatchDL cd", t, exact_energy(X, sk.components_, alpha)))
    spams = None if "spams" in args.skip else import_spams()
    if spams is not None:
        Xf = np.asfortranarray(X.T, dtype=np.float64)
        t, Ds = timed(lambda: spams.trainDL(Xf, K=K, lambda1=alpha, mode=2, batchsize=bs, iter=n_steps,
                                            numThreads=args.threads, verbose=False))
        rows.append(("spams.trainDL", t, exact_energy(X, np.ascontiguousarray(Ds.T), alpha)))
    report(rows)


if __name__ == "__main__":
    main()
